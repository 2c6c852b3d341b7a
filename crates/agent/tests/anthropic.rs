//! The Anthropic adapter against the model server speaking the Messages API: a two-turn tool-use
//! conversation (thinking signatures and tool results sent back), streamed deltas, stop reasons,
//! usage, and every error path (rate limits with `retry-after`, overload, client errors, context
//! overflow, failures mid-stream and streams cut short).

mod common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::{call, coalesce, fast_retries};
use runtools_agent::providers::anthropic::Anthropic;
use runtools_agent::{Delta, ModelErrorKind, ModelRequest, RetryPolicy, ThinkingConfig, WireProtocol};
use runtools_model_server::{ErrorKind, ErrorReply, ModelServer, ToolCall, Turn};
use runtools_protocol::agent::{ContentBlock, Message, Role, StopReason};
use serde_json::json;

const KEY: &str = "sk-ant-test-key";

fn adapter(base_url: String, retry: RetryPolicy) -> Anthropic {
    let mut settings = common::settings("anthropic", WireProtocol::Anthropic, base_url, KEY, retry);
    settings.headers.push(("anthropic-beta".into(), "interleaved-thinking-2025-05-14".into()));
    Anthropic::new(settings, common::http())
}

fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: "claude-sonnet-4-20250514".into(),
        system: Some("You are a careful coding agent.".into()),
        messages: std::sync::Arc::new(messages),
        tools: std::sync::Arc::new(vec![common::read_file_tool(true), common::grep_tool()]),
        max_tokens: 4096,
        temperature: None,
        thinking: Some(ThinkingConfig { budget_tokens: 2048 }),
    }
}

#[tokio::test]
async fn tool_use_conversation_round_trips_thinking_signatures_and_tool_results() {
    let server = ModelServer::start().await.unwrap();
    let signature = "EqQBCkgIARABGAIiQL+sig/with+base64==";
    server.push(
        Turn::tools(vec![
            ToolCall::new("toolu_01A", "read_file", json!({"path": "src/main.rs"})),
            ToolCall::new("toolu_01B", "grep", json!({"pattern": "fn main", "path": "src"})),
        ])
        .with_thinking("I should read the file and search for main at the same time.", signature)
        .with_text("Let me look at both.")
        .with_usage(120, 48),
    );
    server.push(Turn::text("main.rs prints a greeting; grep found one match.").with_usage(260, 14));
    let model = adapter(server.url(), fast_retries(1));

    let first = request(vec![Message::user("What does main do?")]);
    let (result, deltas) = call(&model, &first).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.raw_stop_reason.as_deref(), Some("tool_use"));
    assert_eq!(response.model, "claude-sonnet-4-20250514");
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (120, 48));
    assert_eq!(
        response.content,
        vec![
            ContentBlock::Thinking {
                thinking: "I should read the file and search for main at the same time.".into(),
                signature: Some(signature.into()),
                provider_data: None,
            },
            ContentBlock::text("Let me look at both."),
            ContentBlock::ToolUse {
                id: "toolu_01A".into(),
                name: "read_file".into(),
                input: json!({"path": "src/main.rs"}),
                provider_data: None,
            },
            ContentBlock::ToolUse {
                id: "toolu_01B".into(),
                name: "grep".into(),
                input: json!({"pattern": "fn main", "path": "src"}),
                provider_data: None,
            },
        ]
    );
    assert!(deltas.len() > 6, "thinking and text arrive in several deltas: {deltas:?}");
    assert_eq!(
        coalesce(&deltas),
        vec![
            Delta::Thinking("I should read the file and search for main at the same time.".into()),
            Delta::Text("Let me look at both.".into()),
            Delta::ToolCallStarted { id: "toolu_01A".into(), name: "read_file".into() },
            Delta::ToolCallStarted { id: "toolu_01B".into(), name: "grep".into() },
        ]
    );

    let mut messages = first.messages.to_vec();
    messages.push(Message { role: Role::Assistant, content: response.content.clone() });
    messages.push(common::tool_results(&[
        ("toolu_01A", "read_file", "fn main() { println!(\"hi\"); }", false),
        ("toolu_01B", "grep", "grep: src: permission denied", true),
    ]));
    let second = request(messages);
    let (result, deltas) = call(&model, &second).await;
    let response = result.unwrap();
    assert_eq!(response.stop_reason, StopReason::EndTurn);
    assert_eq!(response.text(), "main.rs prints a greeting; grep found one match.");
    assert_eq!((response.usage.input_tokens, response.usage.output_tokens), (260, 14));
    assert_eq!(coalesce(&deltas), vec![Delta::Text("main.rs prints a greeting; grep found one match.".into())]);

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for recorded in &requests {
        assert_eq!(recorded.path, "/v1/messages");
        assert_eq!(recorded.header("x-api-key"), Some(KEY));
        assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(recorded.header("anthropic-beta"), Some("interleaved-thinking-2025-05-14"));
        assert_eq!(recorded.header("authorization"), None, "the key travels only in x-api-key");
        assert_eq!(recorded.body["system"], "You are a careful coding agent.");
        assert_eq!(recorded.body["stream"], true);
        assert_eq!(recorded.body["max_tokens"], 4096);
        assert_eq!(recorded.body["thinking"], json!({"type": "enabled", "budget_tokens": 2048}));
        assert_eq!(recorded.body["tools"][0]["name"], "read_file");
        assert_eq!(recorded.body["tools"][0]["input_schema"]["required"], json!(["path"]));
    }
    let body = &requests[1].body;
    assert_eq!(
        body["messages"][0],
        json!({"role": "user", "content": [{"type": "text", "text": "What does main do?"}]})
    );
    assert_eq!(
        body["messages"][1],
        json!({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "I should read the file and search for main at the same time.", "signature": signature},
            {"type": "text", "text": "Let me look at both."},
            {"type": "tool_use", "id": "toolu_01A", "name": "read_file", "input": {"path": "src/main.rs"}},
            {"type": "tool_use", "id": "toolu_01B", "name": "grep", "input": {"pattern": "fn main", "path": "src"}},
        ]})
    );
    assert_eq!(
        body["messages"][2],
        json!({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "toolu_01A", "content": "fn main() { println!(\"hi\"); }", "is_error": false},
            {"type": "tool_result", "tool_use_id": "toolu_01B", "content": "grep: src: permission denied", "is_error": true},
        ]})
    );
}

#[tokio::test]
async fn max_tokens_and_other_stop_reasons_are_normalised() {
    let server = ModelServer::start().await.unwrap();
    server.push(Turn::text("The answer is cut").with_stop("max_tokens"));
    server.push(Turn::text("I can't help with that.").with_stop("refusal"));
    server.push(Turn::text("Hmm").with_stop("model_context_window_exceeded"));
    let model = adapter(server.url(), fast_retries(1));
    let request = request(vec![Message::user("Write a long essay")]);

    let response = call(&model, &request).await.0.unwrap();
    assert_eq!(response.stop_reason, StopReason::MaxTokens);
    assert_eq!(response.raw_stop_reason.as_deref(), Some("max_tokens"));
    assert_eq!(response.text(), "The answer is cut");
    assert_eq!(call(&model, &request).await.0.unwrap().stop_reason, StopReason::Refusal);
    let other = call(&model, &request).await.0.unwrap();
    assert_eq!(other.stop_reason, StopReason::Other);
    assert_eq!(other.raw_stop_reason.as_deref(), Some("model_context_window_exceeded"));
}

#[tokio::test]
async fn rate_limit_waits_for_retry_after_then_succeeds() {
    let server = ModelServer::start().await.unwrap();
    let model = adapter(server.url(), fast_retries(3));
    let reply =
        ErrorReply::new(ErrorKind::RateLimit, "Number of request tokens has exceeded your per-minute rate limit");
    let waited =
        common::succeeds_after(&server, &model, &request(vec![Message::user("hi")]), reply.retry_after(1)).await;
    assert!(waited >= Duration::from_millis(950), "retry-after was honoured: {waited:?}");
}

#[tokio::test]
async fn overloaded_529_is_retried_until_the_attempts_run_out() {
    let server = ModelServer::start().await.unwrap();
    server.push(ErrorReply::new(ErrorKind::Overloaded, "Overloaded"));
    server.push(ErrorReply::new(ErrorKind::Overloaded, "Overloaded"));
    server.push(Turn::text("finally"));
    let model = adapter(server.url(), fast_retries(3));
    let request = request(vec![Message::user("hi")]);
    assert_eq!(call(&model, &request).await.0.unwrap().text(), "finally");
    assert_eq!(server.requests().len(), 3);

    for _ in 0..3 {
        server.push(ErrorReply::new(ErrorKind::Overloaded, "Overloaded"));
    }
    let error = call(&model, &request).await.0.unwrap_err();
    assert_eq!(error.kind, ModelErrorKind::Overloaded);
    assert_eq!(error.status, Some(529));
    assert_eq!(error.attempts, 3);
    assert!(error.message.contains("overloaded_error: Overloaded"), "{error}");
    assert!(error.message.contains("request-id req_"), "the request id is kept for support: {error}");
}

#[tokio::test]
async fn client_errors_are_classified_and_not_retried() {
    let server = ModelServer::start().await.unwrap();
    let model = adapter(server.url(), fast_retries(3));
    let request = request(vec![Message::user("hi")]);
    let cases = [
        (
            ErrorKind::InvalidRequest,
            "messages.1.content.0: unexpected `tool_use_id`",
            ModelErrorKind::InvalidRequest,
            400,
        ),
        (ErrorKind::Authentication, "invalid x-api-key", ModelErrorKind::Authentication, 401),
        (
            ErrorKind::ContextOverflow,
            "prompt is too long: 212345 tokens > 200000 maximum",
            ModelErrorKind::ContextOverflow,
            400,
        ),
    ];
    common::each_fails_once(&server, &model, &request, KEY, &cases).await;
}

#[tokio::test]
async fn an_error_event_after_deltas_is_partial_and_not_retried() {
    let server = ModelServer::start().await.unwrap();
    let model = adapter(server.url(), fast_retries(3));
    let reply = ErrorReply::new(ErrorKind::Overloaded, "Overloaded");
    let (error, deltas) = common::fails_after_output(&server, &model, &request(vec![Message::user("hi")]), reply).await;
    assert_eq!(error.kind, ModelErrorKind::Overloaded);
    assert_eq!(error.status, None, "the stream itself was a 200");
    assert_eq!(coalesce(&deltas), vec![Delta::Text("Let me look".into())]);
    assert_eq!(server.requests().len(), 1);
}

#[tokio::test]
async fn a_stream_cut_before_message_stop_is_a_transport_error() {
    let start = "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-sonnet-4-20250514\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n";

    // Cut before any output: retried like any transport failure.
    let (url, count) = common::truncating_server(start.to_owned()).await.unwrap();
    let model = adapter(url, fast_retries(2));
    let (result, deltas) = call(&model, &request(vec![Message::user("hi")])).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind, ModelErrorKind::Transport);
    assert!(error.message.contains("message_stop"), "{error}");
    assert!(!error.partial);
    assert_eq!(error.attempts, 2);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    assert!(deltas.is_empty());

    // Cut after text was streamed: partial, so not retried.
    let body = format!(
        "{start}event: content_block_start\ndata: {{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{{\"type\":\"text\",\"text\":\"\"}}}}\n\nevent: some_future_event\ndata: {{\"type\":\"some_future_event\"}}\n\nevent: content_block_delta\ndata: {{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{{\"type\":\"text_delta\",\"text\":\"Hel\"}}}}\n\n"
    );
    let (url, count) = common::truncating_server(body).await.unwrap();
    let model = adapter(url, fast_retries(2));
    let (result, deltas) = call(&model, &request(vec![Message::user("hi")])).await;
    let error = result.unwrap_err();
    assert_eq!(error.kind, ModelErrorKind::Transport);
    assert!(error.partial);
    assert_eq!(error.attempts, 1);
    assert_eq!(count.load(Ordering::SeqCst), 1);
    assert_eq!(deltas, vec![Delta::Text("Hel".into())]);
}
