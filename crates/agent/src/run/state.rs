//! [`RunState`]: everything a run needs to continue after a restart, serialisable as JSON — the
//! conversation, the steps taken, usage and cost, the next event `seq`, the results of tool calls
//! already finished in the current step (so they are never run twice), and the terminal event once
//! there is one.

use std::sync::Arc;

use runtools_protocol::RunId;
use runtools_protocol::agent::{AgentEvent, ContentBlock, Message, Role, ToolStatus, Usage};
use serde::{Deserialize, Serialize};

use crate::toolset::ToolCall;

/// A tool call of the current step that has finished.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FinishedCall {
    pub call_id: String,
    pub name: String,
    pub status: ToolStatus,
    pub content: String,
}

/// A run's resumable state. The loop hands it to [`EventSink::checkpoint`](super::EventSink) at
/// every step boundary and after every finished tool call.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    pub run_id: RunId,
    /// The conversation; shared (not copied) with the model call in flight.
    pub messages: Arc<Vec<Message>>,
    /// Model calls made (a step is one model call and the tool calls it asked for).
    pub turns: u32,
    pub usage: Usage,
    pub cost_usd: f64,
    /// Wall-clock time the run has been running, across restarts.
    pub elapsed_ms: u64,
    /// The `seq` of the next event.
    pub next_seq: u64,
    /// `run.started` was emitted.
    pub started: bool,
    /// Input tokens of the latest model call (prompt size), for proactive compaction.
    pub last_prompt_tokens: u64,
    /// Tool calls of the current step that finished (cleared when the step's results are added
    /// to the conversation).
    pub finished_calls: Vec<FinishedCall>,
    /// Set once the run ended; a finished state is never run again.
    pub terminal: Option<AgentEvent>,
}

impl RunState {
    /// A fresh run whose first user message is `input`.
    pub fn new(run_id: RunId, input: impl Into<String>) -> Self {
        Self::with_messages(run_id, vec![Message::user(input)])
    }

    /// A fresh run continuing an existing conversation (which must end with a user message).
    pub fn with_messages(run_id: RunId, messages: Vec<Message>) -> Self {
        Self {
            run_id,
            messages: Arc::new(messages),
            turns: 0,
            usage: Usage::default(),
            cost_usd: 0.0,
            elapsed_ms: 0,
            next_seq: 1,
            started: false,
            last_prompt_tokens: 0,
            finished_calls: Vec::new(),
            terminal: None,
        }
    }

    /// The tool calls of the last assistant message when their results are not in the
    /// conversation yet: the current step's calls, or a step interrupted between asking for tools
    /// and answering them.
    pub fn pending_tool_calls(&self) -> Vec<ToolCall> {
        let Some(last) = self.messages.last() else { return Vec::new() };
        if last.role != Role::Assistant {
            return Vec::new();
        }
        last.content
            .iter()
            .filter_map(|block| match block {
                ContentBlock::ToolUse { id, name, input, .. } => {
                    Some(ToolCall { id: id.clone(), name: name.clone(), input: input.clone() })
                }
                _ => None,
            })
            .collect()
    }

    /// The text of the latest assistant message that has any.
    pub fn last_assistant_text(&self) -> String {
        self.messages
            .iter()
            .rev()
            .filter(|message| message.role == Role::Assistant)
            .map(Message::text)
            .find(|text| !text.is_empty())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_through_json_and_finds_pending_calls() {
        let mut state = RunState::new(RunId::new(), "fix the bug");
        Arc::make_mut(&mut state.messages).push(Message {
            role: Role::Assistant,
            content: vec![
                ContentBlock::text("Looking."),
                ContentBlock::ToolUse {
                    id: "c1".into(),
                    name: "bash".into(),
                    input: serde_json::json!({"command": "ls"}),
                    provider_data: None,
                },
            ],
        });
        state.finished_calls.push(FinishedCall {
            call_id: "c1".into(),
            name: "bash".into(),
            status: ToolStatus::Ok,
            content: "a b".into(),
        });
        let json = serde_json::to_string(&state).unwrap();
        let back: RunState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.pending_tool_calls().len(), 1);
        assert_eq!(back.last_assistant_text(), "Looking.");
    }
}
