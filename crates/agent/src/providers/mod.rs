//! Provider adapters, one module per wire protocol, each implementing [`Model`](crate::Model):
//! [`anthropic`] (Messages API), [`openai_chat`] (Chat Completions, also every OpenAI-compatible
//! server: vLLM, Ollama, Together, Groq…), [`openai_responses`] (Responses API) and [`gemini`]
//! (`streamGenerateContent`). What they share: `attempt`, one streamed call (timeout, headers,
//! deltas, error bodies, the event stream) around [`http`]'s retries and error mapping.

pub mod anthropic;
pub(crate) mod attempt;
pub mod gemini;
pub mod http;
pub mod openai_chat;
pub mod openai_responses;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use http::RetryPolicy;

use crate::model::Model;

/// The wire protocols an adapter exists for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WireProtocol {
    /// `POST {base}/v1/messages` with `x-api-key`.
    Anthropic,
    /// `POST {base}/chat/completions` with a bearer key (`base` includes `/v1`).
    OpenaiChat,
    /// `POST {base}/responses` with a bearer key.
    OpenaiResponses,
    /// `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse` with `x-goog-api-key`.
    Gemini,
}

/// An API key that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The key itself, to put in a request header.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// Where and how an adapter talks to its provider.
#[derive(Debug, Clone)]
pub struct ProviderSettings {
    /// `anthropic`, `openai`, `gemini`, `openai-compatible`, `custom`: used in errors and logs.
    pub name: &'static str,
    pub protocol: WireProtocol,
    /// E.g. `https://api.anthropic.com`, `https://api.openai.com/v1`,
    /// `https://generativelanguage.googleapis.com`; no trailing slash needed.
    pub base_url: String,
    pub api_key: Option<ApiKey>,
    pub retry: RetryPolicy,
    /// Longest a whole call (including streaming the answer) may take before it is retried.
    pub request_timeout: Duration,
    /// Extra headers on every request (`anthropic-beta`, `OpenAI-Organization`…).
    pub headers: Vec<(String, String)>,
    /// The exact URL to call instead of `base_url` + the protocol's path (a custom endpoint such
    /// as `https://my-model.example.com/v1/chat`).
    pub exact_url: Option<String>,
}

impl ProviderSettings {
    pub fn new(name: &'static str, protocol: WireProtocol, base_url: impl Into<String>) -> Self {
        Self {
            name,
            protocol,
            base_url: base_url.into(),
            api_key: None,
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(600),
            headers: Vec::new(),
            exact_url: None,
        }
    }

    /// The URL to call: `exact_url` when set, else `base_url` joined with `path` (which starts
    /// with `/`) without a doubled slash. Every adapter builds its request URL through this.
    pub fn url(&self, path: &str) -> String {
        match &self.exact_url {
            Some(url) => url.clone(),
            None => format!("{}{}", self.base_url.trim_end_matches('/'), path),
        }
    }
}

/// The adapter for `settings.protocol`, sharing `http` (one connection pool per process).
pub fn connect(settings: ProviderSettings, http: reqwest::Client) -> Arc<dyn Model> {
    match settings.protocol {
        WireProtocol::Anthropic => Arc::new(anthropic::Anthropic::new(settings, http)),
        WireProtocol::OpenaiChat => Arc::new(openai_chat::OpenAiChat::new(settings, http)),
        WireProtocol::OpenaiResponses => Arc::new(openai_responses::OpenAiResponses::new(settings, http)),
        WireProtocol::Gemini => Arc::new(gemini::Gemini::new(settings, http)),
    }
}
