//! The Anthropic Messages API adapter: maps a [`ModelRequest`] onto `POST {base}/v1/messages`
//! (text, thinking blocks with their signatures, redacted thinking, tool use and tool results),
//! parses the streamed server-sent events (`message_start` … `message_stop`, `ping`, `error`) into
//! [`Delta`](crate::model::Delta)s and a consolidated [`ModelResponse`], and maps Anthropic's error bodies onto
//! [`ModelErrorKind`]s.

mod stream;

use http::HeaderMap;
use runtools_protocol::agent::{ContentBlock, Message, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::stream::StreamState;
use crate::model::{DeltaSink, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse};
use crate::providers::ProviderSettings;
use crate::providers::attempt::{Exchange, keyed_post, stream_call};
use crate::providers::http::{body_snippet, describe, kind_for_status, retry_after};

/// The API version this adapter speaks.
const API_VERSION: &str = "2023-06-01";

/// A model behind the Anthropic Messages API (or a server speaking it).
#[derive(Debug)]
pub struct Anthropic {
    settings: ProviderSettings,
    http: reqwest::Client,
}

impl Anthropic {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http }
    }
}

#[async_trait::async_trait]
impl Model for Anthropic {
    fn provider(&self) -> &'static str {
        self.settings.name
    }

    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        let exchange = Messages { adapter: self, model: &request.model };
        stream_call(&self.settings, "anthropic messages", request, request_body(request), sink, &exchange).await
    }
}

/// One Messages call of an [`Anthropic`] adapter.
struct Messages<'a> {
    adapter: &'a Anthropic,
    model: &'a str,
}

impl Exchange for Messages<'_> {
    type Parser = StreamState;

    fn request(&self) -> Result<reqwest::RequestBuilder, ModelError> {
        let settings = &self.adapter.settings;
        keyed_post(
            settings,
            &self.adapter.http,
            settings.url("/v1/messages"),
            "x-api-key",
            &[("anthropic-version", API_VERSION)],
        )
    }

    fn error(&self, status: u16, headers: &HeaderMap, body: &str) -> ModelError {
        error_from_response(self.adapter.settings.name, status, headers, body)
    }

    fn parser(&self) -> StreamState {
        StreamState::new(self.adapter.settings.name, self.model)
    }
}

/// The JSON body of a streaming Messages call.
pub(crate) fn request_body(request: &ModelRequest) -> Value {
    let mut body = Map::new();
    body.insert("model".into(), json!(request.model));
    body.insert("max_tokens".into(), json!(request.max_tokens));
    if let Some(system) = request.system.as_deref().filter(|system| !system.is_empty()) {
        body.insert("system".into(), json!(system));
    }
    body.insert("messages".into(), Value::Array(request.messages.iter().filter_map(wire_message).collect()));
    if !request.tools.is_empty() {
        let tools = request
            .tools
            .iter()
            .map(|tool| json!({"name": tool.name, "description": tool.description, "input_schema": tool.input_schema}))
            .collect();
        body.insert("tools".into(), Value::Array(tools));
    }
    body.insert("stream".into(), json!(true));
    match request.thinking {
        Some(thinking) => {
            body.insert("thinking".into(), json!({"type": "enabled", "budget_tokens": thinking.budget_tokens}));
            if request.temperature.is_some() {
                // The API rejects any temperature but 1 while thinking is enabled.
                tracing::debug!("temperature is not sent to Anthropic while extended thinking is enabled");
            }
        }
        None => {
            if let Some(temperature) = request.temperature {
                // Rounded so 0.7f32 goes out as 0.7, not 0.699999988079071.
                body.insert("temperature".into(), json!((f64::from(temperature) * 1e6).round() / 1e6));
            }
        }
    }
    Value::Object(body)
}

/// One neutral message as an Anthropic message; `None` when nothing in it can be sent.
fn wire_message(message: &Message) -> Option<Value> {
    let mut results = Vec::new();
    let mut blocks = Vec::new();
    for block in &message.content {
        match block {
            // The API rejects empty text blocks.
            ContentBlock::Text { text } if text.is_empty() => {}
            ContentBlock::Text { text } => blocks.push(json!({"type": "text", "text": text})),
            ContentBlock::Thinking { thinking, signature: Some(signature), .. } => {
                blocks.push(json!({"type": "thinking", "thinking": thinking, "signature": signature}));
            }
            // Reasoning without an Anthropic signature (another provider's) cannot be verified.
            ContentBlock::Thinking { signature: None, .. } => {}
            ContentBlock::RedactedThinking { data } => blocks.push(json!({"type": "redacted_thinking", "data": data})),
            ContentBlock::ToolUse { id, name, input, .. } => {
                let input = if input.is_null() { json!({}) } else { input.clone() };
                blocks.push(json!({"type": "tool_use", "id": id, "name": name, "input": input}));
            }
            ContentBlock::ToolResult { tool_use_id, content, is_error, .. } => results.push(json!({
                "type": "tool_result",
                "tool_use_id": tool_use_id,
                "content": content,
                "is_error": is_error,
            })),
        }
    }
    // Tool results must come first in their user message.
    results.extend(blocks);
    if results.is_empty() {
        return None;
    }
    let role = match message.role {
        Role::User => "user",
        Role::Assistant => "assistant",
    };
    Some(json!({"role": role, "content": results}))
}

#[derive(Debug, Default, Deserialize)]
struct WireError {
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    message: String,
}

/// An error body: `{"type": "error", "error": {"type", "message"}, "request_id"?}`.
#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: WireError,
    #[serde(default)]
    request_id: Option<String>,
}

/// The kind of an Anthropic error type (`overloaded_error`…), refined by its message.
fn kind_for_error(error_type: &str, message: &str, status: Option<u16>) -> ModelErrorKind {
    match error_type {
        "rate_limit_error" => ModelErrorKind::RateLimited,
        "overloaded_error" => ModelErrorKind::Overloaded,
        "api_error" | "timeout_error" => ModelErrorKind::Server,
        "authentication_error" | "permission_error" => ModelErrorKind::Authentication,
        "not_found_error" => ModelErrorKind::NotFound,
        "request_too_large" => ModelErrorKind::ContextOverflow,
        "invalid_request_error" if is_context_overflow(message) => ModelErrorKind::ContextOverflow,
        "invalid_request_error" => ModelErrorKind::InvalidRequest,
        _ => status.map_or(ModelErrorKind::Server, kind_for_status),
    }
}

/// "prompt is too long: 210000 tokens > 200000 maximum", or input plus `max_tokens` over the limit.
fn is_context_overflow(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("prompt is too long") || message.contains("exceed context limit")
}

/// A non-2xx answer as a [`ModelError`], from its status, `retry-after` and error body.
fn error_from_response(provider: &'static str, status: u16, headers: &HeaderMap, body: &str) -> ModelError {
    let wait = retry_after(headers);
    let request_id = headers.get("request-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
    let (kind, mut message, body_request_id) = match serde_json::from_str::<ErrorBody>(body) {
        Ok(body) => (
            kind_for_error(&body.error.kind, &body.error.message, Some(status)),
            describe(&body.error.kind, &body.error.message),
            body.request_id,
        ),
        Err(_) => (kind_for_status(status), body_snippet(status, body), None),
    };
    if let Some(id) = request_id.or(body_request_id) {
        message.push_str(&format!(" (request-id {id})"));
    }
    ModelError::new(provider, kind, message).with_status(status).with_retry_after(wait)
}

#[cfg(test)]
mod tests {
    use runtools_protocol::agent::{StopReason, ToolSpec};

    use super::stream::stop_reason;
    use super::*;
    use crate::model::ThinkingConfig;

    #[test]
    fn stop_reasons_and_error_types_are_normalised() {
        assert_eq!(stop_reason("end_turn"), StopReason::EndTurn);
        assert_eq!(stop_reason("pause_turn"), StopReason::PauseTurn);
        assert_eq!(stop_reason("refusal"), StopReason::Refusal);
        assert_eq!(stop_reason("model_context_window_exceeded"), StopReason::Other);
        assert_eq!(kind_for_error("overloaded_error", "Overloaded", None), ModelErrorKind::Overloaded);
        assert_eq!(
            kind_for_error("invalid_request_error", "prompt is too long: 210000 tokens > 200000 maximum", Some(400)),
            ModelErrorKind::ContextOverflow
        );
        assert_eq!(
            kind_for_error("invalid_request_error", "messages: Field required", Some(400)),
            ModelErrorKind::InvalidRequest
        );
        assert_eq!(kind_for_error("permission_error", "nope", Some(403)), ModelErrorKind::Authentication);
        assert_eq!(kind_for_error("billing_error", "no credit", Some(402)), ModelErrorKind::InvalidRequest);
    }

    #[test]
    fn request_body_maps_every_block_and_puts_tool_results_first() {
        let request = ModelRequest {
            model: "claude-sonnet-4-20250514".into(),
            system: Some("Be brief.".into()),
            messages: std::sync::Arc::new(vec![
                Message::user("hi"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        ContentBlock::Thinking {
                            thinking: "hmm".into(),
                            signature: Some("sig".into()),
                            provider_data: None,
                        },
                        ContentBlock::Thinking { thinking: "foreign".into(), signature: None, provider_data: None },
                        ContentBlock::RedactedThinking { data: "opaque".into() },
                        ContentBlock::text(""),
                        ContentBlock::ToolUse {
                            id: "t1".into(),
                            name: "ls".into(),
                            input: Value::Null,
                            provider_data: None,
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        ContentBlock::text("and also"),
                        ContentBlock::ToolResult {
                            tool_use_id: "t1".into(),
                            name: "ls".into(),
                            content: "boom".into(),
                            is_error: true,
                        },
                    ],
                },
            ]),
            tools: std::sync::Arc::new(vec![ToolSpec {
                name: "ls".into(),
                description: "List".into(),
                input_schema: json!({"type": "object"}),
            }]),
            max_tokens: 2048,
            temperature: Some(0.7),
            thinking: Some(ThinkingConfig { budget_tokens: 1024 }),
        };
        let body = request_body(&request);
        assert_eq!(body["system"], "Be brief.");
        assert_eq!(body["stream"], true);
        assert_eq!(body["thinking"], json!({"type": "enabled", "budget_tokens": 1024}));
        assert!(body.get("temperature").is_none(), "thinking requires the default temperature");
        assert_eq!(body["tools"][0]["input_schema"], json!({"type": "object"}));
        assert_eq!(
            body["messages"][1]["content"],
            json!([
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "tool_use", "id": "t1", "name": "ls", "input": {}},
            ])
        );
        assert_eq!(body["messages"][2]["content"][0]["type"], "tool_result");
        assert_eq!(body["messages"][2]["content"][0]["is_error"], true);
        assert_eq!(body["messages"][2]["content"][1], json!({"type": "text", "text": "and also"}));

        let plain = ModelRequest { thinking: None, ..request };
        assert_eq!(request_body(&plain)["temperature"], json!(0.7));
    }
}
