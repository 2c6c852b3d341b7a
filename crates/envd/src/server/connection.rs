//! One client connection inside envd: reads frames, opens a task per stream, routes `Data` /
//! `Eof` / `Control` to it, writes every stream's answers through one writer, and tears everything
//! down (killing foreground processes, keeping background ones) when the connection ends or sends
//! a malformed frame.
//!
//! Flow control is by backpressure: each stream's input queue is bounded, and reading the
//! connection waits while the queue of the stream a frame is for is full (e.g. stdin for a process
//! that does not read it). Such a stream therefore stalls the other streams of its connection;
//! the host opens another connection for work that must not wait behind it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use runtools_protocol::envd::{Control, ENVD_PROTOCOL_VERSION, EnvdError, EnvdErrorCode, FrameKind, Reply, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use super::{EnvdState, exec, files, search, watch};
use crate::frame::{Frame, FrameError, read_frame, write_frame};

/// Frames queued for the writer, across all streams of the connection.
const OUTGOING_QUEUE: usize = 64;
/// Input frames queued per stream; when full, reading the connection waits (backpressure).
const STREAM_INPUT_QUEUE: usize = 16;

/// Input from the client on an open stream.
#[derive(Debug)]
pub(crate) enum StreamInput {
    Data(Bytes),
    Eof,
    Control(Control),
}

/// Why a stream handler stopped early.
#[derive(Debug)]
pub(crate) enum HandlerError {
    /// The operation failed; the client gets `Reply::Error`.
    Envd(EnvdError),
    /// The connection is gone; nothing more can be sent.
    Disconnected,
}

impl From<EnvdError> for HandlerError {
    fn from(error: EnvdError) -> Self {
        Self::Envd(error)
    }
}

pub(crate) type HandlerResult = Result<(), HandlerError>;

pub(crate) fn envd_error(code: EnvdErrorCode, message: impl Into<String>) -> EnvdError {
    EnvdError { code, message: message.into() }
}

/// Sends frames on one stream.
#[derive(Debug, Clone)]
pub(crate) struct Outbound {
    stream: u32,
    frames: mpsc::Sender<Frame>,
}

impl Outbound {
    async fn send(&self, frame: Frame) -> HandlerResult {
        self.frames.send(frame).await.map_err(|_| HandlerError::Disconnected)
    }

    pub(crate) async fn reply(&self, reply: &Reply) -> HandlerResult {
        let frame = Frame::json(self.stream, FrameKind::Reply, reply)
            .map_err(|error| HandlerError::Envd(envd_error(EnvdErrorCode::Io, error.to_string())))?;
        self.send(frame).await
    }

    pub(crate) async fn stdout(&self, bytes: Bytes) -> HandlerResult {
        self.send(Frame::new(self.stream, FrameKind::Stdout, bytes)).await
    }

    pub(crate) async fn stderr(&self, bytes: Bytes) -> HandlerResult {
        self.send(Frame::new(self.stream, FrameKind::Stderr, bytes)).await
    }

    async fn close(&self) -> HandlerResult {
        self.send(Frame::new(self.stream, FrameKind::Close, Bytes::new())).await
    }
}

/// Everything a stream handler works with.
#[derive(Debug)]
pub(crate) struct StreamContext {
    pub(crate) out: Outbound,
    pub(crate) input: mpsc::Receiver<StreamInput>,
    pub(crate) state: Arc<EnvdState>,
}

impl StreamContext {
    /// The next input; never returns once the connection is gone (the stream's task is about to
    /// be aborted).
    pub(crate) async fn next_input(&mut self) -> StreamInput {
        match self.input.recv().await {
            Some(input) => input,
            None => std::future::pending().await,
        }
    }
}

#[derive(Debug)]
struct OpenStream {
    input: mpsc::Sender<StreamInput>,
    task: AbortHandle,
}

type StreamTable = Arc<Mutex<HashMap<u32, OpenStream>>>;

fn lock(table: &Mutex<HashMap<u32, OpenStream>>) -> MutexGuard<'_, HashMap<u32, OpenStream>> {
    table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Serves one connection until it ends.
pub(crate) async fn serve<S>(stream: S, state: Arc<EnvdState>)
where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let (frames, outgoing) = mpsc::channel(OUTGOING_QUEUE);
    let streams: StreamTable = Arc::default();
    let outcome = tokio::select! {
        outcome = read_loop(reader, &streams, frames, &state) => outcome,
        outcome = write_loop(writer, outgoing) => outcome,
    };
    match outcome {
        Ok(()) => tracing::debug!("connection closed"),
        Err(error) => tracing::warn!(%error, "closing the connection"),
    }
    // Aborting a stream's task drops its guards: foreground processes are killed, temp files
    // removed, watches stopped. Background processes keep running.
    for (_, open) in lock(&streams).drain() {
        open.task.abort();
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(writer: W, mut outgoing: mpsc::Receiver<Frame>) -> Result<(), FrameError> {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(frame) = outgoing.recv().await {
        write_frame(&mut writer, &frame).await?;
        while let Ok(frame) = outgoing.try_recv() {
            write_frame(&mut writer, &frame).await?;
        }
        writer.flush().await?;
    }
    Ok(())
}

async fn read_loop<R: AsyncRead + Unpin>(
    reader: R,
    streams: &StreamTable,
    frames: mpsc::Sender<Frame>,
    state: &Arc<EnvdState>,
) -> Result<(), FrameError> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    while let Some(frame) = read_frame(&mut reader).await? {
        tracing::trace!(stream = frame.stream, kind = ?frame.kind, len = frame.payload.len(), "frame in");
        if frame.stream == 0 {
            return Err(FrameError::Protocol("stream id 0 is reserved".into()));
        }
        let input = match frame.kind {
            FrameKind::Open => {
                open_stream(frame, streams, &frames, state)?;
                continue;
            }
            FrameKind::Data => StreamInput::Data(frame.payload),
            FrameKind::Eof => StreamInput::Eof,
            FrameKind::Control => match serde_json::from_slice(&frame.payload) {
                Ok(control) => StreamInput::Control(control),
                Err(error) => {
                    tracing::warn!(stream = frame.stream, %error, "ignoring a malformed control");
                    continue;
                }
            },
            kind @ (FrameKind::Reply | FrameKind::Stdout | FrameKind::Stderr | FrameKind::Close) => {
                return Err(FrameError::Protocol(format!("clients may not send {kind:?} frames")));
            }
        };
        let target = lock(streams).get(&frame.stream).map(|open| open.input.clone());
        match target {
            // A send error means the stream just finished; its input no longer matters.
            Some(target) => drop(target.send(input).await),
            None => tracing::debug!(stream = frame.stream, "input for a stream that is not open"),
        }
    }
    Ok(())
}

fn open_stream(
    frame: Frame,
    streams: &StreamTable,
    frames: &mpsc::Sender<Frame>,
    state: &Arc<EnvdState>,
) -> Result<(), FrameError> {
    let id = frame.stream;
    let mut table = lock(streams);
    if table.contains_key(&id) {
        return Err(FrameError::Protocol(format!("stream {id} is already open")));
    }
    let request = serde_json::from_slice::<Request>(&frame.payload)
        .map_err(|error| envd_error(EnvdErrorCode::InvalidRequest, format!("malformed request: {error}")));
    let (input_tx, input) = mpsc::channel(STREAM_INPUT_QUEUE);
    let context = StreamContext { out: Outbound { stream: id, frames: frames.clone() }, input, state: state.clone() };
    // Spawned while the table is locked, so the task cannot remove its entry before it exists.
    let task = tokio::spawn(run_stream(context, request, streams.clone()));
    table.insert(id, OpenStream { input: input_tx, task: task.abort_handle() });
    Ok(())
}

async fn run_stream(context: StreamContext, request: Result<Request, EnvdError>, streams: StreamTable) {
    let out = context.out.clone();
    let outcome = match request {
        Ok(request) => {
            tracing::debug!(stream = out.stream, ?request, "stream opened");
            dispatch(context, request).await
        }
        Err(error) => Err(HandlerError::Envd(error)),
    };
    if let Err(HandlerError::Envd(error)) = outcome {
        tracing::debug!(stream = out.stream, %error, "operation failed");
        let _ = out.reply(&Reply::Error { error }).await;
    }
    // Free the id before `Close` reaches the client, which may reuse it at once.
    lock(&streams).remove(&out.stream);
    let _ = out.close().await;
}

async fn dispatch(mut context: StreamContext, request: Request) -> HandlerResult {
    match request {
        Request::Ping => {
            let uptime_ms = u64::try_from(context.state.started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let pong = Reply::Pong {
                version: ENVD_PROTOCOL_VERSION,
                envd_version: env!("CARGO_PKG_VERSION").to_owned(),
                uptime_ms,
            };
            context.out.reply(&pong).await
        }
        Request::Exec(spec) => exec::exec(context, spec).await,
        Request::Attach(spec) => exec::attach(context, spec).await,
        Request::ListProcesses => {
            let processes = context.state.processes.list();
            context.out.reply(&Reply::Processes { processes }).await
        }
        Request::Signal { process_id, signal } => {
            context.state.processes.signal(process_id, signal)?;
            context.out.reply(&Reply::Ok).await
        }
        Request::Stat { path } => files::stat(&context, path).await,
        Request::List { path, depth } => files::list(&context, path, depth).await,
        Request::Read { path, offset, length } => files::read(&mut context, path, offset, length).await,
        Request::Write { path, mode, create_parents, append, user } => {
            files::write(&mut context, path, files::WriteRequest { mode, create_parents, append, user }).await
        }
        Request::Mkdir { path, parents, mode, user } => files::mkdir(&context, path, parents, mode, user).await,
        Request::Move { from, to } => files::rename(&context, from, to).await,
        Request::Remove { path, recursive } => files::remove(&context, path, recursive).await,
        Request::Watch { path, recursive } => watch::watch(&mut context, path, recursive).await,
        Request::Grep(spec) => search::grep(&mut context, spec).await,
        Request::Glob(spec) => search::glob(&mut context, spec).await,
    }
}
