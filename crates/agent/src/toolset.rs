//! The interface between the agent loop and the tools it may call: a [`ToolSet`] describes its
//! tools to the model ([`ToolSpec`]s) and executes a [`ToolCall`] into a [`ToolOutput`]. The
//! built-in tools (`runtools-tools`), MCP servers and runners all plug in through it.
//!
//! Cancellation is by dropping the future returned by [`ToolSet::call`]: implementations must
//! stop their work (kill the process, close the stream) when dropped.

use runtools_protocol::agent::{ToolSpec, ToolStatus};

/// A call the model asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The provider's call id, echoed in the result.
    pub id: String,
    pub name: String,
    pub input: serde_json::Value,
}

/// What a tool call produced.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolOutput {
    pub status: ToolStatus,
    /// What the model sees.
    pub content: String,
    /// For commands.
    pub exit_code: Option<i32>,
    /// For edits: a unified diff of the change.
    pub diff: Option<String>,
}

impl ToolOutput {
    pub fn ok(content: impl Into<String>) -> Self {
        Self { status: ToolStatus::Ok, content: content.into(), exit_code: None, diff: None }
    }

    /// The tool failed (or its input was invalid); `content` tells the model why.
    pub fn error(content: impl Into<String>) -> Self {
        Self { status: ToolStatus::Error, content: content.into(), exit_code: None, diff: None }
    }

    pub fn denied(content: impl Into<String>) -> Self {
        Self { status: ToolStatus::Denied, content: content.into(), exit_code: None, diff: None }
    }

    pub fn timeout(content: impl Into<String>) -> Self {
        Self { status: ToolStatus::Timeout, content: content.into(), exit_code: None, diff: None }
    }

    pub fn with_exit_code(mut self, exit_code: Option<i32>) -> Self {
        self.exit_code = exit_code;
        self
    }

    pub fn with_diff(mut self, diff: Option<String>) -> Self {
        self.diff = diff;
        self
    }
}

/// Tools an agent may call.
#[async_trait::async_trait]
pub trait ToolSet: Send + Sync + std::fmt::Debug {
    /// The tools, as the model is told about them.
    fn specs(&self) -> Vec<ToolSpec>;

    /// Runs one call. Unknown tools and invalid input are answered with an error output, never
    /// a panic; the loop applies timeouts and cancellation by dropping the future.
    async fn call(&self, call: &ToolCall) -> ToolOutput;
}

/// No tools at all.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTools;

#[async_trait::async_trait]
impl ToolSet for NoTools {
    fn specs(&self) -> Vec<ToolSpec> {
        Vec::new()
    }

    async fn call(&self, call: &ToolCall) -> ToolOutput {
        ToolOutput::denied(format!("no tool named `{}` is available to this agent", call.name))
    }
}
