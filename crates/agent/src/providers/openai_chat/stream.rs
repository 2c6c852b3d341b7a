//! Reading a Chat Completions stream: `chat.completion.chunk` events (`data:` lines up to
//! `data: [DONE]`) into [`Delta`]s and the consolidated [`ModelResponse`].
//!
//! Per chunk, choice 0's `delta` may carry `content`, `reasoning_content` / `reasoning` (how vLLM,
//! DeepSeek and Ollama stream reasoning), `refusal`, and `tool_calls` fragments keyed by `index`
//! (parallel calls interleave; a call's `id` and `function.name` come first, `function.arguments`
//! arrives in pieces). `finish_reason` and `usage` may come in separate chunks or the same one, and
//! an OpenAI-compatible server may leave out usage, tool-call ids (`call_<index>` is used) or even
//! the `index` (then the `id`, or else the latest call, says which call a fragment extends).
//! Chunks are read as loose JSON so unknown or `null` fields never fail a stream.

use eventsource_stream::Event;
use runtools_protocol::agent::{ContentBlock, StopReason, Usage};
use serde_json::Value;

use super::shared::{event_json, parse_arguments, stream_error};
use crate::model::{Delta, ModelError, ModelErrorKind, ModelResponse};
use crate::providers::attempt::{Emitter, Flow, StreamParser};

/// The state of one streamed answer.
#[derive(Debug)]
pub(crate) struct ChatStream {
    provider: &'static str,
    /// The requested model, reported when the chunks name none.
    requested_model: String,
    model: Option<String>,
    /// In the order the model produced them.
    blocks: Vec<Block>,
    calls: Vec<Call>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    refused: bool,
    done: bool,
}

#[derive(Debug)]
enum Block {
    Text(String),
    Thinking(String),
    /// An index into `calls`.
    Call(usize),
}

#[derive(Debug)]
struct Call {
    /// The stream's `index` for this call.
    index: u64,
    id: Option<String>,
    name: String,
    arguments: String,
    /// Whether [`Delta::ToolCallStarted`] went out.
    started: bool,
}

impl ChatStream {
    pub(crate) fn new(provider: &'static str, requested_model: &str) -> Self {
        Self {
            provider,
            requested_model: requested_model.to_owned(),
            model: None,
            blocks: Vec::new(),
            calls: Vec::new(),
            finish_reason: None,
            usage: None,
            refused: false,
            done: false,
        }
    }

    /// Handles one chunk.
    fn chunk(&mut self, chunk: &Value, emit: &mut Emitter<'_, '_>) -> Result<(), ModelError> {
        if let Some(error) = chunk.get("error").filter(|error| !error.is_null()) {
            return Err(stream_error(self.provider, error));
        }
        if self.model.is_none()
            && let Some(model) = chunk["model"].as_str().filter(|model| !model.is_empty())
        {
            self.model = Some(model.to_owned());
        }
        // Groq reports usage under `x_groq`.
        for usage in [&chunk["usage"], &chunk["x_groq"]["usage"]] {
            if usage.is_object() {
                self.usage = Some(usage_of(usage));
            }
        }
        let choices = chunk["choices"].as_array().map(Vec::as_slice).unwrap_or_default();
        let Some(choice) = choices.iter().find(|choice| choice["index"].as_u64().unwrap_or(0) == 0) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        for key in ["reasoning_content", "reasoning"] {
            if let Some(text) = delta[key].as_str().filter(|text| !text.is_empty()) {
                self.push_thinking(text);
                emit.emit(Delta::Thinking(text.to_owned()));
            }
        }
        if let Some(text) = delta["content"].as_str().filter(|text| !text.is_empty()) {
            self.push_text(text);
            emit.emit(Delta::Text(text.to_owned()));
        }
        if let Some(text) = delta["refusal"].as_str().filter(|text| !text.is_empty()) {
            self.refused = true;
            self.push_text(text);
            emit.emit(Delta::Text(text.to_owned()));
        }
        for call in delta["tool_calls"].as_array().map(Vec::as_slice).unwrap_or_default() {
            self.call_fragment(call, emit);
        }
        if let Some(reason) = choice["finish_reason"].as_str().filter(|reason| !reason.is_empty()) {
            self.finish_reason = Some(reason.to_owned());
        }
        Ok(())
    }

    fn push_text(&mut self, text: &str) {
        match self.blocks.last_mut() {
            Some(Block::Text(existing)) => existing.push_str(text),
            _ => self.blocks.push(Block::Text(text.to_owned())),
        }
    }

    fn push_thinking(&mut self, text: &str) {
        match self.blocks.last_mut() {
            Some(Block::Thinking(existing)) => existing.push_str(text),
            _ => self.blocks.push(Block::Thinking(text.to_owned())),
        }
    }

    /// One `delta.tool_calls[]` entry: starts a call or extends one.
    fn call_fragment(&mut self, fragment: &Value, emit: &mut Emitter<'_, '_>) {
        let index = fragment["index"].as_u64();
        let id = fragment["id"].as_str().filter(|id| !id.is_empty());
        let known = match (index, id) {
            (Some(index), _) => self.calls.iter().position(|call| call.index == index),
            (None, Some(id)) => self.calls.iter().position(|call| call.id.as_deref() == Some(id)),
            (None, None) => self.calls.len().checked_sub(1),
        };
        let position = known.unwrap_or_else(|| {
            let index = index.unwrap_or_else(|| u64::try_from(self.calls.len()).unwrap_or(u64::MAX));
            self.calls.push(Call { index, id: None, name: String::new(), arguments: String::new(), started: false });
            self.blocks.push(Block::Call(self.calls.len() - 1));
            self.calls.len() - 1
        });
        let Some(call) = self.calls.get_mut(position) else { return };
        if call.id.is_none() {
            call.id = id.map(str::to_owned);
        }
        let function = &fragment["function"];
        if call.name.is_empty()
            && let Some(name) = function["name"].as_str()
        {
            call.name = name.to_owned();
        }
        match &function["arguments"] {
            Value::String(piece) => call.arguments.push_str(piece),
            // Some servers send the arguments as an object rather than JSON text.
            object @ Value::Object(_) => call.arguments = object.to_string(),
            _ => {}
        }
        if !call.started && !call.name.is_empty() {
            call.started = true;
            let id = call.id.get_or_insert_with(|| format!("call_{}", call.index)).clone();
            emit.emit(Delta::ToolCallStarted { id, name: call.name.clone() });
        }
    }
}

impl StreamParser for ChatStream {
    fn event(&mut self, event: &Event, emit: &mut Emitter<'_, '_>) -> Result<Flow, ModelError> {
        let data = event.data.trim();
        if data == "[DONE]" {
            self.done = true;
            return Ok(Flow::Done);
        }
        if data.is_empty() {
            return Ok(Flow::Continue);
        }
        let chunk = event_json(self.provider, event)?;
        self.chunk(&chunk, emit)?;
        Ok(Flow::Continue)
    }

    fn finish(self) -> Result<ModelResponse, ModelError> {
        let provider = self.provider;
        if !self.done && self.finish_reason.is_none() {
            return Err(ModelError::new(
                provider,
                ModelErrorKind::Transport,
                "the stream ended before the answer was complete",
            ));
        }
        let mut content = Vec::with_capacity(self.blocks.len());
        for block in self.blocks {
            content.push(match block {
                Block::Text(text) => ContentBlock::Text { text },
                Block::Thinking(thinking) => ContentBlock::Thinking { thinking, signature: None, provider_data: None },
                Block::Call(position) => {
                    let Some(call) = self.calls.get(position) else { continue };
                    let id = call.id.clone().unwrap_or_else(|| format!("call_{}", call.index));
                    if call.name.is_empty() {
                        return Err(ModelError::protocol(provider, format!("tool call {id} has no function name")));
                    }
                    let input = parse_arguments(provider, &call.name, &id, &call.arguments)?;
                    ContentBlock::ToolUse { id, name: call.name.clone(), input, provider_data: None }
                }
            });
        }
        let stop_reason = stop_reason(self.finish_reason.as_deref(), !self.calls.is_empty(), self.refused);
        Ok(ModelResponse {
            content,
            stop_reason,
            raw_stop_reason: self.finish_reason,
            usage: self.usage.unwrap_or_default(),
            model: self.model.unwrap_or(self.requested_model),
        })
    }
}

/// The normalised stop reason. Some compatible servers say `stop` after tool calls, so calls win.
fn stop_reason(finish_reason: Option<&str>, has_calls: bool, refused: bool) -> StopReason {
    match finish_reason {
        Some("tool_calls" | "function_call") => StopReason::ToolUse,
        Some("length") => StopReason::MaxTokens,
        Some("content_filter") => StopReason::ContentFilter,
        Some("stop") | None if has_calls => StopReason::ToolUse,
        Some("stop") | None if refused => StopReason::Refusal,
        Some("stop") | None => StopReason::EndTurn,
        Some(_) => StopReason::Other,
    }
}

/// A chunk's `usage`. Cached prompt tokens (`prompt_tokens_details.cached_tokens`, DeepSeek's
/// `prompt_cache_hit_tokens`) count as cache reads, not as normal input.
fn usage_of(usage: &Value) -> Usage {
    let count = |value: &Value| value.as_u64().unwrap_or(0);
    let prompt = count(&usage["prompt_tokens"]);
    let cached = usage["prompt_tokens_details"]["cached_tokens"]
        .as_u64()
        .or_else(|| usage["prompt_cache_hit_tokens"].as_u64())
        .unwrap_or(0)
        .min(prompt);
    Usage {
        input_tokens: prompt - cached,
        output_tokens: count(&usage["completion_tokens"]),
        cache_read_input_tokens: cached,
        cache_creation_input_tokens: 0,
        reasoning_tokens: count(&usage["completion_tokens_details"]["reasoning_tokens"]),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::attempt::feed;

    /// Feeds `chunks` (then `[DONE]` when `done`) and returns the deltas and the outcome.
    fn run(chunks: &[Value], done: bool) -> (Vec<Delta>, Result<ModelResponse, ModelError>) {
        let mut data: Vec<String> = chunks.iter().map(Value::to_string).collect();
        if done {
            data.push("[DONE]".into());
        }
        let events = data.into_iter().map(|data| Event { event: "message".into(), data, ..Event::default() });
        feed(ChatStream::new("openai", "gpt-test"), events)
    }

    #[test]
    fn usage_splits_cached_tokens_and_reads_reasoning_tokens() {
        let usage = json!({
            "prompt_tokens": 1200, "completion_tokens": 300,
            "prompt_tokens_details": {"cached_tokens": 1024},
            "completion_tokens_details": {"reasoning_tokens": 128}
        });
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": "stop"}]}),
            json!({"choices": [], "usage": usage}),
        ];
        let (_, response) = run(&chunks, true);
        let usage = response.unwrap().usage;
        assert_eq!(
            usage,
            Usage {
                input_tokens: 176,
                output_tokens: 300,
                cache_read_input_tokens: 1024,
                cache_creation_input_tokens: 0,
                reasoning_tokens: 128
            }
        );
    }

    #[test]
    fn calls_without_index_or_id_and_stop_after_calls() {
        // Every fragment lacks `index`; the second call is told apart by its new id.
        let chunks = [
            json!({"choices": [{"delta": {"tool_calls": [
                {"id": "a", "function": {"name": "ls", "arguments": "{\"p\":"}}
            ]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "1}"}}]}}]}),
            json!({"choices": [{"delta": {"tool_calls": [
                {"id": "b", "function": {"name": "pwd", "arguments": {"x": true}}}
            ]}}]}),
            json!({"choices": [{"delta": {}, "finish_reason": "stop"}]}),
        ];
        let (deltas, response) = run(&chunks, true);
        let response = response.unwrap();
        assert_eq!(response.stop_reason, StopReason::ToolUse, "calls win over a `stop` finish reason");
        let calls: Vec<_> =
            response.tool_calls().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
        assert_eq!(calls, [("a".into(), "ls".into(), json!({"p": 1})), ("b".into(), "pwd".into(), json!({"x": true}))]);
        assert_eq!(deltas.len(), 2);
    }

    #[test]
    fn refusals_and_odd_finish_reasons() {
        let chunks = [json!({"choices": [{
            "index": 0, "delta": {"refusal": "I can't help with that."}, "finish_reason": "stop",
        }]})];
        let response = run(&chunks, true).1.unwrap();
        assert_eq!((response.stop_reason, response.text().as_str()), (StopReason::Refusal, "I can't help with that."));
        let chunks = [json!({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "content_filter"}]})];
        assert_eq!(run(&chunks, true).1.unwrap().stop_reason, StopReason::ContentFilter);
        let chunks = [json!({"choices": [{"index": 0, "delta": {"content": "x"}, "finish_reason": "eos"}]})];
        let response = run(&chunks, true).1.unwrap();
        assert_eq!((response.stop_reason, response.raw_stop_reason.as_deref()), (StopReason::Other, Some("eos")));
    }

    #[test]
    fn invalid_arguments_name_the_tool_and_truncated_streams_fail() {
        let chunks = [
            json!({"choices": [{"index": 0, "delta": {"tool_calls": [
                {"index": 0, "id": "c1", "function": {"name": "grep", "arguments": "{oops"}}
            ]}}]}),
            json!({"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]}),
        ];
        let error = run(&chunks, true).1.unwrap_err();
        assert_eq!(error.kind, ModelErrorKind::Protocol);
        assert!(error.message.contains("`grep`") && error.message.contains("c1"), "{}", error.message);

        let chunks = [json!({"choices": [{"index": 0, "delta": {"content": "half"}, "finish_reason": null}]})];
        let error = run(&chunks, false).1.unwrap_err();
        assert_eq!(error.kind, ModelErrorKind::Transport);
    }
}
