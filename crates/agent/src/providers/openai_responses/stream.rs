//! Reading a Responses API event stream into [`Delta`]s and the consolidated [`ModelResponse`].
//!
//! Output items are tracked by `output_index` (events also name them by `item_id`):
//! `response.output_item.added` opens an item (a `function_call` announces its call as
//! [`Delta::ToolCallStarted`]); `response.output_text.delta` / `response.refusal.delta`,
//! `response.reasoning_summary_text.delta` / `response.reasoning_text.delta` and
//! `response.function_call_arguments.delta` / `.done` stream into it; `response.output_item.done`
//! replaces it with the authoritative item. `response.completed` / `response.incomplete` end the
//! stream (with usage and, for the latter, `incomplete_details.reason`), and any item the stream
//! never finished is taken from the final `response.output`. `response.failed` and `error` fail it.
//! A reasoning item becomes a [`ContentBlock::Thinking`] whose `provider_data` is the item
//! (`type`, `id`, `summary`, `encrypted_content`) to echo back next turn.

use std::collections::BTreeMap;

use eventsource_stream::Event;
use runtools_protocol::agent::{ContentBlock, StopReason, Usage};
use serde_json::{Value, json};

use super::ITEM_ID_KEY;
use crate::model::{Delta, ModelError, ModelErrorKind, ModelResponse};
use crate::providers::attempt::{Emitter, Flow, StreamParser};
use crate::providers::openai_chat::shared::{event_json, parse_arguments, stream_error};

/// The state of one streamed response.
#[derive(Debug)]
pub(crate) struct ResponsesStream {
    provider: &'static str,
    requested_model: String,
    model: Option<String>,
    /// By `output_index`.
    items: BTreeMap<u64, Item>,
    /// `completed`, or the `incomplete_details.reason`, once the response ended.
    ending: Option<Ending>,
    usage: Usage,
}

#[derive(Debug)]
enum Ending {
    Completed,
    Incomplete(String),
}

#[derive(Debug)]
struct Item {
    id: String,
    kind: ItemKind,
    /// `response.output_item.done` (or the final output) gave the authoritative item.
    done: bool,
}

#[derive(Debug)]
enum ItemKind {
    Reasoning { text: String, summary_index: Option<u64>, echo: Option<Value> },
    Message { text: String, refused: bool },
    Call { call_id: String, name: String, arguments: String, started: bool },
    Other,
}

impl ResponsesStream {
    pub(crate) fn new(provider: &'static str, requested_model: &str) -> Self {
        Self {
            provider,
            requested_model: requested_model.to_owned(),
            model: None,
            items: BTreeMap::new(),
            ending: None,
            usage: Usage::default(),
        }
    }

    /// The item an event is about: by `output_index`, else by `item_id`; created as `kind` if the
    /// stream never announced it.
    fn item_for(&mut self, data: &Value, kind: impl FnOnce() -> ItemKind) -> &mut Item {
        let item_id = data["item_id"].as_str().unwrap_or_default();
        let index = data["output_index"].as_u64().or_else(|| {
            self.items.iter().find(|(_, item)| !item_id.is_empty() && item.id == item_id).map(|(index, _)| *index)
        });
        let index = index.unwrap_or_else(|| self.items.keys().next_back().map_or(0, |last| last + 1));
        self.items.entry(index).or_insert_with(|| Item { id: item_id.to_owned(), kind: kind(), done: false })
    }

    /// `response.output_item.added` (`done: false`) or `.done` / the final output (`done: true`).
    fn item(&mut self, index: u64, item: &Value, done: bool, emit: &mut Emitter<'_, '_>) {
        let id = item["id"].as_str().unwrap_or_default().to_owned();
        let text = |key: &str| item[key].as_str().unwrap_or_default().to_owned();
        let previous = self.items.remove(&index);
        let kind = match item["type"].as_str() {
            Some("function_call") => {
                let started = matches!(previous, Some(Item { kind: ItemKind::Call { started: true, .. }, .. }));
                let call_id = Some(text("call_id")).filter(|call_id| !call_id.is_empty()).unwrap_or_else(|| id.clone());
                let name = text("name");
                if !started {
                    emit.emit(Delta::ToolCallStarted { id: call_id.clone(), name: name.clone() });
                }
                let arguments = match (&previous, done) {
                    (Some(Item { kind: ItemKind::Call { arguments, .. }, .. }), false) => arguments.clone(),
                    _ => text("arguments"),
                };
                ItemKind::Call { call_id, name, arguments, started: true }
            }
            Some("message") if done => {
                let mut text = String::new();
                let mut refused = false;
                for part in item["content"].as_array().map(Vec::as_slice).unwrap_or_default() {
                    match part["type"].as_str() {
                        Some("output_text") => text.push_str(part["text"].as_str().unwrap_or_default()),
                        Some("refusal") => {
                            refused = true;
                            text.push_str(part["refusal"].as_str().unwrap_or_default());
                        }
                        _ => {}
                    }
                }
                ItemKind::Message { text, refused }
            }
            Some("message") => ItemKind::Message { text: String::new(), refused: false },
            Some("reasoning") if done => {
                let summaries: Vec<&str> = item["summary"]
                    .as_array()
                    .map(Vec::as_slice)
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|part| part["text"].as_str())
                    .collect();
                let streamed = match previous {
                    Some(Item { kind: ItemKind::Reasoning { text, .. }, .. }) => text,
                    _ => String::new(),
                };
                let text = if summaries.is_empty() { streamed } else { summaries.join("\n\n") };
                let echo = item["encrypted_content"].is_string().then(|| {
                    json!({
                        "type": "reasoning", "id": id, "summary": item["summary"],
                        "encrypted_content": item["encrypted_content"],
                    })
                });
                ItemKind::Reasoning { text, summary_index: None, echo }
            }
            Some("reasoning") => ItemKind::Reasoning { text: String::new(), summary_index: None, echo: None },
            _ => ItemKind::Other,
        };
        self.items.insert(index, Item { id, kind, done });
    }

    fn text_delta(&mut self, data: &Value, refusal: bool, emit: &mut Emitter<'_, '_>) {
        let Some(delta) = data["delta"].as_str().filter(|delta| !delta.is_empty()) else { return };
        let item = self.item_for(data, || ItemKind::Message { text: String::new(), refused: false });
        if let ItemKind::Message { text, refused } = &mut item.kind {
            text.push_str(delta);
            *refused |= refusal;
            emit.emit(Delta::Text(delta.to_owned()));
        }
    }

    /// A summary (or raw reasoning) delta; a new summary part starts a new paragraph.
    fn thinking_delta(&mut self, data: &Value, emit: &mut Emitter<'_, '_>) {
        let Some(delta) = data["delta"].as_str().filter(|delta| !delta.is_empty()) else { return };
        let part = data["summary_index"].as_u64().or_else(|| data["content_index"].as_u64());
        let item = self.item_for(data, || ItemKind::Reasoning { text: String::new(), summary_index: None, echo: None });
        if let ItemKind::Reasoning { text, summary_index, .. } = &mut item.kind {
            if !text.is_empty() && part != *summary_index {
                text.push_str("\n\n");
                emit.emit(Delta::Thinking("\n\n".into()));
            }
            *summary_index = part;
            text.push_str(delta);
            emit.emit(Delta::Thinking(delta.to_owned()));
        }
    }

    fn arguments(&mut self, data: &Value, whole: bool) {
        let key = if whole { "arguments" } else { "delta" };
        let Some(piece) = data[key].as_str() else { return };
        let item = self.item_for(data, || ItemKind::Other);
        if let ItemKind::Call { arguments, .. } = &mut item.kind {
            if whole {
                *arguments = piece.to_owned();
            } else {
                arguments.push_str(piece);
            }
        }
    }

    /// `response.completed` / `response.incomplete`: usage, model, and any item not yet final.
    fn end(&mut self, response: &Value, ending: Ending, emit: &mut Emitter<'_, '_>) {
        if let Some(model) = response["model"].as_str().filter(|model| !model.is_empty()) {
            self.model = Some(model.to_owned());
        }
        let usage = &response["usage"];
        let input = usage["input_tokens"].as_u64().unwrap_or(0);
        let cached = usage["input_tokens_details"]["cached_tokens"].as_u64().unwrap_or(0).min(input);
        self.usage = Usage {
            input_tokens: input - cached,
            output_tokens: usage["output_tokens"].as_u64().unwrap_or(0),
            cache_read_input_tokens: cached,
            cache_creation_input_tokens: 0,
            reasoning_tokens: usage["output_tokens_details"]["reasoning_tokens"].as_u64().unwrap_or(0),
        };
        for (index, item) in response["output"].as_array().map(Vec::as_slice).unwrap_or_default().iter().enumerate() {
            let index = u64::try_from(index).unwrap_or(u64::MAX);
            if !self.items.get(&index).is_some_and(|known| known.done) {
                self.item(index, item, true, emit);
            }
        }
        self.ending = Some(ending);
    }
}

impl StreamParser for ResponsesStream {
    fn event(&mut self, event: &Event, emit: &mut Emitter<'_, '_>) -> Result<Flow, ModelError> {
        let data = event_json(self.provider, event)?;
        let kind = data["type"].as_str().unwrap_or(&event.event);
        match kind {
            "response.created" | "response.in_progress" => {
                if let Some(model) = data["response"]["model"].as_str().filter(|model| !model.is_empty()) {
                    self.model = Some(model.to_owned());
                }
            }
            "response.output_item.added" | "response.output_item.done" => {
                let index = data["output_index"].as_u64().unwrap_or_else(|| {
                    self.items.keys().next_back().map_or(0, |last| last + u64::from(kind.ends_with("added")))
                });
                self.item(index, &data["item"], kind.ends_with("done"), emit);
            }
            "response.output_text.delta" => self.text_delta(&data, false, emit),
            "response.refusal.delta" => self.text_delta(&data, true, emit),
            "response.reasoning_summary_text.delta" | "response.reasoning_text.delta" => {
                self.thinking_delta(&data, emit)
            }
            "response.function_call_arguments.delta" => self.arguments(&data, false),
            "response.function_call_arguments.done" => self.arguments(&data, true),
            "response.completed" => {
                self.end(&data["response"], Ending::Completed, emit);
                return Ok(Flow::Done);
            }
            "response.incomplete" => {
                let reason = data["response"]["incomplete_details"]["reason"].as_str().unwrap_or("incomplete");
                self.end(&data["response"], Ending::Incomplete(reason.to_owned()), emit);
                return Ok(Flow::Done);
            }
            "response.failed" => {
                let error = &data["response"]["error"];
                let error = if error.is_object() { error.clone() } else { json!({"message": "the response failed"}) };
                return Err(stream_error(self.provider, &error));
            }
            "error" => return Err(stream_error(self.provider, data.get("error").unwrap_or(&data))),
            _ => {}
        }
        Ok(Flow::Continue)
    }

    fn finish(self) -> Result<ModelResponse, ModelError> {
        let provider = self.provider;
        let Some(ending) = self.ending else {
            return Err(ModelError::new(
                provider,
                ModelErrorKind::Transport,
                "the stream ended before the response was complete",
            ));
        };
        let mut content = Vec::new();
        let (mut calls, mut refused) = (false, false);
        for item in self.items.into_values() {
            match item.kind {
                ItemKind::Reasoning { text, echo, .. } => {
                    if !text.is_empty() || echo.is_some() {
                        content.push(ContentBlock::Thinking { thinking: text, signature: None, provider_data: echo });
                    }
                }
                ItemKind::Message { text, refused: refusal } => {
                    refused |= refusal;
                    if !text.is_empty() {
                        content.push(ContentBlock::Text { text });
                    }
                }
                ItemKind::Call { call_id, name, arguments, .. } => {
                    calls = true;
                    let input = parse_arguments(provider, &name, &call_id, &arguments)?;
                    let provider_data = (!item.id.is_empty()).then(|| json!({ITEM_ID_KEY: item.id}));
                    content.push(ContentBlock::ToolUse { id: call_id, name, input, provider_data });
                }
                ItemKind::Other => {}
            }
        }
        let (stop_reason, raw) = match ending {
            Ending::Incomplete(reason) => {
                let stop = match reason.as_str() {
                    "max_output_tokens" => StopReason::MaxTokens,
                    "content_filter" => StopReason::ContentFilter,
                    _ => StopReason::Other,
                };
                (stop, reason)
            }
            Ending::Completed if calls => (StopReason::ToolUse, "completed".to_owned()),
            Ending::Completed if refused => (StopReason::Refusal, "completed".to_owned()),
            Ending::Completed => (StopReason::EndTurn, "completed".to_owned()),
        };
        Ok(ModelResponse {
            content,
            stop_reason,
            raw_stop_reason: Some(raw),
            usage: self.usage,
            model: self.model.unwrap_or(self.requested_model),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::attempt::feed;

    /// Feeds `events` (as `data` objects) and returns the deltas and the outcome.
    fn run(events: &[Value]) -> (Vec<Delta>, Result<ModelResponse, ModelError>) {
        let events = events.iter().map(|data| Event {
            event: data["type"].as_str().unwrap_or_default().into(),
            data: data.to_string(),
            ..Event::default()
        });
        feed(ResponsesStream::new("openai-responses", "gpt-test"), events)
    }

    #[test]
    fn a_bare_completed_event_still_yields_its_items_and_cached_usage() {
        // Proxies may send only the final response: its output is authoritative.
        let (deltas, response) = run(&[json!({"type": "response.completed", "response": {
            "model": "gpt-5-2025",
            "output": [
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"},
                {"type": "message", "id": "msg_1", "content": [{"type": "refusal", "refusal": "No."}]},
            ],
            "usage": {"input_tokens": 2000, "input_tokens_details": {"cached_tokens": 1500}, "output_tokens": 40,
                      "output_tokens_details": {"reasoning_tokens": 30}},
        }})]);
        let response = response.unwrap();
        assert!(deltas.is_empty());
        assert_eq!(response.model, "gpt-5-2025");
        assert_eq!(response.stop_reason, StopReason::Refusal);
        assert_eq!(
            response.content,
            [
                ContentBlock::Thinking {
                    thinking: String::new(),
                    signature: None,
                    provider_data: Some(
                        json!({"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "enc"})
                    ),
                },
                ContentBlock::text("No."),
            ]
        );
        assert_eq!(
            (response.usage.input_tokens, response.usage.cache_read_input_tokens, response.usage.reasoning_tokens),
            (500, 1500, 30)
        );
    }

    #[test]
    fn summary_parts_become_paragraphs_and_incomplete_maps_its_reason() {
        let at = |summary_index: u64, delta: &str| {
            json!({
                "type": "response.reasoning_summary_text.delta", "item_id": "rs_1", "output_index": 0,
                "summary_index": summary_index, "delta": delta,
            })
        };
        let (deltas, response) = run(&[
            json!({
                "type": "response.output_item.added", "output_index": 0,
                "item": {"type": "reasoning", "id": "rs_1", "summary": []},
            }),
            at(0, "First."),
            at(1, "Second."),
            json!({
                "type": "response.incomplete",
                "response": {"incomplete_details": {"reason": "content_filter"}, "output": []},
            }),
        ]);
        let response = response.unwrap();
        assert_eq!(
            deltas,
            [Delta::Thinking("First.".into()), Delta::Thinking("\n\n".into()), Delta::Thinking("Second.".into())]
        );
        assert_eq!(
            response.content,
            [ContentBlock::Thinking { thinking: "First.\n\nSecond.".into(), signature: None, provider_data: None }]
        );
        assert_eq!(
            (response.stop_reason, response.raw_stop_reason.as_deref()),
            (StopReason::ContentFilter, Some("content_filter"))
        );
    }

    #[test]
    fn failures_and_truncated_streams() {
        let (_, outcome) = run(&[json!({"type": "response.failed", "response": {"status": "failed",
            "error": {"code": "server_error", "message": "The model failed."}}})]);
        let error = outcome.unwrap_err();
        assert_eq!((error.kind, error.message.as_str()), (ModelErrorKind::Server, "The model failed."));
        let (_, outcome) = run(&[
            json!({"type": "error", "code": "context_length_exceeded", "message": "Too long.", "param": "input"}),
        ]);
        assert_eq!(outcome.unwrap_err().kind, ModelErrorKind::ContextOverflow);
        let (_, outcome) = run(&[json!({"type": "response.created", "response": {"model": "m"}})]);
        assert_eq!(outcome.unwrap_err().kind, ModelErrorKind::Transport);
    }
}
