//! The OpenAI Responses API adapter (`POST {base}/responses`), used statelessly: `store: false`
//! and the whole conversation sent as `input` items every time — `message` items
//! (`input_text` / `output_text`), `function_call` and `function_call_output` items, and the
//! `reasoning` items of earlier answers echoed back with their `encrypted_content` (kept in
//! [`ContentBlock::Thinking`]'s `provider_data`; other providers' thinking is dropped). The system
//! prompt goes in `instructions`. With thinking on, the request asks for `reasoning: {effort,
//! summary: "auto"}` and `include: ["reasoning.encrypted_content"]`. [`stream`] reads the typed
//! event stream; the OpenAI side of the call and the error mapping are shared with the Chat
//! Completions adapter.

mod stream;

use runtools_protocol::agent::{ContentBlock, Message, Role};
use serde_json::{Map, Value, json};

use crate::model::{DeltaSink, Model, ModelError, ModelRequest, ModelResponse};
use crate::providers::ProviderSettings;
use crate::providers::attempt::stream_call;
use crate::providers::openai_chat::shared::{OpenAiCall, reasoning_effort, tool_output};
use stream::ResponsesStream;

/// The key under which a [`ContentBlock::ToolUse`]'s `provider_data` keeps the `function_call`
/// item's own id (`fc_…`), echoed back with the call.
pub(crate) const ITEM_ID_KEY: &str = "openai_item_id";

/// A model behind the OpenAI Responses API.
#[derive(Debug)]
pub struct OpenAiResponses {
    settings: ProviderSettings,
    http: reqwest::Client,
}

impl OpenAiResponses {
    pub fn new(settings: ProviderSettings, http: reqwest::Client) -> Self {
        Self { settings, http }
    }

    /// The JSON body for `request`.
    fn body(request: &ModelRequest) -> Value {
        let mut body = Map::new();
        body.insert("model".into(), json!(request.model));
        if let Some(system) = request.system.as_deref().filter(|system| !system.is_empty()) {
            body.insert("instructions".into(), json!(system));
        }
        body.insert("input".into(), Value::Array(input(&request.messages)));
        if !request.tools.is_empty() {
            let tools: Vec<Value> = request
                .tools
                .iter()
                .map(|tool| {
                    json!({
                        "type": "function", "name": tool.name, "description": tool.description,
                        "parameters": tool.input_schema, "strict": false,
                    })
                })
                .collect();
            body.insert("tools".into(), Value::Array(tools));
        }
        body.insert("max_output_tokens".into(), json!(request.max_tokens));
        if let Some(temperature) = request.temperature {
            body.insert("temperature".into(), json!(temperature));
        }
        if let Some(thinking) = request.thinking {
            body.insert(
                "reasoning".into(),
                json!({"effort": reasoning_effort(thinking.budget_tokens), "summary": "auto"}),
            );
            body.insert("include".into(), json!(["reasoning.encrypted_content"]));
        }
        body.insert("store".into(), json!(false));
        body.insert("stream".into(), json!(true));
        Value::Object(body)
    }
}

#[async_trait::async_trait]
impl Model for OpenAiResponses {
    fn provider(&self) -> &'static str {
        self.settings.name
    }

    async fn stream(&self, request: &ModelRequest, sink: DeltaSink<'_>) -> Result<ModelResponse, ModelError> {
        let provider = self.settings.name;
        let exchange = OpenAiCall::new(&self.settings, &self.http, "/responses", || {
            ResponsesStream::new(provider, &request.model)
        });
        stream_call(&self.settings, "openai responses", request, Self::body(request), sink, &exchange).await
    }
}

/// The conversation as `input` items.
fn input(conversation: &[Message]) -> Vec<Value> {
    let mut items = Vec::new();
    for message in conversation {
        match message.role {
            Role::User => user_items(message, &mut items),
            Role::Assistant => assistant_items(message, &mut items),
        }
    }
    items
}

/// A user turn: its tool results as `function_call_output` items, then its text as a message.
fn user_items(message: &Message, items: &mut Vec<Value>) {
    let mut content = Vec::new();
    for block in &message.content {
        match block {
            ContentBlock::ToolResult { tool_use_id, content, is_error, .. } => items.push(json!({
                "type": "function_call_output", "call_id": tool_use_id, "output": tool_output(content, *is_error),
            })),
            ContentBlock::Text { text } => content.push(json!({"type": "input_text", "text": text})),
            ContentBlock::Thinking { .. } | ContentBlock::RedactedThinking { .. } | ContentBlock::ToolUse { .. } => {}
        }
    }
    if !content.is_empty() {
        items.push(json!({"type": "message", "role": "user", "content": content}));
    }
}

/// An assistant turn, block by block in order: reasoning items this API produced, text as
/// `output_text` messages, tool calls as `function_call` items.
fn assistant_items(message: &Message, items: &mut Vec<Value>) {
    for block in &message.content {
        match block {
            ContentBlock::Thinking { provider_data: Some(data), .. } => {
                if let Some(item) = reasoning_item(data) {
                    items.push(item);
                }
            }
            ContentBlock::Text { text } if !text.is_empty() => items.push(json!({
                "type": "message", "role": "assistant", "content": [{"type": "output_text", "text": text}],
            })),
            ContentBlock::ToolUse { id, name, input, provider_data } => {
                let mut item =
                    json!({"type": "function_call", "call_id": id, "name": name, "arguments": input.to_string()});
                if let Some(item_id) = provider_data.as_ref().and_then(|data| data[ITEM_ID_KEY].as_str()) {
                    item["id"] = json!(item_id);
                }
                items.push(item);
            }
            ContentBlock::Text { .. }
            | ContentBlock::Thinking { provider_data: None, .. }
            | ContentBlock::RedactedThinking { .. }
            | ContentBlock::ToolResult { .. } => {}
        }
    }
}

/// The reasoning item to echo from a thinking block's `provider_data`: only this API's items
/// (`type: "reasoning"`) that carry `encrypted_content` — without it a stateless request cannot
/// refer to the reasoning.
fn reasoning_item(data: &Value) -> Option<Value> {
    if data["type"] != "reasoning" || !data["encrypted_content"].is_string() || !data["id"].is_string() {
        return None;
    }
    let summary = if data["summary"].is_array() { data["summary"].clone() } else { json!([]) };
    Some(json!({
        "type": "reasoning", "id": data["id"], "summary": summary, "encrypted_content": data["encrypted_content"],
    }))
}

#[cfg(test)]
mod tests {
    use runtools_protocol::agent::ToolSpec;

    use super::*;
    use crate::model::ThinkingConfig;

    #[test]
    fn body_maps_the_conversation_statelessly() {
        let reasoning = json!({
            "type": "reasoning", "id": "rs_1", "status": "completed",
            "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "enc",
        });
        let request = ModelRequest {
            model: "o4-mini".into(),
            system: Some("Be brief.".into()),
            messages: std::sync::Arc::new(vec![
                Message::user("List files"),
                Message {
                    role: Role::Assistant,
                    content: vec![
                        ContentBlock::Thinking {
                            thinking: "plan".into(),
                            signature: None,
                            provider_data: Some(reasoning),
                        },
                        // Another provider's thinking: dropped.
                        ContentBlock::Thinking {
                            thinking: "x".into(),
                            signature: Some("anthropic-sig".into()),
                            provider_data: Some(json!({"thought_signature": "g"})),
                        },
                        ContentBlock::text("Looking."),
                        ContentBlock::ToolUse {
                            id: "call_1".into(),
                            name: "ls".into(),
                            input: json!({}),
                            provider_data: Some(json!({ITEM_ID_KEY: "fc_1"})),
                        },
                    ],
                },
                Message {
                    role: Role::User,
                    content: vec![ContentBlock::ToolResult {
                        tool_use_id: "call_1".into(),
                        name: "ls".into(),
                        content: "a.txt".into(),
                        is_error: false,
                    }],
                },
            ]),
            tools: std::sync::Arc::new(vec![ToolSpec {
                name: "ls".into(),
                description: "List".into(),
                input_schema: json!({"type": "object"}),
            }]),
            max_tokens: 500,
            temperature: None,
            thinking: Some(ThinkingConfig { budget_tokens: 10_000 }),
        };
        let body = OpenAiResponses::body(&request);
        assert_eq!(body["instructions"], "Be brief.");
        assert_eq!(
            body["input"],
            json!([
                {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "List files"}]},
                {
                    "type": "reasoning", "id": "rs_1",
                    "summary": [{"type": "summary_text", "text": "plan"}], "encrypted_content": "enc",
                },
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "ls", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
            ])
        );
        assert_eq!(
            body["tools"],
            json!([{
                "type": "function", "name": "ls", "description": "List",
                "parameters": {"type": "object"}, "strict": false,
            }])
        );
        assert_eq!(body["reasoning"], json!({"effort": "high", "summary": "auto"}));
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(
            (body["store"].clone(), body["stream"].clone(), body["max_output_tokens"].clone()),
            (json!(false), json!(true), json!(500))
        );
        assert!(body.get("temperature").is_none());
    }
}
