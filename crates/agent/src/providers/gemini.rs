//! The Gemini API adapter: maps a [`ModelRequest`] onto
//! `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse` (key in `x-goog-api-key`, never
//! the URL), with thinking as `thought` parts, tool calls as `functionCall` parts (their thought
//! signatures echoed back), tool results as `functionResponse` parts and tool schemas rewritten
//! into Gemini's dialect (`schema`); parses the streamed `GenerateContentResponse` chunks (`stream`)
//! into [`Delta`](crate::model::Delta)s and a consolidated [`ModelResponse`] (Gemini's calls have no ids, so stable
//! `call_<n>` ids are made up); and maps Google's `{"error": {code, status, message, details}}` bodies,
//! including `RetryInfo`, onto [`ModelErrorKind`]s.

mod schema;
mod stream;

use std::collections::HashMap;
use std::time::Duration;

use http::HeaderMap;
use runtools_protocol::agent::{ContentBlock, Message, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::stream::StreamState;
use crate::model::{DeltaSink, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse};
use crate::providers::ProviderSettings;
use crate::providers::attempt::{Exchange, keyed_post, stream_call};
use crate::providers::http::{body_snippet, describe, kind_for_status, retry_after};

/// The `provider_data` key holding a part's thought signature.
const SIGNATURE: &str = "thoughtSignature";
/// The `provider_data` key holding an id Gemini itself gave a function call.
const CALL_ID: &str = "functionCallId";

/// A model behind the Gemini API (Google AI Studio) or a server speaking it.
#[derive(Debug)]
pub struct Gemini {
    settings: ProviderSettings,
    http: reqwest::Client,
}

impl Gemini {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http }
    }
}

#[async_trait::async_trait]
impl Model for Gemini {
    fn provider(&self) -> &'static str {
        self.settings.name
    }

    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        let exchange = Generate { adapter: self, request };
        stream_call(&self.settings, "gemini streamGenerateContent", request, request_body(request), sink, &exchange)
            .await
    }
}

/// One `streamGenerateContent` call of a [`Gemini`] adapter.
struct Generate<'a> {
    adapter: &'a Gemini,
    request: &'a ModelRequest,
}

impl Generate<'_> {
    /// The model name without the `models/` prefix the API's own listings use.
    fn model(&self) -> &str {
        self.request.model.strip_prefix("models/").unwrap_or(&self.request.model)
    }
}

impl Exchange for Generate<'_> {
    type Parser = StreamState;

    fn request(&self) -> Result<reqwest::RequestBuilder, ModelError> {
        let settings = &self.adapter.settings;
        let url = settings.url(&format!("/v1beta/models/{}:streamGenerateContent?alt=sse", self.model()));
        keyed_post(settings, &self.adapter.http, url, "x-goog-api-key", &[])
    }

    fn error(&self, status: u16, headers: &HeaderMap, body: &str) -> ModelError {
        error_from_response(self.adapter.settings.name, status, headers, body)
    }

    fn parser(&self) -> StreamState {
        StreamState::new(self.adapter.settings.name, self.model(), first_call_number(&self.request.messages))
    }
}

/// The JSON body of a `streamGenerateContent` call.
pub(crate) fn request_body(request: &ModelRequest) -> Value {
    let mut body = Map::new();
    body.insert("contents".into(), Value::Array(contents(&request.messages)));
    if let Some(system) = request.system.as_deref().filter(|system| !system.is_empty()) {
        body.insert("systemInstruction".into(), json!({"parts": [{"text": system}]}));
    }
    if !request.tools.is_empty() {
        let declarations: Vec<Value> = request
            .tools
            .iter()
            .map(|tool| {
                let mut declaration = json!({"name": tool.name, "description": tool.description});
                let parameters = schema::clean_schema(&tool.input_schema);
                if !schema::is_empty_object(&parameters)
                    && let Value::Object(declaration) = &mut declaration
                {
                    declaration.insert("parameters".into(), parameters);
                }
                declaration
            })
            .collect();
        body.insert("tools".into(), json!([{"functionDeclarations": declarations}]));
    }
    let mut generation = Map::new();
    generation.insert("maxOutputTokens".into(), json!(request.max_tokens));
    if let Some(temperature) = request.temperature {
        // Rounded so 0.7f32 goes out as 0.7, not 0.699999988079071.
        generation.insert("temperature".into(), json!((f64::from(temperature) * 1e6).round() / 1e6));
    }
    if let Some(thinking) = request.thinking {
        generation.insert(
            "thinkingConfig".into(),
            json!({"thinkingBudget": thinking.budget_tokens, "includeThoughts": true}),
        );
    }
    body.insert("generationConfig".into(), Value::Object(generation));
    Value::Object(body)
}

/// The conversation as Gemini `contents`. Tool results find their function's name (and Gemini's
/// own call id, when it gave one) through the call they answer.
fn contents(messages: &[Message]) -> Vec<Value> {
    let mut calls: HashMap<&str, (&str, Option<&str>)> = HashMap::new();
    for message in messages {
        for block in &message.content {
            if let ContentBlock::ToolUse { id, name, provider_data, .. } = block {
                calls.insert(id, (name, provider_data.as_ref().and_then(|data| data[CALL_ID].as_str())));
            }
        }
    }
    let mut contents = Vec::new();
    for message in messages {
        let mut parts: Vec<Value> = Vec::new();
        for block in &message.content {
            match block {
                ContentBlock::Text { text } if text.is_empty() => {}
                ContentBlock::Text { text } => parts.push(json!({"text": text})),
                ContentBlock::Thinking { thinking, provider_data, .. } => {
                    let signature = provider_data.as_ref().and_then(|data| data[SIGNATURE].as_str());
                    match (thinking.is_empty(), signature) {
                        (false, signature) => {
                            let mut part = json!({"text": thinking, "thought": true});
                            if let Some(signature) = signature {
                                part[SIGNATURE] = json!(signature);
                            }
                            parts.push(part);
                        }
                        // A signature Gemini put on a text part goes back on that part.
                        (true, Some(signature)) => match parts.last_mut() {
                            Some(last) if last.get("text").is_some() && last.get(SIGNATURE).is_none() => {
                                last[SIGNATURE] = json!(signature);
                            }
                            _ => parts.push(json!({"text": "", SIGNATURE: signature})),
                        },
                        (true, None) => {}
                    }
                }
                // Anthropic's encrypted reasoning means nothing to Gemini.
                ContentBlock::RedactedThinking { .. } => {}
                ContentBlock::ToolUse { name, input, provider_data, .. } => {
                    let args = if input.is_object() { input.clone() } else { json!({}) };
                    let mut call = json!({"name": name, "args": args});
                    let mut part = Map::new();
                    if let Some(data) = provider_data {
                        if let Some(id) = data[CALL_ID].as_str() {
                            call["id"] = json!(id);
                        }
                        if let Some(signature) = data[SIGNATURE].as_str() {
                            part.insert(SIGNATURE.into(), json!(signature));
                        }
                    }
                    part.insert("functionCall".into(), call);
                    parts.push(Value::Object(part));
                }
                ContentBlock::ToolResult { tool_use_id, name, content, is_error } => {
                    let (called, native_id) = calls.get(tool_use_id.as_str()).copied().unwrap_or(("", None));
                    let name = if name.is_empty() { called } else { name.as_str() };
                    let response = if *is_error { json!({"error": content}) } else { json!({"output": content}) };
                    let mut function_response = json!({"name": name, "response": response});
                    if let Some(id) = native_id {
                        function_response["id"] = json!(id);
                    }
                    parts.push(json!({"functionResponse": function_response}));
                }
            }
        }
        if parts.is_empty() {
            continue;
        }
        let role = match message.role {
            Role::User => "user",
            Role::Assistant => "model",
        };
        contents.push(json!({"role": role, "parts": parts}));
    }
    contents
}

/// The number the next made-up call id starts from: one past the calls already in the
/// conversation, so ids stay unique across turns and the same on a retry.
fn first_call_number(messages: &[Message]) -> usize {
    let calls = messages
        .iter()
        .flat_map(|message| &message.content)
        .filter(|block| matches!(block, ContentBlock::ToolUse { .. }));
    calls.count() + 1
}

/// Google's error status: `{"code": 429, "message", "status": "RESOURCE_EXHAUSTED", "details"}`.
#[derive(Debug, Default, Deserialize)]
struct WireError {
    #[serde(default)]
    code: Option<u16>,
    #[serde(default)]
    message: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    details: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct ErrorBody {
    error: WireError,
}

/// The kind of a Google error status, refined by its message and details.
fn kind_for_error(error: &WireError, status: Option<u16>) -> ModelErrorKind {
    match error.status.as_str() {
        "RESOURCE_EXHAUSTED" => ModelErrorKind::RateLimited,
        "UNAVAILABLE" => ModelErrorKind::Overloaded,
        "INTERNAL" | "DEADLINE_EXCEEDED" | "UNKNOWN" => ModelErrorKind::Server,
        "UNAUTHENTICATED" | "PERMISSION_DENIED" => ModelErrorKind::Authentication,
        "NOT_FOUND" => ModelErrorKind::NotFound,
        "INVALID_ARGUMENT" | "FAILED_PRECONDITION" | "OUT_OF_RANGE" => {
            let message = error.message.to_ascii_lowercase();
            if message.contains("exceeds the maximum number of tokens") {
                ModelErrorKind::ContextOverflow
            } else if error_reason(&error.details).is_some_and(|reason| reason.starts_with("API_KEY_")) {
                // An unknown or expired key is a 400 INVALID_ARGUMENT with reason API_KEY_INVALID.
                ModelErrorKind::Authentication
            } else {
                ModelErrorKind::InvalidRequest
            }
        }
        _ => status.map_or(ModelErrorKind::Server, kind_for_status),
    }
}

/// The `reason` of a `google.rpc.ErrorInfo` detail.
fn error_reason(details: &[Value]) -> Option<&str> {
    details
        .iter()
        .find(|detail| detail["@type"].as_str().is_some_and(|kind| kind.ends_with("google.rpc.ErrorInfo")))
        .and_then(|detail| detail["reason"].as_str())
}

/// The `retryDelay` (`"2s"`, `"0.5s"`) of a `google.rpc.RetryInfo` detail.
fn retry_info(details: &[Value]) -> Option<Duration> {
    let delay = details
        .iter()
        .find(|detail| detail["@type"].as_str().is_some_and(|kind| kind.ends_with("google.rpc.RetryInfo")))?
        .get("retryDelay")?
        .as_str()?;
    let seconds: f64 = delay.trim().strip_suffix('s')?.parse().ok()?;
    (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds))
}

/// `{"error": {..}}`, or the same wrapped in a one-element array as some endpoints send it.
fn parse_error_body(text: &str) -> Option<WireError> {
    if let Ok(body) = serde_json::from_str::<ErrorBody>(text) {
        return Some(body.error);
    }
    serde_json::from_str::<Vec<ErrorBody>>(text).ok()?.into_iter().next().map(|body| body.error)
}

/// A non-2xx answer as a [`ModelError`]: status, `retry-after` (or `RetryInfo`) and error body.
fn error_from_response(provider: &'static str, status: u16, headers: &HeaderMap, body: &str) -> ModelError {
    let header_wait = retry_after(headers);
    match parse_error_body(body) {
        Some(error) => {
            let wait = header_wait.or_else(|| retry_info(&error.details));
            ModelError::new(provider, kind_for_error(&error, Some(status)), describe(&error.status, &error.message))
                .with_status(status)
                .with_retry_after(wait)
        }
        None => ModelError::new(provider, kind_for_status(status), body_snippet(status, body))
            .with_status(status)
            .with_retry_after(header_wait),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(status: &str, message: &str, details: Value) -> WireError {
        WireError {
            code: Some(400),
            message: message.into(),
            status: status.into(),
            details: serde_json::from_value(details).unwrap(),
        }
    }

    #[test]
    fn errors_are_classified_from_status_message_and_details() {
        let overflow = error(
            "INVALID_ARGUMENT",
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            json!([]),
        );
        assert_eq!(kind_for_error(&overflow, Some(400)), ModelErrorKind::ContextOverflow);
        let bad_key = error(
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            json!([{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID", "domain": "googleapis.com"}]),
        );
        assert_eq!(kind_for_error(&bad_key, Some(400)), ModelErrorKind::Authentication);
        assert_eq!(
            kind_for_error(&error("UNAUTHENTICATED", "no", json!([])), Some(401)),
            ModelErrorKind::Authentication
        );
        assert_eq!(kind_for_error(&error("DEADLINE_EXCEEDED", "slow", json!([])), Some(504)), ModelErrorKind::Server);
        assert_eq!(kind_for_error(&error("", "?", json!([])), Some(404)), ModelErrorKind::NotFound);
        let details = json!([
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": []},
            {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "37.5s"},
        ]);
        assert_eq!(retry_info(details.as_array().unwrap()), Some(Duration::from_millis(37_500)));
        assert_eq!(
            retry_info(&[json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "soon"})]),
            None
        );
    }
}
