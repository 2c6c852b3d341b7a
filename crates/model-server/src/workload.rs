//! Open-ended workloads for benchmarks: a [`Responder`] that makes every conversation call a tool
//! a fixed number of times and then answer, whichever API it comes in on.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::{Api, Recorded, Reply, Responder, ToolCall, Turn};

/// How many tool results the conversation in `request` already holds.
pub fn tool_results(request: &Recorded) -> usize {
    let items = |key: &str| request.body.get(key).and_then(Value::as_array).cloned().unwrap_or_default();
    match request.api {
        Api::Anthropic => items("messages")
            .iter()
            .filter_map(|message| message.get("content").and_then(Value::as_array))
            .flatten()
            .filter(|block| block.get("type").and_then(Value::as_str) == Some("tool_result"))
            .count(),
        Api::OpenaiChat => items("messages")
            .iter()
            .filter(|message| message.get("role").and_then(Value::as_str) == Some("tool"))
            .count(),
        Api::OpenaiResponses => items("input")
            .iter()
            .filter(|item| item.get("type").and_then(Value::as_str) == Some("function_call_output"))
            .count(),
        Api::Gemini => items("contents")
            .iter()
            .filter_map(|content| content.get("parts").and_then(Value::as_array))
            .flatten()
            .filter(|part| part.get("functionResponse").is_some())
            .count(),
    }
}

/// Each conversation calls `tool` `tool_steps` times (one call per turn, input `{"step": n}`),
/// then answers `done`. Every answer waits `delay` first (zero: answer at once).
pub fn tool_loop(tool_steps: usize, tool: &str, delay: Duration) -> Responder {
    let tool = tool.to_owned();
    Arc::new(move |request: &Recorded| {
        let done = tool_results(request);
        let turn = if done < tool_steps {
            Turn::tools(vec![ToolCall::new(format!("call_{done}"), tool.clone(), json!({ "step": done }))])
        } else {
            Turn::text("done")
        };
        if delay.is_zero() { Reply::Turn(turn) } else { Reply::Delayed(delay, Box::new(Reply::Turn(turn))) }
    })
}
