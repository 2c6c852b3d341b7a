//! A typed client for the RunTools HTTP API, used by the `runtools` CLI and the test suites.
//!
//! Every method maps one route; failures come back as [`ClientError::Api`] carrying the server's
//! error body (code, message, request id), so callers can branch on stable codes.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use runtools_protocol::health::{Health, Ready};
use runtools_protocol::sandbox::{CreateSandboxRequest, ExecRequest, ExecResult, Sandbox, SetTimeoutRequest};
use runtools_protocol::{
    ApiKey, CreateApiKeyRequest, CreatedApiKey, Environment, EnvironmentKind, ErrorBody, KeyId, ListParams, Page,
    PutSecretRequest, SandboxId, Secret, SecretName, Whoami,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A request did not produce the expected answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("`{0}` is not a valid server URL")]
    BadUrl(String),
    #[error("cannot reach the RunTools server at {url}: {source}")]
    Unreachable { url: String, source: reqwest::Error },
    #[error("{} ({}, HTTP {status}; request id {})", body.error.message, body.error.code, body.error.request_id)]
    Api { status: u16, body: ErrorBody },
    #[error("the server answered HTTP {status} with a body this client cannot read: {text}")]
    UnexpectedResponse { status: u16, text: String },
}

impl ClientError {
    /// The API error code, when the server answered with one.
    pub fn code(&self) -> Option<runtools_protocol::ErrorCode> {
        match self {
            Self::Api { body, .. } => Some(body.error.code),
            _ => None,
        }
    }
}

/// A client for one server, authenticating with one key.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: url::Url,
    api_key: Option<String>,
}

impl Client {
    /// A client for the server at `base_url` (e.g. `http://127.0.0.1:7070`).
    pub fn new(base_url: &str, api_key: Option<String>) -> Result<Self, ClientError> {
        let base = url::Url::parse(base_url).map_err(|_| ClientError::BadUrl(base_url.to_owned()))?;
        if base.cannot_be_a_base() || !matches!(base.scheme(), "http" | "https") {
            return Err(ClientError::BadUrl(base_url.to_owned()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("runtools-client/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| ClientError::Unreachable { url: base_url.to_owned(), source })?;
        Ok(Self { http, base, api_key })
    }

    /// The same server with another key.
    pub fn with_api_key(&self, api_key: impl Into<String>) -> Self {
        Self { api_key: Some(api_key.into()), ..self.clone() }
    }

    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// A request builder for `path` with the key attached, for routes this client has no method for.
    pub fn request(&self, method: Method, path: &str) -> Result<reqwest::RequestBuilder, ClientError> {
        let url = self.base.join(path).map_err(|_| ClientError::BadUrl(format!("{}{path}", self.base)))?;
        let builder = self.http.request(method, url);
        Ok(match &self.api_key {
            Some(key) => builder.bearer_auth(key),
            None => builder,
        })
    }

    async fn send<T: DeserializeOwned>(&self, builder: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = self.execute(builder).await?;
        let status = response.status();
        let text = response.text().await.map_err(|source| self.unreachable(source))?;
        serde_json::from_str(&text).map_err(|_| ClientError::UnexpectedResponse { status: status.as_u16(), text })
    }

    async fn execute(&self, builder: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = builder.send().await.map_err(|source| self.unreachable(source))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let text = response.text().await.map_err(|source| self.unreachable(source))?;
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) => Err(ClientError::Api { status: status.as_u16(), body }),
            Err(_) => Err(ClientError::UnexpectedResponse { status: status.as_u16(), text }),
        }
    }

    fn unreachable(&self, source: reqwest::Error) -> ClientError {
        ClientError::Unreachable { url: self.base.to_string(), source }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)?).await
    }

    async fn get_page<T: DeserializeOwned>(&self, path: &str, params: &ListParams) -> Result<Page<T>, ClientError> {
        self.send(self.request(Method::GET, path)?.query(params)).await
    }

    async fn with_body<B: Serialize, T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        self.send(self.request(method, path)?.json(body)).await
    }

    /// `GET /healthz`.
    pub async fn health(&self) -> Result<Health, ClientError> {
        self.get("/healthz").await
    }

    /// `GET /readyz`.
    pub async fn ready(&self) -> Result<Ready, ClientError> {
        self.get("/readyz").await
    }

    /// `GET /v1/me`.
    pub async fn whoami(&self) -> Result<Whoami, ClientError> {
        self.get("/v1/me").await
    }

    /// `GET /v1/environments`.
    pub async fn environments(&self) -> Result<Page<Environment>, ClientError> {
        self.get("/v1/environments").await
    }

    /// `POST /v1/keys`.
    pub async fn create_key(
        &self,
        environment: EnvironmentKind,
        name: Option<String>,
    ) -> Result<CreatedApiKey, ClientError> {
        self.with_body(Method::POST, "/v1/keys", &CreateApiKeyRequest { environment, name }).await
    }

    /// `GET /v1/keys` (one page).
    pub async fn list_keys(&self, params: &ListParams) -> Result<Page<ApiKey>, ClientError> {
        self.get_page("/v1/keys", params).await
    }

    /// Every item of a list route (`GET path?filters…`), following cursors.
    pub async fn all<T: DeserializeOwned>(
        &self,
        path: &str,
        filters: &[(String, String)],
    ) -> Result<Vec<T>, ClientError> {
        let mut params = ListParams { limit: Some(ListParams::MAX_LIMIT), cursor: None };
        let mut items = Vec::new();
        loop {
            let page: Page<T> = self.send(self.request(Method::GET, path)?.query(&params).query(filters)).await?;
            items.extend(page.data);
            match page.next_cursor {
                Some(cursor) => params.cursor = Some(cursor),
                None => return Ok(items),
            }
        }
    }

    /// Every key.
    pub async fn all_keys(&self) -> Result<Vec<ApiKey>, ClientError> {
        self.all("/v1/keys", &[]).await
    }

    /// `GET /v1/keys/{id}`.
    pub async fn key(&self, id: KeyId) -> Result<ApiKey, ClientError> {
        self.get(&format!("/v1/keys/{id}")).await
    }

    /// `DELETE /v1/keys/{id}`.
    pub async fn revoke_key(&self, id: KeyId) -> Result<ApiKey, ClientError> {
        self.send(self.request(Method::DELETE, &format!("/v1/keys/{id}"))?).await
    }

    /// `PUT /v1/secrets/{name}`.
    pub async fn put_secret(&self, name: &SecretName, value: impl Into<String>) -> Result<Secret, ClientError> {
        self.with_body(Method::PUT, &format!("/v1/secrets/{name}"), &PutSecretRequest { value: value.into() }).await
    }

    /// `GET /v1/secrets` (one page).
    pub async fn list_secrets(&self, params: &ListParams) -> Result<Page<Secret>, ClientError> {
        self.get_page("/v1/secrets", params).await
    }

    /// `GET /v1/secrets/{name}`.
    pub async fn secret(&self, name: &SecretName) -> Result<Secret, ClientError> {
        self.get(&format!("/v1/secrets/{name}")).await
    }

    /// `DELETE /v1/secrets/{name}`.
    pub async fn delete_secret(&self, name: &SecretName) -> Result<(), ClientError> {
        let response = self.execute(self.request(Method::DELETE, &format!("/v1/secrets/{name}"))?).await?;
        match response.status() {
            StatusCode::NO_CONTENT => Ok(()),
            status => Err(ClientError::UnexpectedResponse { status: status.as_u16(), text: String::new() }),
        }
    }

    /// `POST /v1/sandboxes`.
    pub async fn create_sandbox(&self, request: &CreateSandboxRequest) -> Result<Sandbox, ClientError> {
        self.with_body(Method::POST, "/v1/sandboxes", request).await
    }

    /// `GET /v1/sandboxes` with filters as query pairs (`state`, `template`, `metadata.<key>`).
    pub async fn list_sandboxes(
        &self,
        params: &ListParams,
        filters: &[(String, String)],
    ) -> Result<Page<Sandbox>, ClientError> {
        self.send(self.request(Method::GET, "/v1/sandboxes")?.query(params).query(filters)).await
    }

    /// `GET /v1/sandboxes/{id}`.
    pub async fn sandbox(&self, id: SandboxId) -> Result<Sandbox, ClientError> {
        self.get(&format!("/v1/sandboxes/{id}")).await
    }

    /// `DELETE /v1/sandboxes/{id}`.
    pub async fn delete_sandbox(&self, id: SandboxId) -> Result<Sandbox, ClientError> {
        self.send(self.request(Method::DELETE, &format!("/v1/sandboxes/{id}"))?).await
    }

    /// `POST /v1/sandboxes/{id}/pause`.
    pub async fn pause_sandbox(&self, id: SandboxId) -> Result<Sandbox, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/sandboxes/{id}/pause"))?).await
    }

    /// `POST /v1/sandboxes/{id}/resume`.
    pub async fn resume_sandbox(&self, id: SandboxId) -> Result<Sandbox, ClientError> {
        self.send(self.request(Method::POST, &format!("/v1/sandboxes/{id}/resume"))?).await
    }

    /// `POST /v1/sandboxes/{id}/timeout`.
    pub async fn set_sandbox_timeout(&self, id: SandboxId, timeout_secs: u64) -> Result<Sandbox, ClientError> {
        self.with_body(Method::POST, &format!("/v1/sandboxes/{id}/timeout"), &SetTimeoutRequest { timeout_secs }).await
    }

    /// `POST /v1/sandboxes/{id}/exec`.
    pub async fn exec(&self, id: SandboxId, request: &ExecRequest) -> Result<ExecResult, ClientError> {
        self.with_body(Method::POST, &format!("/v1/sandboxes/{id}/exec"), request).await
    }

    /// The WebSocket URL of a sandbox's streaming exec, and the key to send as a bearer token.
    pub fn exec_stream_url(&self, id: SandboxId) -> Result<(String, Option<String>), ClientError> {
        let mut url = self
            .base
            .join(&format!("/v1/sandboxes/{id}/exec/ws"))
            .map_err(|_| ClientError::BadUrl(self.base.to_string()))?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| ClientError::BadUrl(self.base.to_string()))?;
        Ok((url.to_string(), self.api_key.clone()))
    }

    /// `GET /v1/openapi.json`.
    pub async fn openapi(&self) -> Result<serde_json::Value, ClientError> {
        self.get("/v1/openapi.json").await
    }
}
