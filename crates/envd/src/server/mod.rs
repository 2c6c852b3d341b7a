//! envd itself: [`Envd`] holds the state every connection shares (the process table, the
//! sandbox root, the base environment) and serves connections on any byte stream; [`run`] is the
//! binary's main loop (listen, reap, shut down on SIGTERM).

mod connection;
mod exec;
mod files;
mod paths;
mod processes;
mod search;
mod spawn;
mod users;
mod watch;

pub use spawn::{EXEC_HELPER, exec_helper};

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::UnixListener;
use tokio::signal::unix::{SignalKind, signal};

use paths::SandboxRoot;
use processes::ProcessTable;

/// How long PID 1 gives its children between SIGTERM and SIGKILL when shutting down.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// Where envd accepts connections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// `unix:/path/envd.sock`
    Unix(PathBuf),
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text.split_once(':') {
            Some(("unix", path)) if !path.is_empty() => Ok(Self::Unix(PathBuf::from(path))),
            _ => Err(format!("unsupported listen address `{text}` (expected unix:/path/envd.sock)")),
        }
    }
}

/// What envd serves.
#[derive(Debug, Clone)]
pub struct Config {
    /// The directory file operations are confined to (`/` inside a sandbox).
    pub root: PathBuf,
    /// Environment every process gets, below the request's own `env`.
    pub base_env: Vec<(String, String)>,
}

impl Default for Config {
    fn default() -> Self {
        Self { root: PathBuf::from("/"), base_env: Vec::new() }
    }
}

/// Why envd could not start or serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot open the sandbox root {path}: {source}")]
    Root { path: PathBuf, source: std::io::Error },
    #[error("cannot listen on {path}: {source}")]
    Listen { path: PathBuf, source: std::io::Error },
    #[error("cannot install the {what} signal handler: {source}")]
    Signal { what: &'static str, source: std::io::Error },
    #[error("accepting a connection failed: {0}")]
    Accept(std::io::Error),
}

/// State shared by every connection.
#[derive(Debug)]
pub(crate) struct EnvdState {
    pub(crate) root: Arc<SandboxRoot>,
    pub(crate) base_env: Vec<(String, String)>,
    pub(crate) processes: Arc<ProcessTable>,
    pub(crate) started: Instant,
}

/// A running envd. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Envd {
    state: Arc<EnvdState>,
}

impl Envd {
    /// Opens the root, becomes a child subreaper (unless PID 1, which reaps anyway) and starts
    /// reaping children. Must run inside a tokio runtime.
    pub fn start(config: Config) -> Result<Self, ServeError> {
        let root =
            SandboxRoot::open(&config.root).map_err(|source| ServeError::Root { path: config.root.clone(), source })?;
        if !is_pid1()
            && let Err(error) = rustix::process::set_child_subreaper(Some(rustix::process::getpid()))
        {
            tracing::warn!(%error, "cannot become a child subreaper; orphans will not be reaped by envd");
        }
        let processes = Arc::new(ProcessTable::default());
        let sigchld = signal(SignalKind::child()).map_err(|source| ServeError::Signal { what: "SIGCHLD", source })?;
        tokio::spawn(processes::reap_forever(processes.clone(), sigchld));
        let state = EnvdState { root: Arc::new(root), base_env: config.base_env, processes, started: Instant::now() };
        Ok(Self { state: Arc::new(state) })
    }

    /// Serves one connection until it closes or sends a malformed frame.
    pub async fn serve_connection<S>(&self, stream: S)
    where
        S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    {
        connection::serve(stream, self.state.clone()).await;
    }

    /// Accepts connections forever, each served on its own task.
    pub async fn serve_unix(&self, listener: UnixListener) -> Result<(), ServeError> {
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(error) if is_transient_accept_error(&error) => {
                    tracing::warn!(%error, "accept failed; retrying");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                Err(error) => return Err(ServeError::Accept(error)),
            };
            let envd = self.clone();
            tokio::spawn(async move { envd.serve_connection(stream).await });
        }
    }

    /// Terminates every process envd knows of (and, as PID 1, every other process in the
    /// sandbox): SIGTERM, up to [`SHUTDOWN_GRACE`] to exit, then SIGKILL.
    pub async fn terminate_all(&self) {
        let table = &self.state.processes;
        table.signal_all_running(rustix::process::Signal::TERM);
        if is_pid1() {
            processes::signal_every_other_process(rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE;
        while table.any_unreaped() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        table.signal_all_running(rustix::process::Signal::KILL);
        if is_pid1() {
            processes::signal_every_other_process(rustix::process::Signal::KILL);
        }
    }
}

fn is_transient_accept_error(error: &std::io::Error) -> bool {
    matches!(error.raw_os_error(), Some(code) if code == rustix::io::Errno::MFILE.raw_os_error()
        || code == rustix::io::Errno::NFILE.raw_os_error()
        || code == rustix::io::Errno::NOBUFS.raw_os_error()
        || code == rustix::io::Errno::NOMEM.raw_os_error()
        || code == rustix::io::Errno::CONNABORTED.raw_os_error()
        || code == rustix::io::Errno::INTR.raw_os_error())
}

pub(crate) fn is_pid1() -> bool {
    rustix::process::getpid().as_raw_nonzero().get() == 1
}

/// The binary's main loop: listen on `listen`, serve until SIGTERM or SIGINT, then terminate
/// every child and return.
pub async fn run(listen: Listen, config: Config) -> Result<(), ServeError> {
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|source| ServeError::Signal { what: "SIGTERM", source })?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|source| ServeError::Signal { what: "SIGINT", source })?;
    let envd = Envd::start(config)?;
    let Listen::Unix(path) = listen;
    // A socket left by an earlier run would make bind fail.
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => return Err(ServeError::Listen { path, source }),
    }
    let listener = UnixListener::bind(&path).map_err(|source| ServeError::Listen { path: path.clone(), source })?;
    tracing::info!(socket = %path.display(), pid1 = is_pid1(), "envd listening");
    let outcome = tokio::select! {
        outcome = envd.serve_unix(listener) => outcome,
        _ = sigterm.recv() => { tracing::info!("SIGTERM: shutting down"); Ok(()) }
        _ = sigint.recv() => { tracing::info!("SIGINT: shutting down"); Ok(()) }
    };
    envd.terminate_all().await;
    let _ = std::fs::remove_file(&path);
    outcome
}
