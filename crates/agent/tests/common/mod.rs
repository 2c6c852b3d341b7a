//! What the provider adapters' tests share: settings for a model server with a short retry
//! policy, a call that collects its deltas, the tools the scripted conversations offer, the error
//! paths every adapter must get right (a client error fails at once, a failure after output is
//! `partial`), and a raw HTTP server that answers with a fixed event stream and closes, for
//! streams cut short.

#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use runtools_agent::{
    ApiKey, Delta, Model, ModelError, ModelErrorKind, ModelRequest, ModelResponse, ProviderSettings, RetryPolicy,
    WireProtocol,
};
use runtools_model_server::{ErrorKind, ErrorReply, ModelServer, Turn};
use runtools_protocol::agent::{ContentBlock, Message, Role, ToolSpec};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Retries a few milliseconds apart, honouring a `retry-after` of up to 5 s.
pub fn fast_retries(max_attempts: u32) -> RetryPolicy {
    RetryPolicy {
        max_attempts,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(20),
        max_retry_after: Duration::from_secs(5),
    }
}

/// `protocol` at `base_url` as provider `name`, with `key` and `retry`.
pub fn settings(
    name: &'static str,
    protocol: WireProtocol,
    base_url: String,
    key: &str,
    retry: RetryPolicy,
) -> ProviderSettings {
    let mut settings = ProviderSettings::new(name, protocol, base_url);
    settings.api_key = Some(ApiKey::new(key));
    settings.retry = retry;
    settings
}

/// A client that never goes through a proxy from the environment.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

/// One streamed call: its outcome and the deltas it sent.
pub async fn call(model: &dyn Model, request: &ModelRequest) -> (Result<ModelResponse, ModelError>, Vec<Delta>) {
    let mut deltas = Vec::new();
    let result = model.stream(request, &mut |delta| deltas.push(delta)).await;
    (result, deltas)
}

/// Consecutive text or thinking deltas joined, to compare streams independent of chunking.
pub fn coalesce(deltas: &[Delta]) -> Vec<Delta> {
    let mut out: Vec<Delta> = Vec::new();
    for delta in deltas {
        match (out.last_mut(), delta) {
            (Some(Delta::Text(text)), Delta::Text(more)) | (Some(Delta::Thinking(text)), Delta::Thinking(more)) => {
                text.push_str(more);
            }
            _ => out.push(delta.clone()),
        }
    }
    out
}

/// `read_file`, whose input schema is `{"path": string}`, with the path required when `required`.
pub fn read_file_tool(required: bool) -> ToolSpec {
    let mut input_schema = json!({"type": "object", "properties": {"path": {"type": "string"}}});
    if required {
        input_schema["required"] = json!(["path"]);
    }
    ToolSpec { name: "read_file".into(), description: "Read a file".into(), input_schema }
}

/// `grep`, whose input schema is `{"pattern": string}`.
pub fn grep_tool() -> ToolSpec {
    ToolSpec {
        name: "grep".into(),
        description: "Search files".into(),
        input_schema: json!({"type": "object", "properties": {"pattern": {"type": "string"}}}),
    }
}

/// A user turn of tool results, each `(tool_use_id, name, content, is_error)`.
pub fn tool_results(results: &[(&str, &str, &str, bool)]) -> Message {
    let content = results
        .iter()
        .map(|(id, name, content, is_error)| ContentBlock::ToolResult {
            tool_use_id: (*id).into(),
            name: (*name).into(),
            content: (*content).into(),
            is_error: *is_error,
        })
        .collect();
    Message { role: Role::User, content }
}

/// Scripts `reply` and a success after it that the call must not reach: the call fails at once
/// with `kind` and `status`, keeping the provider's message.
pub async fn fails_once(
    server: &ModelServer,
    model: &dyn Model,
    request: &ModelRequest,
    reply: ErrorReply,
    kind: ModelErrorKind,
    status: u16,
) -> ModelError {
    let message = reply.message.clone();
    server.push(reply);
    server.push(Turn::text("never reached"));
    let error = call(model, request).await.0.unwrap_err();
    assert_eq!((error.kind, error.status, error.attempts), (kind, Some(status), 1), "{error}");
    assert!(error.message.contains(&message), "the provider's message is kept: {error}");
    assert_eq!(server.remaining(), 1, "not retried");
    error
}

/// Each case (what the server answers, its message, and the kind and status that must come of it)
/// fails at once through [`fails_once`], without `key` in the error and after one request; the
/// success scripted behind it is then drained so the next case starts clean.
pub async fn each_fails_once(
    server: &ModelServer,
    model: &dyn Model,
    request: &ModelRequest,
    key: &str,
    cases: &[(ErrorKind, &str, ModelErrorKind, u16)],
) {
    for (scripted, message, kind, status) in cases {
        let before = server.requests().len();
        let reply = ErrorReply::new(*scripted, *message);
        let error = fails_once(server, model, request, reply, *kind, *status).await;
        assert!(!error.to_string().contains(key));
        assert_eq!(server.requests().len(), before + 1, "not retried");
        call(model, request).await.0.unwrap();
    }
}

/// Scripts `reply` (a rate limit asking to wait) and a success after it: the call waits, then
/// succeeds with its second request. Returns how long it took.
pub async fn succeeds_after(
    server: &ModelServer,
    model: &dyn Model,
    request: &ModelRequest,
    reply: ErrorReply,
) -> Duration {
    let before = server.requests().len();
    server.push(reply);
    server.push(Turn::text("done"));
    let started = Instant::now();
    let response = call(model, request).await.0.unwrap();
    let waited = started.elapsed();
    assert_eq!(response.text(), "done");
    assert_eq!(server.requests().len(), before + 2);
    waited
}

/// Scripts `reply` to fail its stream after some output, and a success after it that the call must
/// not reach: the error is `partial` and not retried. Returns it with the deltas that went out.
pub async fn fails_after_output(
    server: &ModelServer,
    model: &dyn Model,
    request: &ModelRequest,
    reply: ErrorReply,
) -> (ModelError, Vec<Delta>) {
    server.push(reply.mid_stream());
    server.push(Turn::text("never reached"));
    let (result, deltas) = call(model, request).await;
    let error = result.unwrap_err();
    assert!(error.partial, "output was already streamed: {error}");
    assert_eq!(error.attempts, 1, "{error}");
    assert_eq!(server.remaining(), 1, "not retried");
    (error, deltas)
}

/// A one-route HTTP server that answers every request with `body` as a 200 event stream and then
/// closes, counting the requests. Returns its URL and the count.
pub async fn truncating_server(body: String) -> std::io::Result<(String, Arc<AtomicUsize>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let reply = Arc::new(format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    ));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let reply = reply.clone();
            tokio::spawn(async move {
                if read_request(&mut socket).await.is_err() {
                    return;
                }
                let _ = socket.write_all(reply.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    Ok((url, count))
}

/// Reads one HTTP/1.1 request: its headers, then its body by `content-length`.
async fn read_request(socket: &mut tokio::net::TcpStream) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let read = socket.read(&mut buffer).await?;
        if read == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        request.extend_from_slice(&buffer[..read]);
        let text = String::from_utf8_lossy(&request).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text
                .lines()
                .find_map(|line| line.strip_prefix("content-length:"))
                .and_then(|value| value.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if request.len() >= end + 4 + length {
                return Ok(());
            }
        }
    }
}
