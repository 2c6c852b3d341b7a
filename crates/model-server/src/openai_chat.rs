//! OpenAI Chat Completions (`POST /v1/chat/completions`) rendering: a scripted [`Turn`] as the
//! `chat.completion.chunk` SSE stream OpenAI sends (a role chunk, `reasoning_content` deltas the
//! way vLLM/DeepSeek stream reasoning, `content` deltas, `tool_calls` deltas keyed by `index`, a
//! `finish_reason` chunk, the `choices: []` usage chunk when `stream_options.include_usage` asks
//! for it, then `data: [DONE]`), or as one `chat.completion` object when `stream` is not set; and
//! an [`ErrorReply`] as OpenAI's error: status, `retry-after` / `retry-after-ms`, and the
//! `{"error": {"message", "type", "param", "code"}}` body — or, mid-stream, a 200 stream that
//! sends a few deltas and then a `data: {"error": …}` chunk. Also owns the error body the
//! Responses renderer shares.
//!
//! Parallel tool calls stream their argument fragments interleaved (call 0, call 1, call 0…), which
//! the format allows and clients must handle. [`ChatQuirks`](crate::ChatQuirks) render the ways
//! OpenAI-compatible servers differ. `reasoning_tokens` is reported as a quarter of the thinking's
//! characters (at most `output_tokens`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{ErrorKind, ErrorReply, Recorded, Turn, sse_event, sse_response};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A fresh id with OpenAI's prefix for the object kind (`chatcmpl`, `resp`, `msg`, `fc`…).
pub(crate) fn new_id(prefix: &str) -> String {
    format!("{prefix}_ms{:08}", NEXT_ID.fetch_add(1, Ordering::Relaxed))
}

/// Seconds since the epoch, for `created` / `created_at`.
pub(crate) fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or_default()
}

/// The model the answer reports: the turn's override, else the requested one.
pub(crate) fn model_name(request: &Recorded, turn: &Turn) -> String {
    turn.model.clone().or_else(|| request.body["model"].as_str().map(str::to_owned)).unwrap_or_else(|| "gpt-4.1".into())
}

/// The reasoning tokens a turn reports: a quarter of its thinking's characters, capped.
pub(crate) fn reasoning_tokens(turn: &Turn) -> u64 {
    let chars = turn.thinking.as_ref().map_or(0, |thinking| thinking.text.chars().count());
    (u64::try_from(chars).unwrap_or(u64::MAX) / 4).min(turn.output_tokens)
}

/// OpenAI's status and `{"error": {…}}` body for `error`; `param` names the field a context
/// overflow blames (`messages` for Chat Completions, `input` for Responses).
pub(crate) fn error_response(error: &ErrorReply, param: &str) -> Response {
    let (status, body) = error_body(error, param);
    let mut response = (status, axum::Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert("x-request-id", header(&new_id("req")));
    if let Some(seconds) = error.retry_after_secs {
        headers.insert("retry-after", header(&seconds.to_string()));
        headers.insert("retry-after-ms", header(&seconds.saturating_mul(1000).to_string()));
    }
    response
}

fn error_body(error: &ErrorReply, param: &str) -> (StatusCode, Value) {
    let (status, kind, param, code) = match error.kind {
        ErrorKind::RateLimit => (StatusCode::TOO_MANY_REQUESTS, "requests", None, Some("rate_limit_exceeded")),
        ErrorKind::Overloaded => (StatusCode::SERVICE_UNAVAILABLE, "server_error", None, None),
        ErrorKind::Server => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None, None),
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error", None, None),
        ErrorKind::ContextOverflow => {
            (StatusCode::BAD_REQUEST, "invalid_request_error", Some(param), Some("context_length_exceeded"))
        }
        ErrorKind::Authentication => (StatusCode::UNAUTHORIZED, "invalid_request_error", None, Some("invalid_api_key")),
    };
    (status, json!({"error": {"message": error.message, "type": kind, "param": param, "code": code}}))
}

/// The `error` object of `error`, as a failed stream carries it.
pub(crate) fn error_object(error: &ErrorReply) -> Value {
    error_body(error, "messages").1["error"].clone()
}

fn header(value: &str) -> HeaderValue {
    HeaderValue::from_str(value).unwrap_or_else(|_| HeaderValue::from_static("invalid"))
}

/// A 200 SSE response with OpenAI's request id header.
pub(crate) fn stream_response(body: String) -> Response {
    let mut response = sse_response(body);
    response.headers_mut().insert("x-request-id", header(&new_id("req")));
    response
}

pub(crate) fn turn(request: &Recorded, turn: &Turn) -> Response {
    if request.body["stream"].as_bool() != Some(true) {
        return axum::Json(completion(request, turn)).into_response();
    }
    let quirks = turn.chat_quirks;
    let include_usage = request.body["stream_options"]["include_usage"].as_bool() == Some(true) && !quirks.no_usage;
    let mut chunks = Chunks::new(model_name(request, turn), include_usage);
    chunks.choice(json!({"role": "assistant", "content": "", "refusal": null}), None, None);
    if let Some(thinking) = &turn.thinking {
        for piece in turn.chunks(&thinking.text) {
            chunks.choice(json!({"reasoning_content": piece}), None, None);
        }
    }
    if let Some(text) = &turn.text {
        for piece in turn.chunks(text) {
            chunks.choice(json!({"content": piece}), None, None);
        }
    }
    // Interleave the calls' argument fragments: round r sends fragment r of every call, and a
    // call's header (id, name) goes out just before its first fragment.
    let fragments: Vec<Vec<String>> = turn.tool_calls.iter().map(|call| turn.chunks(&call.input.to_string())).collect();
    let rounds = fragments.iter().map(Vec::len).max().unwrap_or(0);
    for round in 0..rounds {
        for (index, (call, pieces)) in turn.tool_calls.iter().zip(&fragments).enumerate() {
            if round == 0 {
                let mut start =
                    json!({"index": index, "type": "function", "function": {"name": call.name, "arguments": ""}});
                if !quirks.no_tool_call_ids {
                    start["id"] = json!(call.id);
                }
                chunks.choice(json!({"tool_calls": [start]}), None, None);
            }
            if let Some(piece) = pieces.get(round) {
                chunks.choice(json!({"tool_calls": [{"index": index, "function": {"arguments": piece}}]}), None, None);
            }
        }
    }
    let usage = (include_usage || quirks.usage_with_finish).then(|| usage(turn));
    if quirks.usage_with_finish {
        chunks.choice(json!({}), Some(&finish_reason(turn)), usage);
    } else {
        chunks.choice(json!({}), Some(&finish_reason(turn)), None);
        if let Some(usage) = usage {
            chunks.usage(usage);
        }
    }
    chunks.out.push_str("data: [DONE]\n\n");
    stream_response(chunks.out)
}

pub(crate) fn error(request: &Recorded, error: &ErrorReply) -> Response {
    if !error.mid_stream {
        return error_response(error, "messages");
    }
    let mut chunks = Chunks::new(model_name(request, &Turn::default()), false);
    chunks.choice(json!({"role": "assistant", "content": "", "refusal": null}), None, None);
    chunks.choice(json!({"content": "Partial "}), None, None);
    chunks.choice(json!({"content": "answer"}), None, None);
    sse_event(&mut chunks.out, None, &json!({"error": error_object(error)}));
    stream_response(chunks.out)
}

/// The non-streaming answer: one `chat.completion` object.
fn completion(request: &Recorded, turn: &Turn) -> Value {
    let mut message = json!({"role": "assistant", "content": turn.text, "refusal": null});
    if let Some(thinking) = &turn.thinking {
        message["reasoning_content"] = json!(thinking.text);
    }
    if !turn.tool_calls.is_empty() {
        let calls: Vec<Value> = turn
            .tool_calls
            .iter()
            .map(|call| {
                let function = json!({"name": call.name, "arguments": call.input.to_string()});
                json!({"id": call.id, "type": "function", "function": function})
            })
            .collect();
        message["tool_calls"] = json!(calls);
    }
    json!({
        "id": new_id("chatcmpl"),
        "object": "chat.completion",
        "created": now_secs(),
        "model": model_name(request, turn),
        "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish_reason(turn)}],
        "usage": usage(turn),
        "service_tier": "default",
        "system_fingerprint": "fp_model_server",
    })
}

fn finish_reason(turn: &Turn) -> String {
    match &turn.stop {
        Some(stop) => stop.clone(),
        None if turn.tool_calls.is_empty() => "stop".into(),
        None => "tool_calls".into(),
    }
}

fn usage(turn: &Turn) -> Value {
    json!({
        "prompt_tokens": turn.input_tokens,
        "completion_tokens": turn.output_tokens,
        "total_tokens": turn.input_tokens + turn.output_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning_tokens(turn),
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    })
}

/// Builds the `chat.completion.chunk` events of one stream.
struct Chunks {
    id: String,
    created: u64,
    model: String,
    /// OpenAI sends `"usage": null` on every chunk but the last when usage was asked for.
    usage_null: bool,
    out: String,
}

impl Chunks {
    fn new(model: String, usage_null: bool) -> Self {
        Self { id: new_id("chatcmpl"), created: now_secs(), model, usage_null, out: String::new() }
    }

    fn base(&self, choices: Value) -> Value {
        json!({
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "service_tier": "default",
            "system_fingerprint": "fp_model_server",
            "choices": choices,
        })
    }

    fn choice(&mut self, delta: Value, finish_reason: Option<&str>, usage: Option<Value>) {
        let mut chunk =
            self.base(json!([{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}]));
        match usage {
            Some(usage) => chunk["usage"] = usage,
            None if self.usage_null => chunk["usage"] = Value::Null,
            None => {}
        }
        sse_event(&mut self.out, None, &chunk);
    }

    fn usage(&mut self, usage: Value) {
        let mut chunk = self.base(json!([]));
        chunk["usage"] = usage;
        sse_event(&mut self.out, None, &chunk);
    }
}
