//! The Responses API adapter against the local model server speaking OpenAI's Responses event
//! stream: a stateless multi-turn tool-use conversation whose reasoning item (with its
//! `encrypted_content`) is echoed back, the input items the adapter sends, and OpenAI's errors —
//! HTTP statuses, `response.failed` and `error` events mid-stream, `response.incomplete`.

#![allow(clippy::unwrap_used)] // test helpers: a failed step should panic with its location

mod common;

use std::time::Duration;

use common::{call, fast_retries};
use runtools_agent::{
    Delta, ModelErrorKind, ModelRequest, ProviderSettings, ThinkingConfig, WireProtocol,
    providers::openai_responses::OpenAiResponses,
};
use runtools_model_server::{ErrorKind, ErrorReply, ModelServer, ToolCall, Turn};
use runtools_protocol::agent::{ContentBlock, Message, Role, StopReason, Usage};
use serde_json::{Value, json};

fn settings(server: &ModelServer) -> ProviderSettings {
    common::settings("openai", WireProtocol::OpenaiResponses, server.openai_url(), "sk-test-456", fast_retries(3))
}

fn adapter(server: &ModelServer) -> OpenAiResponses {
    OpenAiResponses::new(settings(server), common::http())
}

fn request(messages: Vec<Message>) -> ModelRequest {
    ModelRequest {
        model: "o4-mini".into(),
        system: Some("You are terse.".into()),
        messages: std::sync::Arc::new(messages),
        tools: std::sync::Arc::new(vec![common::read_file_tool(false), common::grep_tool()]),
        max_tokens: 4096,
        temperature: None,
        thinking: Some(ThinkingConfig { budget_tokens: 4096 }),
    }
}

/// The `input` items of type `kind` in a recorded request.
fn items_of<'a>(body: &'a Value, kind: &str) -> Vec<&'a Value> {
    body["input"].as_array().unwrap().iter().filter(|item| item["type"] == kind).collect()
}

#[tokio::test]
async fn multi_turn_tool_use_echoes_reasoning_and_sends_results_back() {
    let server = ModelServer::start().await.unwrap();
    server.push(
        Turn::tools(vec![
            ToolCall::new("call_a", "read_file", json!({"path": "src/main.rs"})),
            ToolCall::new("call_b", "grep", json!({"pattern": "fn main", "path": "src"})),
        ])
        .with_text("Let me look.")
        .with_thinking("Need both files.", "enc-reasoning-1")
        .with_usage(120, 40),
    );
    server.push(Turn::text("main is in src/main.rs.").with_usage(300, 12));
    let model = adapter(&server);

    let (response, deltas) = call(&model, &request(vec![Message::user("Where is main?")])).await;
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
    let [ContentBlock::Thinking { thinking, signature: None, provider_data: Some(reasoning) }, text, read, grep] =
        response.content.as_slice()
    else {
        panic!("unexpected content: {:#?}", response.content);
    };
    assert_eq!(thinking, "Need both files.");
    assert_eq!(reasoning["type"], "reasoning");
    assert!(reasoning["id"].as_str().unwrap().starts_with("rs_"), "{reasoning}");
    assert_eq!(reasoning["encrypted_content"], "enc-reasoning-1");
    assert_eq!(reasoning["summary"], json!([{"type": "summary_text", "text": "Need both files."}]));
    assert_eq!(text, &ContentBlock::text("Let me look."));
    let calls: Vec<_> =
        response.tool_calls().map(|(id, name, input)| (id.to_owned(), name.to_owned(), input.clone())).collect();
    assert_eq!(
        calls,
        [
            ("call_a".into(), "read_file".into(), json!({"path": "src/main.rs"})),
            ("call_b".into(), "grep".into(), json!({"pattern": "fn main", "path": "src"})),
        ]
    );
    assert!(
        matches!(read, ContentBlock::ToolUse { provider_data: Some(data), .. }
            if data["openai_item_id"].as_str().is_some_and(|id| id.starts_with("fc_"))),
        "{read:?}"
    );
    assert!(matches!(grep, ContentBlock::ToolUse { name, .. } if name == "grep"));
    assert_eq!((response.stop_reason, response.raw_stop_reason.as_deref()), (StopReason::ToolUse, Some("completed")));
    assert_eq!(response.usage, Usage { input_tokens: 120, output_tokens: 40, reasoning_tokens: 4, ..Usage::default() });
    assert_eq!(response.model, "o4-mini");

    let second = request(vec![
        Message::user("Where is main?"),
        Message { role: Role::Assistant, content: response.content.clone() },
        common::tool_results(&[
            ("call_a", "read_file", "fn main() {}", false),
            ("call_b", "grep", "grep: src: permission denied", true),
        ]),
    ]);
    let (final_answer, deltas) = call(&model, &second).await;
    let final_answer = final_answer.unwrap();
    assert_eq!(final_answer.content, [ContentBlock::text("main is in src/main.rs.")]);
    assert_eq!(deltas.len(), 3, "{deltas:?}");
    assert_eq!(
        (final_answer.stop_reason, final_answer.raw_stop_reason.as_deref()),
        (StopReason::EndTurn, Some("completed"))
    );
    assert_eq!(final_answer.usage, Usage { input_tokens: 300, output_tokens: 12, ..Usage::default() });

    let requests = server.requests();
    assert_eq!(requests.len(), 2);
    for sent in &requests {
        assert_eq!(sent.path, "/v1/responses");
        assert_eq!(sent.header("authorization"), Some("Bearer sk-test-456"));
        let body = &sent.body;
        assert_eq!(body["instructions"], "You are terse.");
        assert_eq!((body["store"].as_bool(), body["stream"].as_bool()), (Some(false), Some(true)));
        assert_eq!(body["max_output_tokens"], 4096);
        assert_eq!(body["reasoning"], json!({"effort": "medium", "summary": "auto"}));
        assert_eq!(body["include"], json!(["reasoning.encrypted_content"]));
        assert_eq!(body["tools"][0]["name"], "read_file");
        assert_eq!(body["tools"][0]["strict"], false);
        assert!(items_of(body, "message").iter().all(|item| item["role"] != "system"), "system goes in instructions");
    }
    let body = &requests[1].body;
    let input = body["input"].as_array().unwrap();
    let kinds: Vec<&str> = input.iter().map(|item| item["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "reasoning",
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output"
        ]
    );
    assert_eq!(
        input[0],
        json!({"type": "message", "role": "user", "content": [{"type": "input_text", "text": "Where is main?"}]})
    );
    assert_eq!(
        input[1],
        json!({
            "type": "reasoning", "id": reasoning["id"], "summary": reasoning["summary"],
            "encrypted_content": "enc-reasoning-1",
        })
    );
    assert_eq!(
        input[2],
        json!({"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Let me look."}]})
    );
    assert_eq!((input[3]["call_id"].as_str(), input[3]["name"].as_str()), (Some("call_a"), Some("read_file")));
    let arguments: Value = serde_json::from_str(input[4]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(arguments, json!({"pattern": "fn main", "path": "src"}));
    assert_eq!(input[5], json!({"type": "function_call_output", "call_id": "call_a", "output": "fn main() {}"}));
    assert_eq!(
        input[6],
        json!({"type": "function_call_output", "call_id": "call_b", "output": "Error: grep: src: permission denied"})
    );
}

#[tokio::test]
async fn the_server_interleaves_parallel_argument_deltas() {
    // Guards the premise of the test above: the two calls' deltas really alternate.
    let server = ModelServer::start().await.unwrap();
    server.push(Turn::tools(vec![
        ToolCall::new("call_a", "read_file", json!({"path": "src/main.rs"})),
        ToolCall::new("call_b", "grep", json!({"pattern": "fn main"})),
    ]));
    let body = json!({"model": "o4-mini", "input": [], "stream": true});
    let response = common::http().post(format!("{}/responses", server.openai_url())).json(&body).send().await.unwrap();
    let text = response.text().await.unwrap();
    let indexes: Vec<u64> = text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter_map(|data| serde_json::from_str::<Value>(data).ok())
        .filter(|event| event["type"] == "response.function_call_arguments.delta")
        .filter_map(|event| event["output_index"].as_u64())
        .collect();
    assert_eq!(&indexes[..4], [0, 1, 0, 1], "{indexes:?}");
}

#[tokio::test]
async fn without_thinking_no_reasoning_is_requested() {
    let server = ModelServer::start().await.unwrap();
    // The server only returns encrypted content when asked for it.
    server.push(Turn::text("ok").with_thinking("quietly", "enc"));
    let mut plain = request(vec![Message::user("hi")]);
    plain.thinking = None;
    plain.system = None;
    let (response, _) = call(&adapter(&server), &plain).await;
    let response = response.unwrap();
    assert_eq!(
        response.content,
        [
            ContentBlock::Thinking { thinking: "quietly".into(), signature: None, provider_data: None },
            ContentBlock::text("ok"),
        ]
    );
    let body = &server.requests()[0].body;
    assert!(body.get("reasoning").is_none() && body.get("include").is_none() && body.get("instructions").is_none());
}

#[tokio::test]
async fn rate_limits_honour_retry_after_then_succeed() {
    let server = ModelServer::start().await.unwrap();
    let message = "Rate limit reached for o4-mini on tokens per min (TPM): Limit 200000, Used 200000.";
    let reply = ErrorReply::new(ErrorKind::RateLimit, message).retry_after(1);
    let waited = common::succeeds_after(&server, &adapter(&server), &request(vec![Message::user("hi")]), reply).await;
    assert!(waited >= Duration::from_secs(1), "waited {waited:?}");
}

#[tokio::test]
async fn server_errors_are_retried() {
    let server = ModelServer::start().await.unwrap();
    server.push(ErrorReply::new(ErrorKind::Server, "The server had an error while processing your request."));
    server.push(Turn::text("recovered"));
    let (response, _) = call(&adapter(&server), &request(vec![Message::user("hi")])).await;
    assert_eq!(response.unwrap().text(), "recovered");
    assert_eq!(server.requests().len(), 2);
}

/// Pushes `error` and a success after it; the call must fail with `kind` without retrying.
async fn fails_once(error: ErrorReply, kind: ModelErrorKind, status: u16) {
    let server = ModelServer::start().await.unwrap();
    common::fails_once(&server, &adapter(&server), &request(vec![Message::user("hi")]), error, kind, status).await;
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let message = "Invalid type for 'input[0].content': expected an array.";
    fails_once(ErrorReply::new(ErrorKind::InvalidRequest, message), ModelErrorKind::InvalidRequest, 400).await;
    let message = "Your input exceeds the context window of this model. Please adjust your input and try again.";
    fails_once(ErrorReply::new(ErrorKind::ContextOverflow, message), ModelErrorKind::ContextOverflow, 400).await;
    let message = "Incorrect API key provided: sk-test-***456.";
    fails_once(ErrorReply::new(ErrorKind::Authentication, message), ModelErrorKind::Authentication, 401).await;
}

#[tokio::test]
async fn mid_stream_failures_after_deltas_are_partial_and_not_retried() {
    for (kind, expected, message) in [
        (ErrorKind::Server, ModelErrorKind::Server, "The model produced invalid content."),
        (ErrorKind::RateLimit, ModelErrorKind::RateLimited, "Rate limit reached mid-response."),
    ] {
        let server = ModelServer::start().await.unwrap();
        let (error, deltas) = common::fails_after_output(
            &server,
            &adapter(&server),
            &request(vec![Message::user("hi")]),
            ErrorReply::new(kind, message),
        )
        .await;
        assert_eq!(deltas, [Delta::Text("Partial ".into()), Delta::Text("answer".into())]);
        assert_eq!((error.kind, error.partial, error.attempts), (expected, true, 1), "{error}");
        assert_eq!(error.message, message);
    }
}

#[tokio::test]
async fn incomplete_responses_map_their_reason() {
    let server = ModelServer::start().await.unwrap();
    server.push(Turn::text("The answer is cut").with_stop("max_output_tokens"));
    server.push(Turn::text("Filtered").with_stop("content_filter"));
    let model = adapter(&server);
    let (response, _) = call(&model, &request(vec![Message::user("hi")])).await;
    let response = response.unwrap();
    assert_eq!(
        (response.stop_reason, response.raw_stop_reason.as_deref(), response.text().as_str()),
        (StopReason::MaxTokens, Some("max_output_tokens"), "The answer is cut")
    );
    let (response, _) = call(&model, &request(vec![Message::user("hi")])).await;
    assert_eq!(response.unwrap().stop_reason, StopReason::ContentFilter);
}
