//! RunTools sandboxes.
//!
//! - [`Backend`]: what every isolation backend does — create a sandbox from a template, give the
//!   host a connection to the sandbox's `envd` (exec and files go through it, so they work the same
//!   everywhere), pause, resume, delete, list and recover after a server restart, and reach a TCP
//!   port inside. The namespace backend implements it here; gVisor and microVM backends join later.
//! - [`lifecycle`]: the state machine every backend shares.
//! - [`namespace`]: [`NamespaceBackend`], sandboxes as Linux namespaces + cgroups + seccomp.
//! - [`template`]: [`Templates`], directory rootfs templates and the built-in `base`.
//! - [`bench`]: timing hooks (create-to-first-exec, exec round trip).
//!
//! This is the only crate allowed `unsafe`, and only where a syscall needs it.

pub mod bench;
pub mod lifecycle;
pub mod namespace;
pub mod template;

use std::path::PathBuf;

use runtools_protocol::SandboxId;
use runtools_protocol::sandbox::{Isolation, NetworkMode};
use tokio::io::{AsyncRead, AsyncWrite};

pub use lifecycle::{IllegalTransition, LifecycleEvent, transition};
pub use namespace::{NamespaceBackend, NamespaceConfig, NamespaceSetupError};
pub use template::{Template, TemplateError, Templates};

/// A byte stream to a sandbox's envd (speaking `runtools_protocol::envd`).
pub trait EnvdStream: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + std::fmt::Debug> EnvdStream for T {}

/// Everything a backend needs to create a sandbox. Built by the server from the API request, the
/// template and its own defaults; nothing here is optional any more.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxSpec {
    pub id: SandboxId,
    /// The template's root filesystem directory: the read-only lower layer.
    pub rootfs: PathBuf,
    /// Host directories mounted read-only at the same path inside (e.g. the base template's `/usr`),
    /// each under its own copy-on-write layer so writes stay in the sandbox.
    pub host_layers: Vec<PathBuf>,
    pub hostname: String,
    /// Environment for every process envd starts.
    pub env: Vec<(String, String)>,
    pub limits: ResolvedLimits,
    pub network: NetworkMode,
    pub volumes: Vec<Mount>,
}

/// Limits with the server's defaults applied.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResolvedLimits {
    /// CPU cores (fractions allowed).
    pub cpu: f64,
    pub memory_bytes: u64,
    pub pids: u32,
    pub disk_bytes: u64,
}

/// A host directory mounted into the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub host_path: PathBuf,
    pub sandbox_path: String,
    pub read_only: bool,
}

/// What a backend finds on the host for a sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Its processes run and envd answers.
    Running,
    /// Frozen (namespace backend) or checkpointed (gVisor).
    Paused,
    /// Some of it is left (mounts, cgroups, a state dir) but it is not usable.
    Broken,
    /// Nothing of it is left.
    Gone,
}

/// Resource use of a running sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    pub memory_bytes: u64,
    pub cpu_nanos: u64,
    pub pids: u32,
}

/// A backend operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("sandbox {0} does not exist on this host")]
    NotFound(SandboxId),
    #[error("the {backend} backend cannot {operation}; use the {alternative} backend for that")]
    Unsupported { backend: &'static str, operation: &'static str, alternative: &'static str },
    #[error("the sandbox's limits are impossible: {0}")]
    InvalidLimits(String),
    #[error("sandbox {id}: {what}: {source}")]
    Io { id: SandboxId, what: String, source: std::io::Error },
    #[error("sandbox {id}: {message}")]
    Failed { id: SandboxId, message: String },
}

/// An isolation backend. Implementations keep their own per-sandbox state on disk so that a new
/// server process can `list` and `recover` what the previous one left.
#[async_trait::async_trait]
pub trait Backend: Send + Sync + std::fmt::Debug + 'static {
    fn isolation(&self) -> Isolation;

    /// Creates and starts the sandbox; on success its envd answers. On failure nothing is left.
    async fn create(&self, spec: &SandboxSpec) -> Result<(), BackendError>;

    /// A new connection to the sandbox's envd.
    async fn connect_envd(&self, id: SandboxId) -> Result<Box<dyn EnvdStream>, BackendError>;

    /// A TCP connection to `port` inside the sandbox's network namespace.
    async fn connect_port(&self, id: SandboxId, port: u16) -> Result<tokio::net::TcpStream, BackendError>;

    /// Stops every process from running, keeping all state.
    async fn pause(&self, id: SandboxId) -> Result<(), BackendError>;

    async fn resume(&self, id: SandboxId) -> Result<(), BackendError>;

    /// Kills everything and removes every trace (processes, mounts, cgroups, network devices, the
    /// writable layer). Succeeds when the sandbox is already gone.
    async fn delete(&self, id: SandboxId) -> Result<(), BackendError>;

    /// Every sandbox this backend has anything of on this host.
    async fn list(&self) -> Result<Vec<(SandboxId, Observed)>, BackendError>;

    /// Re-adopts a sandbox after a server restart and says what state it is in.
    async fn recover(&self, id: SandboxId) -> Result<Observed, BackendError>;

    async fn usage(&self, id: SandboxId) -> Result<Usage, BackendError>;
}
