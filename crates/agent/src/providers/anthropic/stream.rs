//! Reading a Messages API event stream: the events as published (`message_start`,
//! `content_block_start`/`_delta`/`_stop` with text, thinking, signature and tool-input deltas,
//! `message_delta`, `message_stop`, `ping`, `error`), folded into [`Delta`]s for the sink and one
//! consolidated [`ModelResponse`] with Anthropic's stop reason normalised.

use eventsource_stream::Event;
use runtools_protocol::agent::{ContentBlock, StopReason, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{WireError, kind_for_error};
use crate::model::{Delta, ModelError, ModelErrorKind, ModelResponse};
use crate::providers::attempt::{Emitter, Flow, StreamParser};
use crate::providers::http::describe;

/// The stream events of the Messages API.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum StreamEvent {
    MessageStart {
        message: MessageStart,
    },
    ContentBlockStart {
        index: usize,
        content_block: BlockStart,
    },
    ContentBlockDelta {
        index: usize,
        delta: BlockDelta,
    },
    ContentBlockStop {
        index: usize,
    },
    MessageDelta {
        delta: MessageDelta,
        #[serde(default)]
        usage: Option<WireUsage>,
    },
    MessageStop,
    Ping,
    Error {
        error: WireError,
    },
    /// Event types added after this adapter was written are skipped, as the API asks.
    #[serde(other)]
    Unknown,
}

#[derive(Debug, Deserialize)]
struct MessageStart {
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    usage: Option<WireUsage>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockStart {
    Text {
        #[serde(default)]
        text: String,
    },
    Thinking {
        #[serde(default)]
        thinking: String,
        #[serde(default)]
        signature: String,
    },
    RedactedThinking {
        data: String,
    },
    ToolUse {
        id: String,
        name: String,
        #[serde(default)]
        input: Value,
    },
    /// Server tools, search results…: not part of the neutral conversation.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum BlockDelta {
    TextDelta {
        text: String,
    },
    ThinkingDelta {
        thinking: String,
    },
    SignatureDelta {
        signature: String,
    },
    InputJsonDelta {
        partial_json: String,
    },
    /// Citations and future delta types.
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct MessageDelta {
    #[serde(default)]
    stop_reason: Option<String>,
}

/// Token counts; `message_delta` repeats them cumulatively, so later values replace earlier ones.
#[derive(Debug, Default, Deserialize)]
struct WireUsage {
    input_tokens: Option<u64>,
    output_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

impl WireUsage {
    fn apply(&self, usage: &mut Usage) {
        let fields = [
            (self.input_tokens, &mut usage.input_tokens),
            (self.output_tokens, &mut usage.output_tokens),
            (self.cache_read_input_tokens, &mut usage.cache_read_input_tokens),
            (self.cache_creation_input_tokens, &mut usage.cache_creation_input_tokens),
        ];
        for (value, field) in fields {
            if let Some(value) = value {
                *field = value;
            }
        }
    }
}

/// A content block as it streams.
#[derive(Debug)]
enum Block {
    Text(String),
    Thinking { text: String, signature: String },
    Redacted(String),
    ToolUse { id: String, name: String, partial_json: String, input: Value, done: bool },
    Ignored,
}

/// What has streamed so far of one answer.
#[derive(Debug)]
pub(super) struct StreamState {
    provider: &'static str,
    model: String,
    /// By the wire `index`, in the order the blocks started.
    blocks: Vec<(usize, Block)>,
    usage: Usage,
    stop_reason: Option<String>,
    /// `message_stop` arrived.
    stopped: bool,
}

impl StreamState {
    pub(super) fn new(provider: &'static str, model: &str) -> Self {
        Self {
            provider,
            model: model.to_owned(),
            blocks: Vec::new(),
            usage: Usage::default(),
            stop_reason: None,
            stopped: false,
        }
    }

    fn block(&mut self, provider: &'static str, index: usize) -> Result<&mut Block, ModelError> {
        self.blocks.iter_mut().find(|(at, _)| *at == index).map(|(_, block)| block).ok_or_else(|| {
            ModelError::protocol(provider, format!("an event for content block {index}, which never started"))
        })
    }

    /// Folds in one event (its `event:` name and `data:` JSON); true once the message is complete.
    fn apply(&mut self, name: &str, data: &str, emitter: &mut Emitter<'_, '_>) -> Result<bool, ModelError> {
        let provider = self.provider;
        let event: StreamEvent = serde_json::from_str(data)
            .map_err(|error| ModelError::protocol(provider, format!("unreadable `{name}` event: {error}")))?;
        match event {
            StreamEvent::MessageStart { message } => {
                if let Some(model) = message.model.filter(|model| !model.is_empty()) {
                    self.model = model;
                }
                if let Some(usage) = message.usage {
                    usage.apply(&mut self.usage);
                }
            }
            StreamEvent::ContentBlockStart { index, content_block } => {
                let block = match content_block {
                    BlockStart::Text { text } => {
                        if !text.is_empty() {
                            emitter.emit(Delta::Text(text.clone()));
                        }
                        Block::Text(text)
                    }
                    BlockStart::Thinking { thinking, signature } => {
                        if !thinking.is_empty() {
                            emitter.emit(Delta::Thinking(thinking.clone()));
                        }
                        Block::Thinking { text: thinking, signature }
                    }
                    BlockStart::RedactedThinking { data } => Block::Redacted(data),
                    BlockStart::ToolUse { id, name, input } => {
                        emitter.emit(Delta::ToolCallStarted { id: id.clone(), name: name.clone() });
                        Block::ToolUse { id, name, partial_json: String::new(), input, done: false }
                    }
                    BlockStart::Other => Block::Ignored,
                };
                self.blocks.push((index, block));
            }
            StreamEvent::ContentBlockDelta { index, delta } => match (self.block(provider, index)?, delta) {
                (Block::Text(text), BlockDelta::TextDelta { text: more }) => {
                    text.push_str(&more);
                    emitter.emit(Delta::Text(more));
                }
                (Block::Thinking { text, .. }, BlockDelta::ThinkingDelta { thinking }) => {
                    text.push_str(&thinking);
                    emitter.emit(Delta::Thinking(thinking));
                }
                (Block::Thinking { signature, .. }, BlockDelta::SignatureDelta { signature: more }) => {
                    signature.push_str(&more);
                }
                (Block::ToolUse { partial_json, .. }, BlockDelta::InputJsonDelta { partial_json: more }) => {
                    partial_json.push_str(&more);
                }
                (Block::Ignored, _) | (_, BlockDelta::Other) => {}
                (block, delta) => {
                    return Err(ModelError::protocol(
                        provider,
                        format!("content block {index}: a {delta:?} does not fit a {}", block.kind()),
                    ));
                }
            },
            StreamEvent::ContentBlockStop { index } => {
                self.block(provider, index)?.finish_tool_input(provider)?;
            }
            StreamEvent::MessageDelta { delta, usage } => {
                if delta.stop_reason.is_some() {
                    self.stop_reason = delta.stop_reason;
                }
                if let Some(usage) = usage {
                    usage.apply(&mut self.usage);
                }
            }
            StreamEvent::MessageStop => return Ok(true),
            StreamEvent::Ping | StreamEvent::Unknown => {}
            StreamEvent::Error { error } => {
                let kind = kind_for_error(&error.kind, &error.message, None);
                return Err(ModelError::new(provider, kind, describe(&error.kind, &error.message)));
            }
        }
        Ok(false)
    }
}

impl StreamParser for StreamState {
    fn event(&mut self, event: &Event, emit: &mut Emitter<'_, '_>) -> Result<Flow, ModelError> {
        if event.data.is_empty() {
            return Ok(Flow::Continue);
        }
        self.stopped = self.apply(&event.event, &event.data, emit)?;
        Ok(if self.stopped { Flow::Done } else { Flow::Continue })
    }

    fn finish(self) -> Result<ModelResponse, ModelError> {
        let provider = self.provider;
        if !self.stopped {
            return Err(ModelError::new(
                provider,
                ModelErrorKind::Transport,
                "the event stream ended before `message_stop`",
            ));
        }
        let mut content = Vec::new();
        for (_, mut block) in self.blocks {
            block.finish_tool_input(provider)?;
            match block {
                Block::Text(text) => content.push(ContentBlock::Text { text }),
                Block::Thinking { text, signature } => content.push(ContentBlock::Thinking {
                    thinking: text,
                    signature: (!signature.is_empty()).then_some(signature),
                    provider_data: None,
                }),
                Block::Redacted(data) => content.push(ContentBlock::RedactedThinking { data }),
                Block::ToolUse { id, name, input, .. } => {
                    content.push(ContentBlock::ToolUse { id, name, input, provider_data: None });
                }
                Block::Ignored => {}
            }
        }
        let stop_reason = self.stop_reason.as_deref().map_or(StopReason::Other, stop_reason);
        Ok(ModelResponse {
            content,
            stop_reason,
            raw_stop_reason: self.stop_reason,
            usage: self.usage,
            model: self.model,
        })
    }
}

impl Block {
    fn kind(&self) -> &'static str {
        match self {
            Block::Text(_) => "text block",
            Block::Thinking { .. } => "thinking block",
            Block::Redacted(_) => "redacted_thinking block",
            Block::ToolUse { .. } => "tool_use block",
            Block::Ignored => "block",
        }
    }

    /// Parses a tool call's streamed JSON input (none at all means `{}`).
    fn finish_tool_input(&mut self, provider: &'static str) -> Result<(), ModelError> {
        if let Block::ToolUse { name, partial_json, input, done, .. } = self
            && !*done
        {
            if !partial_json.trim().is_empty() {
                *input = serde_json::from_str(partial_json).map_err(|error| {
                    ModelError::protocol(provider, format!("the input of tool call `{name}` is not JSON: {error}"))
                })?;
            } else if input.is_null() {
                *input = json!({});
            }
            *done = true;
        }
        Ok(())
    }
}

/// Anthropic's stop reasons, normalised.
pub(super) fn stop_reason(raw: &str) -> StopReason {
    match raw {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "stop_sequence" => StopReason::StopSequence,
        "refusal" => StopReason::Refusal,
        "pause_turn" => StopReason::PauseTurn,
        _ => StopReason::Other,
    }
}
