//! The provider-neutral model interface: a [`Model`] takes a [`ModelRequest`] (system prompt,
//! conversation, tools), streams [`Delta`]s to a sink as they arrive, and returns the consolidated
//! [`ModelResponse`] (content blocks, normalised stop reason, usage). Every provider adapter in
//! [`crate::providers`] implements it; the agent loop only ever sees this.

use std::sync::Arc;
use std::time::Duration;

use runtools_protocol::agent::{ContentBlock, Message, StopReason, ToolSpec, Usage};

/// One call to a model.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRequest {
    /// The provider's model id (`claude-sonnet-4-20250514`, `gpt-4.1`, `gemini-2.5-pro`…), without
    /// any `provider/` prefix.
    pub model: String,
    pub system: Option<String>,
    /// Shared with the run's state, so a call does not copy the conversation.
    pub messages: Arc<Vec<Message>>,
    /// Shared by every call of every run of an agent.
    pub tools: Arc<Vec<ToolSpec>>,
    /// Upper bound on output tokens for this call.
    pub max_tokens: u32,
    pub temperature: Option<f32>,
    /// Extended thinking / reasoning, when the model supports it.
    pub thinking: Option<ThinkingConfig>,
}

/// How much the model may reason before answering.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThinkingConfig {
    /// Anthropic `budget_tokens`, Gemini `thinkingBudget`; OpenAI maps it to a reasoning effort.
    pub budget_tokens: u32,
}

/// Streamed pieces of a response, for live display. The [`ModelResponse`] is authoritative.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Thinking(String),
    /// A tool call began streaming (its arguments follow and are not streamed as deltas).
    ToolCallStarted {
        id: String,
        name: String,
    },
}

/// The consolidated answer of one model call.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelResponse {
    /// In the order the model produced them: thinking, text and tool-use blocks.
    pub content: Vec<ContentBlock>,
    pub stop_reason: StopReason,
    /// The provider's own stop reason string, for logs.
    pub raw_stop_reason: Option<String>,
    pub usage: Usage,
    /// The model id the provider says answered.
    pub model: String,
}

impl ModelResponse {
    /// The tool calls the response asks for, in order: `(id, name, input)`.
    pub fn tool_calls(&self) -> impl Iterator<Item = (&str, &str, &serde_json::Value)> {
        self.content.iter().filter_map(|block| match block {
            ContentBlock::ToolUse { id, name, input, .. } => Some((id.as_str(), name.as_str(), input)),
            _ => None,
        })
    }

    /// The concatenated text blocks.
    pub fn text(&self) -> String {
        runtools_protocol::agent::joined_text(&self.content)
    }
}

/// What kind of failure a model call had; decides retrying and the run's error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelErrorKind {
    /// 429: too many requests or tokens. Retried.
    RateLimited,
    /// The provider is overloaded (Anthropic 529 / `overloaded_error`, 503). Retried.
    Overloaded,
    /// 5xx, or a request timeout (408). Retried.
    Server,
    /// The connection failed or dropped before an answer. Retried.
    Transport,
    /// 401/403: the API key is missing, wrong or not allowed.
    Authentication,
    /// 404 or an unknown model.
    NotFound,
    /// The prompt does not fit the model's context window.
    ContextOverflow,
    /// Any other 4xx: the request is malformed.
    InvalidRequest,
    /// The provider answered something this adapter cannot parse.
    Protocol,
}

impl ModelErrorKind {
    /// Whether trying again later may succeed.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::RateLimited | Self::Overloaded | Self::Server | Self::Transport)
    }
}

/// A failed model call, with what the provider said.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{provider} {kind:?}{}: {message}{}", status.map(|s| format!(" (HTTP {s})")).unwrap_or_default(), if *attempts > 1 { format!(" (after {attempts} attempts)") } else { String::new() })]
pub struct ModelError {
    pub kind: ModelErrorKind,
    /// `anthropic`, `openai`, `gemini`…
    pub provider: &'static str,
    pub status: Option<u16>,
    /// The provider's own error message (never the API key).
    pub message: String,
    /// What the provider asked us to wait (`retry-after`, `retry-after-ms`, `RetryInfo`).
    pub retry_after: Option<Duration>,
    /// How many times the call was tried.
    pub attempts: u32,
    /// Output of this attempt was already streamed to the sink, so retrying would repeat it.
    pub partial: bool,
}

impl ModelError {
    pub fn new(provider: &'static str, kind: ModelErrorKind, message: impl Into<String>) -> Self {
        Self { kind, provider, status: None, message: message.into(), retry_after: None, attempts: 1, partial: false }
    }

    pub fn with_status(mut self, status: u16) -> Self {
        self.status = Some(status);
        self
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn protocol(provider: &'static str, message: impl Into<String>) -> Self {
        Self::new(provider, ModelErrorKind::Protocol, message)
    }
}

/// Receives deltas while a response streams.
pub type DeltaSink<'a> = &'a mut (dyn FnMut(Delta) + Send);

/// A language model behind some provider's API.
#[async_trait::async_trait]
pub trait Model: Send + Sync + std::fmt::Debug {
    /// `anthropic`, `openai`, `openai-responses`, `gemini`, `openai-compatible`…
    fn provider(&self) -> &'static str;

    /// Runs one call, streaming deltas into `sink`; retries transient failures itself.
    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError>;
}
