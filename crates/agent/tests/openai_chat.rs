//! The Chat Completions adapter against the local model server speaking OpenAI's wire format:
//! a scripted multi-turn tool-use conversation (deltas, consolidated blocks, usage, and what the
//! adapter sent), OpenAI-compatible servers' quirks, and OpenAI's errors with their retry rules.

#![allow(clippy::unwrap_used)] // test helpers: a failed step should panic with its location

use std::time::{Duration, Instant};

use runtools_agent::{
    ApiKey, Delta, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse, ProviderSettings, RetryPolicy,
    ThinkingConfig, WireProtocol, providers::openai_chat::OpenAiChat,
};
use runtools_model_server::{ChatQuirks, ErrorKind, ErrorReply, ModelServer, Reply, ToolCall, Turn};
use runtools_protocol::agent::{ContentBlock, Message, Role, StopReason, ToolSpec, Usage};
use serde_json::{Value, json};

fn settings(server: &ModelServer) -> ProviderSettings {
    let mut settings = ProviderSettings::new("openai", WireProtocol::OpenaiChat, server.openai_url());
    settings.api_key = Some(ApiKey::new("sk-test-123"));
    settings.retry = RetryPolicy {
        max_attempts: 3,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    };
    settings
}

fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

fn adapter(server: &ModelServer) -> OpenAiChat {
    OpenAiChat::new(settings(server), http())
}

fn tools() -> Vec<ToolSpec> {
    vec![
        ToolSpec {
            name: "read_file".into(),
            description: "Read a file".into(),
            input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}}}),
        },
        ToolSpec {
            name: "grep".into(),
            description: "Search files".into(),
            input_schema: json!({"type": "object", "properties": {"pattern": {"type": "string"}}}),
        },
    ]
}

fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: "gpt-4.1".into(),
        system: Some("You are terse.".into()),
        messages,
        tools: tools(),
        max_tokens: 2048,
        temperature: None,
        thinking: None,
    }
}

async fn call(model: &dyn Model, request: &ModelRequest) -> (Vec<Delta>, Result<ModelResponse, ModelError>) {
    let mut deltas = Vec::new();
    let result = model.stream(request, &mut |delta| deltas.push(delta)).await;
    (deltas, result)
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
    let (deltas, response) = call(&model, &first).await;
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
        Message {
            role: Role::User,
            content: vec![
                ContentBlock::ToolResult {
                    tool_use_id: "call_a".into(),
                    name: "read_file".into(),
                    content: "fn main() {}".into(),
                    is_error: false,
                },
                ContentBlock::ToolResult {
                    tool_use_id: "call_b".into(),
                    name: "grep".into(),
                    content: "grep: src: permission denied".into(),
                    is_error: true,
                },
            ],
        },
    ]);
    second.thinking = None;
    let (deltas, response) = call(&model, &second).await;
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
    let text = http().post(format!("{}/chat/completions", server.openai_url())).json(&body).send().await.unwrap();
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
    let model = OpenAiChat::new(settings, http());
    let mut only_user = request(vec![Message::user("go")]);
    only_user.model = "qwen3-8b".into();
    let (deltas, response) = call(&model, &only_user).await;
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

    let (_, response) = call(&model, &only_user).await;
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
    server.push(ErrorReply::new(ErrorKind::RateLimit, message).retry_after(1));
    server.push(text_turn("done"));
    let model = adapter(&server);
    let started = Instant::now();
    let (_, response) = call(&model, &request(vec![Message::user("hi")])).await;
    assert_eq!(response.unwrap().text(), "done");
    assert!(started.elapsed() >= Duration::from_secs(1), "waited {:?}", started.elapsed());
    assert_eq!(server.requests().len(), 2);

    // Without retries the error shows what OpenAI said and asked for.
    server.push(ErrorReply::new(ErrorKind::RateLimit, message).retry_after(7));
    let mut settings = settings(&server);
    settings.retry = RetryPolicy::none();
    let (_, response) = call(&OpenAiChat::new(settings, http()), &request(vec![Message::user("hi")])).await;
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
    let (_, response) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    assert_eq!(response.unwrap().text(), "recovered");
    assert_eq!(server.requests().len(), 3);

    server.push(ErrorReply::new(ErrorKind::Server, "still broken"));
    server.push(ErrorReply::new(ErrorKind::Server, "still broken"));
    server.push(ErrorReply::new(ErrorKind::Server, "still broken"));
    let (_, response) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    let error = response.unwrap_err();
    assert_eq!((error.kind, error.status, error.attempts), (ModelErrorKind::Server, Some(500), 3));
}

/// Pushes `error` and a success after it; the call must fail with `kind` without retrying.
async fn fails_once(error: ErrorReply, kind: ModelErrorKind, status: u16) -> ModelError {
    let server = ModelServer::start().await.unwrap();
    let message = error.message.clone();
    server.push(error);
    server.push(text_turn("never reached"));
    let (_, response) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    let error = response.unwrap_err();
    assert_eq!((error.kind, error.status, error.attempts), (kind, Some(status), 1), "{error}");
    assert!(error.message.contains(&message), "{error}");
    assert!(!error.partial);
    assert_eq!(server.remaining(), 1, "not retried");
    error
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
    server.push(
        ErrorReply::new(ErrorKind::Server, "The server had an error while processing your request.").mid_stream(),
    );
    server.push(text_turn("never reached"));
    let (deltas, response) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    let error = response.unwrap_err();
    assert_eq!(deltas, [Delta::Text("Partial ".into()), Delta::Text("answer".into())]);
    assert_eq!((error.kind, error.partial, error.attempts, error.status), (ModelErrorKind::Server, true, 1, None));
    assert!(error.message.contains("processing your request"), "{error}");
    assert_eq!(server.remaining(), 1);
}

#[tokio::test]
async fn length_is_max_tokens() {
    let server = ModelServer::start().await.unwrap();
    server.push(text_turn("The answer is cut").with_stop("length"));
    let (_, response) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
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
    let (_, response) = call(&OpenAiChat::new(settings, http()), &request(vec![Message::user("hi")])).await;
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
