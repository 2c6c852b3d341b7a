//! Searching the sandbox's files from the host: [`GrepResults`] and [`GlobResults`], and the
//! calls behind `EnvdClient::grep` / `EnvdClient::glob`, which gather the batches envd splits its
//! answer into.

use std::sync::Arc;

use runtools_protocol::envd::{GlobMatch, GlobSpec, GrepFile, GrepSpec, Reply, Request};

use super::ClientError;
use super::connection::{Connection, Incoming, StreamHandle};

/// What a grep found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrepResults {
    /// Files with matches, in the order envd walked them (sorted by name, directory by directory).
    pub files: Vec<GrepFile>,
    /// Results were cut at `max_results`: more matches exist.
    pub truncated: bool,
    /// Files envd searched (after ignore rules, globs and types), including those without matches.
    pub files_searched: u64,
}

impl GrepResults {
    /// Adds a batch. envd sends a file too large for one batch as consecutive pieces with the same
    /// path (the first carrying the file's match count); they become one file again here.
    fn absorb(&mut self, files: Vec<GrepFile>) {
        for file in files {
            match self.files.last_mut() {
                Some(last) if last.path == file.path => {
                    last.matches += file.matches;
                    last.lines.extend(file.lines);
                }
                _ => self.files.push(file),
            }
        }
    }
}

/// What a glob found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GlobResults {
    /// Matching files, newest first.
    pub matches: Vec<GlobMatch>,
    /// More files matched than `max_results`; these are the newest of them.
    pub truncated: bool,
}

/// The error envd answered, after draining the stream.
async fn failed(stream: &mut StreamHandle, error: runtools_protocol::envd::EnvdError) -> ClientError {
    let _ = stream.drain().await;
    ClientError::Envd(error)
}

fn unexpected(incoming: &Incoming, wanted: &str) -> ClientError {
    ClientError::Protocol(format!("expected {wanted} replies, got {incoming:?}"))
}

pub(crate) async fn grep(connection: &Arc<Connection>, spec: GrepSpec) -> Result<GrepResults, ClientError> {
    let mut stream = connection.open(&Request::Grep(spec)).await?;
    let mut results = GrepResults::default();
    loop {
        match stream.recv().await? {
            Incoming::Reply(Reply::GrepMatches { files, truncated, files_searched }) => {
                results.absorb(files);
                results.truncated |= truncated;
                results.files_searched = results.files_searched.max(files_searched);
            }
            Incoming::Reply(Reply::Error { error }) => return Err(failed(&mut stream, error).await),
            Incoming::Close => return Ok(results),
            other => return Err(unexpected(&other, "grep matches")),
        }
    }
}

pub(crate) async fn glob(connection: &Arc<Connection>, spec: GlobSpec) -> Result<GlobResults, ClientError> {
    let mut stream = connection.open(&Request::Glob(spec)).await?;
    let mut results = GlobResults::default();
    loop {
        match stream.recv().await? {
            Incoming::Reply(Reply::GlobMatches { matches, truncated }) => {
                results.matches.extend(matches);
                results.truncated |= truncated;
            }
            Incoming::Reply(Reply::Error { error }) => return Err(failed(&mut stream, error).await),
            Incoming::Close => return Ok(results),
            other => return Err(unexpected(&other, "glob matches")),
        }
    }
}

#[cfg(test)]
mod tests {
    use runtools_protocol::envd::GrepLine;

    use super::*;

    fn line(line_number: u64) -> GrepLine {
        GrepLine { line_number, text: format!("line {line_number}"), context: false }
    }

    #[test]
    fn pieces_of_one_file_are_merged_across_batches() {
        let mut results = GrepResults::default();
        results.absorb(vec![
            GrepFile { path: "/a".into(), matches: 1, lines: vec![line(1)] },
            GrepFile { path: "/b".into(), matches: 3, lines: vec![line(1)] },
        ]);
        results.absorb(vec![GrepFile { path: "/b".into(), matches: 0, lines: vec![line(2), line(3)] }]);
        results.absorb(vec![GrepFile { path: "/c".into(), matches: 1, lines: vec![line(9)] }]);
        let summary: Vec<(&str, u64, usize)> =
            results.files.iter().map(|file| (file.path.as_str(), file.matches, file.lines.len())).collect();
        assert_eq!(summary, [("/a", 1, 1), ("/b", 3, 3), ("/c", 1, 1)]);
    }
}
