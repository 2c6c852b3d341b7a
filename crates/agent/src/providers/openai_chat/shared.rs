//! What the Chat Completions and Responses adapters share beyond the [`attempt`] machinery every
//! adapter uses: the [`Exchange`] of an OpenAI call ([`OpenAiCall`]: bearer key, extra headers,
//! JSON answers refused), OpenAI's error bodies (`{"error": {"message", "type", "param", "code"}}`,
//! also the top-level and string forms OpenAI-compatible servers send) mapped onto
//! [`ModelErrorKind`]s, and the small mappings both request bodies and streams use.
//!
//! [`attempt`]: crate::providers::attempt

use eventsource_stream::Event;
use http::HeaderMap;
use serde_json::Value;

use crate::model::{ModelError, ModelErrorKind};
use crate::providers::ProviderSettings;
use crate::providers::attempt::{Exchange, StreamParser, keyed_post};
use crate::providers::http::{kind_for_status, retry_after};

/// One streamed call to an OpenAI API at `path` (`/chat/completions`, `/responses`): the bearer
/// key, extra headers (replacing defaults, as for every provider), OpenAI's error bodies, and a fresh parser per attempt.
pub(crate) struct OpenAiCall<'a, F> {
    settings: &'a ProviderSettings,
    http: &'a reqwest::Client,
    path: &'static str,
    new_parser: F,
}

impl<'a, F> OpenAiCall<'a, F> {
    pub(crate) fn new(
        settings: &'a ProviderSettings,
        http: &'a reqwest::Client,
        path: &'static str,
        new_parser: F,
    ) -> Self {
        Self { settings, http, path, new_parser }
    }
}

impl<P: StreamParser, F: Fn() -> P + Sync> Exchange for OpenAiCall<'_, F> {
    type Parser = P;

    fn request(&self) -> Result<reqwest::RequestBuilder, ModelError> {
        keyed_post(self.settings, self.http, self.settings.url(self.path), "authorization", &[])
    }

    fn error(&self, status: u16, headers: &HeaderMap, body: &str) -> ModelError {
        http_error(self.settings.name, status, headers, body)
    }

    /// A JSON answer (some compatible servers ignore `stream: true`) is refused, not parsed.
    fn check(&self, response: &reqwest::Response) -> Result<(), ModelError> {
        let content_type = response.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
        if content_type.is_some_and(|value| value.starts_with("application/json")) {
            return Err(ModelError::protocol(
                self.settings.name,
                "the server answered with JSON instead of an event stream",
            ));
        }
        Ok(())
    }

    fn parser(&self) -> P {
        (self.new_parser)()
    }
}

/// Parses one event's JSON `data`.
pub(crate) fn event_json(provider: &'static str, event: &Event) -> Result<Value, ModelError> {
    serde_json::from_str(&event.data).map_err(|error| {
        ModelError::protocol(provider, format!("unreadable event data ({error}): {}", truncate(&event.data, 300)))
    })
}

/// The error of a failed HTTP response, from OpenAI's error body and `retry-after` headers.
pub(crate) fn http_error(provider: &'static str, status: u16, headers: &HeaderMap, body: &str) -> ModelError {
    let mut error = error_from_body(provider, Some(status), body);
    if let Some(id) = headers.get("x-request-id").and_then(|v| v.to_str().ok()) {
        error.message = format!("{} (request {id})", error.message);
    }
    error.with_status(status).with_retry_after(retry_after(headers))
}

/// The error an event stream reports (a chat chunk's `error`, a Responses `error` event or a
/// failed response's `error`): `{message, type?, code?, param?}`.
pub(crate) fn stream_error(provider: &'static str, error: &Value) -> ModelError {
    let info = match error {
        Value::String(message) => ErrorInfo { message: message.clone(), kind: None, code: None },
        _ => ErrorInfo::of(error, ""),
    };
    let kind = classify(None, &info);
    ModelError::new(provider, kind, info.message)
}

fn error_from_body(provider: &'static str, status: Option<u16>, body: &str) -> ModelError {
    let info = match serde_json::from_str::<Value>(body) {
        Ok(value) => match value.get("error") {
            Some(Value::Object(_)) => ErrorInfo::of(&value["error"], body),
            // `{"error": "model not found"}` (Ollama and others).
            Some(Value::String(message)) => ErrorInfo { message: message.clone(), kind: None, code: None },
            // vLLM and others: `{"object": "error", "message", "type", "code"}`.
            _ => ErrorInfo::of(&value, body),
        },
        Err(_) => ErrorInfo { message: fallback_message(body), kind: None, code: None },
    };
    let kind = classify(status, &info);
    ModelError::new(provider, kind, info.message)
}

/// What an error body says.
struct ErrorInfo {
    message: String,
    /// OpenAI's `type`: `invalid_request_error`, `server_error`, `requests`, `tokens`…
    kind: Option<String>,
    /// OpenAI's `code`: `rate_limit_exceeded`, `context_length_exceeded`…; numeric codes (vLLM
    /// sends the status) as text.
    code: Option<String>,
}

impl ErrorInfo {
    fn of(error: &Value, body: &str) -> Self {
        let text = |value: &Value| match value {
            Value::String(text) if !text.is_empty() => Some(text.clone()),
            Value::Number(number) => Some(number.to_string()),
            _ => None,
        };
        Self {
            message: error["message"].as_str().map(str::to_owned).unwrap_or_else(|| fallback_message(body)),
            kind: text(&error["type"]),
            code: text(&error["code"]),
        }
    }
}

fn fallback_message(body: &str) -> String {
    let body = body.trim();
    if body.is_empty() { "no error message".into() } else { truncate(body, 500) }
}

fn classify(status: Option<u16>, info: &ErrorInfo) -> ModelErrorKind {
    match info.code.as_deref() {
        Some("context_length_exceeded") => return ModelErrorKind::ContextOverflow,
        // A 429 that waiting does not fix: the account has no credit left. It is the key's
        // account that may not be used, like a revoked key, so it fails the run at once as an
        // authentication problem instead of being retried as a rate limit (it is not a malformed
        // request, which `InvalidRequest` would claim).
        Some("insufficient_quota") => return ModelErrorKind::Authentication,
        Some("invalid_api_key") => return ModelErrorKind::Authentication,
        Some("model_not_found") => return ModelErrorKind::NotFound,
        Some("rate_limit_exceeded") => return ModelErrorKind::RateLimited,
        _ => {}
    }
    let message = info.message.to_ascii_lowercase();
    let overflow = ["maximum context length", "context length exceeded", "context window", "prompt is too long"];
    if matches!(status, None | Some(400 | 413)) && overflow.iter().any(|needle| message.contains(needle)) {
        return ModelErrorKind::ContextOverflow;
    }
    if let Some(status) = status {
        return kind_for_status(status);
    }
    match info.kind.as_deref() {
        Some("invalid_request_error") => ModelErrorKind::InvalidRequest,
        Some("authentication_error") => ModelErrorKind::Authentication,
        Some("requests" | "tokens" | "rate_limit_error") => ModelErrorKind::RateLimited,
        _ => ModelErrorKind::Server,
    }
}

/// The reasoning effort for a thinking budget: under 2k tokens `low`, under 8k `medium`, else
/// `high`.
pub(crate) fn reasoning_effort(budget_tokens: u32) -> &'static str {
    match budget_tokens {
        0..2_000 => "low",
        2_000..8_000 => "medium",
        _ => "high",
    }
}

/// A tool result as the model reads it: errors are marked so the model knows the call failed.
pub(crate) fn tool_output(content: &str, is_error: bool) -> String {
    if is_error { format!("Error: {content}") } else { content.to_owned() }
}

/// A tool call's input from its JSON arguments text: empty means `{}`; anything else must parse.
pub(crate) fn parse_arguments(
    provider: &'static str,
    name: &str,
    id: &str,
    arguments: &str,
) -> Result<Value, ModelError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(serde_json::Map::new()));
    }
    serde_json::from_str(arguments).map_err(|error| {
        ModelError::protocol(
            provider,
            format!(
                "the arguments of tool call `{name}` ({id}) are not valid JSON ({error}): {}",
                truncate(arguments, 300)
            ),
        )
    })
}

/// At most `max` bytes of `text`, cut on a character boundary, with `…` when cut.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind_of(status: u16, body: &str) -> ModelErrorKind {
        http_error("openai", status, &HeaderMap::new(), body).kind
    }

    #[test]
    fn error_bodies_map_to_kinds() {
        let openai = |code: &str| format!(r#"{{"error":{{"message":"m","type":"x","param":null,"code":"{code}"}}}}"#);
        assert_eq!(kind_of(429, &openai("rate_limit_exceeded")), ModelErrorKind::RateLimited);
        assert_eq!(kind_of(429, &openai("insufficient_quota")), ModelErrorKind::Authentication);
        assert!(!kind_of(429, &openai("insufficient_quota")).is_retryable());
        assert_eq!(kind_of(400, &openai("context_length_exceeded")), ModelErrorKind::ContextOverflow);
        assert_eq!(kind_of(404, &openai("model_not_found")), ModelErrorKind::NotFound);
        assert_eq!(kind_of(401, &openai("invalid_api_key")), ModelErrorKind::Authentication);
        assert_eq!(kind_of(500, "<html>bad gateway</html>"), ModelErrorKind::Server);
        // vLLM's top-level form, with its context-length wording.
        let vllm = r#"{"object":"error","message":"This model's maximum context length is 4096 tokens.",
            "type":"BadRequestError","param":null,"code":400}"#;
        assert_eq!(kind_of(400, vllm), ModelErrorKind::ContextOverflow);
        let error = http_error("ollama", 404, &HeaderMap::new(), r#"{"error":"model \"llama9\" not found"}"#);
        assert_eq!((error.kind, error.message.as_str()), (ModelErrorKind::NotFound, r#"model "llama9" not found"#));
    }

    #[test]
    fn http_errors_carry_message_request_id_and_retry_after() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "req_42".parse().unwrap());
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        let body =
            r#"{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}"#;
        let error = http_error("openai", 429, &headers, body);
        assert_eq!(error.message, "Rate limit reached (request req_42)");
        assert_eq!(error.status, Some(429));
        assert_eq!(error.retry_after, Some(std::time::Duration::from_millis(1500)));
    }

    #[test]
    fn stream_errors_classify_without_a_status() {
        let error = stream_error("openai", &serde_json::json!({"message": "boom", "type": "server_error"}));
        assert_eq!((error.kind, error.message.as_str()), (ModelErrorKind::Server, "boom"));
        let error = stream_error("openai", &serde_json::json!({"code": "rate_limit_exceeded", "message": "slow"}));
        assert_eq!(error.kind, ModelErrorKind::RateLimited);
        let error = stream_error("openai", &serde_json::json!({"type": "invalid_request_error", "message": "no"}));
        assert_eq!(error.kind, ModelErrorKind::InvalidRequest);
        let error = stream_error("vllm", &serde_json::json!("engine died"));
        assert_eq!((error.kind, error.message.as_str()), (ModelErrorKind::Server, "engine died"));
    }

    #[test]
    fn efforts_arguments_and_truncation() {
        assert_eq!([1_999, 2_000, 7_999, 8_000].map(reasoning_effort), ["low", "medium", "medium", "high"]);
        assert_eq!(parse_arguments("p", "t", "c", "  ").unwrap(), serde_json::json!({}));
        let error = parse_arguments("p", "grep", "call_1", "{\"a\":").unwrap_err();
        assert_eq!(error.kind, ModelErrorKind::Protocol);
        assert!(error.message.contains("`grep`"), "{}", error.message);
        assert_eq!(truncate("héllo", 2), "h…");
        assert_eq!(tool_output("no such file", true), "Error: no such file");
    }
}
