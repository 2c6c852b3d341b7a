//! Port URLs: HTTP and WebSocket traffic from outside into a port inside a sandbox, for dev
//! servers. Two ways in:
//!
//! - `http://<port>-<sandbox id>.localhost:7070/…` — routed by the `Host` header (every
//!   `*.localhost` name resolves to loopback), authorised by the sandbox's access token given once
//!   as `?rt_token=…` (then kept in a cookie scoped to that host), an `x-runtools-access-token`
//!   header, or the cookie;
//! - `/v1/sandboxes/{id}/ports/{port}/…` — authorised by the access token or an environment key
//!   of the sandbox's environment.
//!
//! The connection into the sandbox is made in its network namespace by the backend, so a sandbox
//! with networking off still serves its ports here and nowhere else.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{COOKIE, HOST, SET_COOKIE};
use axum::http::{HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use runtools_protocol::{ErrorCode, SandboxId};
use runtools_store::SandboxRecord;
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Header carrying a sandbox access token.
pub const ACCESS_TOKEN_HEADER: &str = "x-runtools-access-token";
const TOKEN_PARAM: &str = "rt_token";
const TOKEN_COOKIE: &str = "rt_token";

/// `(port, sandbox)` when the Host header names a sandbox port: `<port>-<id>.localhost[:port]`.
pub(crate) fn sandbox_host(request: &Request) -> Option<(u16, SandboxId)> {
    let host = request.headers().get(HOST)?.to_str().ok()?;
    let name = host
        .rsplit_once(':')
        .map_or(host, |(name, port)| if port.bytes().all(|b| b.is_ascii_digit()) { name } else { host });
    let label = name.strip_suffix(".localhost")?;
    let (port, id) = label.split_once('-')?;
    Some((port.parse().ok()?, id.parse().ok()?))
}

/// Middleware: sends requests for a sandbox host to the sandbox, everything else on.
pub(crate) async fn route_sandbox_hosts(
    axum::extract::State(state): axum::extract::State<AppState>,
    request: Request,
    next: axum::middleware::Next,
) -> Response {
    match sandbox_host(&request) {
        Some((port, id)) => match proxy_by_token(&state, id, port, request, true).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        },
        None => next.run(request).await,
    }
}

/// Proxies a request authorised by the sandbox's access token.
pub(crate) async fn proxy_by_token(
    state: &AppState,
    id: SandboxId,
    port: u16,
    request: Request,
    whole_host: bool,
) -> Result<Response, ApiError> {
    let service = state.sandboxes()?;
    let record =
        service.store().sandbox_by_id(id).await?.ok_or_else(|| ApiError::not_found(format!("sandbox {id}")))?;
    let (presented, from_query) = presented_token(&request);
    let valid = presented
        .as_deref()
        .is_some_and(|token| bool::from(token.as_bytes().ct_eq(record.settings.access_token.as_bytes())));
    if !valid {
        return Err(ApiError::new(
            ErrorCode::MissingApiKey,
            format!("this sandbox port needs its access token: add ?{TOKEN_PARAM}=<the sandbox's access_token> once"),
        ));
    }
    let mut response = forward(state, &record, port, request, None).await?;
    if from_query && whole_host {
        let cookie = format!("{TOKEN_COOKIE}={}; Path=/; HttpOnly; SameSite=Lax", record.settings.access_token);
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// The token a request presents, and whether it came in the query string.
fn presented_token(request: &Request) -> (Option<String>, bool) {
    if let Some(value) = request.headers().get(ACCESS_TOKEN_HEADER).and_then(|v| v.to_str().ok()) {
        return (Some(value.to_owned()), false);
    }
    if let Some(query) = request.uri().query() {
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            if key == TOKEN_PARAM {
                return (Some(value.into_owned()), true);
            }
        }
    }
    let cookie =
        request.headers().get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(
            |pair| {
                let (name, value) = pair.trim().split_once('=')?;
                (name == TOKEN_COOKIE).then(|| value.to_owned())
            },
        );
    (cookie, false)
}

/// Sends `request` to `port` inside the sandbox and returns its response. `path` replaces the
/// request's path (for the `/v1/…/ports/{port}/…` form). WebSocket (and any other) upgrades are
/// spliced through.
pub(crate) async fn forward(
    state: &AppState,
    record: &SandboxRecord,
    port: u16,
    mut request: Request,
    path: Option<String>,
) -> Result<Response, ApiError> {
    let service = state.sandboxes()?;
    let stream = service.connect_port(record, port).await.map_err(|error| {
        ApiError::new(
            ErrorCode::Unavailable,
            format!("nothing answers on port {port} in sandbox {}: {}", record.id, error.message()),
        )
    })?;
    let path_and_query = {
        let path = path.unwrap_or_else(|| request.uri().path().to_owned());
        let query = request.uri().query().map(strip_token_param).filter(|q| !q.is_empty());
        match query {
            Some(query) => format!("{path}?{query}"),
            None => path,
        }
    };
    *request.uri_mut() =
        Uri::try_from(path_and_query).map_err(|e| ApiError::new(ErrorCode::InvalidRequest, e.to_string()))?;
    request.headers_mut().remove(ACCESS_TOKEN_HEADER);
    if let Ok(host) = HeaderValue::from_str(&format!("localhost:{port}")) {
        request.headers_mut().insert(HOST, host);
    }
    let upgrade_requested = request.headers().contains_key(axum::http::header::UPGRADE);
    let client_upgrade = if upgrade_requested { Some(hyper::upgrade::on(&mut request)) } else { None };

    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("port {port} did not speak HTTP: {e}")))?;
    tokio::spawn(async move {
        if let Err(error) = connection.with_upgrades().await {
            tracing::debug!(%error, "sandbox port connection ended");
        }
    });
    let mut response = sender
        .send_request(request)
        .await
        .map_err(|e| ApiError::new(ErrorCode::Unavailable, format!("port {port} did not answer: {e}")))?;
    if response.status() == StatusCode::SWITCHING_PROTOCOLS
        && let Some(client_upgrade) = client_upgrade
    {
        let sandbox_upgrade = hyper::upgrade::on(&mut response);
        tokio::spawn(async move {
            match (client_upgrade.await, sandbox_upgrade.await) {
                (Ok(client), Ok(sandbox)) => {
                    let _ = tokio::io::copy_bidirectional(&mut TokioIo::new(client), &mut TokioIo::new(sandbox)).await;
                }
                (client, sandbox) => {
                    tracing::debug!(client = client.is_ok(), sandbox = sandbox.is_ok(), "upgrade failed")
                }
            }
        });
    }
    Ok(response.map(Body::new))
}

fn strip_token_param(query: &str) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(url::form_urlencoded::parse(query.as_bytes()).filter(|(key, _)| key != TOKEN_PARAM))
        .finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: &str) -> Request {
        Request::builder().header(HOST, host).body(Body::empty()).unwrap()
    }

    #[test]
    fn sandbox_hosts_are_recognised() {
        let id = SandboxId::new();
        assert_eq!(sandbox_host(&request(&format!("8000-{id}.localhost:7070"))), Some((8000, id)));
        assert_eq!(sandbox_host(&request(&format!("3000-{id}.localhost"))), Some((3000, id)));
        assert_eq!(sandbox_host(&request("localhost:7070")), None);
        assert_eq!(sandbox_host(&request(&format!("x-{id}.localhost"))), None);
        assert_eq!(sandbox_host(&request("8000-sbx_nope.localhost")), None);
    }

    #[test]
    fn the_token_parameter_is_not_forwarded() {
        assert_eq!(strip_token_param("a=1&rt_token=secret&b=2"), "a=1&b=2");
    }
}
