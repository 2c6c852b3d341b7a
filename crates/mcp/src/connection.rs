//! Establishing one MCP client connection: spawning a stdio server in its own process group
//! (its stderr drained into a [`StderrTail`] for error messages), or opening a streamable HTTP
//! session with the configured headers; then the MCP handshake and the paginated tool listing,
//! all within the server's connect timeout.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rmcp::model::{ClientCapabilities, ClientConfig, Implementation, ProtocolVersion, Tool};
use rmcp::service::ClientInitializeError;
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::streamable_http_client::{StreamableHttpClientTransportConfig, StreamableHttpError};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use rmcp::{ServiceError, ServiceExt as _};
use tokio::io::{AsyncBufReadExt as _, AsyncRead, BufReader};

use crate::config::{ResolvedServer, ResolvedTransport};
use crate::error::McpError;

/// The client side of one MCP session.
pub(crate) type Client = RunningService<RoleClient, ClientConfig>;

/// How many stderr lines of a stdio server are kept for error messages.
const STDERR_TAIL_LINES: usize = 20;
/// Longest stderr line kept (longer ones are cut).
const STDERR_LINE_MAX: usize = 500;
/// How long a failed handshake waits for the child's last stderr output.
const STDERR_SETTLE: Duration = Duration::from_millis(500);

/// A connected server and the tools it listed.
#[derive(Debug)]
pub(crate) struct Connection {
    pub client: Client,
    pub tools: Vec<Tool>,
    pub stderr: Option<StderrTail>,
}

/// Connects to `server`: start or reach it, handshake, list its tools.
pub(crate) async fn connect(server: &ResolvedServer) -> Result<Connection, McpError> {
    let name = server.name.as_str();
    match &server.transport {
        ResolvedTransport::Stdio { command, args, env, cwd } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env.iter().map(|(k, v)| (k, v))).kill_on_drop(true);
            if let Some(dir) = cwd {
                cmd.current_dir(dir);
            }
            let mut wrapped = process_wrap::tokio::CommandWrap::from(cmd);
            // Its own process group: shutdown signals reach what the server starts (npx → node).
            wrapped.wrap(process_wrap::tokio::ProcessGroup::leader());
            let (transport, stderr) = TokioChildProcess::builder(wrapped)
                .stderr(Stdio::piped())
                .spawn()
                .map_err(|source| McpError::Spawn { server: name.into(), command: command.clone(), source })?;
            tracing::debug!(server = name, command = %command, pid = ?transport.id(), "started MCP server");
            let tail = stderr.map(|pipe| StderrTail::start(name, pipe));
            let outcome = tokio::time::timeout(server.timeout, handshake(name, transport)).await;
            let stderr_text = || async {
                match &tail {
                    Some(tail) => {
                        tail.settle(STDERR_SETTLE).await;
                        tail.text()
                    }
                    None => None,
                }
            };
            match outcome {
                Ok(Ok((client, tools))) => Ok(Connection { client, tools, stderr: tail }),
                Ok(Err(failure)) => Err(failure.into_error(name, stderr_text().await)),
                Err(_) => {
                    Err(McpError::Timeout { server: name.into(), timeout: server.timeout, stderr: stderr_text().await })
                }
            }
        }
        ResolvedTransport::Http { url, headers } => {
            let client = http_client()
                .map_err(|e| McpError::InvalidConfig { server: name.into(), reason: format!("HTTP client: {e}") })?;
            let config = StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(headers.iter().cloned().collect());
            let transport = StreamableHttpClientTransport::with_client(client, config);
            match tokio::time::timeout(server.timeout, handshake(name, transport)).await {
                Ok(Ok((client, tools))) => Ok(Connection { client, tools, stderr: None }),
                Ok(Err(failure)) => Err(failure.into_error(name, None)),
                Err(_) => Err(McpError::Timeout { server: name.into(), timeout: server.timeout, stderr: None }),
            }
        }
    }
}

/// Where the connection failed, before the stderr tail (if any) is attached.
enum Failure {
    Handshake(String),
    ListTools(String),
}

impl Failure {
    fn into_error(self, server: &str, stderr: Option<String>) -> McpError {
        match self {
            Failure::Handshake(reason) => McpError::Handshake { server: server.into(), reason, stderr },
            Failure::ListTools(reason) => McpError::ListTools { server: server.into(), reason, stderr },
        }
    }
}

async fn handshake<T, E, A>(server: &str, transport: T) -> Result<(Client, Vec<Tool>), Failure>
where
    T: rmcp::transport::IntoTransport<RoleClient, E, A>,
    E: std::error::Error + Send + Sync + 'static,
{
    let client = client_config().serve(transport).await.map_err(|e| Failure::Handshake(describe_init_error(&e)))?;
    let tools = client.peer().list_all_tools().await.map_err(|e| Failure::ListTools(describe_service_error(&e)))?;
    tracing::info!(server, tools = tools.len(), "connected to MCP server");
    Ok((client, tools))
}

/// Who we are in the handshake. We ask for the newest protocol version that still has the
/// `initialize` handshake, which every current server speaks; a server may answer with an older
/// one.
fn client_config() -> ClientConfig {
    ClientConfig::new(ClientCapabilities::default(), Implementation::new("runtools", env!("CARGO_PKG_VERSION")))
        .with_protocol_version(ProtocolVersion::LATEST_WITH_INITIALIZE)
}

/// The HTTP client for streamable HTTP servers. TLS is rustls with the `ring` provider, installed
/// as the process default when none is (reqwest panics without one); redirects are followed only
/// to the same origin and only as 307/308, which keep the request body (and never send the
/// configured headers to another host).
fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race with another installer is fine: some provider is then installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    let redirects = reqwest::redirect::Policy::custom(|attempt| {
        let keeps_body = matches!(attempt.status().as_u16(), 307 | 308);
        let same_origin = attempt.previous().first().is_some_and(|first| first.origin() == attempt.url().origin());
        if !keeps_body || !same_origin {
            attempt.stop()
        } else if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::Client::builder().pool_max_idle_per_host(0).redirect(redirects).build()
}

/// A handshake failure without rmcp's transport type names.
fn describe_init_error(error: &ClientInitializeError) -> String {
    match error {
        ClientInitializeError::TransportError { error, context } => {
            format!("{context}: {}", error_chain(error.error.as_ref()))
        }
        ClientInitializeError::ConnectionClosed(waiting_for) => {
            format!("the server closed the connection before sending the {waiting_for}")
        }
        other => error_chain(other),
    }
}

/// A request failure without rmcp's transport type names.
pub(crate) fn describe_service_error(error: &ServiceError) -> String {
    match error {
        ServiceError::TransportSend(error) => {
            format!("sending the request failed: {}", error_chain(error.error.as_ref()))
        }
        other => error_chain(other),
    }
}

/// An error and its sources, as one line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = next_cause(error);
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = next_cause(cause);
    }
    text
}

/// `error.source()`, except that rmcp's HTTP client error does not declare its reqwest error
/// as a source, which hides the root cause (e.g. "Connection refused").
fn next_cause<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a (dyn std::error::Error + 'static)> {
    if let Some(StreamableHttpError::Client(inner)) = error.downcast_ref::<StreamableHttpError<reqwest::Error>>() {
        return Some(inner);
    }
    error.source()
}

/// The last lines a stdio server wrote to stderr. A task drains the pipe (so the child never
/// blocks on it), logs each line at debug level and keeps the tail.
#[derive(Debug, Clone)]
pub(crate) struct StderrTail {
    lines: Arc<Mutex<VecDeque<String>>>,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl StderrTail {
    pub(crate) fn start(server: &str, pipe: impl AsyncRead + Unpin + Send + 'static) -> Self {
        let lines = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_LINES)));
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let sink = Arc::clone(&lines);
        let server = server.to_owned();
        tokio::spawn(async move {
            let mut reader = BufReader::new(pipe);
            let mut buf = Vec::new();
            loop {
                buf.clear();
                match reader.read_until(b'\n', &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {
                        let mut line = String::from_utf8_lossy(&buf).trim_end().to_owned();
                        tracing::debug!(server = %server, "stderr: {line}");
                        if line.len() > STDERR_LINE_MAX {
                            let mut cut = STDERR_LINE_MAX;
                            while !line.is_char_boundary(cut) {
                                cut -= 1;
                            }
                            line.truncate(cut);
                            line.push('…');
                        }
                        let mut tail = sink.lock().unwrap_or_else(PoisonError::into_inner);
                        if tail.len() == STDERR_TAIL_LINES {
                            tail.pop_front();
                        }
                        tail.push_back(line);
                    }
                }
            }
            let _ = closed_tx.send(true);
        });
        Self { lines, closed }
    }

    /// Waits up to `limit` for the child to close its stderr (it usually does as it exits).
    pub(crate) async fn settle(&self, limit: Duration) {
        let mut closed = self.closed.clone();
        let _ = tokio::time::timeout(limit, closed.wait_for(|closed| *closed)).await;
    }

    /// The kept lines, or `None` when the server wrote nothing.
    pub(crate) fn text(&self) -> Option<String> {
        let tail = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if tail.is_empty() { None } else { Some(tail.iter().cloned().collect::<Vec<_>>().join("\n")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn stderr_tail_keeps_the_last_lines() {
        let mut text = String::new();
        for i in 0..30 {
            text.push_str(&format!("line {i}\n"));
        }
        text.push_str(&"x".repeat(STDERR_LINE_MAX + 10));
        let tail = StderrTail::start("s", std::io::Cursor::new(text.into_bytes()));
        tail.settle(Duration::from_secs(5)).await;
        let kept = tail.text().unwrap();
        let lines: Vec<&str> = kept.lines().collect();
        assert_eq!(lines.len(), STDERR_TAIL_LINES);
        assert_eq!(lines[0], "line 11");
        assert!(lines[STDERR_TAIL_LINES - 1].ends_with('…'));
    }

    #[tokio::test]
    async fn empty_stderr_is_none() {
        let tail = StderrTail::start("s", std::io::Cursor::new(Vec::new()));
        tail.settle(Duration::from_secs(5)).await;
        assert_eq!(tail.text(), None);
    }

    #[test]
    fn error_chain_includes_sources() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "inner cause");
        let outer = McpError::Spawn { server: "s".into(), command: "c".into(), source: io };
        let text = error_chain(&outer);
        assert!(text.contains("cannot start `c`") && text.contains("inner cause"), "{text}");
        assert_eq!(text.matches("inner cause").count(), 1);
    }
}
