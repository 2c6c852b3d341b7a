//! Reading a `streamGenerateContent?alt=sse` stream: each `data:` event is a
//! `GenerateContentResponse` chunk (or the error the stream ends with) whose first candidate's
//! parts — `thought` text, text, whole `functionCall`s, any of them with a `thoughtSignature` — are
//! folded into [`Delta`]s for the sink and one consolidated [`ModelResponse`] with made-up
//! `call_<n>` ids, Gemini's cumulative `usageMetadata`, and its `finishReason` or
//! `promptFeedback.blockReason` normalised.

use eventsource_stream::Event;
use runtools_protocol::agent::{ContentBlock, StopReason, Usage};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{CALL_ID, SIGNATURE, WireError, kind_for_error, retry_info};
use crate::model::{Delta, ModelError, ModelErrorKind, ModelResponse};
use crate::providers::attempt::{Emitter, Flow, StreamParser};
use crate::providers::http::describe;

/// One streamed `GenerateContentResponse` (or the error the stream ends with).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Chunk {
    #[serde(default)]
    candidates: Vec<Candidate>,
    usage_metadata: Option<UsageMetadata>,
    model_version: Option<String>,
    prompt_feedback: Option<PromptFeedback>,
    error: Option<WireError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Candidate {
    content: Option<CandidateContent>,
    finish_reason: Option<String>,
}

#[derive(Debug, Deserialize)]
struct CandidateContent {
    #[serde(default)]
    parts: Vec<Part>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Part {
    text: Option<String>,
    #[serde(default)]
    thought: bool,
    thought_signature: Option<String>,
    function_call: Option<FunctionCall>,
}

#[derive(Debug, Deserialize)]
struct FunctionCall {
    name: String,
    #[serde(default)]
    args: Value,
    id: Option<String>,
}

/// Token counts; each chunk repeats them cumulatively.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UsageMetadata {
    #[serde(default)]
    prompt_token_count: u64,
    #[serde(default)]
    candidates_token_count: u64,
    #[serde(default)]
    thoughts_token_count: u64,
    #[serde(default)]
    cached_content_token_count: u64,
    #[serde(default)]
    tool_use_prompt_token_count: u64,
}

impl UsageMetadata {
    /// `promptTokenCount` includes the cached tokens; the neutral `input_tokens` does not.
    fn usage(&self) -> Usage {
        Usage {
            input_tokens: (self.prompt_token_count + self.tool_use_prompt_token_count)
                .saturating_sub(self.cached_content_token_count),
            output_tokens: self.candidates_token_count + self.thoughts_token_count,
            cache_read_input_tokens: self.cached_content_token_count,
            cache_creation_input_tokens: 0,
            reasoning_tokens: self.thoughts_token_count,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromptFeedback {
    block_reason: Option<String>,
}

/// Which kind of part the last content block was built from, so streamed pieces of one part join.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    None,
    Thought,
    Text,
}

/// What has streamed so far of one answer.
#[derive(Debug)]
pub(super) struct StreamState {
    provider: &'static str,
    model: String,
    content: Vec<ContentBlock>,
    open: Open,
    next_call: usize,
    usage: Usage,
    finish_reason: Option<String>,
    block_reason: Option<String>,
}

impl StreamState {
    pub(super) fn new(provider: &'static str, model: &str, next_call: usize) -> Self {
        Self {
            provider,
            model: model.to_owned(),
            content: Vec::new(),
            open: Open::None,
            next_call,
            usage: Usage::default(),
            finish_reason: None,
            block_reason: None,
        }
    }

    /// Folds in one chunk (an event's `data:` JSON).
    fn apply(&mut self, data: &str, emitter: &mut Emitter<'_, '_>) -> Result<(), ModelError> {
        let provider = self.provider;
        let chunk: Chunk = serde_json::from_str(data)
            .map_err(|error| ModelError::protocol(provider, format!("unreadable response chunk: {error}")))?;
        if let Some(error) = chunk.error {
            let kind = kind_for_error(&error, error.code);
            return Err(ModelError::new(provider, kind, describe(&error.status, &error.message))
                .with_retry_after(retry_info(&error.details)));
        }
        if let Some(model) = chunk.model_version.filter(|model| !model.is_empty()) {
            self.model = model;
        }
        if let Some(usage) = chunk.usage_metadata {
            self.usage = usage.usage();
        }
        if let Some(reason) = chunk.prompt_feedback.and_then(|feedback| feedback.block_reason) {
            self.block_reason = Some(reason);
        }
        // Only the first candidate is asked for (`candidateCount` defaults to 1).
        if let Some(candidate) = chunk.candidates.into_iter().next() {
            for part in candidate.content.map(|content| content.parts).unwrap_or_default() {
                self.part(part, emitter);
            }
            if candidate.finish_reason.is_some() {
                self.finish_reason = candidate.finish_reason;
            }
        }
        Ok(())
    }

    fn part(&mut self, part: Part, emitter: &mut Emitter<'_, '_>) {
        let signature = part.thought_signature.map(|signature| json!({SIGNATURE: signature}));
        if let Some(call) = part.function_call {
            let id = match &call.id {
                Some(id) if !id.is_empty() => id.clone(),
                _ => {
                    let id = format!("call_{}", self.next_call);
                    self.next_call += 1;
                    id
                }
            };
            let mut data = signature.unwrap_or_else(|| json!({}));
            if let Some(native) = call.id.filter(|id| !id.is_empty()) {
                data[CALL_ID] = json!(native);
            }
            let provider_data = data.as_object().is_some_and(|data| !data.is_empty()).then_some(data);
            let input = if call.args.is_null() { json!({}) } else { call.args };
            emitter.emit(Delta::ToolCallStarted { id: id.clone(), name: call.name.clone() });
            self.content.push(ContentBlock::ToolUse { id, name: call.name, input, provider_data });
            self.open = Open::None;
            return;
        }
        let text = part.text.unwrap_or_default();
        if part.thought {
            if !text.is_empty() {
                emitter.emit(Delta::Thinking(text.clone()));
            }
            match self.content.last_mut() {
                Some(ContentBlock::Thinking { thinking, provider_data, .. }) if self.open == Open::Thought => {
                    thinking.push_str(&text);
                    if signature.is_some() {
                        *provider_data = signature;
                    }
                }
                _ => {
                    self.content.push(ContentBlock::Thinking {
                        thinking: text,
                        signature: None,
                        provider_data: signature,
                    });
                    self.open = Open::Thought;
                }
            }
            return;
        }
        if !text.is_empty() {
            emitter.emit(Delta::Text(text.clone()));
            match self.content.last_mut() {
                Some(ContentBlock::Text { text: open }) if self.open == Open::Text => open.push_str(&text),
                _ => {
                    self.content.push(ContentBlock::Text { text });
                    self.open = Open::Text;
                }
            }
        }
        if signature.is_some() {
            // A text part's signature, kept (as reasoning state without text) right after it.
            self.content.push(ContentBlock::Thinking {
                thinking: String::new(),
                signature: None,
                provider_data: signature,
            });
            self.open = Open::None;
        }
    }
}

impl StreamParser for StreamState {
    fn event(&mut self, event: &Event, emit: &mut Emitter<'_, '_>) -> Result<Flow, ModelError> {
        if !event.data.trim().is_empty() {
            self.apply(&event.data, emit)?;
        }
        Ok(Flow::Continue)
    }

    fn finish(self) -> Result<ModelResponse, ModelError> {
        let provider = self.provider;
        let has_calls = self.content.iter().any(|block| matches!(block, ContentBlock::ToolUse { .. }));
        let (stop_reason, raw) = match (self.finish_reason, self.block_reason) {
            (Some(reason), _) => (finish_reason(&reason, has_calls), reason),
            (None, Some(reason)) => (block_reason(&reason), reason),
            (None, None) => {
                return Err(ModelError::new(
                    provider,
                    ModelErrorKind::Transport,
                    "the stream ended before a chunk with a finishReason",
                ));
            }
        };
        Ok(ModelResponse {
            content: self.content,
            stop_reason,
            raw_stop_reason: Some(raw),
            usage: self.usage,
            model: self.model,
        })
    }
}

/// Gemini's `finishReason`, normalised; `STOP` after function calls means "tool use".
fn finish_reason(raw: &str, has_calls: bool) -> StopReason {
    match raw {
        "STOP" if has_calls => StopReason::ToolUse,
        "STOP" => StopReason::EndTurn,
        "MAX_TOKENS" => StopReason::MaxTokens,
        "SAFETY" | "RECITATION" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "SPII" | "IMAGE_SAFETY" => {
            StopReason::ContentFilter
        }
        _ => StopReason::Other,
    }
}

/// A prompt Gemini refused to answer at all (`promptFeedback.blockReason`).
fn block_reason(raw: &str) -> StopReason {
    match raw {
        "SAFETY" | "BLOCKLIST" | "PROHIBITED_CONTENT" | "IMAGE_SAFETY" => StopReason::ContentFilter,
        _ => StopReason::Refusal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_and_block_reasons_are_normalised() {
        assert_eq!(finish_reason("STOP", false), StopReason::EndTurn);
        assert_eq!(finish_reason("STOP", true), StopReason::ToolUse);
        assert_eq!(finish_reason("MAX_TOKENS", false), StopReason::MaxTokens);
        assert_eq!(finish_reason("SPII", false), StopReason::ContentFilter);
        assert_eq!(finish_reason("MALFORMED_FUNCTION_CALL", true), StopReason::Other);
        assert_eq!(block_reason("PROHIBITED_CONTENT"), StopReason::ContentFilter);
        assert_eq!(block_reason("OTHER"), StopReason::Refusal);
    }

    #[test]
    fn usage_separates_cached_and_thinking_tokens() {
        let metadata = UsageMetadata {
            prompt_token_count: 1000,
            candidates_token_count: 50,
            thoughts_token_count: 200,
            cached_content_token_count: 800,
            tool_use_prompt_token_count: 0,
        };
        let usage = metadata.usage();
        assert_eq!((usage.input_tokens, usage.cache_read_input_tokens), (200, 800));
        assert_eq!((usage.output_tokens, usage.reasoning_tokens), (250, 200));
    }
}
