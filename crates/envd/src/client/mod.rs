//! The host-side client for envd: [`EnvdClient`] speaks [`runtools_protocol::envd`] over any byte
//! stream (a Unix socket, a virtio-serial port…), one connection carrying many concurrent streams.
//! Processes live in [`process`], file transfers and watches in [`files`], grep and glob in
//! [`search`].

mod connection;
mod files;
mod process;
mod search;

use std::sync::Arc;

use runtools_protocol::envd::{
    AttachSpec, EnvdError, ExecSpec, FileEntry, GlobSpec, GrepSpec, ProcessInfo, Reply, Request,
};
use tokio::io::{AsyncRead, AsyncWrite};

use connection::Connection;
pub use files::{FileReader, Watch, WriteOptions};
pub use process::{ExecOutput, Exit, Process, ProcessEvent};
pub use search::{GlobResults, GrepResults};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The operation failed inside the sandbox; `code` says how.
    #[error("envd: {0}")]
    Envd(EnvdError),
    /// The connection to envd is gone (envd exited, the sandbox was deleted, a protocol error).
    #[error("the connection to envd is closed")]
    ConnectionClosed,
    /// envd answered something the protocol does not allow here.
    #[error("envd protocol violation: {0}")]
    Protocol(String),
    /// Reading the caller's data (e.g. a file being uploaded) failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// envd's answer to a ping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pong {
    /// envd's protocol version.
    pub version: u32,
    /// envd's build version.
    pub envd_version: String,
    pub uptime_ms: u64,
}

/// A connection to one envd. Cheap to clone; every clone shares the connection, and each call
/// opens its own stream on it, so calls run concurrently.
#[derive(Debug, Clone)]
pub struct EnvdClient {
    connection: Arc<Connection>,
}

fn unexpected(reply: &Reply, wanted: &str) -> ClientError {
    ClientError::Protocol(format!("expected a {wanted} reply, got {reply:?}"))
}

impl EnvdClient {
    /// Speaks the envd protocol over `stream`. Must be called within a tokio runtime: a background
    /// task reads and writes the connection until it closes or every clone is dropped.
    pub fn new<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(stream: S) -> Self {
        Self { connection: Connection::start(stream) }
    }

    /// True once the connection has failed or closed; every call then fails with
    /// [`ClientError::ConnectionClosed`].
    pub fn is_closed(&self) -> bool {
        self.connection.is_closed()
    }

    /// Sends `request` and returns the one reply of a request → reply → close stream.
    async fn unary(&self, request: &Request) -> Result<Reply, ClientError> {
        let mut stream = self.connection.open(request).await?;
        let reply = stream.reply().await?;
        stream.finish().await?;
        Ok(reply)
    }

    async fn unary_ok(&self, request: &Request) -> Result<(), ClientError> {
        match self.unary(request).await? {
            Reply::Ok => Ok(()),
            other => Err(unexpected(&other, "ok")),
        }
    }

    pub async fn ping(&self) -> Result<Pong, ClientError> {
        match self.unary(&Request::Ping).await? {
            Reply::Pong { version, envd_version, uptime_ms } => Ok(Pong { version, envd_version, uptime_ms }),
            other => Err(unexpected(&other, "pong")),
        }
    }

    /// Starts a process; returns once envd reports it started.
    pub async fn exec(&self, spec: ExecSpec) -> Result<Process, ClientError> {
        let stream = self.connection.open(&Request::Exec(spec)).await?;
        Process::started(stream).await
    }

    /// Re-attaches to a process by id or tag: its buffered output (background processes) comes
    /// first, then live output and its exit.
    pub async fn attach(&self, spec: AttachSpec) -> Result<Process, ClientError> {
        let stream = self.connection.open(&Request::Attach(spec)).await?;
        Process::started(stream).await
    }

    /// Runs a process to completion, feeding it `stdin` (then end of input) and collecting its
    /// output.
    pub async fn run(&self, spec: ExecSpec, stdin: Option<Vec<u8>>) -> Result<ExecOutput, ClientError> {
        let mut process = self.exec(spec).await?;
        let input = process.stdin_sender();
        let feed = async move {
            if let Some(data) = stdin {
                input.data(&data).await?;
            }
            input.eof().await
        };
        let (fed, output) = tokio::join!(feed, process.collect());
        let output = output?;
        // A process may exit without reading its input; that is not an error.
        if let Err(error) = fed {
            tracing::debug!(%error, "stdin was not fully delivered");
        }
        Ok(output)
    }

    pub async fn list_processes(&self) -> Result<Vec<ProcessInfo>, ClientError> {
        match self.unary(&Request::ListProcesses).await? {
            Reply::Processes { processes } => Ok(processes),
            other => Err(unexpected(&other, "processes")),
        }
    }

    /// Sends `signal` to a process's process group.
    pub async fn signal(&self, process_id: u64, signal: i32) -> Result<(), ClientError> {
        self.unary_ok(&Request::Signal { process_id, signal }).await
    }

    /// Describes a path (without following a final symlink).
    pub async fn stat(&self, path: &str) -> Result<FileEntry, ClientError> {
        match self.unary(&Request::Stat { path: path.to_owned() }).await? {
            Reply::Stat { entry } => Ok(entry),
            other => Err(unexpected(&other, "stat")),
        }
    }

    /// Lists a directory; `depth` 2 and more descend into subdirectories (default 1).
    pub async fn list(&self, path: &str, depth: Option<u32>) -> Result<Vec<FileEntry>, ClientError> {
        let mut stream = self.connection.open(&Request::List { path: path.to_owned(), depth }).await?;
        let mut entries = Vec::new();
        // Large listings arrive as several `Entries` replies.
        loop {
            match stream.recv().await? {
                connection::Incoming::Reply(Reply::Entries { entries: batch }) => entries.extend(batch),
                connection::Incoming::Reply(Reply::Error { error }) => {
                    let _ = stream.drain().await;
                    return Err(ClientError::Envd(error));
                }
                connection::Incoming::Close => return Ok(entries),
                connection::Incoming::Reply(other) => return Err(unexpected(&other, "entries")),
                _ => return Err(ClientError::Protocol("envd sent output on a list stream".into())),
            }
        }
    }

    /// Reads a file (from `offset`, at most `length` bytes), streamed in chunks.
    pub async fn read(
        &self,
        path: &str,
        offset: Option<u64>,
        length: Option<u64>,
    ) -> Result<(FileEntry, FileReader), ClientError> {
        let request = Request::Read { path: path.to_owned(), offset, length };
        let mut stream = self.connection.open(&request).await?;
        match stream.reply().await? {
            Reply::Stat { entry } => Ok((entry, FileReader::new(stream))),
            other => Err(unexpected(&other, "stat")),
        }
    }

    /// Writes `data` to `path`, streaming it in chunks; returns the bytes written. Unless
    /// appending, readers see the old file until the new one is complete. A replaced file keeps
    /// its owner and mode; a new one is owned by envd's user (root in a sandbox).
    pub async fn write<R: AsyncRead + Unpin + Send>(
        &self,
        path: &str,
        options: WriteOptions,
        data: R,
    ) -> Result<u64, ClientError> {
        files::write(&self.connection, path, options, None, data).await
    }

    /// [`Self::write`], with a new file (and the parent directories created for it) owned by
    /// `user` — a name or uid in the sandbox's `/etc/passwd`, like `ExecSpec.user` — and its login
    /// group. envd still writes as itself; an existing file keeps its owner. An unknown user is
    /// `UnknownUser`.
    pub async fn write_as<R: AsyncRead + Unpin + Send>(
        &self,
        path: &str,
        options: WriteOptions,
        user: Option<&str>,
        data: R,
    ) -> Result<u64, ClientError> {
        files::write(&self.connection, path, options, user, data).await
    }

    /// Creates a directory (with `parents`, its missing ancestors too, and an existing directory
    /// is fine), owned by envd's user.
    pub async fn mkdir(&self, path: &str, parents: bool) -> Result<(), ClientError> {
        self.mkdir_as(path, parents, None).await
    }

    /// [`Self::mkdir`], with the directories it creates owned by `user` (as for
    /// [`Self::write_as`]).
    pub async fn mkdir_as(&self, path: &str, parents: bool, user: Option<&str>) -> Result<(), ClientError> {
        let user = user.map(str::to_owned);
        self.unary_ok(&Request::Mkdir { path: path.to_owned(), parents, mode: None, user }).await
    }

    /// Moves (renames) `from` to `to`.
    pub async fn rename(&self, from: &str, to: &str) -> Result<(), ClientError> {
        self.unary_ok(&Request::Move { from: from.to_owned(), to: to.to_owned() }).await
    }

    pub async fn remove(&self, path: &str, recursive: bool) -> Result<(), ClientError> {
        self.unary_ok(&Request::Remove { path: path.to_owned(), recursive }).await
    }

    /// Searches file contents with a regex (in-process ripgrep inside envd, respecting
    /// `.gitignore`), gathering every batch of the answer.
    pub async fn grep(&self, spec: GrepSpec) -> Result<GrepResults, ClientError> {
        search::grep(&self.connection, spec).await
    }

    /// Finds files whose path (relative to `spec.path`) matches glob patterns, newest first.
    pub async fn glob(&self, spec: GlobSpec) -> Result<GlobResults, ClientError> {
        search::glob(&self.connection, spec).await
    }

    /// Watches a directory (and, with `recursive`, everything below it) until the [`Watch`] is
    /// dropped.
    pub async fn watch(&self, path: &str, recursive: bool) -> Result<Watch, ClientError> {
        let mut stream = self.connection.open(&Request::Watch { path: path.to_owned(), recursive }).await?;
        match stream.reply().await? {
            Reply::Watching => Ok(Watch::new(stream)),
            other => Err(unexpected(&other, "watching")),
        }
    }
}
