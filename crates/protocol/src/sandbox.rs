//! Sandboxes over the API: their lifecycle states, what a create request may ask for, and the
//! plain (non-streaming) exec form. The transition rules live in the `sandbox` crate; the names
//! are here because they are on the wire.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{EnvironmentId, SandboxId, VolumeId};

/// Where a sandbox is in its life: `creating → running ⇄ paused → stopped`, with the transitional
/// states reality needs and `error` (with a reason) when something failed underneath.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SandboxState {
    Creating,
    Running,
    Pausing,
    Paused,
    Resuming,
    Stopping,
    Stopped,
    Error,
}

impl SandboxState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Creating => "creating",
            Self::Running => "running",
            Self::Pausing => "pausing",
            Self::Paused => "paused",
            Self::Resuming => "resuming",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
            Self::Error => "error",
        }
    }

    /// Every state, for parsing and listing.
    pub const ALL: [SandboxState; 8] = [
        Self::Creating,
        Self::Running,
        Self::Pausing,
        Self::Paused,
        Self::Resuming,
        Self::Stopping,
        Self::Stopped,
        Self::Error,
    ];
}

impl fmt::Display for SandboxState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for SandboxState {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| format!("unknown sandbox state `{text}`"))
    }
}

/// How strongly a sandbox is isolated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// Linux namespaces, cgroups and seccomp; shares the host kernel. Works on every Linux host.
    #[default]
    Namespace,
    /// gVisor's user-space kernel; pause snapshots to disk.
    Gvisor,
}

/// A sandbox's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// Loopback only.
    #[default]
    None,
    /// Outbound access through NAT.
    Internet,
}

/// What happens when a sandbox's lifetime runs out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OnTimeout {
    /// Delete it.
    #[default]
    Kill,
    /// Pause it (it can be resumed later).
    Pause,
}

/// Resource limits. Unset fields take the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxLimits {
    /// CPU cores (fractions allowed), e.g. `0.5`.
    #[serde(default)]
    pub cpu: Option<f64>,
    /// Memory in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// Most processes and threads at once.
    #[serde(default)]
    pub pids: Option<u32>,
    /// Disk for the sandbox's writable layer, in MiB.
    #[serde(default)]
    pub disk_mb: Option<u64>,
}

/// A volume mounted into a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VolumeMount {
    /// The volume's name (created on first use).
    pub volume: String,
    /// Absolute path inside the sandbox.
    pub path: String,
    #[serde(default)]
    pub read_only: bool,
}

/// `POST /v1/sandboxes`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSandboxRequest {
    /// Template name (default `base`).
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub limits: SandboxLimits,
    /// Lifetime in seconds (default 300); extend it with `POST /v1/sandboxes/{id}/timeout`.
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    #[serde(default)]
    pub on_timeout: OnTimeout,
    #[serde(default)]
    pub network: NetworkMode,
    /// Isolation backend (default: the server's).
    #[serde(default)]
    pub isolation: Option<Isolation>,
    /// Environment variables for every process in the sandbox.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub volumes: Vec<VolumeMount>,
    /// Free-form labels, filterable in lists.
    #[serde(default)]
    pub metadata: BTreeMap<String, String>,
}

/// A sandbox.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Sandbox {
    pub id: SandboxId,
    pub environment_id: EnvironmentId,
    pub template: String,
    pub state: SandboxState,
    /// Why the sandbox is in `error`.
    pub error: Option<String>,
    pub isolation: Isolation,
    pub network: NetworkMode,
    pub limits: SandboxLimits,
    pub on_timeout: OnTimeout,
    /// When the lifetime runs out (`null` once stopped).
    pub timeout_at: Option<DateTime<Utc>>,
    pub volumes: Vec<VolumeMount>,
    pub metadata: BTreeMap<String, String>,
    /// Opens the sandbox's port URLs (`http://<port>-<id>.localhost:7070/?token=…`) without an API key.
    pub access_token: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// `POST /v1/sandboxes/{id}/files/mkdir`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MkdirRequest {
    pub path: String,
    /// Create missing parents too.
    #[serde(default)]
    pub parents: bool,
}

/// `POST /v1/sandboxes/{id}/files/move`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub from: String,
    pub to: String,
}

/// `POST /v1/sandboxes/{id}/exec`: run a command to completion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecRequest {
    /// A shell command line (`/bin/sh -c`). Exactly one of `cmd` and `argv`.
    #[serde(default)]
    pub cmd: Option<String>,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Bytes (UTF-8) written to the process's stdin, then closed.
    #[serde(default)]
    pub stdin: Option<String>,
    /// Kill the process after this many seconds (default 60).
    #[serde(default)]
    pub timeout_secs: Option<u64>,
}

/// The result of a plain exec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ExecResult {
    pub stdout: String,
    pub stderr: String,
    pub exit_code: Option<i32>,
    /// Set when a signal ended the process.
    pub signal: Option<i32>,
    pub timed_out: bool,
    pub duration_ms: u64,
}

/// `POST /v1/sandboxes/{id}/timeout`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SetTimeoutRequest {
    /// New lifetime from now, in seconds.
    pub timeout_secs: u64,
}

/// A persistent volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Volume {
    pub id: VolumeId,
    pub environment_id: EnvironmentId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// A client message on the streaming exec WebSocket (`GET /v1/sandboxes/{id}/exec/ws`), as a text
/// frame. The first message is `start` or `attach`; afterwards binary frames carry stdin bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ExecStreamClientMessage {
    /// Starts a process.
    Start(ExecStreamStart),
    /// Re-attaches to a background process by id or tag.
    Attach {
        #[serde(default)]
        process_id: Option<u64>,
        #[serde(default)]
        tag: Option<String>,
    },
    /// Closes the process's stdin.
    StdinEof,
    Signal {
        signal: i32,
    },
    /// Resizes the PTY.
    Resize {
        cols: u16,
        rows: u16,
    },
    /// Leaves a background process running and closes the stream.
    Detach,
}

/// How to start a streamed process.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecStreamStart {
    #[serde(default)]
    pub cmd: Option<String>,
    #[serde(default)]
    pub argv: Option<Vec<String>>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// Run on a terminal of this size.
    #[serde(default)]
    pub pty: Option<TerminalSize>,
    #[serde(default)]
    pub timeout_secs: Option<u64>,
    /// Keep running when the stream closes; re-attach later by id or tag.
    #[serde(default)]
    pub background: bool,
    #[serde(default)]
    pub tag: Option<String>,
}

/// A terminal size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

/// A server message on the streaming exec WebSocket, as a text frame. Output arrives as binary
/// frames whose first byte is the channel: 1 = stdout, 2 = stderr.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ExecStreamServerMessage {
    Started {
        process_id: u64,
        pid: u32,
    },
    Exited {
        exit_code: Option<i32>,
        signal: Option<i32>,
        timed_out: bool,
    },
    /// The stream ends after this.
    Error {
        code: crate::ErrorCode,
        message: String,
    },
}
