//! The host side of one envd connection: a background task that writes queued frames and demuxes
//! incoming ones onto per-stream queues, the table of open streams, and [`StreamHandle`], one
//! open stream as the typed client methods see it.
//!
//! Flow control is by backpressure: each stream's incoming queue is bounded, and the demux task
//! waits when one is full. A [`Process`](super::Process), [`FileReader`](super::FileReader) or
//! [`Watch`](super::Watch) that is neither read nor dropped therefore eventually stalls the other
//! streams of its connection.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use runtools_protocol::envd::{Control, FrameKind, Reply, Request};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::sync::mpsc;

use super::ClientError;
use crate::frame::{Frame, read_frame, write_frame};

/// Frames queued for the writer (bounds memory while uploading).
const OUTGOING_QUEUE: usize = 16;
/// Frames queued per stream before the demux waits for the stream's reader.
const STREAM_QUEUE: usize = 32;

/// What arrives on a stream.
#[derive(Debug)]
pub(crate) enum Incoming {
    Reply(Reply),
    Stdout(Bytes),
    Stderr(Bytes),
    /// envd closed the stream; nothing follows.
    Close,
}

#[derive(Debug)]
enum Slot {
    Active(mpsc::Sender<Incoming>),
    /// The handle was dropped before envd closed the stream; the id stays taken until `Close`.
    Draining,
}

#[derive(Debug, Default)]
struct StreamTable {
    slots: HashMap<u32, Slot>,
    next_id: u32,
    closed: bool,
}

/// State shared by every clone of the client and every stream handle.
#[derive(Debug)]
pub(crate) struct Connection {
    outgoing: mpsc::Sender<Frame>,
    table: Arc<Mutex<StreamTable>>,
    closed: Arc<AtomicBool>,
}

fn lock(table: &Mutex<StreamTable>) -> MutexGuard<'_, StreamTable> {
    table.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Connection {
    /// Starts the connection's background task on the current tokio runtime.
    pub(crate) fn start<S>(stream: S) -> Arc<Self>
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        let (outgoing, outgoing_rx) = mpsc::channel(OUTGOING_QUEUE);
        let table = Arc::new(Mutex::new(StreamTable { next_id: 1, ..StreamTable::default() }));
        let closed = Arc::new(AtomicBool::new(false));
        tokio::spawn(run_connection(stream, outgoing_rx, table.clone(), closed.clone()));
        Arc::new(Self { outgoing, table, closed })
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Opens a stream with `request`.
    pub(crate) async fn open(self: &Arc<Self>, request: &Request) -> Result<StreamHandle, ClientError> {
        // Serialised up front (with a placeholder id) so a request too large for a frame is
        // refused before a stream id is taken.
        let mut open =
            Frame::json(0, FrameKind::Open, request).map_err(|error| ClientError::Protocol(error.to_string()))?;
        let (tx, rx) = mpsc::channel(STREAM_QUEUE);
        let id = {
            let mut table = lock(&self.table);
            if table.closed {
                return Err(ClientError::ConnectionClosed);
            }
            let mut id = table.next_id;
            while id == 0 || table.slots.contains_key(&id) {
                id = id.wrapping_add(1);
            }
            table.next_id = id.wrapping_add(1);
            table.slots.insert(id, Slot::Active(tx));
            id
        };
        let handle = StreamHandle { sender: StreamSender { id, connection: self.clone() }, rx, finished: false };
        open.stream = id;
        handle.sender.send(open).await?;
        Ok(handle)
    }
}

async fn run_connection<S>(
    stream: S,
    outgoing: mpsc::Receiver<Frame>,
    table: Arc<Mutex<StreamTable>>,
    closed: Arc<AtomicBool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    let outcome = tokio::select! {
        outcome = read_loop(reader, &table) => outcome,
        outcome = write_loop(writer, outgoing) => outcome,
    };
    match outcome {
        Ok(()) => tracing::debug!("envd connection closed"),
        Err(reason) => tracing::warn!(%reason, "envd connection failed"),
    }
    let mut table = lock(&table);
    closed.store(true, Ordering::Release);
    table.closed = true;
    // Dropping the senders wakes every waiting handle with `ConnectionClosed`.
    table.slots.clear();
}

async fn read_loop<R: AsyncRead + Unpin>(reader: R, table: &Mutex<StreamTable>) -> Result<(), String> {
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    loop {
        let Some(frame) = read_frame(&mut reader).await.map_err(|error| error.to_string())? else {
            return Ok(());
        };
        let incoming = match frame.kind {
            FrameKind::Reply => {
                let reply: Reply = serde_json::from_slice(&frame.payload)
                    .map_err(|error| format!("malformed reply on stream {}: {error}", frame.stream))?;
                Incoming::Reply(reply)
            }
            FrameKind::Stdout => Incoming::Stdout(frame.payload),
            FrameKind::Stderr => Incoming::Stderr(frame.payload),
            FrameKind::Close => Incoming::Close,
            other => return Err(format!("envd sent a {other:?} frame, which only clients send")),
        };
        let is_close = matches!(incoming, Incoming::Close);
        let target = {
            let mut table = lock(table);
            match table.slots.get(&frame.stream) {
                Some(Slot::Active(tx)) => {
                    let tx = tx.clone();
                    if is_close {
                        table.slots.remove(&frame.stream);
                    }
                    Some(tx)
                }
                Some(Slot::Draining) => {
                    if is_close {
                        table.slots.remove(&frame.stream);
                    }
                    None
                }
                None => {
                    tracing::debug!(stream = frame.stream, "dropping a frame for a stream that is not open");
                    None
                }
            }
        };
        if let Some(tx) = target {
            // An error means the handle is gone; its Drop marked the slot draining.
            let _ = tx.send(incoming).await;
        }
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(writer: W, mut outgoing: mpsc::Receiver<Frame>) -> Result<(), String> {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(frame) = outgoing.recv().await {
        write_frame(&mut writer, &frame).await.map_err(|error| error.to_string())?;
        // Batch whatever is already queued, then flush.
        while let Ok(frame) = outgoing.try_recv() {
            write_frame(&mut writer, &frame).await.map_err(|error| error.to_string())?;
        }
        writer.flush().await.map_err(|error| error.to_string())?;
    }
    // Every client handle is gone: nothing more will be sent.
    let _ = writer.shutdown().await;
    Ok(())
}

/// Sends frames on one stream; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct StreamSender {
    id: u32,
    connection: Arc<Connection>,
}

impl StreamSender {
    async fn send(&self, frame: Frame) -> Result<(), ClientError> {
        self.connection.outgoing.send(frame).await.map_err(|_| ClientError::ConnectionClosed)
    }

    /// Sends `data` as `Data` frames of at most `MAX_DATA_CHUNK` bytes.
    pub(crate) async fn data(&self, data: &[u8]) -> Result<(), ClientError> {
        for chunk in data.chunks(runtools_protocol::envd::MAX_DATA_CHUNK) {
            self.send(Frame::new(self.id, FrameKind::Data, Bytes::copy_from_slice(chunk))).await?;
        }
        Ok(())
    }

    pub(crate) async fn data_bytes(&self, data: Bytes) -> Result<(), ClientError> {
        self.send(Frame::new(self.id, FrameKind::Data, data)).await
    }

    pub(crate) async fn eof(&self) -> Result<(), ClientError> {
        self.send(Frame::new(self.id, FrameKind::Eof, Bytes::new())).await
    }

    pub(crate) async fn control(&self, control: &Control) -> Result<(), ClientError> {
        let frame = Frame::json(self.id, FrameKind::Control, control)
            .map_err(|error| ClientError::Protocol(error.to_string()))?;
        self.send(frame).await
    }
}

/// One open stream: its sender and its incoming queue. Dropping it before envd closed the stream
/// sends `Control::Cancel` (stopping a watch or read, detaching or killing a process).
#[derive(Debug)]
pub(crate) struct StreamHandle {
    pub(crate) sender: StreamSender,
    rx: mpsc::Receiver<Incoming>,
    finished: bool,
}

impl StreamHandle {
    /// The next thing envd sent. After `Close`, keeps answering `Close`.
    pub(crate) async fn recv(&mut self) -> Result<Incoming, ClientError> {
        if self.finished {
            return Ok(Incoming::Close);
        }
        match self.rx.recv().await {
            Some(Incoming::Close) => {
                self.finished = true;
                Ok(Incoming::Close)
            }
            Some(incoming) => Ok(incoming),
            None => {
                self.finished = true;
                Err(ClientError::ConnectionClosed)
            }
        }
    }

    /// Something envd already sent, without waiting.
    pub(crate) fn try_recv(&mut self) -> Option<Incoming> {
        if self.finished {
            return None;
        }
        let incoming = self.rx.try_recv().ok()?;
        if matches!(incoming, Incoming::Close) {
            self.finished = true;
        }
        Some(incoming)
    }

    /// Waits for the first reply; a `Reply::Error` becomes `ClientError::Envd`.
    pub(crate) async fn reply(&mut self) -> Result<Reply, ClientError> {
        match self.recv().await? {
            Incoming::Reply(Reply::Error { error }) => Err(ClientError::Envd(error)),
            Incoming::Reply(reply) => Ok(reply),
            Incoming::Close => Err(ClientError::Protocol("envd closed the stream without a reply".into())),
            Incoming::Stdout(_) | Incoming::Stderr(_) => {
                Err(ClientError::Protocol("envd sent output before its reply".into()))
            }
        }
    }

    /// Reads until envd closes the stream, failing on a `Reply::Error`.
    pub(crate) async fn finish(&mut self) -> Result<(), ClientError> {
        loop {
            match self.recv().await? {
                Incoming::Close => return Ok(()),
                Incoming::Reply(Reply::Error { error }) => {
                    let _ = self.drain().await;
                    return Err(ClientError::Envd(error));
                }
                _ => {}
            }
        }
    }

    /// Reads and discards until envd closes the stream.
    pub(crate) async fn drain(&mut self) -> Result<(), ClientError> {
        while !matches!(self.recv().await?, Incoming::Close) {}
        Ok(())
    }
}

impl Drop for StreamHandle {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let connection = &self.sender.connection;
        {
            let mut table = lock(&connection.table);
            match table.slots.get_mut(&self.sender.id) {
                Some(slot @ Slot::Active(_)) => *slot = Slot::Draining,
                // Closed meanwhile (the `Close` is still queued) or the connection is gone.
                _ => return,
            }
        }
        let Ok(cancel) = Frame::json(self.sender.id, FrameKind::Control, &Control::Cancel) else {
            return;
        };
        match connection.outgoing.try_send(cancel) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(cancel)) => {
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let outgoing = connection.outgoing.clone();
                    runtime.spawn(async move {
                        let _ = outgoing.send(cancel).await;
                    });
                }
            }
        }
    }
}
