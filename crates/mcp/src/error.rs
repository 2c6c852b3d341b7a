//! The errors of this crate: [`McpError`] for configuring and connecting to MCP servers, and
//! [`CombineError`] for merging tool sets. Every variant names the server (and tool, where there
//! is one) it is about, so a message read in a log says what to fix.

use std::time::Duration;

/// Configuring or connecting to an MCP server failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum McpError {
    /// The configuration is invalid (an empty name, an unparsable URL, a reserved header, …).
    #[error("MCP server `{server}`: invalid configuration: {reason}")]
    InvalidConfig { server: String, reason: String },

    /// Two configured servers share a name.
    #[error("two MCP servers are named `{server}`; server names must be unique")]
    DuplicateServer { server: String },

    /// A `${VAR}` reference names a variable that is not set.
    #[error("MCP server `{server}`: {field} references `${{{var}}}`, but the environment variable `{var}` is not set")]
    MissingEnvVar { server: String, field: String, var: String },

    /// A `${` without its closing `}`, or a variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("MCP server `{server}`: {field} has a malformed variable reference: {reason}")]
    BadEnvReference { server: String, field: String, reason: String },

    /// The stdio server's command could not be started.
    #[error("MCP server `{server}`: cannot start `{command}`: {source}{}", spawn_hint(source))]
    Spawn {
        server: String,
        command: String,
        #[source]
        source: std::io::Error,
    },

    /// The server started (or the URL was reached) but the MCP handshake failed.
    #[error("MCP server `{server}`: handshake failed: {reason}{}", stderr_suffix(stderr))]
    Handshake { server: String, reason: String, stderr: Option<String> },

    /// Listing the server's tools failed after the handshake.
    #[error("MCP server `{server}`: listing its tools failed: {reason}{}", stderr_suffix(stderr))]
    ListTools { server: String, reason: String, stderr: Option<String> },

    /// Connecting (start, handshake and tool listing) took longer than `timeout_secs`.
    #[error("MCP server `{server}`: not ready within {}s{}", timeout.as_secs(), stderr_suffix(stderr))]
    Timeout { server: String, timeout: Duration, stderr: Option<String> },

    /// Two tools would be exposed under the same name.
    #[error(
        "tool name `{name}` is exposed twice: by tool `{first_tool}` of MCP server `{first_server}` and by tool \
         `{second_tool}` of MCP server `{second_server}`; give one of the servers another `prefix`"
    )]
    DuplicateTool { name: String, first_server: String, first_tool: String, second_server: String, second_tool: String },
}

fn spawn_hint(source: &std::io::Error) -> &'static str {
    match source.kind() {
        std::io::ErrorKind::NotFound => " (is the command installed, and on PATH when it has no `/`?)",
        std::io::ErrorKind::PermissionDenied => " (is it executable?)",
        _ => "",
    }
}

fn stderr_suffix(stderr: &Option<String>) -> String {
    match stderr {
        Some(tail) if !tail.trim().is_empty() => format!("; its stderr ended with:\n{}", tail.trim_end()),
        _ => String::new(),
    }
}

/// Merging tool sets failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CombineError {
    /// Two of the merged sets list a tool with the same name.
    #[error("tool `{name}` is offered by both {first} and {second}")]
    DuplicateTool { name: String, first: String, second: String },
}
