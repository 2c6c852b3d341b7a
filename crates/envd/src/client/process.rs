//! A process envd runs, as the host sees it: [`Process`] (its output events, stdin, signals, PTY
//! resize, detach) and the results [`Exit`] and [`ExecOutput`].

use bytes::Bytes;
use runtools_protocol::envd::{Control, Reply};

use super::ClientError;
use super::connection::{Incoming, StreamHandle, StreamSender};

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Set when the process exited by itself.
    pub exit_code: Option<i32>,
    /// Set when a signal killed it.
    pub signal: Option<i32>,
    /// envd killed it for exceeding its timeout.
    pub timed_out: bool,
}

impl Exit {
    /// Exited by itself with code 0.
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Everything a process wrote, and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: Exit,
}

/// Something a process did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProcessEvent {
    Stdout(Bytes),
    /// Never sent for PTY processes (the terminal merges both into stdout).
    Stderr(Bytes),
    /// The last event.
    Exited(Exit),
}

/// A running (or re-attached) process. Dropping it without [`detach`](Self::detach) or reading it
/// to its exit cancels the stream: a background process keeps running, a foreground one is killed.
#[derive(Debug)]
pub struct Process {
    /// envd's id for the process (stable across attaches).
    pub process_id: u64,
    /// Its pid inside the sandbox.
    pub pid: u32,
    stream: StreamHandle,
    exited: bool,
}

impl Process {
    /// Waits for `Started` on a freshly opened exec or attach stream.
    pub(crate) async fn started(mut stream: StreamHandle) -> Result<Self, ClientError> {
        match stream.reply().await? {
            Reply::Started { process_id, pid } => Ok(Self { process_id, pid, stream, exited: false }),
            other => Err(ClientError::Protocol(format!("expected a started reply, got {other:?}"))),
        }
    }

    pub(crate) fn stdin_sender(&self) -> StreamSender {
        self.stream.sender.clone()
    }

    /// The next event, or `Ok(None)` once the stream closed after the exit.
    async fn next_event(&mut self) -> Result<Option<ProcessEvent>, ClientError> {
        loop {
            match self.stream.recv().await? {
                Incoming::Stdout(bytes) => return Ok(Some(ProcessEvent::Stdout(bytes))),
                Incoming::Stderr(bytes) => return Ok(Some(ProcessEvent::Stderr(bytes))),
                Incoming::Reply(Reply::Exited { exit_code, signal, timed_out }) => {
                    self.exited = true;
                    return Ok(Some(ProcessEvent::Exited(Exit { exit_code, signal, timed_out })));
                }
                Incoming::Reply(Reply::Error { error }) => return Err(ClientError::Envd(error)),
                Incoming::Reply(other) => tracing::debug!(?other, "ignoring an unexpected reply on a process stream"),
                Incoming::Close if self.exited => return Ok(None),
                Incoming::Close => {
                    return Err(ClientError::Protocol("envd closed the process stream before it exited".into()));
                }
            }
        }
    }

    /// The next output chunk or the exit; `None` after the exit, or when the stream or connection
    /// ended (use [`wait`](Self::wait) to tell those apart).
    pub async fn next(&mut self) -> Option<ProcessEvent> {
        match self.next_event().await {
            Ok(event) => event,
            Err(error) => {
                tracing::debug!(%error, process_id = self.process_id, "process stream ended");
                None
            }
        }
    }

    /// Writes to the process's stdin (or its terminal).
    pub async fn write_stdin(&self, data: &[u8]) -> Result<(), ClientError> {
        self.stream.sender.data(data).await
    }

    /// Ends the process's stdin (for a PTY: sends end-of-file, `^D`).
    pub async fn close_stdin(&self) -> Result<(), ClientError> {
        self.stream.sender.eof().await
    }

    /// Sends `signal` to the process's process group.
    pub async fn signal(&self, signal: i32) -> Result<(), ClientError> {
        self.stream.sender.control(&Control::Signal { signal }).await
    }

    /// Resizes the process's PTY.
    pub async fn resize(&self, cols: u16, rows: u16) -> Result<(), ClientError> {
        self.stream.sender.control(&Control::Resize { cols, rows }).await
    }

    /// Stops following the process. A background process keeps running (re-attach by id or tag);
    /// a foreground one is killed.
    pub async fn detach(mut self) -> Result<(), ClientError> {
        if self.exited {
            return self.stream.drain().await;
        }
        self.stream.sender.control(&Control::Cancel).await?;
        self.stream.drain().await
    }

    /// Collects the rest of the output and the exit.
    pub async fn wait(mut self) -> Result<ExecOutput, ClientError> {
        self.collect().await
    }

    pub(crate) async fn collect(&mut self) -> Result<ExecOutput, ClientError> {
        let mut stdout = Vec::new();
        let mut stderr = Vec::new();
        let mut exit = None;
        while let Some(event) = self.next_event().await? {
            match event {
                ProcessEvent::Stdout(bytes) => stdout.extend_from_slice(&bytes),
                ProcessEvent::Stderr(bytes) => stderr.extend_from_slice(&bytes),
                ProcessEvent::Exited(status) => exit = Some(status),
            }
        }
        let exit = exit.ok_or_else(|| ClientError::Protocol("the process stream ended without an exit".into()))?;
        Ok(ExecOutput { stdout, stderr, exit })
    }
}
