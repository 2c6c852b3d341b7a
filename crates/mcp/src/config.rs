//! What an operator writes to add an MCP server: [`McpServerConfig`] and its transport
//! ([`McpTransport`]: a stdio child process or a streamable HTTP endpoint), plus the checks and
//! `${VAR}` expansion that turn it into a [`ResolvedServer`] ready to connect.
//!
//! In TOML:
//!
//! ```toml
//! [[mcp_servers]]
//! name = "github"                       # unique; the default tool-name prefix
//! tools = ["create_issue", "get_issue"] # optional allow-list of the server's tool names
//! prefix = "gh"                         # optional; tools are exposed as `gh__create_issue`
//! timeout_secs = 30                     # optional; start + handshake + tool listing
//! transport = { type = "stdio", command = "github-mcp-server", args = ["stdio"], env = { GITHUB_PERSONAL_ACCESS_TOKEN = "${GITHUB_TOKEN}" } }
//!
//! [[mcp_servers]]
//! name = "remote"
//! transport = { type = "http", url = "https://mcp.example.com/mcp", headers = { Authorization = "Bearer ${REMOTE_TOKEN}" } }
//! ```
//!
//! `${VAR}` is replaced by the host's environment variable `VAR` in `env` values, `args`, the
//! `url` and `headers` values, so secrets stay out of the file; `$$` is a literal `$`. A variable
//! that is not set is an error naming it.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::McpError;
use crate::names;

/// Connect timeout when `timeout_secs` is not given.
pub const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// One MCP server whose tools the agent may call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    /// Unique among the configured servers; used in logs and errors, and as the default prefix.
    pub name: String,
    /// How to reach the server.
    pub transport: McpTransport,
    /// Only these tools of the server (by the server's own names) are exposed; all when absent.
    /// A listed tool the server does not have is logged as a warning, not an error, since what a
    /// server offers can depend on its version and the token's scopes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Tools are exposed as `<prefix>__<tool>`; defaults to the server name. An empty prefix
    /// exposes the server's names as they are. Exposed names are sanitised to
    /// `^[a-zA-Z0-9_-]{1,64}$` (what model providers accept): other characters become `_`, and a
    /// name longer than 64 is cut and ends with a hash of the full name to stay unique.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Seconds allowed for starting the server, the handshake and listing its tools.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    DEFAULT_TIMEOUT_SECS
}

/// How an MCP server is reached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum McpTransport {
    /// A child process speaking MCP over its stdin and stdout. It inherits the host's
    /// environment, plus `env`; its stderr is logged (at debug) and its tail is quoted in errors.
    Stdio {
        /// The program, looked up in `PATH` when it has no `/`.
        command: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        args: Vec<String>,
        /// Extra environment variables for the child; values may use `${VAR}`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        env: BTreeMap<String, String>,
        /// Working directory of the child; the host's when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cwd: Option<PathBuf>,
    },
    /// The MCP streamable HTTP transport.
    #[serde(alias = "streamable_http")]
    Http {
        /// The MCP endpoint, e.g. `https://api.githubcopilot.com/mcp/`.
        url: String,
        /// Sent with every request, e.g. `Authorization = "Bearer ${TOKEN}"`; values may use `${VAR}`.
        #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
        headers: BTreeMap<String, String>,
    },
}

impl McpServerConfig {
    /// A stdio server running `command args…`.
    pub fn stdio(
        name: impl Into<String>,
        command: impl Into<String>,
        args: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        Self::new(
            name,
            McpTransport::Stdio {
                command: command.into(),
                args: args.into_iter().map(Into::into).collect(),
                env: BTreeMap::new(),
                cwd: None,
            },
        )
    }

    /// A streamable HTTP server at `url`.
    pub fn http(name: impl Into<String>, url: impl Into<String>) -> Self {
        Self::new(name, McpTransport::Http { url: url.into(), headers: BTreeMap::new() })
    }

    fn new(name: impl Into<String>, transport: McpTransport) -> Self {
        Self { name: name.into(), transport, tools: None, prefix: None, timeout_secs: DEFAULT_TIMEOUT_SECS }
    }

    /// Adds an environment variable for a stdio server (ignored for HTTP).
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        if let McpTransport::Stdio { env, .. } = &mut self.transport {
            env.insert(key.into(), value.into());
        }
        self
    }

    /// Sets the working directory of a stdio server (ignored for HTTP).
    pub fn with_cwd(mut self, dir: impl Into<PathBuf>) -> Self {
        if let McpTransport::Stdio { cwd, .. } = &mut self.transport {
            *cwd = Some(dir.into());
        }
        self
    }

    /// Adds a header for an HTTP server (ignored for stdio).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        if let McpTransport::Http { headers, .. } = &mut self.transport {
            headers.insert(name.into(), value.into());
        }
        self
    }

    /// Exposes only these tools of the server.
    pub fn with_tools(mut self, tools: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.tools = Some(tools.into_iter().map(Into::into).collect());
        self
    }

    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    pub fn with_timeout_secs(mut self, secs: u64) -> Self {
        self.timeout_secs = secs;
        self
    }

    /// Checks the configuration and expands `${VAR}` references through `lookup`.
    pub(crate) fn resolve(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<ResolvedServer, McpError> {
        let server = self.name.clone();
        let invalid = |reason: String| McpError::InvalidConfig { server: server.clone(), reason };
        if self.name.trim().is_empty() {
            return Err(invalid("the server name is empty".into()));
        }
        if self.timeout_secs == 0 {
            return Err(invalid("timeout_secs must be at least 1".into()));
        }
        let expand = |field: String, value: &str| expand_vars(value, lookup, &server, &field);
        let transport = match &self.transport {
            McpTransport::Stdio { command, args, env, cwd } => {
                if command.trim().is_empty() {
                    return Err(invalid("the stdio command is empty".into()));
                }
                if let Some(dir) = cwd
                    && !dir.is_dir()
                {
                    return Err(invalid(format!("cwd `{}` is not a directory", dir.display())));
                }
                let args = args.iter().enumerate().map(|(i, arg)| expand(format!("args[{i}]"), arg)).collect::<Result<
                    Vec<_>,
                    _,
                >>(
                )?;
                let env = env
                    .iter()
                    .map(|(key, value)| Ok((key.clone(), expand(format!("env `{key}`"), value)?)))
                    .collect::<Result<Vec<_>, McpError>>()?;
                ResolvedTransport::Stdio { command: command.clone(), args, env, cwd: cwd.clone() }
            }
            McpTransport::Http { url, headers } => {
                let url = expand("url".into(), url)?;
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    return Err(invalid(format!("url `{url}` is not an http:// or https:// URL")));
                }
                let mut parsed = Vec::with_capacity(headers.len());
                for (key, value) in headers {
                    let value = expand(format!("header `{key}`"), value)?;
                    let name = http::HeaderName::from_bytes(key.as_bytes())
                        .map_err(|_| invalid(format!("`{key}` is not a valid HTTP header name")))?;
                    if RESERVED_HEADERS.contains(&name.as_str()) {
                        return Err(invalid(format!("header `{key}` is set by the MCP transport itself")));
                    }
                    // The value may hold a secret: never echo it.
                    let value = http::HeaderValue::from_str(&value).map_err(|_| {
                        invalid(format!("the value of header `{key}` is not a valid HTTP header value"))
                    })?;
                    parsed.push((name, value));
                }
                ResolvedTransport::Http { url, headers: parsed }
            }
        };
        let prefix = names::sanitize_prefix(self.prefix.as_deref().unwrap_or(&self.name));
        Ok(ResolvedServer {
            name: self.name.clone(),
            prefix,
            allow: self.tools.as_ref().map(|tools| tools.iter().cloned().collect()),
            timeout: Duration::from_secs(self.timeout_secs),
            transport,
        })
    }
}

/// Headers the streamable HTTP transport manages (lower-case, as `http` normalises names).
const RESERVED_HEADERS: &[&str] =
    &["accept", "content-type", "mcp-session-id", "mcp-protocol-version", "last-event-id"];

/// A checked configuration with its variables expanded.
#[derive(Debug)]
pub(crate) struct ResolvedServer {
    pub name: String,
    /// Already sanitised; empty for none.
    pub prefix: String,
    pub allow: Option<HashSet<String>>,
    pub timeout: Duration,
    pub transport: ResolvedTransport,
}

#[derive(Debug)]
pub(crate) enum ResolvedTransport {
    Stdio { command: String, args: Vec<String>, env: Vec<(String, String)>, cwd: Option<PathBuf> },
    Http { url: String, headers: Vec<(http::HeaderName, http::HeaderValue)> },
}

/// Replaces `${NAME}` with `lookup(NAME)` and `$$` with `$`; any other `$` is kept.
pub(crate) fn expand_vars(
    input: &str,
    lookup: &dyn Fn(&str) -> Option<String>,
    server: &str,
    field: &str,
) -> Result<String, McpError> {
    let bad = |reason: String| McpError::BadEnvReference { server: server.into(), field: field.into(), reason };
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(tail) = after.strip_prefix('{') {
            let Some(end) = tail.find('}') else {
                return Err(bad("`${` without a closing `}`".into()));
            };
            let var = &tail[..end];
            let valid = var.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(bad(format!("`${{{var}}}` is not a variable name ([A-Za-z_][A-Za-z0-9_]*)")));
            }
            let value = lookup(var).ok_or_else(|| McpError::MissingEnvVar {
                server: server.into(),
                field: field.into(),
                var: var.into(),
            })?;
            out.push_str(&value);
            rest = &tail[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "TOKEN" => Some("s3cret".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    fn expand(input: &str) -> Result<String, McpError> {
        expand_vars(input, &env, "github", "env `GITHUB_TOKEN`")
    }

    #[test]
    fn expands_variables_and_escapes() {
        assert_eq!(expand("Bearer ${TOKEN}").unwrap(), "Bearer s3cret");
        assert_eq!(expand("${TOKEN}${TOKEN}").unwrap(), "s3crets3cret");
        assert_eq!(expand("a${EMPTY}b").unwrap(), "ab");
        assert_eq!(expand("cost: $$5 and $HOME stays").unwrap(), "cost: $5 and $HOME stays");
        assert_eq!(expand("$${TOKEN}").unwrap(), "${TOKEN}");
        assert_eq!(expand("trailing $").unwrap(), "trailing $");
    }

    #[test]
    fn missing_variable_is_named() {
        let err = expand("Bearer ${GITHUB_TOKEN}").unwrap_err();
        assert!(
            matches!(&err, McpError::MissingEnvVar { var, server, .. } if var == "GITHUB_TOKEN" && server == "github")
        );
        let message = err.to_string();
        assert!(message.contains("GITHUB_TOKEN") && message.contains("`github`"), "{message}");
    }

    #[test]
    fn malformed_references_are_errors() {
        assert!(matches!(expand("${TOKEN"), Err(McpError::BadEnvReference { .. })));
        assert!(matches!(expand("${1ABC}"), Err(McpError::BadEnvReference { .. })));
        assert!(matches!(expand("${}"), Err(McpError::BadEnvReference { .. })));
        assert!(matches!(expand("${A-B}"), Err(McpError::BadEnvReference { .. })));
    }

    #[test]
    fn parses_toml_with_both_transports() {
        #[derive(Deserialize)]
        struct File {
            mcp_servers: Vec<McpServerConfig>,
        }
        let file: File = toml::from_str(
            r#"
            [[mcp_servers]]
            name = "github"
            tools = ["create_issue"]
            prefix = "gh"
            timeout_secs = 5
            transport = { type = "stdio", command = "github-mcp-server", args = ["stdio"], env = { GITHUB_PERSONAL_ACCESS_TOKEN = "${TOKEN}" }, cwd = "/tmp" }

            [[mcp_servers]]
            name = "remote"
            [mcp_servers.transport]
            type = "http"
            url = "https://mcp.example.com/mcp"
            headers = { Authorization = "Bearer ${TOKEN}" }
            "#,
        )
        .unwrap();
        assert_eq!(
            file.mcp_servers[0],
            McpServerConfig::stdio("github", "github-mcp-server", ["stdio"])
                .with_env("GITHUB_PERSONAL_ACCESS_TOKEN", "${TOKEN}")
                .with_cwd("/tmp")
                .with_tools(["create_issue"])
                .with_prefix("gh")
                .with_timeout_secs(5)
        );
        assert_eq!(
            file.mcp_servers[1],
            McpServerConfig::http("remote", "https://mcp.example.com/mcp")
                .with_header("Authorization", "Bearer ${TOKEN}")
        );
        let resolved = file.mcp_servers[1].resolve(&env).unwrap();
        let ResolvedTransport::Http { headers, .. } = resolved.transport else { panic!("not http") };
        assert_eq!(headers[0].0.as_str(), "authorization");
        assert_eq!(headers[0].1.to_str().unwrap(), "Bearer s3cret");
        assert_eq!(resolved.prefix, "remote");
        assert_eq!(resolved.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECS));
    }

    #[test]
    fn unknown_fields_are_refused() {
        let top = toml::from_str::<McpServerConfig>(
            "name = 'a'\ncomand = 'x'\ntransport = { type = 'stdio', command = 'x' }",
        );
        assert!(top.unwrap_err().to_string().contains("comand"));
        let inner = toml::from_str::<McpServerConfig>(
            "name = 'a'\ntransport = { type = 'http', url = 'http://x', header = {} }",
        );
        assert!(inner.unwrap_err().to_string().contains("header"));
        let kind = toml::from_str::<McpServerConfig>("name = 'a'\ntransport = { type = 'sse', url = 'http://x' }");
        assert!(kind.is_err());
    }

    #[test]
    fn resolve_checks_the_configuration() {
        let err = |config: McpServerConfig| config.resolve(&env).unwrap_err().to_string();
        assert!(err(McpServerConfig::stdio("", "x", [] as [&str; 0])).contains("name is empty"));
        assert!(err(McpServerConfig::stdio("s", " ", [] as [&str; 0])).contains("command is empty"));
        assert!(err(McpServerConfig::http("h", "ftp://x")).contains("not an http"));
        assert!(err(McpServerConfig::http("h", "http://x").with_header("bad header", "v")).contains("`bad header`"));
        assert!(
            err(McpServerConfig::http("h", "http://x").with_header("Accept", "v")).contains("set by the MCP transport")
        );
        let secret = err(McpServerConfig::http("h", "http://x").with_header("X-Key", "line\nbreak ${TOKEN}"));
        assert!(secret.contains("X-Key") && !secret.contains("s3cret"), "{secret}");
        assert!(err(McpServerConfig::stdio("s", "x", ["${NOPE}"])).contains("args[0] references `${NOPE}`"));
        assert!(
            err(McpServerConfig::stdio("s", "x", [] as [&str; 0]).with_cwd("/definitely/not/here")).contains("cwd")
        );
        assert!(err(McpServerConfig::stdio("s", "x", [] as [&str; 0]).with_timeout_secs(0)).contains("timeout_secs"));
    }

    #[test]
    fn empty_prefix_means_none_and_prefixes_are_sanitised() {
        let none = McpServerConfig::stdio("s", "x", [] as [&str; 0]).with_prefix("").resolve(&env).unwrap();
        assert_eq!(none.prefix, "");
        let dotted = McpServerConfig::stdio("my.server", "x", [] as [&str; 0]).resolve(&env).unwrap();
        assert_eq!(dotted.prefix, "my_server");
    }
}
