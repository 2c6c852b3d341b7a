//! A local model server that speaks the providers' real wire formats — Anthropic Messages,
//! OpenAI Chat Completions and Responses, Gemini `streamGenerateContent` — so the agent engine's
//! adapters are tested (and benchmarked) over real HTTP and SSE without the providers' clouds.
//!
//! A test scripts the conversation: each request takes the next [`Reply`] from the queue (or asks
//! a [`Responder`]), and the server renders it in the format of the API that was called — the same
//! status codes, headers, SSE framing and error bodies the real service sends. Every request is
//! recorded so a test can assert what the adapter sent (tool results, echoed thinking signatures…).
//!
//! Routes: `POST /v1/messages` (Anthropic), `POST /v1/chat/completions` (OpenAI and compatible),
//! `POST /v1/responses` (OpenAI Responses), `POST /v1beta/models/{model}:streamGenerateContent`
//! and `…:generateContent` (Gemini).

mod anthropic;
mod gemini;
mod openai_chat;
mod openai_responses;
pub mod workload;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::Value;

/// Which provider API a request came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Api {
    Anthropic,
    OpenaiChat,
    OpenaiResponses,
    Gemini,
}

/// A request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub api: Api,
    /// The request path, e.g. `/v1/messages` or `/v1beta/models/gemini-2.5-pro:streamGenerateContent`.
    pub path: String,
    pub query: Option<String>,
    /// Header names lower-cased.
    pub headers: Vec<(String, String)>,
    /// The JSON body (`Value::Null` if it was not JSON).
    pub body: Value,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(key, _)| key.eq_ignore_ascii_case(name)).map(|(_, value)| value.as_str())
    }
}

/// A model's reasoning in a scripted turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Thinking {
    pub text: String,
    /// Anthropic's `signature`, OpenAI's `encrypted_content`, Gemini's `thoughtSignature`.
    pub signature: String,
}

/// A tool call in a scripted turn.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    pub input: Value,
}

impl ToolCall {
    pub fn new(id: impl Into<String>, name: impl Into<String>, input: Value) -> Self {
        Self { id: id.into(), name: name.into(), input }
    }
}

/// One successful model answer, rendered by each API in its own format.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub thinking: Option<Thinking>,
    pub text: Option<String>,
    pub tool_calls: Vec<ToolCall>,
    /// The provider's raw stop reason (`max_tokens`, `length`, `MAX_TOKENS`, `refusal`…); by
    /// default the API's "tool use" reason when there are tool calls, else its "end turn" one.
    pub stop: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Text and thinking are streamed in deltas of at most this many characters (default 8).
    pub delta_chars: usize,
    /// The model name the answer reports (default: the one requested).
    pub model: Option<String>,
    /// Chat Completions only: render the way some OpenAI-compatible servers do (default: none).
    pub chat_quirks: ChatQuirks,
}

/// Ways OpenAI-compatible servers (vLLM, Ollama, Together, Groq…) depart from OpenAI's own Chat
/// Completions stream. Only the Chat Completions renderer reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ChatQuirks {
    /// Tool-call deltas carry no `id`.
    pub no_tool_call_ids: bool,
    /// `usage` rides on the chunk with `finish_reason` instead of a final `choices: []` chunk.
    pub usage_with_finish: bool,
    /// No `usage` at all, even when `stream_options.include_usage` asks for it.
    pub no_usage: bool,
}

impl Default for Turn {
    fn default() -> Self {
        Self {
            thinking: None,
            text: None,
            tool_calls: Vec::new(),
            stop: None,
            input_tokens: 10,
            output_tokens: 5,
            delta_chars: 8,
            model: None,
            chat_quirks: ChatQuirks::default(),
        }
    }
}

impl Turn {
    /// A final text answer.
    pub fn text(text: impl Into<String>) -> Self {
        Self { text: Some(text.into()), ..Self::default() }
    }

    /// A turn that calls tools (in parallel when there are several).
    pub fn tools(calls: Vec<ToolCall>) -> Self {
        Self { tool_calls: calls, ..Self::default() }
    }

    pub fn with_thinking(mut self, text: impl Into<String>, signature: impl Into<String>) -> Self {
        self.thinking = Some(Thinking { text: text.into(), signature: signature.into() });
        self
    }

    pub fn with_text(mut self, text: impl Into<String>) -> Self {
        self.text = Some(text.into());
        self
    }

    pub fn with_stop(mut self, stop: impl Into<String>) -> Self {
        self.stop = Some(stop.into());
        self
    }

    pub fn with_usage(mut self, input_tokens: u64, output_tokens: u64) -> Self {
        self.input_tokens = input_tokens;
        self.output_tokens = output_tokens;
        self
    }

    /// Splits `text` into the deltas this turn streams.
    pub(crate) fn chunks(&self, text: &str) -> Vec<String> {
        let size = self.delta_chars.max(1);
        let chars: Vec<char> = text.chars().collect();
        chars.chunks(size).map(|chunk| chunk.iter().collect()).collect()
    }
}

/// The kinds of failure a provider reports; each API renders its own status and error body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 429.
    RateLimit,
    /// Anthropic 529 `overloaded_error`; 503 elsewhere.
    Overloaded,
    /// 500.
    Server,
    /// 400.
    InvalidRequest,
    /// 400 with the API's "prompt too long" / `context_length_exceeded` error.
    ContextOverflow,
    /// 401 (Gemini: 400 `INVALID_ARGUMENT` with reason `API_KEY_INVALID`, as the real API answers).
    Authentication,
}

/// A scripted failure.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    pub kind: ErrorKind,
    pub message: String,
    /// Sent as `retry-after` (seconds).
    pub retry_after_secs: Option<u64>,
    /// Fail inside a 200 event stream after the first deltas, instead of with an error status.
    pub mid_stream: bool,
}

impl ErrorReply {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), retry_after_secs: None, mid_stream: false }
    }

    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after_secs = Some(seconds);
        self
    }

    pub fn mid_stream(mut self) -> Self {
        self.mid_stream = true;
        self
    }
}

/// What the server answers to one request.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Turn(Turn),
    Error(ErrorReply),
    /// Answer after a pause (the pause happens before the response starts).
    Delayed(Duration, Box<Reply>),
    /// Never answer (until the client gives up): for cancellation and timeout tests.
    Hang,
}

impl From<Turn> for Reply {
    fn from(turn: Turn) -> Self {
        Reply::Turn(turn)
    }
}

impl From<ErrorReply> for Reply {
    fn from(error: ErrorReply) -> Self {
        Reply::Error(error)
    }
}

/// Computes replies from requests, for open-ended workloads (benchmarks) instead of a script.
pub type Responder = Arc<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    responder: Mutex<Option<Responder>>,
    requests: Mutex<Vec<Recorded>>,
    record: std::sync::atomic::AtomicBool,
}

impl Shared {
    fn next_reply(&self, request: &Recorded) -> Reply {
        if let Some(reply) = self.script.lock().unwrap_or_else(PoisonError::into_inner).pop_front() {
            return reply;
        }
        let responder = self.responder.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match responder {
            Some(responder) => responder(request),
            None => Reply::Error(ErrorReply::new(
                ErrorKind::InvalidRequest,
                format!("model-server: the script has no reply left for this {:?} request", request.api),
            )),
        }
    }
}

/// A running model server on a loopback port. Stops when dropped.
pub struct ModelServer {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl ModelServer {
    /// Starts on `127.0.0.1:0`, recording every request.
    pub async fn start() -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?).await
    }

    pub async fn start_on(addr: SocketAddr) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared::default());
        shared.record.store(true, std::sync::atomic::Ordering::Relaxed);
        let app = router(shared.clone());
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::warn!(%error, "model server stopped");
            }
        });
        Ok(Self { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`: the base URL for Anthropic and Gemini adapters.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://127.0.0.1:<port>/v1`: the base URL for OpenAI adapters.
    pub fn openai_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Queues replies; requests take them in order.
    pub fn push(&self, reply: impl Into<Reply>) {
        self.shared.script.lock().unwrap_or_else(PoisonError::into_inner).push_back(reply.into());
    }

    /// Answers requests the script has no reply for.
    pub fn set_responder(&self, responder: Responder) {
        *self.shared.responder.lock().unwrap_or_else(PoisonError::into_inner) = Some(responder);
    }

    /// Stops (or resumes) recording requests; benchmarks turn it off.
    pub fn set_recording(&self, record: bool) {
        self.shared.record.store(record, std::sync::atomic::Ordering::Relaxed);
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Replies still queued.
    pub fn remaining(&self) -> usize {
        self.shared.script.lock().unwrap_or_else(PoisonError::into_inner).len()
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/messages", post(|s, q, h, b| receive(Api::Anthropic, "/v1/messages".into(), s, q, h, b)))
        .route(
            "/v1/chat/completions",
            post(|s, q, h, b| receive(Api::OpenaiChat, "/v1/chat/completions".into(), s, q, h, b)),
        )
        .route("/v1/responses", post(|s, q, h, b| receive(Api::OpenaiResponses, "/v1/responses".into(), s, q, h, b)))
        .route(
            "/v1beta/models/{*rest}",
            post(|Path(rest): Path<String>, s, q, h, b| {
                receive(Api::Gemini, format!("/v1beta/models/{rest}"), s, q, h, b)
            }),
        )
        .with_state(shared)
}

async fn receive(
    api: Api,
    path: String,
    State(shared): State<Arc<Shared>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let recorded = Recorded {
        api,
        path,
        query,
        headers: headers
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
            .collect(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    };
    if shared.record.load(std::sync::atomic::Ordering::Relaxed) {
        shared.requests.lock().unwrap_or_else(PoisonError::into_inner).push(recorded.clone());
    }
    let mut reply = shared.next_reply(&recorded);
    loop {
        match reply {
            Reply::Delayed(wait, inner) => {
                tokio::time::sleep(wait).await;
                reply = *inner;
            }
            Reply::Hang => {
                std::future::pending::<()>().await;
                return StatusCode::GATEWAY_TIMEOUT.into_response();
            }
            Reply::Turn(turn) => return render_turn(api, &recorded, &turn),
            Reply::Error(error) => return render_error(api, &recorded, &error),
        }
    }
}

fn render_turn(api: Api, request: &Recorded, turn: &Turn) -> Response {
    match api {
        Api::Anthropic => anthropic::turn(request, turn),
        Api::OpenaiChat => openai_chat::turn(request, turn),
        Api::OpenaiResponses => openai_responses::turn(request, turn),
        Api::Gemini => gemini::turn(request, turn),
    }
}

fn render_error(api: Api, request: &Recorded, error: &ErrorReply) -> Response {
    match api {
        Api::Anthropic => anthropic::error(request, error),
        Api::OpenaiChat => openai_chat::error(request, error),
        Api::OpenaiResponses => openai_responses::error(request, error),
        Api::Gemini => gemini::error(request, error),
    }
}

/// A `text/event-stream` response from already-formatted SSE text.
pub(crate) fn sse_response(body: String) -> Response {
    (StatusCode::OK, [("content-type", "text/event-stream; charset=utf-8"), ("cache-control", "no-cache")], body)
        .into_response()
}

/// One SSE event: an optional `event:` line, a `data:` line, a blank line.
pub(crate) fn sse_event(out: &mut String, event: Option<&str>, data: &Value) {
    if let Some(event) = event {
        out.push_str("event: ");
        out.push_str(event);
        out.push('\n');
    }
    out.push_str("data: ");
    out.push_str(&data.to_string());
    out.push_str("\n\n");
}
