//! `CombinedToolSet`: built-in-like tools (a small in-test `ToolSet`) and the tools of a real
//! stdio MCP server offered as one set; calls are routed to the set that lists the tool, and
//! duplicate names are refused when the combination is built, naming both sources.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use std::sync::Arc;

use runtools_agent::toolset::{NoTools, ToolCall, ToolOutput, ToolSet};
use runtools_mcp::{CombineError, CombinedToolSet, McpServerConfig, McpToolSet};
use runtools_protocol::agent::{ToolSpec, ToolStatus};
use serde_json::json;

const SERVER: &str = env!("CARGO_BIN_EXE_runtools-mcp-test-server");

/// Stands in for the built-in tools: each tool answers with its own name and input.
#[derive(Debug)]
struct Builtins(Vec<&'static str>);

#[async_trait::async_trait]
impl ToolSet for Builtins {
    fn specs(&self) -> Vec<ToolSpec> {
        self.0
            .iter()
            .map(|name| ToolSpec {
                name: (*name).into(),
                description: format!("built-in {name}"),
                input_schema: json!({"type": "object"}),
            })
            .collect()
    }

    async fn call(&self, call: &ToolCall) -> ToolOutput {
        if self.0.contains(&call.name.as_str()) {
            ToolOutput::ok(format!("{} ran with {}", call.name, call.input))
        } else {
            ToolOutput::denied(format!("no tool named `{}`", call.name))
        }
    }
}

fn call(name: &str, input: serde_json::Value) -> ToolCall {
    ToolCall { id: "call-1".into(), name: name.into(), input }
}

async fn mcp() -> Arc<McpToolSet> {
    let config = McpServerConfig::stdio("calc", SERVER, [] as [&str; 0]).with_tools(["add", "fail"]);
    Arc::new(McpToolSet::connect(&[config]).await.unwrap())
}

#[tokio::test]
async fn routes_each_call_to_the_set_that_lists_the_tool() {
    let mcp = mcp().await;
    let combined = CombinedToolSet::new(vec![
        Arc::new(Builtins(vec!["bash", "read_file"])),
        Arc::new(NoTools),
        mcp.clone() as Arc<dyn ToolSet>,
    ])
    .unwrap();
    let names: Vec<String> = combined.specs().into_iter().map(|spec| spec.name).collect();
    assert_eq!(names, vec!["bash", "read_file", "calc__add", "calc__fail"]);

    assert_eq!(
        combined.call(&call("bash", json!({"command": "ls"}))).await,
        ToolOutput::ok(r#"bash ran with {"command":"ls"}"#)
    );
    assert_eq!(combined.call(&call("calc__add", json!({"a": 1, "b": 2}))).await, ToolOutput::ok("3"));
    assert_eq!(combined.call(&call("calc__fail", json!({}))).await.status, ToolStatus::Error);

    let unknown = combined.call(&call("calc__pid", json!({}))).await;
    assert_eq!(unknown.status, ToolStatus::Denied);
    assert!(unknown.content.contains("`calc__pid`"), "{}", unknown.content);
    mcp.shutdown().await;
}

#[tokio::test]
async fn duplicate_names_are_refused_naming_both_sources() {
    let mcp = mcp().await;
    let err = CombinedToolSet::named(vec![
        ("built-in tools".into(), Arc::new(Builtins(vec!["bash", "calc__add"])) as Arc<dyn ToolSet>),
        ("mcp".into(), mcp.clone()),
    ])
    .unwrap_err();
    assert_eq!(
        err,
        CombineError::DuplicateTool { name: "calc__add".into(), first: "built-in tools".into(), second: "mcp".into() }
    );
    assert_eq!(err.to_string(), "tool `calc__add` is offered by both built-in tools and mcp");

    // Unnamed sets are named by position and what they are.
    let err =
        CombinedToolSet::new(vec![Arc::new(Builtins(vec!["bash"])), Arc::new(Builtins(vec!["bash"]))]).unwrap_err();
    let message = err.to_string();
    assert!(message.contains("tool set #0 (Builtins([\"bash\"]))") && message.contains("tool set #1"), "{message}");

    let err = CombinedToolSet::new(vec![mcp.clone() as Arc<dyn ToolSet>, mcp.clone()]).unwrap_err();
    assert!(err.to_string().contains("McpToolSet { servers: [\"calc\"]"), "{err}");
    mcp.shutdown().await;
}
