//! The Gemini API side of the model server: renders a scripted [`Turn`] as the real
//! `GenerateContentResponse`s — streamed as `data:` events (`\r\n`-framed, like Google's) for
//! `:streamGenerateContent?alt=sse`, as a JSON array without `alt=sse`, and as one object for
//! `:generateContent` — with `thought` parts, `functionCall` parts (the thought signature on the
//! first call, or on the last part when there are none), `finishReason` and `usageMetadata`; and an
//! [`ErrorReply`] as Google's `{"error": {code, message, status, details}}` (with a
//! `google.rpc.RetryInfo` detail for `retry_after`, and a bad key as the real 400
//! `API_KEY_INVALID`), or as an error chunk inside a 200 stream.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{ErrorKind, ErrorReply, Recorded, Turn, sse_response};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// How a request asked for its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `:streamGenerateContent?alt=sse`.
    Sse,
    /// `:streamGenerateContent` without `alt=sse`: one JSON array of the chunks.
    JsonArray,
    /// `:generateContent`.
    Whole,
}

fn mode(request: &Recorded) -> Mode {
    if !request.path.ends_with(":streamGenerateContent") {
        return Mode::Whole;
    }
    let sse = request.query.as_deref().is_some_and(|query| query.split('&').any(|pair| pair == "alt=sse"));
    if sse { Mode::Sse } else { Mode::JsonArray }
}

/// The model named in `/v1beta/models/{model}:…`.
fn requested_model(request: &Recorded) -> String {
    let rest = request.path.strip_prefix("/v1beta/models/").unwrap_or(&request.path);
    rest.split(':').next().unwrap_or(rest).to_owned()
}

fn usage(turn: &Turn, done: bool) -> Value {
    if !done {
        return json!({"promptTokenCount": turn.input_tokens, "totalTokenCount": turn.input_tokens});
    }
    // With thinking, part of the output is reported as thoughts.
    let thoughts = if turn.thinking.is_some() { turn.output_tokens / 2 } else { 0 };
    let candidates = turn.output_tokens - thoughts;
    let mut usage = json!({
        "promptTokenCount": turn.input_tokens,
        "candidatesTokenCount": candidates,
        "totalTokenCount": turn.input_tokens + turn.output_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": turn.input_tokens}],
    });
    if thoughts > 0 {
        usage["thoughtsTokenCount"] = json!(thoughts);
    }
    usage
}

/// The parts of the answer, grouped as they are streamed (`whole`: one group).
fn part_groups(turn: &Turn, whole: bool) -> Vec<Vec<Value>> {
    let split = |text: &str| if whole { vec![text.to_owned()] } else { turn.chunks(text) };
    let mut groups: Vec<Vec<Value>> = Vec::new();
    if let Some(thinking) = &turn.thinking {
        groups.extend(split(&thinking.text).into_iter().map(|chunk| vec![json!({"text": chunk, "thought": true})]));
    }
    if let Some(text) = &turn.text {
        groups.extend(split(text).into_iter().map(|chunk| vec![json!({"text": chunk})]));
    }
    if !turn.tool_calls.is_empty() {
        // Parallel calls arrive whole, together; Gemini gives them no ids.
        groups.push(
            turn.tool_calls
                .iter()
                .map(|call| json!({"functionCall": {"name": call.name, "args": call.input}}))
                .collect(),
        );
    }
    if groups.is_empty() {
        groups.push(vec![json!({"text": ""})]);
    }
    if let Some(thinking) = &turn.thinking {
        // The signature rides on the first function call, or else on the answer's last part.
        let part = if turn.tool_calls.is_empty() {
            groups.last_mut().and_then(|group| group.last_mut())
        } else {
            groups.last_mut().and_then(|group| group.first_mut())
        };
        if let Some(part) = part {
            part["thoughtSignature"] = json!(thinking.signature);
        }
    }
    groups
}

fn chunk(parts: Vec<Value>, finish: Option<&str>, usage: Value, model: &str, response_id: &str) -> Value {
    let mut candidate = json!({"content": {"parts": parts, "role": "model"}, "index": 0});
    if let Some(finish) = finish {
        candidate["finishReason"] = json!(finish);
    }
    json!({"candidates": [candidate], "usageMetadata": usage, "modelVersion": model, "responseId": response_id})
}

fn response_id() -> String {
    format!("resp-{:016x}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Google's SSE framing: `data: {json}` and a blank line, with CRLF line ends.
fn sse(chunks: &[Value]) -> Response {
    let mut out = String::new();
    for chunk in chunks {
        out.push_str("data: ");
        out.push_str(&chunk.to_string());
        out.push_str("\r\n\r\n");
    }
    sse_response(out)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    (status, [("content-type", "application/json; charset=UTF-8")], body.to_string()).into_response()
}

pub(crate) fn turn(request: &Recorded, turn: &Turn) -> Response {
    let mode = mode(request);
    let model = turn.model.clone().unwrap_or_else(|| requested_model(request));
    let id = response_id();
    let finish = turn.stop.clone().unwrap_or_else(|| "STOP".into());
    let groups = part_groups(turn, mode == Mode::Whole);
    let last = groups.len().saturating_sub(1);
    let chunks: Vec<Value> = groups
        .into_iter()
        .enumerate()
        .map(|(at, parts)| {
            let done = at == last;
            chunk(parts, done.then_some(finish.as_str()), usage(turn, done), &model, &id)
        })
        .collect();
    match mode {
        Mode::Sse => sse(&chunks),
        Mode::JsonArray => json_response(StatusCode::OK, &Value::Array(chunks)),
        Mode::Whole => json_response(StatusCode::OK, chunks.first().unwrap_or(&Value::Null)),
    }
}

/// Google's status, canonical code name, message and details for each kind of failure.
fn wire_error(error: &ErrorReply) -> (StatusCode, &'static str, String, Vec<Value>) {
    let message = error.message.clone();
    let mut details = Vec::new();
    let (status, code) = match error.kind {
        ErrorKind::RateLimit => {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{
                    "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                    "quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier",
                }],
            }));
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.Help",
                "links": [{"description": "Learn more about Gemini API quotas", "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
            }));
            (StatusCode::TOO_MANY_REQUESTS, "RESOURCE_EXHAUSTED")
        }
        ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        ErrorKind::Server => (StatusCode::INTERNAL_SERVER_ERROR, "INTERNAL"),
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT"),
        ErrorKind::ContextOverflow => {
            let message = if message.contains("exceeds the maximum number of tokens") {
                message
            } else {
                format!(
                    "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576). {message}"
                )
            };
            return (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT", message.trim_end().to_owned(), details);
        }
        // The Gemini API answers an unknown key with a 400, not a 401.
        ErrorKind::Authentication => {
            details.push(json!({
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "API_KEY_INVALID",
                "domain": "googleapis.com",
                "metadata": {"service": "generativelanguage.googleapis.com"},
            }));
            (StatusCode::BAD_REQUEST, "INVALID_ARGUMENT")
        }
    };
    (status, code, message, details)
}

pub(crate) fn error(request: &Recorded, error: &ErrorReply) -> Response {
    let (status, code, message, mut details) = wire_error(error);
    if let Some(seconds) = error.retry_after_secs {
        details.push(json!({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": format!("{seconds}s")}));
    }
    let mut body = json!({"code": status.as_u16(), "message": message, "status": code});
    if !details.is_empty() {
        body["details"] = Value::Array(details);
    }
    let body = json!({"error": body});
    if error.mid_stream && mode(request) == Mode::Sse {
        let model = requested_model(request);
        let id = response_id();
        let mut chunks: Vec<Value> = ["Let me ", "look"]
            .into_iter()
            .map(|text| chunk(vec![json!({"text": text})], None, json!({"promptTokenCount": 10}), &model, &id))
            .collect();
        chunks.push(body);
        return sse(&chunks);
    }
    json_response(status, &body)
}
