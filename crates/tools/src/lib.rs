//! The built-in agent tools, selected by name as in an agent definition's
//! `tools: ['bash', 'read_file', 'edit_file', 'grep', 'glob', 'web_search']`.
//!
//! [`Toolbox`] implements [`runtools_agent::ToolSet`] over the chosen [`BuiltinTool`]s, all running
//! against one [`ToolContext`]: the run's sandbox (through its envd), the working directory, the
//! user commands run as, the web-search configuration ([`WebSearchConfig`]) and the output limits
//! ([`OutputLimits`]). Every tool but `web_search` works inside the sandbox through envd — `grep`
//! and `glob` run in-process in envd, never as shell commands; `web_search` runs on the host.
//!
//! One module per tool: `bash`, `read_file`, `edit_file`, `grep`, `glob` and [`web_search`]. Each
//! has an input struct whose JSON Schema (`schema`) is the tool's `input_schema`; invalid input is
//! answered with an error output saying what is wrong.

mod bash;
mod context;
mod edit_file;
mod glob;
mod grep;
mod output;
mod read_file;
mod schema;
pub mod web_search;

use runtools_agent::{ToolCall, ToolOutput, ToolSet};
use runtools_protocol::agent::ToolSpec;
use serde::de::DeserializeOwned;

pub use context::{DEFAULT_WORKING_DIR, ToolContext};
pub use output::OutputLimits;
pub use web_search::{SearchProvider, WebSearchConfig, WebSearchConfigError};

/// A built-in tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BuiltinTool {
    Bash,
    ReadFile,
    EditFile,
    Grep,
    Glob,
    WebSearch,
}

impl BuiltinTool {
    pub const ALL: [BuiltinTool; 6] =
        [Self::Bash, Self::ReadFile, Self::EditFile, Self::Grep, Self::Glob, Self::WebSearch];

    /// The name agent definitions and the model use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Bash => bash::NAME,
            Self::ReadFile => read_file::NAME,
            Self::EditFile => edit_file::NAME,
            Self::Grep => grep::NAME,
            Self::Glob => glob::NAME,
            Self::WebSearch => web_search::NAME,
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|tool| tool.name() == name)
    }

    /// How the model is told about the tool.
    pub fn spec(self) -> ToolSpec {
        match self {
            Self::Bash => bash::spec(),
            Self::ReadFile => read_file::spec(),
            Self::EditFile => edit_file::spec(),
            Self::Grep => grep::spec(),
            Self::Glob => glob::spec(),
            Self::WebSearch => web_search::spec(),
        }
    }

    async fn call(self, context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
        match self {
            Self::Bash => bash::call(context, input).await,
            Self::ReadFile => read_file::call(context, input).await,
            Self::EditFile => edit_file::call(context, input).await,
            Self::Grep => grep::call(context, input).await,
            Self::Glob => glob::call(context, input).await,
            Self::WebSearch => web_search::call(context, input).await,
        }
    }
}

/// Names every built-in tool, for messages.
fn known_names() -> String {
    BuiltinTool::ALL.map(BuiltinTool::name).join(", ")
}

/// Why a [`Toolbox`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ToolboxError {
    #[error("unknown tool `{name}` (the built-in tools are: {known})")]
    UnknownTool { name: String, known: String },
}

/// The built-in tools an agent may use, over one sandbox.
#[derive(Debug)]
pub struct Toolbox {
    tools: Vec<BuiltinTool>,
    specs: Vec<ToolSpec>,
    context: ToolContext,
}

impl Toolbox {
    /// The tools called `names` (in that order; a name given twice counts once). An unknown name
    /// is an error listing the known ones.
    pub fn new<I, S>(names: I, context: ToolContext) -> Result<Self, ToolboxError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut tools = Vec::new();
        for name in names {
            let name = name.as_ref();
            let tool = BuiltinTool::from_name(name)
                .ok_or_else(|| ToolboxError::UnknownTool { name: name.to_owned(), known: known_names() })?;
            if !tools.contains(&tool) {
                tools.push(tool);
            }
        }
        Ok(Self::with_tools(tools, context))
    }

    /// Every built-in tool.
    pub fn all(context: ToolContext) -> Self {
        Self::with_tools(BuiltinTool::ALL.to_vec(), context)
    }

    fn with_tools(tools: Vec<BuiltinTool>, context: ToolContext) -> Self {
        let specs = tools.iter().map(|tool| tool.spec()).collect();
        Self { tools, specs, context }
    }

    pub fn tools(&self) -> &[BuiltinTool] {
        &self.tools
    }

    pub fn context(&self) -> &ToolContext {
        &self.context
    }
}

#[async_trait::async_trait]
impl ToolSet for Toolbox {
    fn specs(&self) -> Vec<ToolSpec> {
        self.specs.clone()
    }

    async fn call(&self, call: &ToolCall) -> ToolOutput {
        let Some(tool) = self.tools.iter().copied().find(|tool| tool.name() == call.name) else {
            let available = self.tools.iter().map(|tool| tool.name()).collect::<Vec<_>>().join(", ");
            return ToolOutput::denied(format!(
                "no tool named `{}` is available to this agent (available: {})",
                call.name,
                if available.is_empty() { "none" } else { &available }
            ));
        };
        let started = std::time::Instant::now();
        let output = tool.call(&self.context, &call.input).await;
        tracing::debug!(
            tool = tool.name(),
            call_id = %call.id,
            status = ?output.status,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "tool call finished"
        );
        output
    }
}

/// `input` as a tool's input struct, or an error output saying what is wrong with it.
pub(crate) fn parse_input<T: DeserializeOwned>(tool: &str, input: &serde_json::Value) -> Result<T, ToolOutput> {
    // Some models send `null` or nothing for "no arguments".
    let input = if input.is_null() { &serde_json::Value::Object(Default::default()) } else { input };
    serde_json::from_value(input.clone())
        .map_err(|error| ToolOutput::error(format!("invalid input for {tool}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tool_is_found_by_its_name() {
        for tool in BuiltinTool::ALL {
            assert_eq!(BuiltinTool::from_name(tool.name()), Some(tool));
            let spec = tool.spec();
            assert_eq!(spec.name, tool.name());
            assert!(spec.description.len() > 100, "{} needs a real description", spec.name);
            assert_eq!(spec.input_schema["type"], "object", "{}", spec.name);
            assert!(spec.input_schema.get("$schema").is_none());
        }
        assert_eq!(known_names(), "bash, read_file, edit_file, grep, glob, web_search");
        assert_eq!(BuiltinTool::from_name("Bash"), None);
    }

    #[test]
    fn invalid_input_says_what_is_wrong() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        #[allow(dead_code)]
        struct Input {
            path: String,
        }
        let error = parse_input::<Input>("read_file", &serde_json::json!({})).unwrap_err();
        assert_eq!(error.status, runtools_protocol::agent::ToolStatus::Error);
        assert!(error.content.contains("invalid input for read_file: missing field `path`"), "{}", error.content);
        let error = parse_input::<Input>("read_file", &serde_json::json!({"path": 3})).unwrap_err();
        assert!(error.content.contains("invalid type"), "{}", error.content);
        let error = parse_input::<Input>("read_file", &serde_json::json!({"path": "a", "bogus": 1})).unwrap_err();
        assert!(error.content.contains("unknown field `bogus`"), "{}", error.content);
    }
}
