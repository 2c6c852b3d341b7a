//! The Gemini adapter against the model server speaking `streamGenerateContent`: a two-turn
//! tool-use conversation (thought signatures echoed, function responses by name, made-up call ids),
//! tool schemas cleaned for Gemini, streamed deltas, finish reasons, usage, and every error path
//! (`RetryInfo` waits, overload, client errors, a bad key, context overflow, failures mid-stream and
//! streams cut short).

mod common;

use std::time::Duration;

use common::{call, coalesce, fast_retries};
use runtools_agent::providers::gemini::Gemini;
use runtools_agent::{Delta, ModelErrorKind, ModelRequest, RetryPolicy, ThinkingConfig, WireProtocol};
use runtools_model_server::{ErrorKind, ErrorReply, ModelServer, ToolCall, Turn};
use runtools_protocol::agent::{ContentBlock, Message, Role, StopReason, ToolSpec};
use serde_json::{Value, json};

const KEY: &str = "AIzaSy-test-key";
const MODEL: &str = "gemini-2.5-pro";

fn adapter(base_url: String, retry: RetryPolicy) -> Gemini {
    Gemini::new(common::settings("gemini", WireProtocol::Gemini, base_url, KEY, retry), common::http())
}

/// A tool input schema as `schemars` writes it, with what Gemini rejects.
fn schemars_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "GrepInput",
        "type": "object",
        "properties": {
            "pattern": {"type": "string", "description": "Regex to find."},
            "path": {"type": ["string", "null"], "default": null},
            "mode": {"$ref": "#/$defs/Mode"},
            "limit": {"type": "integer", "format": "uint32", "minimum": 0, "default": 100},
        },
        "required": ["pattern"],
        "additionalProperties": false,
        "$defs": {"Mode": {"type": "string", "enum": ["content", "files"], "default": "content"}},
    })
}

fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: MODEL.into(),
        system: Some("You are a careful coding agent.".into()),
        messages: std::sync::Arc::new(messages),
        tools: std::sync::Arc::new(vec![
            common::read_file_tool(true),
            ToolSpec { name: "grep".into(), description: "Search files".into(), input_schema: schemars_schema() },
            ToolSpec {
                name: "list_tasks".into(),
                description: "List running tasks".into(),
                input_schema: json!({"type": "object", "properties": {}, "additionalProperties": false}),
            },
        ]),
        max_tokens: 4096,
        temperature: Some(0.2),
        thinking: Some(ThinkingConfig { budget_tokens: 2048 }),
    }
}

#[tokio::test]
async fn tool_use_conversation_round_trips_thought_signatures_and_function_responses() {
    let server = ModelServer::start().await.unwrap();
    let signature = "CiQBVKhc7vGx/thought+signature==";
    let thinking = "I should read the file and search for main at the same time.";
    server.push(
        Turn::tools(vec![
            // Gemini gives calls no ids: the scripted ones never reach the adapter.
            ToolCall::new("ignored_1", "read_file", json!({"path": "src/main.rs"})),
            ToolCall::new("ignored_2", "grep", json!({"pattern": "fn main", "mode": "files"})),
        ])
        .with_thinking(thinking, signature)
        .with_text("Let me look at both.")
        .with_usage(120, 48),
    );
    server.push(Turn::text("main.rs prints a greeting; grep found one match.").with_usage(260, 14));
    let model = adapter(server.url(), fast_retries(1));

    let first = request(vec![Message::user("What does main do?")]);
    let (result, deltas) = call(&model, &first).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse, "STOP after function calls");
    assert_eq!(response.raw_stop_reason.as_deref(), Some("STOP"));
    assert_eq!(response.model, MODEL);
    // 48 output tokens: 24 thoughts + 24 candidates.
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens, response.usage.reasoning_tokens),
        (120, 48, 24)
    );
    assert_eq!(
        response.content,
        vec![
            ContentBlock::Thinking { thinking: thinking.into(), signature: None, provider_data: None },
            ContentBlock::text("Let me look at both."),
            ContentBlock::ToolUse {
                id: "call_1".into(),
                name: "read_file".into(),
                input: json!({"path": "src/main.rs"}),
                provider_data: Some(json!({"thoughtSignature": signature})),
            },
            ContentBlock::ToolUse {
                id: "call_2".into(),
                name: "grep".into(),
                input: json!({"pattern": "fn main", "mode": "files"}),
                provider_data: None,
            },
        ]
    );
    assert!(deltas.len() > 6, "thinking and text arrive in several deltas: {deltas:?}");
    assert_eq!(
        coalesce(&deltas),
        vec![
            Delta::Thinking(thinking.into()),
            Delta::Text("Let me look at both.".into()),
            Delta::ToolCallStarted { id: "call_1".into(), name: "read_file".into() },
            Delta::ToolCallStarted { id: "call_2".into(), name: "grep".into() },
        ]
    );

    let mut messages = first.messages.to_vec();
    messages.push(Message { role: Role::Assistant, content: response.content.clone() });
    messages.push(common::tool_results(&[
        ("call_1", "read_file", "fn main() { println!(\"hi\"); }", false),
        // Without a name, the call it answers supplies it.
        ("call_2", "", "grep: src: permission denied", true),
    ]));
    let second = request(messages);
    let (result, deltas) = call(&model, &second).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.text(), "main.rs prints a greeting; grep found one match.");
    assert_eq!(
        (response.usage.input_tokens, response.usage.output_tokens, response.usage.reasoning_tokens),
        (260, 14, 0)
    );
    assert_eq!(coalesce(&deltas), vec![Delta::Text("main.rs prints a greeting; grep found one match.".into())]);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for recorded in &requests {
        assert_eq!(recorded.path, format!("/v1beta/models/{MODEL}:streamGenerateContent"));
        assert_eq!(recorded.query.as_deref(), Some("alt=sse"), "the key never goes in the URL");
        assert_eq!(recorded.header("x-goog-api-key"), Some(KEY));
        assert_eq!(recorded.body["systemInstruction"], json!({"parts": [{"text": "You are a careful coding agent."}]}));
        assert_eq!(
            recorded.body["generationConfig"],
            json!({"maxOutputTokens": 4096, "temperature": 0.2, "thinkingConfig": {"thinkingBudget": 2048, "includeThoughts": true}})
        );
        assert_eq!(
            recorded.body["tools"],
            json!([{"functionDeclarations": [
                {
                    "name": "read_file",
                    "description": "Read a file",
                    "parameters": {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]},
                },
                {
                    "name": "grep",
                    "description": "Search files",
                    "parameters": {
                        "title": "GrepInput",
                        "type": "object",
                        "properties": {
                            "pattern": {"type": "string", "description": "Regex to find."},
                            "path": {"type": "string", "nullable": true},
                            "mode": {"type": "string", "enum": ["content", "files"]},
                            "limit": {"type": "integer", "minimum": 0},
                        },
                        "required": ["pattern"],
                    },
                },
                {"name": "list_tasks", "description": "List running tasks"},
            ]}])
        );
    }
    let contents = &requests[1].body["contents"];
    assert_eq!(contents[0], json!({"role": "user", "parts": [{"text": "What does main do?"}]}));
    assert_eq!(
        contents[1],
        json!({"role": "model", "parts": [
            {"text": thinking, "thought": true},
            {"text": "Let me look at both."},
            {"functionCall": {"name": "read_file", "args": {"path": "src/main.rs"}}, "thoughtSignature": signature},
            {"functionCall": {"name": "grep", "args": {"pattern": "fn main", "mode": "files"}}},
        ]})
    );
    assert_eq!(
        contents[2],
        json!({"role": "user", "parts": [
            {"functionResponse": {"name": "read_file", "response": {"output": "fn main() { println!(\"hi\"); }"}}},
            {"functionResponse": {"name": "grep", "response": {"error": "grep: src: permission denied"}}},
        ]})
    );
}

#[tokio::test]
async fn a_text_answer_keeps_its_signature_and_finish_reasons_are_normalised() {
    let server = ModelServer::start().await.unwrap();
    server.push(Turn::text("Done, the build is green.").with_thinking("Check the log first.", "sig-on-text"));
    server.push(Turn::text("The essay begins").with_stop("MAX_TOKENS"));
    server.push(Turn::text("").with_stop("SAFETY"));
    server.push(Turn::tools(vec![ToolCall::new("x", "read_file", json!({"path": "b.rs"}))]));
    let model = adapter(server.url(), fast_retries(1));

    let first = request(vec![Message::user("Is the build green?")]);
    let response = call(&model, &first).await.0.unwrap();
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.text(), "Done, the build is green.");
    // The signature came on the last text part; it is kept right after that text.
    assert_eq!(
        response.content.last(),
        Some(&ContentBlock::Thinking {
            thinking: String::new(),
            signature: None,
            provider_data: Some(json!({"thoughtSignature": "sig-on-text"})),
        })
    );

    let mut messages = first.messages.to_vec();
    messages.push(Message { role: Role::Assistant, content: response.content });
    messages.push(Message::user("Write an essay about it."));
    let cut = call(&model, &request(messages.clone())).await.0.unwrap();
    assert_eq!(cut.stop_reason, StopReason::MaxTokens);
    assert_eq!(cut.raw_stop_reason.as_deref(), Some("MAX_TOKENS"));
    let echoed = &server.requests()[1].body["contents"][1];
    assert_eq!(
        echoed,
        &json!({"role": "model", "parts": [
            {"text": "Check the log first.", "thought": true},
            {"text": "Done, the build is green.", "thoughtSignature": "sig-on-text"},
        ]})
    );

    let filtered = call(&model, &request(messages.clone())).await.0.unwrap();
    assert_eq!(filtered.stop_reason, StopReason::ContentFilter);
    assert!(filtered.content.is_empty());

    // Made-up call ids continue after the calls already in the conversation.
    messages.push(Message {
        role: Role::Assistant,
        content: vec![
            ContentBlock::ToolUse { id: "call_1".into(), name: "grep".into(), input: json!({}), provider_data: None },
            ContentBlock::ToolUse { id: "call_2".into(), name: "grep".into(), input: json!({}), provider_data: None },
        ],
    });
    let next = call(&model, &request(messages)).await.0.unwrap();
    assert_eq!(next.tool_calls().map(|(id, ..)| id.to_owned()).collect::<Vec<_>>(), vec!["call_3"]);
}

#[tokio::test]
async fn rate_limit_waits_for_the_retry_info_delay_then_succeeds() {
    let server = ModelServer::start().await.unwrap();
    let model = adapter(server.url(), fast_retries(3));
    let reply = ErrorReply::new(ErrorKind::RateLimit, "You exceeded your current quota.").retry_after(1);
    let waited = common::succeeds_after(&server, &model, &request(vec![Message::user("hi")]), reply).await;
    assert!(waited >= Duration::from_millis(950), "RetryInfo was honoured: {waited:?}");

    // Too long a wait is not waited for, and says why.
    server.push(ErrorReply::new(ErrorKind::RateLimit, "You exceeded your current quota.").retry_after(60));
    let error = call(&model, &request(vec![Message::user("hi")])).await.0.unwrap_err();
    assert_eq!(error.kind, ModelErrorKind::RateLimited);
    assert_eq!(error.status, Some(429));
    assert_eq!(error.retry_after, Some(Duration::from_secs(60)));
    assert!(error.message.contains("RESOURCE_EXHAUSTED: You exceeded your current quota."), "{error}");
}

#[tokio::test]
async fn overloaded_503_is_retried() {
    let server = ModelServer::start().await.unwrap();
    server.push(ErrorReply::new(ErrorKind::Overloaded, "The model is overloaded. Please try again later."));
    server.push(ErrorReply::new(ErrorKind::Server, "An internal error has occurred."));
    server.push(Turn::text("finally"));
    let model = adapter(server.url(), fast_retries(3));
    let request = request(vec![Message::user("hi")]);
    assert_eq!(call(&model, &request).await.0.unwrap().text(), "finally");
    assert_eq!(server.requests().len(), 3);

    server.push(ErrorReply::new(ErrorKind::Overloaded, "The model is overloaded. Please try again later."));
    let model = adapter(server.url(), fast_retries(1));
    let error = call(&model, &request).await.0.unwrap_err();
    assert_eq!(error.kind, ModelErrorKind::Overloaded);
    assert_eq!(error.status, Some(503));
    assert!(error.message.contains("UNAVAILABLE: The model is overloaded"), "{error}");
}

#[tokio::test]
async fn client_errors_are_classified_and_not_retried() {
    let server = ModelServer::start().await.unwrap();
    let model = adapter(server.url(), fast_retries(3));
    let request = request(vec![Message::user("hi")]);
    let cases = [
        (
            ErrorKind::InvalidRequest,
            "* GenerateContentRequest.contents[1].parts: contents.parts must not be empty.",
            ModelErrorKind::InvalidRequest,
            400,
        ),
        (
            ErrorKind::Authentication,
            "API key not valid. Please pass a valid API key.",
            ModelErrorKind::Authentication,
            400,
        ),
        (
            ErrorKind::ContextOverflow,
            "The input token count (1200000) exceeds the maximum number of tokens allowed (1048576).",
            ModelErrorKind::ContextOverflow,
            400,
        ),
    ];
    common::each_fails_once(&server, &model, &request, KEY, &cases).await;
}

#[tokio::test]
async fn an_error_chunk_after_deltas_is_partial_and_not_retried() {
    let server = ModelServer::start().await.unwrap();
    let model = adapter(server.url(), fast_retries(3));
    let reply = ErrorReply::new(ErrorKind::Overloaded, "The model is overloaded.");
    let (error, deltas) = common::fails_after_output(&server, &model, &request(vec![Message::user("hi")]), reply).await;
    assert_eq!(error.kind, ModelErrorKind::Overloaded);
    assert_eq!(coalesce(&deltas), vec![Delta::Text("Let me look".into())]);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_stream_without_a_finish_reason_is_a_transport_error() {
    let chunk = json!({"candidates": [{"content": {"role": "model", "parts": [{"text": "Hel"}]}, "index": 0}]});
    let (url, _) = common::truncating_server(format!("data: {chunk}\r\n\r\n")).await.unwrap();
    let model = adapter(url, fast_retries(2));
    let (result, deltas) = call(&model, &request(vec![Message::user("hi")])).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind, ModelErrorKind::Transport);
    assert!(error.message.contains("finishReason"), "{error}");
    assert!(error.partial, "text was streamed, so it is not retried");
    assert_eq!(error.attempts, 1);
    assert_eq!(deltas, vec![Delta::Text("Hel".into())]);
}
