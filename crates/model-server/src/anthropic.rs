//! The Anthropic Messages API side of the model server: renders a scripted [`Turn`] as the
//! `text/event-stream` the real `POST /v1/messages` streams (`message_start`, `ping`, one
//! `content_block_start`/`_delta`/`_stop` run per thinking, text and tool-use block, `message_delta`
//! with the stop reason and output usage, `message_stop`), and an [`ErrorReply`] as the real error:
//! its status (429, 529, 500, 400, 401), `retry-after` and `request-id` headers and
//! `{"type": "error", "error": {"type", "message"}}` body, or an `error` event inside a 200 stream.

use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::{ErrorKind, ErrorReply, Recorded, Turn, sse_event, sse_response};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

/// Appends one event; Anthropic names every event after its `type`.
fn event(out: &mut String, data: Value) {
    let name = data["type"].as_str().unwrap_or("message").to_owned();
    sse_event(out, Some(&name), &data);
}

fn message_start(out: &mut String, request: &Recorded, model: Option<&str>, input_tokens: u64) {
    let model = model.map(str::to_owned).or_else(|| request.body["model"].as_str().map(str::to_owned));
    event(
        out,
        json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_{:024}", next_id()),
                "type": "message",
                "role": "assistant",
                "model": model.unwrap_or_default(),
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": {
                    "input_tokens": input_tokens,
                    "cache_creation_input_tokens": 0,
                    "cache_read_input_tokens": 0,
                    "output_tokens": 1,
                },
            },
        }),
    );
    event(out, json!({"type": "ping"}));
}

fn text_block(out: &mut String, turn: &Turn, index: usize, text: &str) {
    event(out, json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}));
    for chunk in turn.chunks(text) {
        event(
            out,
            json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}}),
        );
    }
    event(out, json!({"type": "content_block_stop", "index": index}));
}

pub(crate) fn turn(request: &Recorded, turn: &Turn) -> Response {
    let mut out = String::new();
    message_start(&mut out, request, turn.model.as_deref(), turn.input_tokens);
    let mut index = 0;
    if let Some(thinking) = &turn.thinking {
        event(
            &mut out,
            json!({
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "thinking", "thinking": "", "signature": ""},
            }),
        );
        for chunk in turn.chunks(&thinking.text) {
            event(
                &mut out,
                json!({"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": chunk}}),
            );
        }
        event(
            &mut out,
            json!({
                "type": "content_block_delta",
                "index": index,
                "delta": {"type": "signature_delta", "signature": thinking.signature},
            }),
        );
        event(&mut out, json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    if let Some(text) = &turn.text {
        text_block(&mut out, turn, index, text);
        index += 1;
    }
    for call in &turn.tool_calls {
        event(
            &mut out,
            json!({
                "type": "content_block_start",
                "index": index,
                "content_block": {"type": "tool_use", "id": call.id, "name": call.name, "input": {}},
            }),
        );
        // The API opens with an empty fragment, then streams the input JSON in pieces.
        let mut fragments = vec![String::new()];
        fragments.extend(turn.chunks(&call.input.to_string()));
        for fragment in fragments {
            event(
                &mut out,
                json!({
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": fragment},
                }),
            );
        }
        event(&mut out, json!({"type": "content_block_stop", "index": index}));
        index += 1;
    }
    let stop =
        turn.stop.clone().unwrap_or_else(|| if turn.tool_calls.is_empty() { "end_turn" } else { "tool_use" }.into());
    event(
        &mut out,
        json!({
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": null},
            "usage": {"output_tokens": turn.output_tokens},
        }),
    );
    event(&mut out, json!({"type": "message_stop"}));
    with_request_id(sse_response(out))
}

/// The status, error type and message Anthropic sends for each kind of failure.
fn wire_error(error: &ErrorReply) -> (StatusCode, &'static str, String) {
    let message = error.message.clone();
    match error.kind {
        ErrorKind::RateLimit => (StatusCode::TOO_MANY_REQUESTS, "rate_limit_error", message),
        ErrorKind::Overloaded => (overloaded_status(), "overloaded_error", message),
        ErrorKind::Server => (StatusCode::INTERNAL_SERVER_ERROR, "api_error", message),
        ErrorKind::InvalidRequest => (StatusCode::BAD_REQUEST, "invalid_request_error", message),
        ErrorKind::ContextOverflow => {
            let message = if message.contains("prompt is too long") {
                message
            } else {
                format!("prompt is too long: 210000 tokens > 200000 maximum ({message})")
            };
            (StatusCode::BAD_REQUEST, "invalid_request_error", message)
        }
        ErrorKind::Authentication => (StatusCode::UNAUTHORIZED, "authentication_error", message),
    }
}

/// Anthropic's own 529 "overloaded".
fn overloaded_status() -> StatusCode {
    StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
}

pub(crate) fn error(request: &Recorded, error: &ErrorReply) -> Response {
    let (status, error_type, message) = wire_error(error);
    let error_body = json!({"type": error_type, "message": message});
    let request_id = format!("req_{:024}", next_id());
    if error.mid_stream {
        let mut out = String::new();
        message_start(&mut out, request, None, 10);
        event(
            &mut out,
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        );
        for chunk in ["Let me ", "look"] {
            event(
                &mut out,
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": chunk}}),
            );
        }
        event(&mut out, json!({"type": "error", "error": error_body}));
        return with_request_id(sse_response(out));
    }
    let body = json!({"type": "error", "error": error_body, "request_id": request_id});
    let mut response = (status, [("content-type", "application/json")], body.to_string()).into_response();
    if let Some(seconds) = error.retry_after_secs {
        response.headers_mut().insert("retry-after", HeaderValue::from(seconds));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("request-id", value);
    }
    response
}

fn with_request_id(mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&format!("req_{:024}", next_id())) {
        response.headers_mut().insert("request-id", value);
    }
    response
}
