//! The Gemini API adapter: maps a [`ModelRequest`] onto
//! `POST {base}/v1beta/models/{model}:streamGenerateContent?alt=sse` (key in `x-goog-api-key`, never
//! the URL), with thinking as `thought` parts, tool calls as `functionCall` parts (their thought
//! signatures echoed back), tool results as `functionResponse` parts and tool schemas rewritten
//! into Gemini's dialect (`schema`); parses the streamed `GenerateContentResponse` chunks (`stream`)
//! into [`Delta`]s and a consolidated [`ModelResponse`] (Gemini's calls have no ids, so stable
//! `call_<n>` ids are made up); and maps Google's `{"error": {code, status, message, details}}` bodies,
//! including `RetryInfo`, onto [`ModelErrorKind`]s.

mod schema;
mod stream;

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use eventsource_stream::{EventStreamError, Eventsource};
use futures::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use runtools_protocol::agent::{ContentBlock, Message, Role};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use self::stream::StreamState;
use crate::model::{Delta, DeltaSink, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse};
use crate::providers::ProviderSettings;
use crate::providers::http::{kind_for_status, retry_after, retrying, transport_error};

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

    /// One try: the timeout covers sending and reading the whole stream. An error after deltas
    /// reached the sink is marked `partial`, so it is not retried.
    async fn attempt(
        &self,
        body: &bytes::Bytes,
        request: &ModelRequest,
        sink: &Mutex<DeltaSink<'_>>,
    ) -> Result<ModelResponse, ModelError> {
        let mut emitter = Emitter { sink, sent: false };
        let timeout = self.settings.request_timeout;
        let result = tokio::time::timeout(timeout, self.call(body, request, &mut emitter)).await;
        let result = result.unwrap_or_else(|_| {
            Err(ModelError::new(
                self.settings.name,
                ModelErrorKind::Transport,
                format!("no complete answer within {}s", timeout.as_secs_f64()),
            ))
        });
        result.map_err(|mut error| {
            error.partial |= emitter.sent;
            error
        })
    }

    async fn call(
        &self,
        body: &bytes::Bytes,
        request: &ModelRequest,
        emitter: &mut Emitter<'_, '_>,
    ) -> Result<ModelResponse, ModelError> {
        let provider = self.settings.name;
        let model = request.model.strip_prefix("models/").unwrap_or(&request.model);
        let url = self.settings.url(&format!("/v1beta/models/{model}:streamGenerateContent?alt=sse"));
        let mut builder =
            self.http.post(url).header("content-type", "application/json").header("accept", "text/event-stream");
        if let Some(key) = &self.settings.api_key {
            let mut value = HeaderValue::from_str(key.expose()).map_err(|_| {
                ModelError::new(provider, ModelErrorKind::Authentication, "the API key is not a valid header value")
            })?;
            value.set_sensitive(true);
            builder = builder.header("x-goog-api-key", value);
        }
        builder = builder.headers(extra_headers(provider, &self.settings.headers)?);
        let response = builder.body(body.clone()).send().await.map_err(|error| transport_error(provider, &error))?;
        if !response.status().is_success() {
            return Err(error_from_response(provider, response).await);
        }

        let mut events = response.bytes_stream().eventsource();
        let mut state = StreamState::new(model, first_call_number(&request.messages));
        while let Some(event) = events.next().await {
            let event = event.map_err(|error| match error {
                EventStreamError::Transport(error) => transport_error(provider, &error),
                other => ModelError::protocol(provider, format!("malformed event stream: {other}")),
            })?;
            if event.data.trim().is_empty() {
                continue;
            }
            state.apply(provider, &event.data, emitter)?;
        }
        state.finish(provider)
    }
}

#[async_trait::async_trait]
impl Model for Gemini {
    fn provider(&self) -> &'static str {
        self.settings.name
    }

    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        let body = serde_json::to_vec(&request_body(request))
            .map_err(|error| ModelError::protocol(self.settings.name, format!("cannot encode the request: {error}")))?;
        let body = bytes::Bytes::from(body);
        tracing::debug!(
            provider = self.settings.name,
            model = %request.model,
            messages = request.messages.len(),
            tools = request.tools.len(),
            "gemini streamGenerateContent call"
        );
        let sink = Mutex::new(sink);
        let response = retrying(&self.settings.retry, |_| self.attempt(&body, request, &sink)).await?;
        tracing::debug!(
            provider = self.settings.name,
            model = %response.model,
            stop_reason = ?response.stop_reason,
            input_tokens = response.usage.input_tokens,
            output_tokens = response.usage.output_tokens,
            "gemini streamGenerateContent call finished"
        );
        Ok(response)
    }
}

/// `settings.headers` as a map that replaces same-named defaults (`anthropic-version`…); a name or
/// value HTTP does not allow is a configuration mistake, not a network failure to retry.
fn extra_headers(provider: &'static str, headers: &[(String, String)]) -> Result<HeaderMap, ModelError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = || {
            ModelError::new(
                provider,
                ModelErrorKind::InvalidRequest,
                format!("the extra header `{name}` is not valid HTTP"),
            )
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        map.append(name, value);
    }
    Ok(map)
}

/// Pushes deltas to the caller's sink and remembers that it did.
struct Emitter<'s, 'a> {
    sink: &'s Mutex<DeltaSink<'a>>,
    sent: bool,
}

impl Emitter<'_, '_> {
    fn emit(&mut self, delta: Delta) {
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        (*sink)(delta);
        self.sent = true;
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

fn describe(error: &WireError) -> String {
    match (error.status.is_empty(), error.message.is_empty()) {
        (false, false) => format!("{}: {}", error.status, error.message),
        (false, true) => error.status.clone(),
        (true, _) => error.message.clone(),
    }
}

/// A non-2xx answer as a [`ModelError`]: status, `retry-after` (or `RetryInfo`) and error body.
async fn error_from_response(provider: &'static str, response: reqwest::Response) -> ModelError {
    let status = response.status().as_u16();
    let header_wait = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    match parse_error_body(&text) {
        Some(error) => {
            let wait = header_wait.or_else(|| retry_info(&error.details));
            ModelError::new(provider, kind_for_error(&error, Some(status)), describe(&error))
                .with_status(status)
                .with_retry_after(wait)
        }
        None => {
            let snippet: String = text.chars().take(500).collect();
            let message = if snippet.trim().is_empty() { format!("HTTP {status}") } else { snippet };
            ModelError::new(provider, kind_for_status(status), message)
                .with_status(status)
                .with_retry_after(header_wait)
        }
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
