//! The OpenAI Chat Completions adapter (`POST {base}/chat/completions`), which is also the adapter
//! for every OpenAI-compatible server (vLLM, Ollama, Together, Groq…): maps a [`ModelRequest`]
//! onto the request body — the system prompt as the first `system` message, assistant tool calls
//! as `tool_calls` with JSON-text arguments, each tool result as its own `tool` message — and hands
//! the streamed answer to [`stream`]. [`shared`] holds what the Responses adapter reuses: the
//! OpenAI side of a streamed call (bearer key, error mapping) and small mappings.
//!
//! Thinking blocks are not sent back: Chat Completions has no field for them (and DeepSeek rejects
//! its own `reasoning_content` in input). OpenAI itself (`settings.name == "openai"`) is sent
//! `max_completion_tokens`, which its reasoning models require; every other server gets the older
//! `max_tokens`, which all of them understand. A key is optional: local servers need none.

pub(crate) mod shared;
mod stream;

use runtools_protocol::agent::{ContentBlock, Message, Role};
use serde_json::{Map, Value, json};

use crate::model::{DeltaSink, Model, ModelError, ModelRequest, ModelResponse};
use crate::providers::ProviderSettings;
use crate::providers::attempt::stream_call;
use shared::{OpenAiCall, reasoning_effort, tool_output};
use stream::ChatStream;

/// A model behind the Chat Completions API (OpenAI's or a compatible server's).
#[derive(Debug)]
pub struct OpenAiChat {
    settings: ProviderSettings,
    http: reqwest::Client,
}

impl OpenAiChat {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http }
    }

    /// The JSON body for `request`.
    fn body(&self, request: &ModelRequest) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(request.model));
        body.insert("messages".into(), Value::Array(messages(request.system.as_deref(), &request.messages)));
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({"type": "function", "function": {
                        "name": tool.name, "description": tool.description, "parameters": tool.input_schema,
                    }})
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        body.insert("stream".into(), json!(true));
        body.insert("stream_options".into(), json!({"include_usage": true}));
        let max_tokens_field = if self.settings.name == "openai" { "max_completion_tokens" } else { "max_tokens" };
        body.insert(max_tokens_field.into(), json!(request.max_tokens));
        if let Some(temperature) = request.temperature {
            body.insert("temperature".into(), json!(temperature));
        }
        if let Some(thinking) = request.thinking {
            body.insert("reasoning_effort".into(), json!(reasoning_effort(thinking.budget_tokens)));
        }
        Value::Object(body)
    }
}

#[async_trait::async_trait]
impl Model for OpenAiChat {
    fn provider(&self) -> &'static str {
        self.settings.name
    }

    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        let provider = self.settings.name;
        let exchange = OpenAiCall::new(&self.settings, &self.http, "/chat/completions", || {
            ChatStream::new(provider, &request.model)
        });
        stream_call(&self.settings, "openai chat completions", request, self.body(request), sink, &exchange).await
    }
}

/// The `messages` array: the system prompt first, then the conversation.
fn messages(system: Option<&str>, conversation: &[Message]) -> Vec<Value> {
    let mut out = Vec::with_capacity(conversation.len() + 1);
    if let Some(system) = system.filter(|system| !system.is_empty()) {
        out.push(json!({"role": "system", "content": system}));
    }
    for message in conversation {
        match message.role {
            Role::User => user_messages(message, &mut out),
            Role::Assistant => {
                if let Some(assistant) = assistant_message(message) {
                    out.push(assistant);
                }
            }
        }
    }
    out
}

/// A user turn: its tool results first, each as a `tool` message (they must directly follow the
/// assistant message that called the tools), then its text as one `user` message.
fn user_messages(message: &Message, out: &mut Vec<Value>) {
    let mut texts = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::ToolResult { tool_use_id, content, is_error, .. } => out.push(json!({
                "role": "tool", "tool_call_id": tool_use_id, "content": tool_output(content, *is_error),
            })),
            ContentBlock::Text { text } => texts.push(text.as_str()),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } | ContentBlock::ToolUse { .. } => {}
        }
    }
    if !texts.is_empty() {
        out.push(json!({"role": "user", "content": texts.join("\n\n")}));
    }
}

/// An assistant turn: its text as `content` and its tool calls as `tool_calls`; `None` when it
/// has neither (a turn of thinking only, which this API cannot carry).
fn assistant_message(message: &Message) -> Option<Value> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::Text { text: part } => text.push_str(part),
            ContentBlock::ToolUse { id, name, input, .. } => calls.push(json!({
                "id": id, "type": "function", "function": {"name": name, "arguments": input.to_string()},
            })),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } | ContentBlock::ToolResult { .. } => {
            }
        }
    }
    if text.is_empty() && calls.is_empty() {
        return None;
    }
    let mut assistant =
        json!({"role": "assistant", "content": if text.is_empty() { Value::Null } else { json!(text) }});
    if !calls.is_empty() {
        assistant["tool_calls"] = Value::Array(calls);
    }
    Some(assistant)
}

#[cfg(test)]
mod tests {
    use runtools_protocol::agent::ToolSpec;

    use super::*;
    use crate::model::ThinkingConfig;
    use crate::providers::WireProtocol;

    fn request() -> ModelRequest {
        ModelRequest {
            model: "gpt-4.1".into(),
            system: Some("Be brief.".into()),
            messages: std::sync::Arc::new(vec![
                Message::user("List files"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        ContentBlock::Thinking {
                            thinking: "hmm".into(),
                            signature: Some("sig".into()),
                            provider_data: None,
                        },
                        ContentBlock::ToolUse {
                            id: "call_1".into(),
                            name: "ls".into(),
                            input: json!({"path": "."}),
                            provider_data: None,
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![
                        ContentBlock::ToolResult {
                            tool_use_id: "call_1".into(),
                            name: "ls".into(),
                            content: "denied".into(),
                            is_error: true,
                        },
                        ContentBlock::text("And now?"),
                    ],
                },
            ]),
            tools: std::sync::Arc::new(vec![ToolSpec {
                name: "ls".into(),
                description: "List".into(),
                input_schema: json!({"type": "object"}),
            }]),
            max_tokens: 1000,
            temperature: Some(0.5),
            thinking: Some(ThinkingConfig { budget_tokens: 4000 }),
        }
    }

    fn adapter(name: &'static str) -> OpenAiChat {
        OpenAiChat::new(ProviderSettings::new(name, WireProtocol::OpenaiChat, "http://x/v1"), reqwest::Client::new())
    }

    #[test]
    fn body_maps_the_conversation() {
        let body = adapter("openai").body(&request());
        assert_eq!(
            body["messages"],
            json!([
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "List files"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": "{\"path\":\".\"}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "Error: denied"},
                {"role": "user", "content": "And now?"},
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{"type": "function", "function": {
                "name": "ls", "description": "List", "parameters": {"type": "object"},
            }}])
        );
        assert_eq!(body["max_completion_tokens"], 1000);
        assert!(body.get("max_tokens").is_none());
        assert_eq!(body["reasoning_effort"], "medium");
        assert_eq!(body["temperature"], 0.5);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
    }

    #[test]
    fn compatible_servers_get_max_tokens_and_no_reasoning_unless_asked() {
        let mut request = request();
        request.thinking = None;
        request.temperature = None;
        request.system = None;
        let body = adapter("openai-compatible").body(&request);
        assert_eq!(body["max_tokens"], 1000);
        assert!(body.get("max_completion_tokens").is_none());
        assert!(body.get("reasoning_effort").is_none() && body.get("temperature").is_none());
        assert_eq!(body["messages"][0]["role"], "user");
    }
}
