//! The wire protocol between the host and `envd`, the agent that runs as PID 1 inside every
//! sandbox. One byte-stream connection (a Unix socket for the namespace backend; a virtio-serial
//! port or vsock for VM backends) carries many concurrent *streams*, each one operation: an exec, a
//! file read, a directory watch…
//!
//! ## Framing
//!
//! Every frame is `len: u32 BE | stream: u32 BE | kind: u8 | payload`, where `len` counts the bytes
//! after itself (so `len >= 5`) and never exceeds [`MAX_FRAME_LEN`]. Stream ids are chosen by the
//! client and must be unique among its open streams; id 0 is reserved.
//!
//! ## A stream's life
//!
//! 1. The client sends [`FrameKind::Open`] with a JSON [`Request`].
//! 2. Depending on the operation it may send [`FrameKind::Data`] (stdin bytes, file contents),
//!    [`FrameKind::Eof`] (no more input) and [`FrameKind::Control`] (a JSON [`Control`]: signal,
//!    PTY resize, cancel).
//! 3. envd answers with [`FrameKind::Reply`] (a JSON [`Reply`]), [`FrameKind::Stdout`] /
//!    [`FrameKind::Stderr`] (raw bytes; file reads use `Stdout`), and finally exactly one
//!    [`FrameKind::Close`]. After `Close` the id may be reused.
//!
//! A failed operation answers `Reply::Error` then `Close`. A malformed frame closes the whole
//! connection (envd keeps running and accepts a new one); background processes survive it.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Version of this protocol; `Reply::Pong` reports envd's.
pub const ENVD_PROTOCOL_VERSION: u32 = 1;
/// Largest `len` a frame may declare (1 MiB + header).
pub const MAX_FRAME_LEN: u32 = 1024 * 1024 + 5;
/// Largest payload a sender should put in one data frame.
pub const MAX_DATA_CHUNK: usize = 256 * 1024;

/// What a frame carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// client → envd: opens a stream; payload is a JSON [`Request`].
    Open = 1,
    /// client → envd: input bytes (stdin, file contents being written).
    Data = 2,
    /// client → envd: no more input on this stream (closes stdin, ends a file upload).
    Eof = 3,
    /// client → envd: a JSON [`Control`].
    Control = 4,
    /// envd → client: a JSON [`Reply`].
    Reply = 5,
    /// envd → client: stdout bytes, or file contents being read.
    Stdout = 6,
    /// envd → client: stderr bytes.
    Stderr = 7,
    /// envd → client: the stream is finished; nothing more will be sent on it.
    Close = 8,
}

impl FrameKind {
    pub fn from_u8(byte: u8) -> Option<Self> {
        Some(match byte {
            1 => Self::Open,
            2 => Self::Data,
            3 => Self::Eof,
            4 => Self::Control,
            5 => Self::Reply,
            6 => Self::Stdout,
            7 => Self::Stderr,
            8 => Self::Close,
            _ => return None,
        })
    }
}

/// Opens a stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Liveness and version check → `Pong`, `Close`.
    Ping,
    /// Starts a process → `Started`, output frames, `Exited`, `Close`. With `background`, the
    /// process outlives the stream: closing the stream (or the connection) detaches instead of
    /// killing it, and its output is kept in a bounded buffer for `attach`.
    Exec(ExecSpec),
    /// Re-attaches to a process started earlier, by id or tag → `Started`, the buffered output
    /// then live output, `Exited`, `Close`.
    Attach(AttachSpec),
    /// → `Processes`, `Close`.
    ListProcesses,
    /// Sends a signal to a process → `Ok`, `Close`.
    Signal { process_id: u64, signal: i32 },
    /// → `Stat`, `Close`.
    Stat { path: String },
    /// → one or more `Entries` (a large listing is split so every reply fits in a frame; the
    /// client concatenates them), `Close`. `depth` 1 lists the directory's own entries (default);
    /// 2 adds its subdirectories' entries, and so on. Symlinks are listed, never followed.
    List {
        path: String,
        #[serde(default)]
        depth: Option<u32>,
    },
    /// → `Stat`, `Stdout` chunks, `Close`.
    Read {
        path: String,
        #[serde(default)]
        offset: Option<u64>,
        #[serde(default)]
        length: Option<u64>,
    },
    /// Client sends `Data` chunks then `Eof` → `Written`, `Close`. The file is written to a temp
    /// file beside it and renamed into place at `Eof`, so readers never see half a file. A file
    /// being replaced keeps its owner (uid and gid) and, unless `mode` is set, its mode.
    Write {
        path: String,
        /// Permission bits of the file, set exactly. Default: a replaced file's own; for a new
        /// file `0o644` less envd's umask. (An append uses it only for a file it creates, less the
        /// umask.)
        #[serde(default)]
        mode: Option<u32>,
        /// Create missing parent directories.
        #[serde(default)]
        create_parents: bool,
        /// Append instead of replacing (written in place, not atomically).
        #[serde(default)]
        append: bool,
        /// Create a new file (and, with `create_parents`, the directories created for it) owned by
        /// this user and their login group: a name or numeric uid, looked up in the sandbox's
        /// `/etc/passwd` like [`ExecSpec::user`] (an unknown name is `UnknownUser`; a uid without
        /// an entry gets the group of the same number). An existing file keeps its owner. Without
        /// it, what envd creates is owned by envd's user (root).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// → `Ok`, `Close`. With `parents`, missing ancestors are created too and an existing
    /// directory is fine.
    Mkdir {
        path: String,
        #[serde(default)]
        parents: bool,
        #[serde(default)]
        mode: Option<u32>,
        /// Create the directories owned by this user, as for `Write`'s `user` (existing ones are
        /// left alone).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        user: Option<String>,
    },
    /// → `Ok`, `Close`.
    Move { from: String, to: String },
    /// → `Ok`, `Close`.
    Remove {
        path: String,
        #[serde(default)]
        recursive: bool,
    },
    /// → `Watching`, then a `WatchEvent` per change until the client sends `Control::Cancel`.
    Watch {
        path: String,
        #[serde(default)]
        recursive: bool,
    },
    /// Regex search over files, in-process with ripgrep's crates, respecting `.gitignore` →
    /// one or more `GrepMatches` (concatenated by the client), `Close`.
    Grep(GrepSpec),
    /// Files whose path matches glob patterns, respecting `.gitignore`, newest first →
    /// one or more `GlobMatches` (concatenated by the client), `Close`.
    Glob(GlobSpec),
}

/// What to search for, where and how to report it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GrepSpec {
    /// A Rust regex (ripgrep syntax).
    pub pattern: String,
    /// File or directory to search (absolute; default `/`).
    #[serde(default)]
    pub path: Option<String>,
    /// Globs over paths relative to `path`; `!glob` excludes (ripgrep `--glob`).
    #[serde(default)]
    pub globs: Vec<String>,
    /// ripgrep file types, e.g. `rust`, `py`, `js` (ripgrep `--type`).
    #[serde(default)]
    pub file_types: Vec<String>,
    #[serde(default)]
    pub case_insensitive: bool,
    /// Let the pattern match across lines (and `.` match newlines).
    #[serde(default)]
    pub multiline: bool,
    /// Treat the pattern as a literal string.
    #[serde(default)]
    pub fixed_strings: bool,
    /// Lines of context before / after each match (content mode).
    #[serde(default)]
    pub before_context: u32,
    #[serde(default)]
    pub after_context: u32,
    #[serde(default)]
    pub output: GrepOutput,
    /// Search hidden files and directories too.
    #[serde(default)]
    pub hidden: bool,
    /// Do not respect `.gitignore`/`.ignore` files.
    #[serde(default)]
    pub no_ignore: bool,
    /// Stop after this many reported items (lines in content mode, files otherwise); the reply
    /// says it was truncated. Default 1,000.
    #[serde(default)]
    pub max_results: Option<u32>,
}

/// What a grep reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GrepOutput {
    /// Matching lines (with context lines when asked), grouped by file.
    Content,
    /// Only the paths of files that match.
    #[default]
    FilesWithMatches,
    /// The number of matching lines per file.
    Count,
}

/// One file's results.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrepFile {
    /// Absolute path.
    pub path: String,
    /// Matching lines in the file (all of them, even when `lines` is cut short).
    pub matches: u64,
    /// Content mode only: matching and context lines, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lines: Vec<GrepLine>,
}

/// A line of grep output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GrepLine {
    /// 1-based.
    pub line_number: u64,
    /// The line without its terminator (lossy UTF-8; very long lines are cut).
    pub text: String,
    /// A context line rather than a match.
    #[serde(default)]
    pub context: bool,
}

/// Which files to find.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GlobSpec {
    /// Glob patterns over paths relative to `path` (`**/*.rs`, `src/**/mod.rs`); a file matching
    /// any of them is returned.
    pub patterns: Vec<String>,
    /// Directory to search (absolute; default `/`).
    #[serde(default)]
    pub path: Option<String>,
    #[serde(default)]
    pub hidden: bool,
    #[serde(default)]
    pub no_ignore: bool,
    /// Default 1,000; the reply says when more matched.
    #[serde(default)]
    pub max_results: Option<u32>,
}

/// A file a glob found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct GlobMatch {
    /// Absolute path.
    pub path: String,
    pub size: u64,
    /// Modification time, Unix milliseconds.
    pub modified_ms: i64,
}

/// How to start a process.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// Program and arguments, run directly. Exactly one of `argv` and `cmd` is set.
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    /// A shell command line, run with `/bin/sh -c`.
    #[serde(default)]
    pub cmd: Option<String>,
    /// Extra environment variables (on top of envd's base environment).
    #[serde(default)]
    pub env: std::collections::BTreeMap<String, String>,
    /// Working directory (default `/`; the user's home when `user` is set and this is not).
    #[serde(default)]
    pub cwd: Option<String>,
    /// User name or numeric uid to run as (looked up in the sandbox's `/etc/passwd`).
    #[serde(default)]
    pub user: Option<String>,
    /// Run on a pseudo-terminal of this size (stdout carries the terminal output; no stderr).
    #[serde(default)]
    pub pty: Option<PtySize>,
    /// Kill the process (SIGKILL to its process group) after this many milliseconds.
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Keep running after the stream closes; see [`Request::Exec`].
    #[serde(default)]
    pub background: bool,
    /// A name to find the process by later (unique among running processes).
    #[serde(default)]
    pub tag: Option<String>,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PtySize {
    pub cols: u16,
    pub rows: u16,
}

/// Which process to re-attach to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachSpec {
    #[serde(default)]
    pub process_id: Option<u64>,
    #[serde(default)]
    pub tag: Option<String>,
}

/// Mid-stream instructions from the client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "control", rename_all = "snake_case", deny_unknown_fields)]
pub enum Control {
    /// Send a signal to the stream's process (group).
    Signal { signal: i32 },
    /// Resize the stream's PTY.
    Resize { cols: u16, rows: u16 },
    /// Stop the operation (a watch, a read, a write: its temp file is removed); for an exec,
    /// detach (background) or kill (foreground); for an attach, stop following (never kills).
    Cancel,
}

/// Answers from envd.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "reply", rename_all = "snake_case", deny_unknown_fields)]
pub enum Reply {
    Pong {
        version: u32,
        envd_version: String,
        uptime_ms: u64,
    },
    /// The process started (or, for attach, was found).
    Started {
        process_id: u64,
        pid: u32,
    },
    /// The process ended. `signal` is set when a signal killed it; `timed_out` when envd killed
    /// it for exceeding `timeout_ms`.
    Exited {
        exit_code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
    Processes {
        processes: Vec<ProcessInfo>,
    },
    Stat {
        entry: FileEntry,
    },
    Entries {
        entries: Vec<FileEntry>,
    },
    Written {
        bytes: u64,
    },
    Watching,
    WatchEvent {
        event: WatchEvent,
    },
    /// A batch of grep results; `truncated` (on the last batch) says results were cut at
    /// `max_results`. `files_searched` counts every file searched so far.
    GrepMatches {
        files: Vec<GrepFile>,
        #[serde(default)]
        truncated: bool,
        #[serde(default)]
        files_searched: u64,
    },
    /// A batch of glob results, newest first across batches; `truncated` as for grep.
    GlobMatches {
        matches: Vec<GlobMatch>,
        #[serde(default)]
        truncated: bool,
    },
    Ok,
    Error {
        error: EnvdError,
    },
}

/// A process envd started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProcessInfo {
    pub process_id: u64,
    pub pid: u32,
    pub tag: Option<String>,
    pub argv: Vec<String>,
    pub background: bool,
    /// `None` while running, and when a signal ended it.
    pub exit_code: Option<i32>,
    /// The signal that ended it, if one did.
    #[serde(default)]
    pub signal: Option<i32>,
    pub running: bool,
}

/// What a path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FileType {
    File,
    Directory,
    Symlink,
    Other,
}

/// A file or directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
pub struct FileEntry {
    /// Absolute path inside the sandbox.
    pub path: String,
    pub name: String,
    #[serde(rename = "type")]
    pub file_type: FileType,
    pub size: u64,
    /// Permission bits, e.g. `0o644`.
    pub mode: u32,
    /// Modification time, Unix milliseconds.
    pub modified_ms: i64,
    /// For symlinks, where they point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub symlink_target: Option<String>,
}

/// A change under a watched directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WatchEvent {
    pub path: String,
    pub kind: WatchEventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WatchEventKind {
    Create,
    Modify,
    Remove,
    Rename,
}

/// Why an operation failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema, thiserror::Error)]
#[error("{code}: {message}")]
pub struct EnvdError {
    pub code: EnvdErrorCode,
    pub message: String,
}

/// Stable envd error codes; the server maps them onto API error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvdErrorCode {
    /// The request is malformed (both or neither of argv/cmd, bad control for the stream…).
    InvalidRequest,
    /// A path is relative, or escapes the sandbox root.
    PathOutsideSandbox,
    NotFound,
    AlreadyExists,
    PermissionDenied,
    NotADirectory,
    IsADirectory,
    DirectoryNotEmpty,
    /// The disk (or the sandbox's disk quota) is full.
    NoSpace,
    /// No such user in the sandbox's /etc/passwd.
    UnknownUser,
    /// The program could not be started (not found, not executable).
    SpawnFailed,
    /// The tag is already used by a running process.
    TagInUse,
    /// Anything else; the message has the OS error.
    Io,
    #[serde(other)]
    Unknown,
}

impl std::fmt::Display for EnvdErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default();
        f.write_str(&text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_tagged_by_op() {
        let request = Request::Exec(ExecSpec { argv: Some(vec!["ls".into()]), ..Default::default() });
        let json = serde_json::to_value(&request).unwrap();
        assert_eq!(json["op"], "exec");
        assert_eq!(json["argv"][0], "ls");
        assert_eq!(serde_json::from_value::<Request>(json).unwrap(), request);
        let read: Request = serde_json::from_str(r#"{"op":"read","path":"/etc/hostname"}"#).unwrap();
        assert_eq!(read, Request::Read { path: "/etc/hostname".into(), offset: None, length: None });
        assert!(serde_json::from_str::<Request>(r#"{"op":"stat","path":"/","bogus":1}"#).is_err());
    }

    #[test]
    fn write_and_mkdir_take_an_optional_user() {
        let write: Request = serde_json::from_str(r#"{"op":"write","path":"/f"}"#).unwrap();
        assert_eq!(
            write,
            Request::Write { path: "/f".into(), mode: None, create_parents: false, append: false, user: None }
        );
        // Without a user the request is what it was before `user` existed.
        assert_eq!(
            serde_json::to_string(&write).unwrap(),
            r#"{"op":"write","path":"/f","mode":null,"create_parents":false,"append":false}"#
        );
        let mkdir = Request::Mkdir { path: "/d".into(), parents: true, mode: None, user: Some("user".into()) };
        let json = serde_json::to_value(&mkdir).unwrap();
        assert_eq!(json["user"], "user");
        assert_eq!(serde_json::from_value::<Request>(json).unwrap(), mkdir);
    }

    #[test]
    fn frame_kinds_round_trip() {
        for byte in 0..=255u8 {
            if let Some(kind) = FrameKind::from_u8(byte) {
                assert_eq!(kind as u8, byte);
            }
        }
        assert_eq!(FrameKind::from_u8(0), None);
    }
}
