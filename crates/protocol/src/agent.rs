//! Agent wire types: the provider-neutral conversation (messages and content blocks), tool
//! descriptions, token usage, normalised stop reasons, and the payload of every agent-loop event
//! (`run.started`, `thinking.delta`, `tool_call`, `complete`…) carried in an [`EventEnvelope`].
//!
//! The conversation types are also the agent loop's serialisable state, so a run persisted by one
//! server node can be continued by another.
//!
//! [`EventEnvelope`]: crate::EventEnvelope

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Who said a message. System prompts travel separately, never as a role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    User,
    Assistant,
}

/// One piece of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentBlock {
    Text {
        text: String,
    },
    /// Model reasoning. `signature` (Anthropic) must be sent back unchanged on the next turn;
    /// `provider_data` carries other providers' opaque reasoning state (OpenAI encrypted reasoning
    /// items, Gemini thought signatures) the same way.
    Thinking {
        thinking: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        signature: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_data: Option<serde_json::Value>,
    },
    /// Reasoning the provider returned encrypted (Anthropic `redacted_thinking`); sent back as is.
    RedactedThinking {
        data: String,
    },
    /// The model asks for a tool call.
    ToolUse {
        id: String,
        name: String,
        input: serde_json::Value,
        /// Provider-specific state to echo back with this call (e.g. a Gemini thought signature).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        provider_data: Option<serde_json::Value>,
    },
    /// The answer to a [`ContentBlock::ToolUse`], in a user message.
    ToolResult {
        tool_use_id: String,
        /// The tool's name (Gemini's `functionResponse` needs it; others ignore it).
        #[serde(default)]
        name: String,
        content: String,
        #[serde(default)]
        is_error: bool,
    },
}

impl ContentBlock {
    pub fn text(text: impl Into<String>) -> Self {
        Self::Text { text: text.into() }
    }
}

/// One turn of the conversation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct Message {
    pub role: Role,
    pub content: Vec<ContentBlock>,
}

impl Message {
    pub fn user(text: impl Into<String>) -> Self {
        Self { role: Role::User, content: vec![ContentBlock::text(text)] }
    }

    pub fn assistant(text: impl Into<String>) -> Self {
        Self { role: Role::Assistant, content: vec![ContentBlock::text(text)] }
    }

    /// The concatenated text blocks.
    pub fn text(&self) -> String {
        joined_text(&self.content)
    }
}

/// The text blocks of `content`, concatenated.
pub fn joined_text(content: &[ContentBlock]) -> String {
    let mut out = String::new();
    for block in content {
        if let ContentBlock::Text { text } = block {
            out.push_str(text);
        }
    }
    out
}

/// A tool as the model sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the tool's input object.
    pub input_schema: serde_json::Value,
}

/// Tokens used, per call or summed over a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
pub struct Usage {
    /// Input tokens billed at the normal rate (excluding cache reads and writes).
    pub input_tokens: u64,
    pub output_tokens: u64,
    #[serde(default)]
    pub cache_read_input_tokens: u64,
    #[serde(default)]
    pub cache_creation_input_tokens: u64,
    /// Part of `output_tokens` spent on reasoning, when the provider reports it.
    #[serde(default)]
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, other: &Usage) {
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cache_read_input_tokens += other.cache_read_input_tokens;
        self.cache_creation_input_tokens += other.cache_creation_input_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
    }

    /// Every token counted against the budget: all input (cached or not) plus output.
    pub fn total_tokens(&self) -> u64 {
        self.input_tokens + self.cache_read_input_tokens + self.cache_creation_input_tokens + self.output_tokens
    }
}

/// Why a model call, or a whole run, stopped. Provider stop reasons are normalised onto the first
/// group; the loop adds the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// The model finished its answer.
    EndTurn,
    /// The model wants tool results.
    ToolUse,
    /// The output hit the model's `max_tokens`.
    MaxTokens,
    /// A stop sequence matched.
    StopSequence,
    /// The model declined (safety).
    Refusal,
    /// The provider's content filter cut the output.
    ContentFilter,
    /// The provider paused a long turn; continuing it is allowed.
    PauseTurn,
    /// Anything a provider reports that has no better match.
    Other,
    /// The run reached its `max_turns`.
    MaxTurns,
    /// The run's token or cost budget is spent.
    BudgetExceeded,
}

/// How a tool call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ToolStatus {
    Ok,
    /// The tool ran and failed, or its input was invalid; the model sees the error.
    Error,
    /// The tool is not allowed for this agent (or not known).
    Denied,
    /// The tool exceeded its timeout and was stopped.
    Timeout,
}

/// How a run is cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum CancelMode {
    /// Abort the in-flight model call and tool calls now.
    #[default]
    Immediate,
    /// Let the current step (model call + its tool calls) finish, then stop.
    AfterStep,
}

/// Stable codes of a `failed` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunErrorCode {
    /// The provider kept failing (rate limits, overload, 5xx) after every retry.
    ModelUnavailable,
    /// The provider rejected the request (bad key, bad model, malformed request).
    ModelRejected,
    /// The provider's answer could not be understood.
    ModelProtocol,
    /// The context overflowed and could not be compacted further.
    ContextOverflow,
    /// The run exceeded its wall-clock timeout.
    Timeout,
    /// The run's sandbox or tool host failed.
    ToolHost,
    Internal,
}

/// The payload of each agent-loop event, tagged by the event type. [`AgentEvent::kind`] is the
/// envelope's `type`; the variant's fields are its `data`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, ToSchema)]
#[serde(tag = "type", content = "data")]
pub enum AgentEvent {
    #[serde(rename = "run.started")]
    RunStarted { model: String, tools: Vec<String>, max_turns: u32 },
    /// Part of the model's reasoning, as it streams. Deltas may be coalesced.
    #[serde(rename = "thinking.delta")]
    ThinkingDelta { text: String },
    /// The whole reasoning of one model call (authoritative over the deltas).
    #[serde(rename = "thinking")]
    Thinking { text: String },
    #[serde(rename = "message.delta")]
    MessageDelta { text: String },
    /// The whole text of one model call.
    #[serde(rename = "message")]
    Message { text: String },
    #[serde(rename = "tool_call")]
    ToolCall { call_id: String, name: String, input: serde_json::Value },
    #[serde(rename = "tool_result")]
    ToolResult {
        call_id: String,
        name: String,
        status: ToolStatus,
        /// What the model sees.
        output: String,
        duration_ms: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit_code: Option<i32>,
        /// A unified diff, for edits.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        diff: Option<String>,
    },
    /// Tokens of one model call, the run's running total and its cost so far.
    #[serde(rename = "usage")]
    Usage { usage: Usage, total: Usage, cost_usd: f64 },
    /// Older turns were summarised to fit the context window.
    #[serde(rename = "context.compacted")]
    ContextCompacted { messages_before: u32, messages_after: u32, reason: String },
    #[serde(rename = "run.paused")]
    Paused {},
    #[serde(rename = "run.resumed")]
    Resumed {},
    /// Terminal: the run finished.
    #[serde(rename = "complete")]
    Complete { stop_reason: StopReason, output: String, usage: Usage, cost_usd: f64, turns: u32, duration_ms: u64 },
    /// Terminal: the run failed.
    #[serde(rename = "failed")]
    Failed { code: RunErrorCode, message: String, usage: Usage, cost_usd: f64, turns: u32 },
    /// Terminal: the run was cancelled.
    #[serde(rename = "cancelled")]
    Cancelled { mode: CancelMode, usage: Usage, cost_usd: f64, turns: u32 },
}

impl AgentEvent {
    /// The envelope's `type`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::RunStarted { .. } => "run.started",
            Self::ThinkingDelta { .. } => "thinking.delta",
            Self::Thinking { .. } => "thinking",
            Self::MessageDelta { .. } => "message.delta",
            Self::Message { .. } => "message",
            Self::ToolCall { .. } => "tool_call",
            Self::ToolResult { .. } => "tool_result",
            Self::Usage { .. } => "usage",
            Self::ContextCompacted { .. } => "context.compacted",
            Self::Paused {} => "run.paused",
            Self::Resumed {} => "run.resumed",
            Self::Complete { .. } => "complete",
            Self::Failed { .. } => "failed",
            Self::Cancelled { .. } => "cancelled",
        }
    }

    /// True for `complete`, `failed` and `cancelled`: exactly one ends every run.
    pub fn is_terminal(&self) -> bool {
        matches!(self, Self::Complete { .. } | Self::Failed { .. } | Self::Cancelled { .. })
    }

    /// The envelope's `data`.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut object)) => object.remove("data").unwrap_or_default(),
            _ => serde_json::Value::Null,
        }
    }

    /// Rebuilds an event from an envelope's `type` and `data`.
    pub fn from_parts(kind: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({ "type": kind, "data": data }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_into_type_and_data_and_back() {
        let event = AgentEvent::ToolResult {
            call_id: "call_1".into(),
            name: "bash".into(),
            status: ToolStatus::Ok,
            output: "hi".into(),
            duration_ms: 3,
            exit_code: Some(0),
            diff: None,
        };
        assert_eq!(event.kind(), "tool_result");
        let data = event.data();
        assert_eq!(data["status"], "ok");
        assert_eq!(data["exit_code"], 0);
        assert!(data.get("diff").is_none());
        assert_eq!(AgentEvent::from_parts("tool_result", data).unwrap(), event);
        assert_eq!(AgentEvent::Paused {}.data(), serde_json::json!({}));
        assert_eq!(AgentEvent::from_parts("run.paused", serde_json::json!({})).unwrap(), AgentEvent::Paused {});
    }

    #[test]
    fn content_blocks_are_tagged() {
        let block = ContentBlock::ToolUse {
            id: "toolu_1".into(),
            name: "grep".into(),
            input: serde_json::json!({"pattern": "x"}),
            provider_data: None,
        };
        let json = serde_json::to_value(&block).unwrap();
        assert_eq!(json["type"], "tool_use");
        assert_eq!(serde_json::from_value::<ContentBlock>(json).unwrap(), block);
    }
}
