//! The MCP server the tests of `runtools-mcp` talk to: a handful of tools, each exercising one
//! behaviour of the client (text, errors, structured content, images, cancellation, odd names,
//! environment, exiting), listed three per page so clients must follow `nextCursor`. Shared by
//! the stdio binary (`main.rs`) and the in-process streamable HTTP tests (`#[path]`-included).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation, JsonObject, ListToolsResult,
    PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Value, json};

/// Tools per `tools/list` page.
pub const PAGE_SIZE: usize = 3;

/// What the server has seen, for tests to observe.
#[derive(Debug, Default)]
pub struct TestState {
    /// Signalled each time `slow` starts.
    pub slow_started: tokio::sync::Notify,
    /// How many `slow` calls were cancelled by the client.
    pub cancelled: AtomicUsize,
    /// Signalled each time a `slow` call is cancelled.
    pub cancelled_signal: tokio::sync::Notify,
}

#[derive(Debug, Clone)]
pub struct TestServer {
    pub state: Arc<TestState>,
}

impl TestServer {
    pub fn new(state: Arc<TestState>) -> Self {
        Self { state }
    }
}

fn object(value: Value) -> Arc<JsonObject> {
    match value {
        Value::Object(map) => Arc::new(map),
        _ => Arc::new(JsonObject::new()),
    }
}

fn empty_schema() -> Arc<JsonObject> {
    object(json!({"type": "object", "properties": {}}))
}

/// Every tool, in listing order.
pub fn tools() -> Vec<Tool> {
    vec![
        Tool::new(
            "add",
            "Adds two numbers.",
            object(json!({
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"]
            })),
        ),
        Tool::new("fail", "Always fails (isError).", empty_schema()),
        Tool::new(
            "slow",
            "Waits `seconds` unless cancelled.",
            object(json!({"type": "object", "properties": {"seconds": {"type": "number"}}})),
        ),
        Tool::new("structured", "Returns only structuredContent.", empty_schema()),
        Tool::new("image", "Returns a 5-byte PNG and a caption.", empty_schema()),
        Tool::new("odd.name", "A name providers do not accept.", empty_schema()),
        Tool::new(
            "echo_env",
            "Returns the value of an environment variable.",
            object(json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]})),
        ),
        Tool::new("cancellations", "How many calls were cancelled so far.", empty_schema()),
        Tool::new("pid", "The server's process id.", empty_schema()),
        Tool::new("exit", "Exits the server process at once.", empty_schema()),
    ]
}

fn number(args: &JsonObject, key: &str) -> Result<f64, ErrorData> {
    args.get(key)
        .and_then(Value::as_f64)
        .ok_or_else(|| ErrorData::invalid_params(format!("`{key}` must be a number"), None))
}

fn text(text: impl Into<String>) -> Result<CallToolResponse, ErrorData> {
    Ok(CallToolResult::success(vec![ContentBlock::text(text)]).into())
}

impl ServerHandler for TestServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("runtools-mcp-test-server", "0.0.0"))
    }

    async fn list_tools(
        &self,
        request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let all = tools();
        let start = match request.and_then(|r| r.cursor) {
            Some(cursor) => cursor.parse::<usize>().map_err(|_| ErrorData::invalid_params("bad cursor", None))?,
            None => 0,
        };
        let end = (start + PAGE_SIZE).min(all.len());
        let page = all.get(start..end).map(<[Tool]>::to_vec).unwrap_or_default();
        let mut result = ListToolsResult::with_all_items(page);
        result.next_cursor = (end < all.len()).then(|| end.to_string());
        Ok(result)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let args = request.arguments.unwrap_or_default();
        match request.name.as_ref() {
            "add" => {
                let sum = number(&args, "a")? + number(&args, "b")?;
                text(sum.to_string())
            }
            "fail" => Ok(CallToolResult::error(vec![ContentBlock::text("this tool always fails")]).into()),
            "slow" => {
                let seconds = args.get("seconds").and_then(Value::as_f64).unwrap_or(30.0);
                self.state.slow_started.notify_one();
                tokio::select! {
                    () = context.ct.cancelled() => {
                        self.state.cancelled.fetch_add(1, Ordering::SeqCst);
                        self.state.cancelled_signal.notify_one();
                        Err(ErrorData::internal_error("cancelled", None))
                    }
                    () = tokio::time::sleep(Duration::from_secs_f64(seconds)) => text("finished"),
                }
            }
            "structured" => {
                let mut result = CallToolResult::success(vec![]);
                result.structured_content = Some(json!({"temperature": 22.5, "unit": "C"}));
                Ok(result.into())
            }
            "image" => Ok(CallToolResult::success(vec![
                ContentBlock::text("a tiny picture"),
                ContentBlock::image("aGVsbG8=", "image/png"),
            ])
            .into()),
            "odd.name" => text("odd tool ran"),
            "echo_env" => {
                let name = args.get("name").and_then(Value::as_str).unwrap_or_default();
                match std::env::var(name) {
                    Ok(value) => text(value),
                    Err(_) => {
                        Ok(CallToolResult::error(vec![ContentBlock::text(format!("`{name}` is not set"))]).into())
                    }
                }
            }
            "cancellations" => text(self.state.cancelled.load(Ordering::SeqCst).to_string()),
            "pid" => text(std::process::id().to_string()),
            "exit" => std::process::exit(3),
            other => Err(ErrorData::invalid_params(format!("no tool named `{other}`"), None)),
        }
    }
}
