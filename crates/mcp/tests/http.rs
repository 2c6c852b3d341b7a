//! `McpToolSet` against a real MCP server over streamable HTTP: rmcp's server side and its
//! streamable HTTP service, served by axum on 127.0.0.1:0 in the test process. Covers listing
//! (with pagination), calls, error mapping, allow-lists, prefixes, headers, cancellation and
//! shutdown.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

#[path = "../src/bin/runtools-mcp-test-server/server.rs"]
mod server;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use runtools_agent::toolset::{ToolCall, ToolOutput, ToolSet};
use runtools_mcp::{McpError, McpServerConfig, McpToolSet};
use runtools_protocol::agent::ToolStatus;
use serde_json::{Value, json};
use server::{TestServer, TestState};

const TOKEN: &str = "test-token-123";

struct HttpServer {
    /// The open endpoint.
    url: String,
    /// The endpoint that requires `Authorization: Bearer TOKEN`.
    secure_url: String,
    state: Arc<TestState>,
}

async fn require_token(request: Request, next: Next) -> Result<Response, StatusCode> {
    let expected = format!("Bearer {TOKEN}");
    match request.headers().get("authorization").and_then(|v| v.to_str().ok()) {
        Some(value) if value == expected => Ok(next.run(request).await),
        _ => Err(StatusCode::UNAUTHORIZED),
    }
}

async fn start_server() -> HttpServer {
    let state = Arc::new(TestState::default());
    let factory_state = Arc::clone(&state);
    let service = StreamableHttpService::new(
        move || Ok(TestServer::new(Arc::clone(&factory_state))),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new()
        .nest_service("/mcp", service.clone())
        .merge(axum::Router::new().nest_service("/secure", service).layer(axum::middleware::from_fn(require_token)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    HttpServer { url: format!("http://{addr}/mcp"), secure_url: format!("http://{addr}/secure"), state }
}

fn call(name: &str, input: Value) -> ToolCall {
    ToolCall { id: "call-1".into(), name: name.into(), input }
}

async fn connect(config: McpServerConfig) -> McpToolSet {
    McpToolSet::connect(&[config]).await.unwrap()
}

fn names(set: &dyn ToolSet) -> Vec<String> {
    set.specs().into_iter().map(|spec| spec.name).collect()
}

#[tokio::test]
async fn lists_every_page_of_tools_with_the_server_prefix() {
    let server = start_server().await;
    let set = connect(McpServerConfig::http("calc", &server.url)).await;
    let expected: Vec<String> =
        server::tools().iter().map(|tool| format!("calc__{}", tool.name.replace('.', "_"))).collect();
    assert!(expected.len() > server::PAGE_SIZE * 2, "the listing must span several pages");
    assert_eq!(names(&set), expected);

    let add = set.specs().into_iter().find(|spec| spec.name == "calc__add").unwrap();
    assert_eq!(add.description, "Adds two numbers.");
    assert_eq!(add.input_schema["required"], json!(["a", "b"]));
    assert_eq!(add.input_schema["properties"]["a"], json!({"type": "number"}));
    assert_eq!(set.server_names(), vec!["calc"]);
    assert_eq!(set.tools_of("calc").len(), expected.len());
    assert!(set.tools_of("other").is_empty());
}

#[tokio::test]
async fn calls_return_text_errors_and_structured_content() {
    let server = start_server().await;
    let set = connect(McpServerConfig::http("calc", &server.url)).await;

    assert_eq!(set.call(&call("calc__add", json!({"a": 2, "b": 3.5}))).await, ToolOutput::ok("5.5"));
    assert_eq!(set.call(&call("calc__fail", json!({}))).await, ToolOutput::error("this tool always fails"));
    assert_eq!(
        set.call(&call("calc__structured", Value::Null)).await,
        ToolOutput::ok(r#"{"temperature":22.5,"unit":"C"}"#)
    );
    assert_eq!(
        set.call(&call("calc__image", json!({}))).await,
        ToolOutput::ok("a tiny picture\n[image: image/png, 5 bytes]")
    );
    // The sanitised name routes to the server's own name.
    assert_eq!(set.call(&call("calc__odd_name", json!({}))).await, ToolOutput::ok("odd tool ran"));
}

#[tokio::test]
async fn protocol_errors_bad_input_and_unknown_tools() {
    let server = start_server().await;
    let set = connect(McpServerConfig::http("calc", &server.url)).await;

    let refused = set.call(&call("calc__add", json!({"a": "two", "b": 3}))).await;
    assert_eq!(refused.status, ToolStatus::Error);
    assert!(refused.content.contains("MCP server `calc`"), "{}", refused.content);
    assert!(refused.content.contains("`a` must be a number"), "{}", refused.content);

    let not_object = set.call(&call("calc__add", json!([1, 2]))).await;
    assert_eq!(not_object.status, ToolStatus::Error);
    assert!(not_object.content.contains("must be a JSON object"), "{}", not_object.content);

    let unknown = set.call(&call("add", json!({}))).await;
    assert_eq!(unknown.status, ToolStatus::Denied);
    assert!(unknown.content.contains("`add`"));
}

#[tokio::test]
async fn allow_list_and_custom_prefix() {
    let server = start_server().await;
    let set = connect(McpServerConfig::http("calculator", &server.url).with_prefix("m").with_tools([
        "add",
        "odd.name",
        "not_offered",
    ]))
    .await;
    assert_eq!(names(&set), vec!["m__add", "m__odd_name"]);
    assert_eq!(set.call(&call("m__add", json!({"a": 1, "b": 1}))).await, ToolOutput::ok("2"));
    assert_eq!(set.call(&call("m__fail", json!({}))).await.status, ToolStatus::Denied);

    let bare =
        connect(McpServerConfig::http("calc", &server.url).with_prefix("").with_tools(["add", "odd.name"])).await;
    assert_eq!(names(&bare), vec!["add", "odd_name"]);
}

#[tokio::test]
async fn two_servers_never_collide_unless_told_to() {
    let server = start_server().await;
    let set = McpToolSet::connect(&[
        McpServerConfig::http("one", &server.url).with_tools(["add"]),
        McpServerConfig::http("two", &server.url).with_tools(["add"]),
    ])
    .await
    .unwrap();
    assert_eq!(names(&set), vec!["one__add", "two__add"]);
    assert_eq!(set.call(&call("two__add", json!({"a": 4, "b": 4}))).await, ToolOutput::ok("8"));

    let clash = McpToolSet::connect(&[
        McpServerConfig::http("one", &server.url).with_prefix("").with_tools(["add"]),
        McpServerConfig::http("two", &server.url).with_prefix("").with_tools(["add"]),
    ])
    .await
    .unwrap_err();
    assert!(matches!(&clash, McpError::DuplicateTool { name, first_server, second_server, .. }
        if name == "add" && first_server == "one" && second_server == "two"));

    let same_name =
        McpToolSet::connect(&[McpServerConfig::http("one", &server.url), McpServerConfig::http("one", &server.url)])
            .await
            .unwrap_err();
    assert!(matches!(same_name, McpError::DuplicateServer { server } if server == "one"));
}

#[tokio::test]
async fn dropping_the_call_future_cancels_the_request_on_the_server() {
    let server = start_server().await;
    let set = connect(McpServerConfig::http("calc", &server.url)).await;
    let slow = call("calc__slow", json!({"seconds": 30}));

    tokio::select! {
        output = set.call(&slow) => panic!("the slow call finished: {output:?}"),
        () = server.state.slow_started.notified() => {}
    }
    // The call future is dropped here, mid-request.
    tokio::time::timeout(Duration::from_secs(5), server.state.cancelled_signal.notified())
        .await
        .expect("the server never saw the cancellation");
    assert_eq!(server.state.cancelled.load(Ordering::SeqCst), 1);

    // The connection is still usable.
    assert_eq!(set.call(&call("calc__add", json!({"a": 1, "b": 2}))).await, ToolOutput::ok("3"));
}

#[tokio::test]
async fn headers_are_sent_with_env_expansion() {
    let server = start_server().await;
    let config =
        McpServerConfig::http("secure", &server.secure_url).with_header("Authorization", "Bearer ${SECURE_TOKEN}");

    let set = McpToolSet::connect_with_env(std::slice::from_ref(&config), |var| {
        (var == "SECURE_TOKEN").then(|| TOKEN.to_owned())
    })
    .await
    .unwrap();
    assert_eq!(set.call(&call("secure__add", json!({"a": 20, "b": 22}))).await, ToolOutput::ok("42"));

    let missing = McpToolSet::connect_with_env(std::slice::from_ref(&config), |_| None).await.unwrap_err();
    assert!(
        matches!(&missing, McpError::MissingEnvVar { var, server, .. } if var == "SECURE_TOKEN" && server == "secure")
    );

    let wrong =
        McpToolSet::connect_with_env(std::slice::from_ref(&config), |_| Some("wrong".into())).await.unwrap_err();
    let message = wrong.to_string();
    assert!(message.contains("MCP server `secure`"), "{message}");
    assert!(!message.contains("wrong"), "the header value must not be echoed: {message}");
    assert!(message.contains("401"), "{message}");
}

#[tokio::test]
async fn unreachable_server_is_an_error_naming_it() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let err = McpToolSet::connect(&[McpServerConfig::http("gone", format!("http://{addr}/mcp")).with_timeout_secs(10)])
        .await
        .unwrap_err();
    assert!(matches!(err, McpError::Handshake { .. } | McpError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("MCP server `gone`"), "{err}");
}

#[tokio::test]
async fn calls_after_shutdown_fail_with_the_server_name() {
    let server = start_server().await;
    let set = connect(McpServerConfig::http("calc", &server.url)).await;
    set.shutdown().await;
    let output = set.call(&call("calc__add", json!({"a": 1, "b": 2}))).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("MCP server `calc`"), "{}", output.content);
    // A second shutdown is harmless.
    set.shutdown().await;
}
