//! OpenAI Responses API (`POST /v1/responses`) rendering: a scripted [`Turn`] as the typed SSE
//! events OpenAI streams — `response.created` / `response.in_progress`; a `reasoning` item (its
//! summary streamed as `response.reasoning_summary_text.delta`s, `encrypted_content` = the turn's
//! signature when the request `include`s `reasoning.encrypted_content`); a `message` item
//! (`response.output_text.delta`s); `function_call` items (`response.function_call_arguments.delta`
//! / `.done`); each item's `response.output_item.added` / `.done`; and `response.completed`, or
//! `response.incomplete` when the turn's `stop` is a reason such as `max_output_tokens` — every
//! event with `type` and `sequence_number`, item events with `output_index` and `item_id`. Without
//! `stream: true` the same answer is one `response` object. Errors are OpenAI's status and error
//! body; mid-stream, a 200 stream with a few text deltas and then an `error` event (rate limits)
//! or `response.failed` (everything else).
//!
//! Parallel function calls are all added first and their argument deltas interleave, which the
//! format allows (every event names its item) and clients must handle.

use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::openai_chat::{error_response, model_name, new_id, now_secs, reasoning_tokens, stream_response};
use crate::{ErrorKind, ErrorReply, Recorded, Turn, sse_event};

pub(crate) fn turn(request: &Recorded, turn: &Turn) -> Response {
    let items = Items::of(request, turn);
    let stop = turn.stop.as_deref().filter(|stop| *stop != "completed");
    let mut response = response_object(request, turn);
    if request.body["stream"].as_bool() != Some(true) {
        finish(&mut response, &items, turn, stop);
        return axum::Json(response).into_response();
    }
    let mut events = Events::default();
    events.emit("response.created", json!({"response": response}));
    events.emit("response.in_progress", json!({"response": response}));
    for (index, item) in items.done.iter().enumerate() {
        match item["type"].as_str() {
            Some("reasoning") => events.reasoning(turn, index, item),
            Some("message") => events.message(turn, index, item),
            _ => {}
        }
    }
    events.function_calls(turn, &items);
    finish(&mut response, &items, turn, stop);
    let kind = if stop.is_some() { "response.incomplete" } else { "response.completed" };
    events.emit(kind, json!({"response": response}));
    stream_response(events.out)
}

pub(crate) fn error(request: &Recorded, error: &ErrorReply) -> Response {
    if !error.mid_stream {
        return error_response(error, "input");
    }
    let turn = Turn::text("Partial answer");
    let mut response = response_object(request, &turn);
    let mut events = Events::default();
    events.emit("response.created", json!({"response": response}));
    events.emit("response.in_progress", json!({"response": response}));
    let item_id = new_id("msg");
    events.emit("response.output_item.added", json!({"output_index": 0, "item": message_in_progress(&json!(item_id))}));
    events.emit(
        "response.content_part.added",
        json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": output_text("")}),
    );
    for piece in ["Partial ", "answer"] {
        events.emit(
            "response.output_text.delta",
            json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
        );
    }
    let code = match error.kind {
        ErrorKind::RateLimit => "rate_limit_exceeded",
        ErrorKind::Overloaded | ErrorKind::Server => "server_error",
        ErrorKind::InvalidRequest => "invalid_prompt",
        ErrorKind::ContextOverflow => "context_length_exceeded",
        ErrorKind::Authentication => "invalid_api_key",
    };
    if error.kind == ErrorKind::RateLimit {
        events.emit("error", json!({"code": code, "message": error.message, "param": null}));
    } else {
        response["status"] = json!("failed");
        response["error"] = json!({"code": code, "message": error.message});
        events.emit("response.failed", json!({"response": response}));
    }
    stream_response(events.out)
}

/// The `response` object as `response.created` carries it (no output yet).
fn response_object(request: &Recorded, turn: &Turn) -> Value {
    let body = &request.body;
    json!({
        "id": new_id("resp"),
        "object": "response",
        "created_at": now_secs(),
        "status": "in_progress",
        "background": false,
        "error": null,
        "incomplete_details": null,
        "instructions": body["instructions"],
        "max_output_tokens": body["max_output_tokens"],
        "model": model_name(request, turn),
        "output": [],
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": {"effort": body["reasoning"]["effort"], "summary": body["reasoning"]["summary"]},
        "service_tier": "default",
        "store": body["store"].as_bool().unwrap_or(true),
        "temperature": body["temperature"].as_f64().unwrap_or(1.0),
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": body["tools"].as_array().cloned().unwrap_or_default(),
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": null,
        "user": null,
        "metadata": {},
    })
}

/// Marks `response` finished: its status, output items and usage.
fn finish(response: &mut Value, items: &Items, turn: &Turn, stop: Option<&str>) {
    match stop {
        Some(reason) => {
            response["status"] = json!("incomplete");
            response["incomplete_details"] = json!({"reason": reason});
        }
        None => response["status"] = json!("completed"),
    }
    response["output"] = json!(items.done);
    response["usage"] = json!({
        "input_tokens": turn.input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": turn.output_tokens,
        "output_tokens_details": {"reasoning_tokens": reasoning_tokens(turn)},
        "total_tokens": turn.input_tokens + turn.output_tokens,
    });
}

/// A `message` item as `response.output_item.added` announces it.
fn message_in_progress(id: &Value) -> Value {
    json!({"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []})
}

fn output_text(text: &str) -> Value {
    json!({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
}

/// The turn's output items in their final (`response.output_item.done`) form, in output order:
/// reasoning, message, function calls.
struct Items {
    done: Vec<Value>,
}

impl Items {
    fn of(request: &Recorded, turn: &Turn) -> Self {
        let mut done = Vec::new();
        if let Some(thinking) = &turn.thinking {
            let mut item = json!({"id": new_id("rs"), "type": "reasoning", "summary": []});
            if !thinking.text.is_empty() {
                item["summary"] = json!([{"type": "summary_text", "text": thinking.text}]);
            }
            let include = request.body["include"].as_array().cloned().unwrap_or_default();
            if include.iter().any(|entry| entry == "reasoning.encrypted_content") {
                item["encrypted_content"] = json!(thinking.signature);
            }
            done.push(item);
        }
        if let Some(text) = &turn.text {
            done.push(json!({
                "id": new_id("msg"),
                "type": "message",
                "status": "completed",
                "role": "assistant",
                "content": [output_text(text)],
            }));
        }
        for call in &turn.tool_calls {
            done.push(json!({
                "id": new_id("fc"),
                "type": "function_call",
                "status": "completed",
                "arguments": call.input.to_string(),
                "call_id": call.id,
                "name": call.name,
            }));
        }
        Self { done }
    }
}

/// Builds the events of one stream, numbering them.
#[derive(Default)]
struct Events {
    sequence: u64,
    out: String,
}

impl Events {
    fn emit(&mut self, kind: &str, mut data: Value) {
        data["type"] = json!(kind);
        data["sequence_number"] = json!(self.sequence);
        self.sequence += 1;
        sse_event(&mut self.out, Some(kind), &data);
    }

    fn reasoning(&mut self, turn: &Turn, index: usize, item: &Value) {
        let id = &item["id"];
        self.emit(
            "response.output_item.added",
            json!({"output_index": index, "item": {"id": id, "type": "reasoning", "summary": []}}),
        );
        if let Some(text) = item["summary"][0]["text"].as_str() {
            let part = json!({"type": "summary_text", "text": ""});
            let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
            self.emit("response.reasoning_summary_part.added", with(&at, "part", part));
            for piece in turn.chunks(text) {
                self.emit("response.reasoning_summary_text.delta", with(&at, "delta", json!(piece)));
            }
            self.emit("response.reasoning_summary_text.done", with(&at, "text", json!(text)));
            self.emit("response.reasoning_summary_part.done", with(&at, "part", item["summary"][0].clone()));
        }
        self.emit("response.output_item.done", json!({"output_index": index, "item": item}));
    }

    fn message(&mut self, turn: &Turn, index: usize, item: &Value) {
        let id = &item["id"];
        let text = item["content"][0]["text"].as_str().unwrap_or_default();
        self.emit("response.output_item.added", json!({"output_index": index, "item": message_in_progress(id)}));
        let at = json!({"item_id": id, "output_index": index, "content_index": 0});
        self.emit("response.content_part.added", with(&at, "part", output_text("")));
        for piece in turn.chunks(text) {
            let mut delta = with(&at, "delta", json!(piece));
            delta["logprobs"] = json!([]);
            self.emit("response.output_text.delta", delta);
        }
        let mut done = with(&at, "text", json!(text));
        done["logprobs"] = json!([]);
        self.emit("response.output_text.done", done);
        self.emit("response.content_part.done", with(&at, "part", output_text(text)));
        self.emit("response.output_item.done", json!({"output_index": index, "item": item}));
    }

    /// Adds every function call, interleaves their argument deltas, then finishes each.
    fn function_calls(&mut self, turn: &Turn, items: &Items) {
        let calls: Vec<(usize, &Value)> =
            items.done.iter().enumerate().filter(|(_, item)| item["type"] == "function_call").collect();
        let mut fragments = Vec::new();
        for (index, item) in &calls {
            let mut added = (*item).clone();
            added["status"] = json!("in_progress");
            added["arguments"] = json!("");
            self.emit("response.output_item.added", json!({"output_index": index, "item": added}));
            fragments.push(turn.chunks(item["arguments"].as_str().unwrap_or_default()));
        }
        let rounds = fragments.iter().map(Vec::len).max().unwrap_or(0);
        for round in 0..rounds {
            for ((index, item), pieces) in calls.iter().zip(&fragments) {
                if let Some(piece) = pieces.get(round) {
                    self.emit(
                        "response.function_call_arguments.delta",
                        json!({"item_id": item["id"], "output_index": index, "delta": piece}),
                    );
                }
            }
        }
        for (index, item) in &calls {
            self.emit(
                "response.function_call_arguments.done",
                json!({"item_id": item["id"], "output_index": index, "arguments": item["arguments"]}),
            );
            self.emit("response.output_item.done", json!({"output_index": index, "item": item}));
        }
    }
}

/// `base` (an object) with `key` set to `value`.
fn with(base: &Value, key: &str, value: Value) -> Value {
    let mut out = base.clone();
    out[key] = value;
    out
}
