//! The Chat Completions adapter against the local model server speaking OpenAI's wire format:
//! a scripted multi-turn tool-use conversation (deltas, consolidated blocks, usage, and what the
//! adapter sent), OpenAI-compatible servers' quirks, and OpenAI's errors with their retry rules.

#![allow(clippy::unwrap_used)] // test helpers: a failed step should panic with its location

mod common;

use std::time::Duration;

use common::{call, fast_retries};
use runtools_agent::{
    Delta, ModelErrorKind, ModelRequest, ProviderSettings, RetryPolicy, ThinkingConfig, WireProtocol,
    providers::openai_chat::OpenAiChat,
};
use runtools_model_server::{ChatQuirks, ErrorKind, ErrorReply, ModelServer, Reply, ToolCall, Turn};
use runtools_protocol::agent::{ContentBlock, Message, Role, StopReason, Usage};
use serde_json::{Value, json};

fn settings(server: &ModelServer) -> ProviderSettings {
    common::settings("openai", WireProtocol::OpenaiChat, server.openai_url(), "sk-test-123", fast_retries(3))
}

fn adapter(server: &ModelServer) -> OpenAiChat {
    OpenAiChat::new(settings(server), common::http())
}

fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: "gpt-4.1".into(),
        system: Some("You are terse.".into()),
        messages: std::sync::Arc::new(messages),
        tools: std::sync::Arc::new(vec![common::read_file_tool(false), common::grep_tool()]),
        max_tokens: 2048,
        temperature: None,
        thinking: None,
    }
}

fn text_turn(text: &str) -> Turn {
    Turn::text(text)
}

#[tokio::test]
async fn multi_turn_tool_use_streams_parallel_calls_and_sends_results_back() {
    let server = ModelServer::start().await.unwrap();
    server.push(
        Turn::tools(vec![
            ToolCall::new("call_a", "read_file", json!({"path": "src/main.rs"})),
            ToolCall::new("call_b", "grep", json!({"pattern": "fn main", "path": "src"})),
        ])
        .with_text("Let me look.")
        .with_thinking("Need both files.", "unused-signature")
        .with_usage(120, 40),
    );
    server.push(text_turn("main is in src/main.rs.").with_usage(300, 12));
    let model = adapter(&server);

    let mut first = request(vec![Message::user("Where is main?")]);
    first.thinking = Some(ThinkingConfig { budget_tokens: 1024 });
    let (response, deltas) = call(&model, &first).await;
    let response = response.unwrap();
    assert_eq!(
        deltas,
        [
            Delta::Thinking("Need bot".into()),
            Delta::Thinking("h files.".into()),
            Delta::Text("Let me l".into()),
            Delta::Text("ook.".into()),
            Delta::ToolCallStarted { id: "call_a".into(), name: "read_file".into() },
            Delta::ToolCallStarted { id: "call_b".into(), name: "grep".into() },
        ]
    );
    assert_eq!(
        response.content,
        [
            ContentBlock::Thinking { thinking: "Need both files.".into(), signature: None, provider_data: None },
            ContentBlock::text("Let me look."),
            ContentBlock::ToolUse {
                id: "call_a".into(),
                name: "read_file".into(),
                input: json!({"path": "src/main.rs"}),
                provider_data: None,
            },
            ContentBlock::ToolUse {
                id: "call_b".into(),
                name: "grep".into(),
                input: json!({"pattern": "fn main", "path": "src"}),
                provider_data: None,
            },
        ]
    );
    assert_eq!((response.stop_reason, response.raw_stop_reason.as_deref()), (StopReason::ToolUse, Some("tool_calls")));
    // The server reports a quarter of the thinking's 16 characters as reasoning tokens.
    assert_eq!(response.usage, Usage { input_tokens: 120, output_tokens: 40, reasoning_tokens: 4, ..Usage::default() });
    assert_eq!(response.model, "gpt-4.1");

    let mut second = request(vec![
        Message::user("Where is main?"),
        Message { role: Role::Assistant, content: response.content.clone() },
        common::tool_results(&[
            ("call_a", "read_file", "fn main() {}", false),
            ("call_b", "grep", "grep: src: permission denied", true),
        ]),
    ]);
    second.thinking = None;
    let (response, deltas) = call(&model, &second).await;
    let response = response.unwrap();
    assert_eq!(response.text(), "main is in src/main.rs.");
    assert_eq!(deltas.concat_text(), "main is in src/main.rs.");
    assert_eq!((response.stop_reason, response.raw_stop_reason.as_deref()), (StopReason::EndTurn, Some("stop")));
    assert_eq!(response.usage, Usage { input_tokens: 300, output_tokens: 12, ..Usage::default() });

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for sent in &requests {
        assert_eq!(sent.path, "/v1/chat/completions");
        assert_eq!(sent.header("authorization"), Some("Bearer sk-test-123"));
        assert_eq!(sent.body["model"], "gpt-4.1");
        assert_eq!(sent.body["stream"], true);
        assert_eq!(sent.body["stream_options"], json!({"include_usage": true}));
        assert_eq!(sent.body["max_completion_tokens"], 2048);
        assert_eq!(sent.body["messages"][0], json!({"role": "system", "content": "You are terse."}));
        assert_eq!(sent.body["tools"][1]["function"]["name"], "grep");
        assert_eq!(sent.body["tools"][0]["type"], "function");
    }
    assert_eq!(requests[0].body["reasoning_effort"], "low");
    assert!(requests[1].body.get("reasoning_effort").is_none());
    let messages = requests[1].body["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5, "{messages:#?}");
    assert_eq!(messages[1], json!({"role": "user", "content": "Where is main?"}));
    let assistant = &messages[2];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"], "Let me look.");
    assert!(assistant.get("reasoning_content").is_none(), "thinking is not sent back: {assistant}");
    let calls = assistant["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!((calls[0]["id"].as_str(), calls[0]["type"].as_str()), (Some("call_a"), Some("function")));
    let arguments: Value = serde_json::from_str(calls[1]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"pattern": "fn main", "path": "src"}));
    assert_eq!(messages[3], json!({"role": "tool", "tool_call_id": "call_a", "content": "fn main() {}"}));
    assert_eq!(
        messages[4],
        json!({"role": "tool", "tool_call_id": "call_b", "content": "Error: grep: src: permission denied"})
    );
}

#[tokio::test]
async fn the_server_interleaves_parallel_call_fragments() {
    // Guards the premise of the test above: the fragments really arrive interleaved by index.
    let server = ModelServer::start().await.unwrap();
    server.push(Turn::tools(vec![
        ToolCall::new("call_a", "read_file", json!({"path": "src/main.rs"})),
        ToolCall::new("call_b", "grep", json!({"pattern": "fn main"})),
    ]));
    let body = json!({"model": "gpt-4.1", "messages": [], "stream": true});
    let text =
        common::http().post(format!("{}/chat/completions", server.openai_url())).json(&body).send().await.unwrap();
    let text = text.text().await.unwrap();
    let indexes: Vec<u64> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter_map(|chunk| chunk["choices"][0]["delta"]["tool_calls"][0]["index"].as_u64())
        .collect();
    let last_of_first = indexes.iter().rposition(|index| *index == 0).unwrap();
    let first_of_second = indexes.iter().position(|index| *index == 1).unwrap();
    assert!(first_of_second < last_of_first, "{indexes:?}");
}

#[tokio::test]
async fn compatible_servers_without_key_ids_or_separate_usage() {
    let server = ModelServer::start().await.unwrap();
    let quirky = ChatQuirks { no_tool_call_ids: true, usage_with_finish: true, no_usage: false };
    let mut turn = Turn::tools(vec![
        ToolCall::new("ignored", "read_file", json!({"path": "a"})),
        ToolCall::new("ignored", "grep", json!({})),
    ])
    .with_usage(50, 7);
    turn.chat_quirks = quirky;
    turn.model = Some("qwen3-8b".into());
    server.push(turn);
    let mut text = text_turn("plain answer");
    text.chat_quirks = ChatQuirks { no_usage: true, ..ChatQuirks::default() };
    server.push(text);

    let mut settings = ProviderSettings::new("openai-compatible", WireProtocol::OpenaiChat, server.openai_url());
    settings.retry = RetryPolicy::none();
    let model = OpenAiChat::new(settings, common::http());
    let mut only_user = request(vec![Message::user("go")]);
    only_user.model = "qwen3-8b".into();
    let (response, deltas) = call(&model, &only_user).await;
    let response = response.unwrap();
    assert_eq!(
        deltas,
        [
            Delta::ToolCallStarted { id: "call_0".into(), name: "read_file".into() },
            Delta::ToolCallStarted { id: "call_1".into(), name: "grep".into() },
        ]
    );
    let calls: Vec<_> =
        response.tool_calls().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
    assert_eq!(
        calls,
        [("call_0".into(), "read_file".into(), json!({"path": "a"})), ("call_1".into(), "grep".into(), json!({}))]
    );
    assert_eq!(response.stop_reason, StopReason::ToolUse);
    assert_eq!(response.usage, Usage { input_tokens: 50, output_tokens: 7, ..Usage::default() });
    assert_eq!(response.model, "qwen3-8b");

    let (response, _) = call(&model, &only_user).await;
    let response = response.unwrap();
    assert_eq!(response.text(), "plain answer");
    assert_eq!(response.usage, Usage::default(), "no usage reported means zero");

    let sent = &server.requests()[0];
    assert_eq!(sent.header("authorization"), None, "no key, no authorization header");
    assert_eq!(sent.body["max_tokens"], 2048);
    assert!(sent.body.get("max_completion_tokens").is_none());
}

#[tokio::test]
async fn rate_limits_honour_retry_after_then_succeed() {
    let server = ModelServer::start().await.unwrap();
    let message = "Rate limit reached for gpt-4.1 on requests per min (RPM): Limit 3, Used 3, Requested 1.";
    let reply = ErrorReply::new(ErrorKind::RateLimit, message).retry_after(1);
    let waited = common::succeeds_after(&server, &adapter(&server), &request(vec![Message::user("hi")]), reply).await;
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");

    // Without retries the error shows what OpenAI said and asked for.
    server.push(ErrorReply::new(ErrorKind::RateLimit, message).retry_after(7));
    let mut settings = settings(&server);
    settings.retry = RetryPolicy::none();
    let (response, _) = call(&OpenAiChat::new(settings, common::http()), &request(vec![Message::user("hi")])).await;
    let error = response.unwrap_err();
    assert_eq!((error.kind, error.status), (ModelErrorKind::RateLimited, Some(429)));
    assert_eq!(error.retry_after, Some(Duration::from_secs(7)));
    assert!(error.message.contains(message), "{error}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = ModelServer::start().await.unwrap();
    server.push(ErrorReply::new(ErrorKind::Server, "The server had an error while processing your request."));
    server.push(ErrorReply::new(ErrorKind::Overloaded, "The engine is currently overloaded."));
    server.push(text_turn("recovered"));
    let (response, _) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    assert_eq!(response.unwrap().text(), "recovered");
    assert_eq!(server.requests().len(), 3);

    server.push(ErrorReply::new(ErrorKind::Server, "still broken"));
    server.push(ErrorReply::new(ErrorKind::Server, "still broken"));
    server.push(ErrorReply::new(ErrorKind::Server, "still broken"));
    let (response, _) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    let error = response.unwrap_err();
    assert_eq!((error.kind, error.status, error.attempts), (ModelErrorKind::Server, Some(500), 3));
}

/// Pushes `error` and a success after it; the call must fail with `kind` without retrying.
async fn fails_once(error: ErrorReply, kind: ModelErrorKind, status: u16) {
    let server = ModelServer::start().await.unwrap();
    let request = request(vec![Message::user("hi")]);
    let error = common::fails_once(&server, &adapter(&server), &request, error, kind, status).await;
    assert!(!error.partial);
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let message = "Invalid 'tools[0].function.name': string does not match pattern.";
    fails_once(ErrorReply::new(ErrorKind::InvalidRequest, message), ModelErrorKind::InvalidRequest, 400).await;
    let message =
        "This model's maximum context length is 128000 tokens. However, your messages resulted in 130511 tokens.";
    fails_once(ErrorReply::new(ErrorKind::ContextOverflow, message), ModelErrorKind::ContextOverflow, 400).await;
    let message = "Incorrect API key provided: sk-test-***123.";
    fails_once(ErrorReply::new(ErrorKind::Authentication, message), ModelErrorKind::Authentication, 401).await;
}

#[tokio::test]
async fn a_mid_stream_error_after_deltas_is_partial_and_not_retried() {
    let server = ModelServer::start().await.unwrap();
    let reply = ErrorReply::new(ErrorKind::Server, "The server had an error while processing your request.");
    let (error, deltas) =
        common::fails_after_output(&server, &adapter(&server), &request(vec![Message::user("hi")]), reply).await;
    assert_eq!(deltas, [Delta::Text("Partial ".into()), Delta::Text("answer".into())]);
    assert_eq!((error.kind, error.partial, error.attempts, error.status), (ModelErrorKind::Server, true, 1, None));
    assert!(error.message.contains("processing your request"), "{error}");
}

#[tokio::test]
async fn length_is_max_tokens() {
    let server = ModelServer::start().await.unwrap();
    server.push(text_turn("The answer is cut").with_stop("length"));
    let (response, _) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    let response = response.unwrap();
    assert_eq!((response.stop_reason, response.raw_stop_reason.as_deref()), (StopReason::MaxTokens, Some("length")));
    assert_eq!(response.text(), "The answer is cut");
}

#[tokio::test]
async fn a_hanging_server_times_out_each_attempt() {
    let server = ModelServer::start().await.unwrap();
    server.push(Reply::Hang);
    server.push(Reply::Hang);
    let mut settings = settings(&server);
    settings.request_timeout = Duration::from_millis(200);
    settings.retry.max_attempts = 2;
    let (response, _) = call(&OpenAiChat::new(settings, common::http()), &request(vec![Message::user("hi")])).await;
    let error = response.unwrap_err();
    assert_eq!((error.kind, error.attempts), (ModelErrorKind::Transport, 2), "{error}");
    assert_eq!(server.requests().len(), 2);
}

trait ConcatText {
    fn concat_text(&self) -> String;
}

impl ConcatText for [Delta] {
    fn concat_text(&self) -> String {
        self.iter()
            .filter_map(|delta| match delta {
                Delta::Text(text) => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}
