//! [`McpToolSet`]: the tools of one or more connected MCP servers, exposed to the agent loop as
//! a [`ToolSet`]. Owns the connections (and so the stdio child processes): routing each call to
//! its server's `tools/call`, turning the reply into a [`ToolOutput`], and shutting down.

use std::collections::HashMap;
use std::time::Duration;

use rmcp::ServiceError;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Tool};
use rmcp::service::{Peer, RoleClient};
use runtools_agent::toolset::{ToolCall, ToolOutput, ToolSet};
use runtools_protocol::agent::ToolSpec;

use crate::config::McpServerConfig;
use crate::connection::{self, Client, StderrTail, describe_service_error};
use crate::error::McpError;
use crate::{names, render};

/// How long [`McpToolSet::shutdown`] waits for each server to close before leaving it to be
/// killed in the background.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(10);

/// The tools of connected MCP servers.
///
/// Dropping it closes every connection: stdio servers have their stdin closed and are then
/// killed (their whole process group) by the transport's cleanup, and as a last resort by the
/// child handle's kill-on-drop. [`McpToolSet::shutdown`] does the same and waits for it.
pub struct McpToolSet {
    servers: Vec<Server>,
    tools: Vec<ExposedTool>,
    by_name: HashMap<String, usize>,
}

struct Server {
    name: String,
    peer: Peer<RoleClient>,
    /// Taken by `shutdown`; dropping it also closes the connection.
    client: tokio::sync::Mutex<Option<Client>>,
    stderr: Option<StderrTail>,
}

struct ExposedTool {
    spec: ToolSpec,
    server: usize,
    /// The tool's name on its server.
    remote_name: String,
}

impl std::fmt::Debug for McpToolSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("McpToolSet")
            .field("servers", &self.servers.iter().map(|s| s.name.as_str()).collect::<Vec<_>>())
            .field("tools", &self.tools.len())
            .finish()
    }
}

impl McpToolSet {
    /// Connects to every server (concurrently), lists their tools and builds the name index.
    /// `${VAR}` references are read from the process environment. Fails on the first server
    /// that cannot be started, reached, handshaken with or listed, and on two tools exposed
    /// under one name; connections already made are then closed.
    pub async fn connect(configs: &[McpServerConfig]) -> Result<Self, McpError> {
        Self::connect_with_env(configs, |var| std::env::var(var).ok()).await
    }

    /// [`connect`](Self::connect), with `${VAR}` references resolved by `lookup` (for secrets
    /// kept somewhere other than the process environment).
    pub async fn connect_with_env(
        configs: &[McpServerConfig],
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, McpError> {
        let mut resolved = Vec::with_capacity(configs.len());
        for config in configs {
            if resolved.iter().any(|r: &crate::config::ResolvedServer| r.name == config.name) {
                return Err(McpError::DuplicateServer { server: config.name.clone() });
            }
            resolved.push(config.resolve(&lookup)?);
        }
        let connections = futures::future::try_join_all(resolved.iter().map(connection::connect)).await?;

        let mut set = McpToolSet { servers: Vec::new(), tools: Vec::new(), by_name: HashMap::new() };
        for (index, (server, connection)) in resolved.iter().zip(connections).enumerate() {
            if let Some(allow) = &server.allow {
                for wanted in allow {
                    if !connection.tools.iter().any(|tool| tool.name == wanted.as_str()) {
                        tracing::warn!(server = %server.name, tool = %wanted, "allow-listed tool is not offered by the MCP server");
                    }
                }
            }
            for tool in &connection.tools {
                if server.allow.as_ref().is_some_and(|allow| !allow.contains(tool.name.as_ref())) {
                    continue;
                }
                set.add_tool(index, &server.name, &server.prefix, tool)?;
            }
            set.servers.push(Server {
                name: server.name.clone(),
                peer: connection.client.peer().clone(),
                client: tokio::sync::Mutex::new(Some(connection.client)),
                stderr: connection.stderr,
            });
        }
        Ok(set)
    }

    fn add_tool(&mut self, server: usize, server_name: &str, prefix: &str, tool: &Tool) -> Result<(), McpError> {
        let name = names::exposed_name(prefix, &tool.name);
        if let Some(&existing) = self.by_name.get(&name) {
            let first = &self.tools[existing];
            let first_server = self.servers.get(first.server).map_or(server_name, |s| s.name.as_str());
            return Err(McpError::DuplicateTool {
                name,
                first_server: first_server.into(),
                first_tool: first.remote_name.clone(),
                second_server: server_name.into(),
                second_tool: tool.name.to_string(),
            });
        }
        if name != tool.name {
            tracing::debug!(server = server_name, tool = %tool.name, exposed = %name, "MCP tool exposed under another name");
        }
        let description = tool.description.as_deref().or(tool.title.as_deref()).unwrap_or_default().to_owned();
        let spec = ToolSpec {
            name: name.clone(),
            description,
            input_schema: serde_json::Value::Object((*tool.input_schema).clone()),
        };
        self.by_name.insert(name, self.tools.len());
        self.tools.push(ExposedTool { spec, server, remote_name: tool.name.to_string() });
        Ok(())
    }

    /// The configured servers' names, in configuration order.
    pub fn server_names(&self) -> Vec<&str> {
        self.servers.iter().map(|s| s.name.as_str()).collect()
    }

    /// The exposed names of `server`'s tools (empty for an unknown server).
    pub fn tools_of(&self, server: &str) -> Vec<&str> {
        self.tools
            .iter()
            .filter(|tool| self.servers[tool.server].name == server)
            .map(|tool| tool.spec.name.as_str())
            .collect()
    }

    /// Closes every connection and waits (up to 10 s per server) for stdio servers to exit;
    /// calls made afterwards fail with an error output.
    pub async fn shutdown(&self) {
        futures::future::join_all(self.servers.iter().map(|server| async move {
            let Some(mut client) = server.client.lock().await.take() else { return };
            match client.close_with_timeout(SHUTDOWN_WAIT).await {
                Ok(Some(_)) => tracing::debug!(server = %server.name, "MCP server closed"),
                Ok(None) => tracing::warn!(server = %server.name, "MCP server did not close in time; it is killed in the background"),
                Err(e) => tracing::warn!(server = %server.name, error = %e, "closing the MCP server failed"),
            }
        }))
        .await;
    }

    fn failure(server: &Server, tool: &str, error: &ServiceError, was_closed: bool) -> String {
        match error {
            ServiceError::McpError(data) => {
                let mut text = format!(
                    "MCP server `{}` refused the call to `{tool}`: {} (code {})",
                    server.name, data.message, data.code.0
                );
                if let Some(extra) = &data.data {
                    text.push_str(&format!("; data: {extra}"));
                }
                text
            }
            ServiceError::TransportClosed => {
                let mut text = if was_closed {
                    format!("the connection to MCP server `{}` is closed; `{tool}` was not sent", server.name)
                } else {
                    format!(
                        "the connection to MCP server `{}` closed before `{tool}` returned; it may or may not have run",
                        server.name
                    )
                };
                if let Some(tail) = server.stderr.as_ref().and_then(StderrTail::text) {
                    text.push_str(&format!("; the server's stderr ended with:\n{tail}"));
                }
                text
            }
            other => {
                format!("calling `{tool}` on MCP server `{}` failed: {}", server.name, describe_service_error(other))
            }
        }
    }
}

#[async_trait::async_trait]
impl ToolSet for McpToolSet {
    fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(|tool| tool.spec.clone()).collect()
    }

    /// Dropping the returned future abandons the request: rmcp then sends the server
    /// `notifications/cancelled` for it.
    async fn call(&self, call: &ToolCall) -> ToolOutput {
        let Some(tool) = self.by_name.get(&call.name).map(|&i| &self.tools[i]) else {
            return ToolOutput::denied(format!("no tool named `{}` is available to this agent", call.name));
        };
        let server = &self.servers[tool.server];
        let mut params = CallToolRequestParams::new(tool.remote_name.clone());
        match &call.input {
            serde_json::Value::Object(arguments) => params = params.with_arguments(arguments.clone()),
            serde_json::Value::Null => {}
            other => {
                return ToolOutput::error(format!("the input of `{}` must be a JSON object, not {other}", call.name));
            }
        }
        tracing::debug!(server = %server.name, tool = %tool.remote_name, call_id = %call.id, "calling MCP tool");
        let was_closed = server.peer.is_transport_closed();
        match server.peer.call_tool_once(params).await {
            Ok(CallToolResponse::Complete(result)) => {
                let text = render::result_text(&result);
                if result.is_error == Some(true) { ToolOutput::error(text) } else { ToolOutput::ok(text) }
            }
            Ok(CallToolResponse::InputRequired(_)) => ToolOutput::error(format!(
                "MCP server `{}` asked for user input to run `{}`, which this agent cannot give",
                server.name, tool.remote_name
            )),
            Ok(_) => ToolOutput::error(format!(
                "MCP server `{}` answered `{}` with a deferred task, which this agent does not support",
                server.name, tool.remote_name
            )),
            Err(error) => {
                tracing::warn!(server = %server.name, tool = %tool.remote_name, error = %error, "MCP tool call failed");
                ToolOutput::error(Self::failure(server, &tool.remote_name, &error, was_closed))
            }
        }
    }
}
