//! File transfers and watches on the host side: [`FileReader`] (a download, chunk by chunk), the
//! streamed upload behind `EnvdClient::write`, and [`Watch`].

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use runtools_protocol::envd::{MAX_DATA_CHUNK, Reply, Request, WatchEvent};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::ClientError;
use super::connection::{Connection, Incoming, StreamHandle};

/// How to write a file. (Who owns a new file is [`EnvdClient::write_as`]'s `user`.)
///
/// [`EnvdClient::write_as`]: super::EnvdClient::write_as
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteOptions {
    /// Permission bits for a new file (default `0o644`, less envd's umask).
    pub mode: Option<u32>,
    /// Create missing parent directories.
    pub create_parents: bool,
    /// Append to the file (in place) instead of replacing it atomically.
    pub append: bool,
}

/// A file being read. Dropping it early cancels the read.
#[derive(Debug)]
pub struct FileReader {
    stream: StreamHandle,
}

impl FileReader {
    pub(crate) fn new(stream: StreamHandle) -> Self {
        Self { stream }
    }

    /// The next chunk (at most `MAX_DATA_CHUNK` bytes), or `None` at the end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, ClientError> {
        match self.stream.recv().await? {
            Incoming::Stdout(bytes) => Ok(Some(bytes)),
            Incoming::Close => Ok(None),
            Incoming::Reply(Reply::Error { error }) => {
                let _ = self.stream.drain().await;
                Err(ClientError::Envd(error))
            }
            Incoming::Reply(other) => {
                Err(ClientError::Protocol(format!("unexpected reply while reading a file: {other:?}")))
            }
            Incoming::Stderr(_) => Err(ClientError::Protocol("envd sent stderr on a file read".into())),
        }
    }

    /// Reads everything that is left into memory.
    pub async fn read_to_end(&mut self) -> Result<Vec<u8>, ClientError> {
        let mut contents = Vec::new();
        while let Some(chunk) = self.chunk().await? {
            contents.extend_from_slice(&chunk);
        }
        Ok(contents)
    }
}

/// Streams `data` into `path` (what it creates owned by `user`): at most a few chunks are in
/// flight at any time.
pub(crate) async fn write<R: AsyncRead + Unpin + Send>(
    connection: &Arc<Connection>,
    path: &str,
    options: WriteOptions,
    user: Option<&str>,
    mut data: R,
) -> Result<u64, ClientError> {
    let request = Request::Write {
        path: path.to_owned(),
        mode: options.mode,
        create_parents: options.create_parents,
        append: options.append,
        user: user.map(str::to_owned),
    };
    let mut stream = connection.open(&request).await?;
    let mut buffer = BytesMut::with_capacity(MAX_DATA_CHUNK);
    loop {
        // envd answers early only to refuse (bad path, no permission, disk full).
        if let Some(incoming) = stream.try_recv() {
            return Err(early_answer(&mut stream, incoming).await);
        }
        buffer.reserve(MAX_DATA_CHUNK);
        let read = (&mut data).take(MAX_DATA_CHUNK as u64).read_buf(&mut buffer).await?;
        if read == 0 {
            break;
        }
        stream.sender.data_bytes(buffer.split().freeze()).await?;
    }
    stream.sender.eof().await?;
    let written = match stream.reply().await? {
        Reply::Written { bytes } => bytes,
        other => return Err(ClientError::Protocol(format!("expected a written reply, got {other:?}"))),
    };
    stream.finish().await?;
    Ok(written)
}

async fn early_answer(stream: &mut StreamHandle, incoming: Incoming) -> ClientError {
    match incoming {
        Incoming::Reply(Reply::Error { error }) => {
            let _ = stream.drain().await;
            ClientError::Envd(error)
        }
        Incoming::Close => ClientError::Protocol("envd closed the write stream before the end of the data".into()),
        other => ClientError::Protocol(format!("unexpected answer during a write: {other:?}")),
    }
}

/// A directory watch. Dropping it stops the watch.
#[derive(Debug)]
pub struct Watch {
    stream: StreamHandle,
}

impl Watch {
    pub(crate) fn new(stream: StreamHandle) -> Self {
        Self { stream }
    }

    /// The next change, or `None` when the watch ended (the directory went away, envd failed, or
    /// the connection closed).
    pub async fn next(&mut self) -> Option<WatchEvent> {
        loop {
            match self.stream.recv().await {
                Ok(Incoming::Reply(Reply::WatchEvent { event })) => return Some(event),
                Ok(Incoming::Close) | Err(_) => return None,
                Ok(Incoming::Reply(Reply::Error { error })) => {
                    tracing::debug!(%error, "watch failed");
                }
                Ok(other) => tracing::debug!(?other, "ignoring an unexpected answer on a watch stream"),
            }
        }
    }
}
