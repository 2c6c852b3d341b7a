//! Context compaction: when a conversation no longer fits the model's context window, older
//! turns are replaced by a model-written summary (the first user message — the task — and the
//! most recent turns stay verbatim). Before summarising, oversized old tool results are cut, which
//! is often enough on its own.
//!
//! The split always keeps the conversation valid for every provider: the kept tail starts with an
//! assistant message, so no tool result is separated from the call that asked for it.

use runtools_protocol::agent::{ContentBlock, Message, Role};

/// Tool results in older messages longer than this are cut when compacting.
const OLD_TOOL_RESULT_CHARS: usize = 4_000;
/// Messages at the end kept verbatim (at least).
const KEEP_RECENT: usize = 4;
/// The transcript given to the summariser is cut to its last this-many characters.
const TRANSCRIPT_CHARS: usize = 120_000;

pub(crate) const SUMMARY_SYSTEM_PROMPT: &str = "You are summarising the earlier part of an AI agent's \
working session so the agent can continue without it. Write a concise but complete summary: the \
task, what was done (commands run, files read and changed, with paths), what was learned, decisions \
made, errors met and how they were handled, and what remains to do. Keep exact names, paths and \
values. Do not address the user; output only the summary.";

/// Cuts tool results longer than [`OLD_TOOL_RESULT_CHARS`] in every message but the last
/// `KEEP_RECENT`; true if anything was cut.
pub(crate) fn shrink_old_tool_results(messages: &mut [Message]) -> bool {
    let keep_from = messages.len().saturating_sub(KEEP_RECENT);
    let mut changed = false;
    for message in &mut messages[..keep_from] {
        for block in &mut message.content {
            if let ContentBlock::ToolResult { content, .. } = block
                && content.chars().count() > OLD_TOOL_RESULT_CHARS
            {
                // Head and tail of 40% each, so the cut result (with its note) stays under the limit.
                let keep = OLD_TOOL_RESULT_CHARS * 2 / 5;
                let total = content.chars().count();
                let head: String = content.chars().take(keep).collect();
                let tail: String = content.chars().skip(total - keep).collect();
                *content =
                    format!("{head}\n[… {} characters cut when the context was compacted …]\n{tail}", total - 2 * keep);
                changed = true;
            }
        }
    }
    changed
}

/// Where to split: the index of the first kept message (an assistant message, at least two in,
/// leaving at least one message to summarise), or `None` when there is nothing to compact.
pub(crate) fn split_point(messages: &[Message]) -> Option<usize> {
    let latest = messages.len().saturating_sub(KEEP_RECENT);
    (2..=latest).rev().find(|&index| messages[index].role == Role::Assistant)
}

/// The messages `[1, split)` as plain text for the summariser.
pub(crate) fn transcript(messages: &[Message]) -> String {
    let mut out = String::new();
    for message in messages {
        let who = match message.role {
            Role::User => "USER",
            Role::Assistant => "ASSISTANT",
        };
        for block in &message.content {
            match block {
                ContentBlock::Text { text } => out.push_str(&format!("{who}: {text}\n")),
                ContentBlock::Thinking { thinking, .. } => out.push_str(&format!("{who} (thinking): {thinking}\n")),
                ContentBlock::RedactedThinking { .. } => {}
                ContentBlock::ToolUse { name, input, .. } => out.push_str(&format!("{who} called {name}({input})\n")),
                ContentBlock::ToolResult { content, is_error, .. } => {
                    let label = if *is_error { "TOOL ERROR" } else { "TOOL RESULT" };
                    out.push_str(&format!("{label}: {content}\n"));
                }
            }
        }
    }
    let total = out.chars().count();
    if total > TRANSCRIPT_CHARS {
        let tail: String = out.chars().skip(total - TRANSCRIPT_CHARS).collect();
        return format!("[… the oldest part of the transcript is omitted …]\n{tail}");
    }
    out
}

/// The compacted conversation: the first message with the summary appended, then `[split..]`.
pub(crate) fn apply(messages: &[Message], split: usize, summary: &str) -> Vec<Message> {
    let mut first = messages[0].clone();
    first.content.push(ContentBlock::text(format!(
        "\n\n[Earlier work in this session was summarised to fit the context window]\n{summary}"
    )));
    let mut compacted = Vec::with_capacity(messages.len() - split + 1);
    compacted.push(first);
    compacted.extend_from_slice(&messages[split..]);
    compacted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conversation(steps: usize) -> Vec<Message> {
        let mut messages = vec![Message::user("task")];
        for step in 0..steps {
            messages.push(Message {
                role: Role::Assistant,
                content: vec![ContentBlock::ToolUse {
                    id: format!("c{step}"),
                    name: "bash".into(),
                    input: serde_json::json!({"command": "ls"}),
                    provider_data: None,
                }],
            });
            messages.push(Message {
                role: Role::User,
                content: vec![ContentBlock::ToolResult {
                    tool_use_id: format!("c{step}"),
                    name: "bash".into(),
                    content: "x".repeat(10_000),
                    is_error: false,
                }],
            });
        }
        messages
    }

    #[test]
    fn the_split_keeps_calls_with_their_results() {
        let messages = conversation(5);
        let split = split_point(&messages).unwrap();
        assert_eq!(messages[split].role, Role::Assistant);
        assert!(messages.len() - split >= KEEP_RECENT);
        let compacted = apply(&messages, split, "did things");
        assert_eq!(compacted[0].role, Role::User);
        assert!(compacted[0].text().contains("did things"));
        assert_eq!(compacted[1].role, Role::Assistant);
        assert!(split_point(&conversation(1)).is_none(), "too short to compact");
    }

    #[test]
    fn old_tool_results_are_cut_recent_ones_kept() {
        let mut messages = conversation(4);
        assert!(shrink_old_tool_results(&mut messages));
        let size = |message: &Message| match &message.content[0] {
            ContentBlock::ToolResult { content, .. } => content.len(),
            _ => 0,
        };
        assert!(size(&messages[2]) < 5_000);
        assert_eq!(size(&messages[8]), 10_000);
        assert!(!shrink_old_tool_results(&mut messages), "nothing left to cut");
        assert!(transcript(&messages[1..3]).contains("ASSISTANT called bash"));
    }
}
