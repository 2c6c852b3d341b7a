//! `McpToolSet` against real MCP servers running as child processes over stdio: this crate's
//! `runtools-mcp-test-server` binary (and, for the timeout, `sleep`, which never answers).
//! Covers listing, calls, start failures, a server that exits, `${VAR}` expansion reaching the
//! child, cancellation, and that shutdown and drop leave no process behind.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use std::time::{Duration, Instant};

use runtools_agent::toolset::{ToolCall, ToolOutput, ToolSet};
use runtools_mcp::{McpError, McpServerConfig, McpToolSet};
use runtools_protocol::agent::ToolStatus;
use serde_json::{Value, json};

const SERVER: &str = env!("CARGO_BIN_EXE_runtools-mcp-test-server");

fn local() -> McpServerConfig {
    McpServerConfig::stdio("local", SERVER, [] as [&str; 0])
}

fn call(name: &str, input: Value) -> ToolCall {
    ToolCall { id: "call-1".into(), name: name.into(), input }
}

/// Whether `pid` is a live process (a zombie awaiting its reaper counts as gone).
fn is_running(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after the parenthesised command name.
        Ok(stat) => stat.rsplit(')').next().and_then(|rest| rest.trim_start().chars().next()) != Some('Z'),
        Err(_) => false,
    }
}

async fn wait_until_gone(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !is_running(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

async fn server_pid(set: &McpToolSet, tool: &str) -> u32 {
    let output = set.call(&call(tool, json!({}))).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    output.content.parse().unwrap()
}

#[tokio::test]
async fn lists_and_calls_tools_of_a_child_process() {
    let set = McpToolSet::connect(&[local()]).await.unwrap();
    let names: Vec<String> = set.specs().into_iter().map(|spec| spec.name).collect();
    assert_eq!(names.len(), 10, "{names:?}");
    assert_eq!(names[0], "local__add");
    assert!(names.contains(&"local__odd_name".to_string()));

    assert_eq!(set.call(&call("local__add", json!({"a": 2, "b": 3}))).await, ToolOutput::ok("5"));
    assert_eq!(set.call(&call("local__fail", json!({}))).await, ToolOutput::error("this tool always fails"));
    assert_eq!(set.call(&call("local__odd_name", json!({}))).await, ToolOutput::ok("odd tool ran"));
    set.shutdown().await;
}

#[tokio::test]
async fn a_missing_command_names_the_server_and_the_command() {
    let config = McpServerConfig::stdio("github", "/nonexistent/runtools-no-such-mcp-server", ["stdio"]);
    let err = McpToolSet::connect(&[config]).await.unwrap_err();
    assert!(matches!(&err, McpError::Spawn { server, command, .. }
        if server == "github" && command == "/nonexistent/runtools-no-such-mcp-server"));
    let message = err.to_string();
    assert!(message.contains("`github`") && message.contains("/nonexistent/runtools-no-such-mcp-server"), "{message}");
}

#[tokio::test]
async fn a_server_that_dies_at_startup_is_reported_with_its_stderr() {
    let config = McpServerConfig::stdio("github", SERVER, ["--fail-startup"]);
    let err = McpToolSet::connect(&[config]).await.unwrap_err();
    let McpError::Handshake { server, stderr, .. } = &err else { panic!("expected a handshake error, got {err:?}") };
    assert_eq!(server, "github");
    assert_eq!(stderr.as_deref(), Some("test server: GITHUB_TOKEN is missing, cannot start"));
    assert!(err.to_string().contains("GITHUB_TOKEN is missing"), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let started = Instant::now();
    let config = McpServerConfig::stdio("mute", "sleep", ["30"]).with_timeout_secs(1);
    let err = McpToolSet::connect(&[config]).await.unwrap_err();
    assert!(matches!(&err, McpError::Timeout { server, .. } if server == "mute"), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[tokio::test]
async fn after_the_server_exits_calls_fail_cleanly() {
    let set = McpToolSet::connect(&[local()]).await.unwrap();
    let pid = server_pid(&set, "local__pid").await;

    let exit = set.call(&call("local__exit", json!({}))).await;
    assert_eq!(exit.status, ToolStatus::Error);
    assert!(exit.content.contains("MCP server `local`"), "{}", exit.content);
    assert!(wait_until_gone(pid, Duration::from_secs(5)).await, "the server process is still there");

    let later = set.call(&call("local__add", json!({"a": 1, "b": 1}))).await;
    assert_eq!(later.status, ToolStatus::Error);
    assert!(later.content.contains("MCP server `local`") && later.content.contains("closed"), "{}", later.content);
}

#[tokio::test]
async fn env_references_reach_the_child() {
    // From the process environment: PATH is always set.
    let host_path = std::env::var("PATH").unwrap();
    let config = local().with_env("RUNTOOLS_MCP_ECHO", "[${PATH}]");
    let set = McpToolSet::connect(std::slice::from_ref(&config)).await.unwrap();
    let echoed = set.call(&call("local__echo_env", json!({"name": "RUNTOOLS_MCP_ECHO"}))).await;
    assert_eq!(echoed, ToolOutput::ok(format!("[{host_path}]")));
    set.shutdown().await;

    // From a caller-supplied lookup, with `$$` escaping.
    let config = local().with_env("GITHUB_PERSONAL_ACCESS_TOKEN", "${GITHUB_TOKEN}").with_env("PRICE", "$$5");
    let set = McpToolSet::connect_with_env(std::slice::from_ref(&config), |var| {
        (var == "GITHUB_TOKEN").then(|| "ghp_example".to_owned())
    })
    .await
    .unwrap();
    let token = set.call(&call("local__echo_env", json!({"name": "GITHUB_PERSONAL_ACCESS_TOKEN"}))).await;
    assert_eq!(token, ToolOutput::ok("ghp_example"));
    assert_eq!(set.call(&call("local__echo_env", json!({"name": "PRICE"}))).await, ToolOutput::ok("$5"));
    set.shutdown().await;

    let missing = McpToolSet::connect_with_env(&[config], |_| None).await.unwrap_err();
    assert!(missing.to_string().contains("GITHUB_TOKEN"), "{missing}");
}

#[tokio::test]
async fn dropping_a_call_cancels_it_in_the_child() {
    let set = McpToolSet::connect(&[local()]).await.unwrap();
    let slow = call("local__slow", json!({"seconds": 30}));
    let abandoned = tokio::time::timeout(Duration::from_millis(500), set.call(&slow)).await;
    assert!(abandoned.is_err(), "the slow call finished early: {abandoned:?}");

    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count = set.call(&call("local__cancellations", json!({}))).await;
        if count == ToolOutput::ok("1") {
            break;
        }
        assert!(Instant::now() < deadline, "the server never saw the cancellation: {count:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    set.shutdown().await;
}

#[tokio::test]
async fn shutdown_stops_the_child() {
    let set = McpToolSet::connect(&[local()]).await.unwrap();
    let pid = server_pid(&set, "local__pid").await;
    assert!(is_running(pid));
    set.shutdown().await;
    assert!(wait_until_gone(pid, Duration::from_secs(2)).await, "the server outlived shutdown");
    let output = set.call(&call("local__add", json!({"a": 1, "b": 1}))).await;
    assert_eq!(output.status, ToolStatus::Error);
}

#[tokio::test]
async fn dropping_the_toolset_stops_the_child() {
    let set = McpToolSet::connect(&[local()]).await.unwrap();
    let pid = server_pid(&set, "local__pid").await;
    drop(set);
    assert!(wait_until_gone(pid, Duration::from_secs(10)).await, "the server outlived the dropped toolset");
}

#[tokio::test]
async fn dropping_the_toolset_stops_a_child_that_ignores_its_stdin_closing() {
    let set = McpToolSet::connect(&[McpServerConfig::stdio("stubborn", SERVER, ["--linger"])]).await.unwrap();
    let pid = server_pid(&set, "stubborn__pid").await;
    drop(set);
    // Its stdin is closed at once; it is sent SIGTERM when it has not exited 3 s later.
    assert!(wait_until_gone(pid, Duration::from_secs(15)).await, "the lingering server outlived the dropped toolset");
}

#[tokio::test]
async fn several_stdio_servers_side_by_side() {
    let set = McpToolSet::connect(&[
        McpServerConfig::stdio("first", SERVER, [] as [&str; 0]).with_tools(["pid"]),
        McpServerConfig::stdio("second", SERVER, [] as [&str; 0]).with_tools(["pid"]),
    ])
    .await
    .unwrap();
    let first = server_pid(&set, "first__pid").await;
    let second = server_pid(&set, "second__pid").await;
    assert_ne!(first, second, "each server is its own process");
    set.shutdown().await;
    assert!(!is_running(first) && !is_running(second));
}
