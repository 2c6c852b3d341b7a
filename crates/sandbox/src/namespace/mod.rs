//! The Linux namespace backend: each sandbox is a process tree in its own pid, mount, ipc, uts,
//! net and cgroup namespaces (plus a user namespace when the server is not root), rooted in an
//! overlay of its template, limited by cgroups, with envd as PID 1.
//!
//! - [`spawn`]/[`child`]: the fork → unshare → fork → mount → pivot → exec sequence;
//! - [`cgroup`]: limits, freezer, kill, usage on cgroup v1 and v2;
//! - [`network`]: loopback-only or a veth pair with NAT;
//! - [`seccomp`]: the syscall deny-list;
//! - [`paths`]: checks on the paths a spec names;
//! - [`state`]: `state_dir/<id>/state.json`, which lets a restarted server re-adopt sandboxes
//!   (their processes are not the server's children and outlive it) and clean up what a crash
//!   left behind;
//! - [`sys`]: reaching envd's socket inside a sandbox safely.

mod cgroup;
mod child;
mod network;
mod paths;
mod seccomp;
mod spawn;
mod state;
mod sys;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use runtools_protocol::SandboxId;
use runtools_protocol::sandbox::{Isolation, NetworkMode};

use crate::{Backend, BackendError, EnvdStream, Observed, SandboxSpec, Usage};
use cgroup::Layout;
use spawn::{PlanInput, SandboxDirs};
use state::{Phase, Record};

/// How the namespace backend is set up on this host.
#[derive(Debug, Clone, PartialEq)]
pub struct NamespaceConfig {
    /// Per-sandbox directories live in `state_dir/<sandbox id>/`.
    pub state_dir: PathBuf,
    /// The static envd binary exec'd as every sandbox's PID 1.
    pub envd_binary: PathBuf,
    /// The cgroup under which every sandbox's cgroup is made (in each v1 hierarchy, or in v2),
    /// relative to the hierarchy's root: `runtools` by default; a deeper path such as
    /// `user.slice/user-1000.slice/user@1000.service/runtools` for a delegated subtree.
    pub cgroup_parent: String,
    /// The /16 from which `network: internet` sandboxes get a /30 each.
    pub network_pool: Ipv4Addr,
    /// How long create waits for envd to answer.
    pub ready_timeout: Duration,
}

impl NamespaceConfig {
    /// The defaults: cgroup parent `runtools`, pool `10.201.0.0/16`, 10 s to start.
    pub fn new(state_dir: impl Into<PathBuf>, envd_binary: impl Into<PathBuf>) -> NamespaceConfig {
        NamespaceConfig {
            state_dir: state_dir.into(),
            envd_binary: envd_binary.into(),
            cgroup_parent: "runtools".into(),
            network_pool: Ipv4Addr::new(10, 201, 0, 0),
            ready_timeout: Duration::from_secs(10),
        }
    }
}

/// The namespace backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum NamespaceSetupError {
    #[error("state directory {path}: {source}")]
    StateDir { path: PathBuf, source: std::io::Error },
    #[error("envd binary {path}: {message}")]
    Envd { path: PathBuf, message: String },
    #[error("cgroups: {0}")]
    Cgroups(std::io::Error),
    #[error("invalid configuration: {0}")]
    Config(String),
}

type IdLock = Arc<tokio::sync::Mutex<()>>;

/// Sandboxes as namespaced process trees. See the module docs.
#[derive(Debug)]
pub struct NamespaceBackend {
    config: NamespaceConfig,
    /// A sealed in-memory copy of envd, exec'd by every sandbox (see `sys::sealed_copy`).
    envd: Arc<OwnedFd>,
    layout: Layout,
    /// `Some((uid, gid))` when not root: sandboxes get a user namespace mapping root to these.
    user_ns: Option<(u32, u32)>,
    records: Mutex<HashMap<SandboxId, Record>>,
    locks: Mutex<HashMap<SandboxId, IdLock>>,
    creating: Mutex<HashSet<SandboxId>>,
    /// Serialises choosing a network slot and recording it.
    net_lock: Mutex<()>,
}

const KILL_TIMEOUT: Duration = Duration::from_secs(10);
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);
const PING_TIMEOUT: Duration = Duration::from_secs(3);

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_error(id: SandboxId, what: impl Into<String>) -> impl FnOnce(std::io::Error) -> BackendError {
    move |source| BackendError::Io { id, what: what.into(), source }
}

fn failed(id: SandboxId, message: impl Into<String>) -> BackendError {
    BackendError::Failed { id, message: message.into() }
}

async fn blocking<T: Send + 'static>(
    id: SandboxId,
    work: impl FnOnce() -> Result<T, BackendError> + Send + 'static,
) -> Result<T, BackendError> {
    tokio::task::spawn_blocking(work).await.map_err(|error| failed(id, format!("a backend task failed: {error}")))?
}

impl NamespaceBackend {
    /// Checks the host (state dir, envd binary, cgroup layout) and prepares the cgroup parent.
    pub fn new(config: NamespaceConfig) -> Result<NamespaceBackend, NamespaceSetupError> {
        let parent = &config.cgroup_parent;
        let parent_ok = !parent.is_empty()
            && !parent.contains('\0')
            && parent.split('/').all(|part| !part.is_empty() && part != "." && part != "..");
        if !parent_ok {
            return Err(NamespaceSetupError::Config(format!(
                "cgroup parent `{parent}` must be a relative cgroup path such as `runtools`"
            )));
        }
        {
            use std::os::unix::fs::DirBuilderExt as _;
            let state_error = |source| NamespaceSetupError::StateDir { path: config.state_dir.clone(), source };
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&config.state_dir).map_err(state_error)?;
        }
        let envd_error = |message: String| NamespaceSetupError::Envd { path: config.envd_binary.clone(), message };
        let meta = std::fs::metadata(&config.envd_binary).map_err(|error| envd_error(error.to_string()))?;
        if !meta.is_file() || std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111 == 0 {
            return Err(envd_error("not an executable file".into()));
        }
        let envd = sys::sealed_copy(&config.envd_binary)
            .map_err(|error| envd_error(format!("copying it into memory: {error}")))?;
        let layout = Layout::detect().map_err(NamespaceSetupError::Cgroups)?;
        layout.prepare_parent(&config.cgroup_parent).map_err(NamespaceSetupError::Cgroups)?;
        let (uid, gid) = sys::effective_ids();
        let user_ns = (uid != 0).then_some((uid, gid));
        tracing::debug!(?layout, user_ns = user_ns.is_some(), "namespace backend ready");
        Ok(NamespaceBackend {
            config,
            envd: Arc::new(envd),
            layout,
            user_ns,
            records: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            creating: Mutex::new(HashSet::new()),
            net_lock: Mutex::new(()),
        })
    }

    pub fn config(&self) -> &NamespaceConfig {
        &self.config
    }

    /// `state_dir/<id>`.
    pub fn sandbox_dir(&self, id: SandboxId) -> PathBuf {
        self.config.state_dir.join(id.to_string())
    }

    /// The host pid of a sandbox's init (envd), when it runs.
    pub fn init_pid(&self, id: SandboxId) -> Option<i32> {
        let record = self.record(id).ok()?;
        state::init_alive(&record).then_some(record.init_pid).flatten()
    }

    /// Deletes every sandbox this host has anything of that is not in `keep` (what the store says
    /// should exist). Returns the ids it removed.
    pub async fn reap_orphans(&self, keep: &HashSet<SandboxId>) -> Result<Vec<SandboxId>, BackendError> {
        let mut removed = Vec::new();
        for id in self.ids()? {
            if !keep.contains(&id) && !lock(&self.creating).contains(&id) {
                self.delete(id).await?;
                removed.push(id);
            }
        }
        Ok(removed)
    }

    async fn id_lock(&self, id: SandboxId) -> tokio::sync::OwnedMutexGuard<()> {
        let mutex = lock(&self.locks).entry(id).or_default().clone();
        mutex.lock_owned().await
    }

    fn record(&self, id: SandboxId) -> Result<Record, BackendError> {
        if let Some(record) = lock(&self.records).get(&id) {
            return Ok(record.clone());
        }
        let dir = self.sandbox_dir(id);
        match Record::load(&dir) {
            Ok(Some(record)) if record.phase == Phase::Created => {
                lock(&self.records).insert(id, record.clone());
                Ok(record)
            }
            Ok(_) => Err(BackendError::NotFound(id)),
            Err(error) => Err(io_error(id, "read state.json")(error)),
        }
    }

    /// The record of a sandbox whose init is alive.
    fn live_record(&self, id: SandboxId) -> Result<(Record, i32), BackendError> {
        let record = self.record(id)?;
        match record.init_pid {
            Some(pid) if state::init_alive(&record) => Ok((record, pid)),
            _ => {
                lock(&self.records).remove(&id);
                Err(failed(id, "the sandbox's init (envd) is no longer running"))
            }
        }
    }

    /// Every sandbox id with a state dir or a cgroup on this host.
    fn ids(&self) -> Result<Vec<SandboxId>, BackendError> {
        let mut ids = HashSet::new();
        let mut scan = |dir: &Path| -> std::io::Result<()> {
            let entries = match std::fs::read_dir(dir) {
                Ok(entries) => entries,
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(error) => return Err(error),
            };
            for entry in entries {
                if let Some(id) = entry?.file_name().to_str().and_then(|name| name.parse::<SandboxId>().ok()) {
                    ids.insert(id);
                }
            }
            Ok(())
        };
        let wrap = |error: std::io::Error| BackendError::Failed {
            id: SandboxId::default(),
            message: format!("scanning sandboxes: {error}"),
        };
        scan(&self.config.state_dir).map_err(wrap)?;
        for dir in self.layout.parent_dirs(&self.config.cgroup_parent) {
            scan(&dir).map_err(wrap)?;
        }
        let mut ids: Vec<SandboxId> = ids.into_iter().collect();
        ids.sort();
        Ok(ids)
    }

    /// What is on the host for `id`, without changing anything.
    async fn observe(&self, id: SandboxId) -> Observed {
        let dir = self.sandbox_dir(id);
        let record = match Record::load(&dir) {
            Ok(record) => record,
            Err(error) => {
                tracing::warn!(%id, %error, "unreadable sandbox state");
                return Observed::Broken;
            }
        };
        let Some(record) = record else {
            let cgroups = self.layout.paths(&self.config.cgroup_parent, &id.to_string());
            return if dir.exists() || cgroups.exists() { Observed::Broken } else { Observed::Gone };
        };
        let Some(pid) = record.init_pid.filter(|_| record.phase == Phase::Created && state::init_alive(&record)) else {
            return Observed::Broken;
        };
        if record.cgroups.frozen().unwrap_or(false) {
            return Observed::Paused;
        }
        match self.ping(pid, PING_TIMEOUT).await {
            Ok(()) => Observed::Running,
            Err(error) => {
                tracing::warn!(%id, %error, "envd does not answer");
                Observed::Broken
            }
        }
    }

    /// One round trip to envd: connect and ping, bounded by `timeout`.
    async fn ping(&self, pid: i32, timeout: Duration) -> std::io::Result<()> {
        let attempt = async {
            let stream = sys::connect_unix_in_root(pid, spawn::ENVD_SOCKET).await?;
            let client = runtools_envd::EnvdClient::new(stream);
            client.ping().await.map_err(std::io::Error::other)?;
            Ok(())
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "envd did not answer a ping")))
    }

    /// Waits until envd accepts connections; fails early (with envd's last words) if it dies.
    async fn wait_ready(&self, id: SandboxId, pid: i32, start_time: u64) -> Result<(), BackendError> {
        let deadline = Instant::now() + self.config.ready_timeout;
        let mut log = None;
        let mut pause = Duration::from_micros(200);
        loop {
            if log.is_none() {
                log = sys::open_in_root(pid, spawn::ENVD_LOG, libc::O_RDONLY).ok();
            }
            let alive = state::ProcStat::read(pid).is_some_and(|stat| stat.alive() && stat.start_time == start_time);
            if !alive {
                let last_words = log.as_ref().map(|fd| sys::read_tail(fd, 2048)).unwrap_or_default();
                return Err(failed(
                    id,
                    format!("envd exited while starting{}{last_words}", if last_words.is_empty() { "" } else { ": " }),
                ));
            }
            let remaining = deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            match self.ping(pid, remaining).await {
                Ok(()) => return Ok(()),
                Err(error) if Instant::now() >= deadline => {
                    return Err(failed(
                        id,
                        format!("envd did not answer within {:?}: {error}", self.config.ready_timeout),
                    ));
                }
                Err(_) => {}
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(5));
        }
    }

    async fn create_inner(&self, spec: &SandboxSpec) -> Result<(), BackendError> {
        let id = spec.id;
        let dirs = SandboxDirs::new(self.sandbox_dir(id));
        dirs.create().map_err(io_error(id, "create the sandbox directory"))?;
        let cgroups = self.layout.paths(&self.config.cgroup_parent, &id.to_string());
        let mut record = Record {
            id,
            phase: Phase::Creating,
            init_pid: None,
            init_start_time: None,
            cgroups: cgroups.clone(),
            network_mode: spec.network,
            net: None,
            mount_points: vec![dirs.root.clone(), dirs.scratch.clone()],
            created_at: state::unix_now(),
        };
        if spec.network == NetworkMode::Internet {
            if self.user_ns.is_some() {
                return Err(failed(id, "network `internet` needs the server to run as root"));
            }
            if !network::tools_available() {
                return Err(failed(id, "network `internet` needs `ip` (iproute2) and `iptables` on the host"));
            }
            let _guard = lock(&self.net_lock);
            let used = self.used_slots();
            let slot =
                network::choose_slot(&id, &used).ok_or_else(|| failed(id, "the sandbox network pool is exhausted"))?;
            record.net = Some(network::record(&id, self.config.network_pool, slot));
            record.store(&dirs.dir).map_err(io_error(id, "write state.json"))?;
        } else {
            record.store(&dirs.dir).map_err(io_error(id, "write state.json"))?;
        }

        let spec_owned = spec.clone();
        let envd = self.envd.clone();
        let user_ns = self.user_ns;
        let timeout = self.config.ready_timeout;
        let pid = blocking(id, move || {
            cgroups.create(&spec_owned.limits).map_err(io_error(id, "create the sandbox's cgroups"))?;
            let input = PlanInput {
                spec: &spec_owned,
                dirs: &dirs,
                cgroup_procs: cgroups.procs_files(),
                user_ns,
                envd_fd: envd.as_raw_fd(),
            };
            let plan = spawn::build_plan(&input).map_err(|message| failed(id, message))?;
            spawn::spawn(&plan, timeout).map_err(|message| failed(id, message))
        })
        .await?;
        let start_time = state::ProcStat::read(pid)
            .filter(state::ProcStat::alive)
            .map(|stat| stat.start_time)
            .ok_or_else(|| failed(id, "envd exited while starting (right after its exec)"))?;
        record.init_pid = Some(pid);
        record.init_start_time = Some(start_time);
        let dir = self.sandbox_dir(id);
        record.store(&dir).map_err(io_error(id, "write state.json"))?;

        if let Some(net) = record.net.clone() {
            blocking(id, move || network::setup(pid, &id, &net).map_err(io_error(id, "set up the sandbox network")))
                .await?;
        }
        self.wait_ready(id, pid, start_time).await?;
        record.phase = Phase::Created;
        record.store(&dir).map_err(io_error(id, "write state.json"))?;
        lock(&self.records).insert(id, record);
        Ok(())
    }

    /// Network slots recorded by any sandbox on this host.
    fn used_slots(&self) -> HashSet<u32> {
        let Ok(entries) = std::fs::read_dir(&self.config.state_dir) else { return HashSet::new() };
        entries
            .filter_map(Result::ok)
            .filter_map(|entry| Record::load(&entry.path()).ok().flatten())
            .filter_map(|record| record.net.map(|net| net.slot))
            .collect()
    }

    /// Removes everything of `id`; the caller holds its lock.
    async fn destroy(&self, id: SandboxId) -> Result<(), BackendError> {
        lock(&self.records).remove(&id);
        let dir = self.sandbox_dir(id);
        let record = Record::load(&dir).unwrap_or_else(|error| {
            tracing::warn!(%id, %error, "unreadable sandbox state; cleaning up by name");
            None
        });
        let cgroups = record
            .as_ref()
            .map_or_else(|| self.layout.paths(&self.config.cgroup_parent, &id.to_string()), |r| r.cgroups.clone());
        blocking(id, move || {
            let init = record.as_ref().and_then(|r| r.init_pid.zip(r.init_start_time));
            if let (Some((pid, _)), Some(record)) = (init, &record)
                && state::init_alive(record)
            {
                // PID 1 of the namespace: its death takes every other process in it along.
                sys::sigkill(pid);
            }
            cgroups.kill_all(KILL_TIMEOUT).map_err(io_error(id, "kill the sandbox's processes"))?;
            if let Some((pid, start)) = init {
                let deadline = Instant::now() + KILL_TIMEOUT;
                loop {
                    sys::try_reap(pid);
                    let gone = state::ProcStat::read(pid).is_none_or(|stat| !stat.alive() || stat.start_time != start);
                    if gone {
                        break;
                    }
                    if Instant::now() >= deadline {
                        return Err(failed(id, format!("the sandbox's init (pid {pid}) survived SIGKILL")));
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
            let network_unknown = record.as_ref().is_none_or(|r| r.network_mode == NetworkMode::Internet);
            if network_unknown {
                let net = record.as_ref().and_then(|r| r.net.clone());
                let host_veth = net.as_ref().map_or_else(|| network::host_veth(&id), |net| net.host_veth.clone());
                let tag = net.as_ref().map_or_else(|| format!("runtools:{id}"), |net| net.rule_tag.clone());
                network::teardown(&host_veth, &tag).map_err(io_error(id, "remove the sandbox network"))?;
            }
            let leaked = sys::unmount_below(&dir).map_err(io_error(id, "check the host's mounts"))?;
            if !leaked.is_empty() {
                tracing::warn!(%id, ?leaked, "unmounted sandbox mounts found in the host namespace");
            }
            cgroups.remove(KILL_TIMEOUT).map_err(io_error(id, "remove the sandbox's cgroups"))?;
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => Ok(()),
                Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
                Err(error) => Err(io_error(id, "remove the sandbox directory")(error)),
            }
        })
        .await
    }
}

fn validate_limits(spec: &SandboxSpec) -> Result<(), BackendError> {
    let limits = &spec.limits;
    if !limits.cpu.is_finite() || limits.cpu < 0.01 {
        return Err(BackendError::InvalidLimits(format!("cpu must be at least 0.01 cores, not {}", limits.cpu)));
    }
    if limits.cpu > 1024.0 {
        return Err(BackendError::InvalidLimits(format!("cpu {} is more cores than any host has", limits.cpu)));
    }
    if limits.memory_bytes < 16 << 20 {
        return Err(BackendError::InvalidLimits(format!(
            "memory must be at least 16 MiB, not {} bytes",
            limits.memory_bytes
        )));
    }
    if limits.pids < 4 {
        return Err(BackendError::InvalidLimits(format!("pids must be at least 4, not {}", limits.pids)));
    }
    if limits.disk_bytes < 1 << 20 {
        return Err(BackendError::InvalidLimits(format!(
            "disk must be at least 1 MiB, not {} bytes",
            limits.disk_bytes
        )));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Backend for NamespaceBackend {
    fn isolation(&self) -> Isolation {
        Isolation::Namespace
    }

    async fn create(&self, spec: &SandboxSpec) -> Result<(), BackendError> {
        validate_limits(spec)?;
        let id = spec.id;
        let _guard = self.id_lock(id).await;
        if self.sandbox_dir(id).exists() {
            return Err(failed(id, "a sandbox with this id already exists on this host"));
        }
        lock(&self.creating).insert(id);
        let started = Instant::now();
        let result = self.create_inner(spec).await;
        if let Err(error) = &result {
            tracing::warn!(%id, %error, "sandbox creation failed; removing what was made");
            if let Err(cleanup) = self.destroy(id).await {
                tracing::error!(%id, error = %cleanup, "could not clean up a failed sandbox");
            }
        } else {
            tracing::debug!(%id, elapsed = ?started.elapsed(), "sandbox created");
        }
        lock(&self.creating).remove(&id);
        result
    }

    async fn connect_envd(&self, id: SandboxId) -> Result<Box<dyn EnvdStream>, BackendError> {
        let (_, pid) = self.live_record(id)?;
        let stream =
            sys::connect_unix_in_root(pid, spawn::ENVD_SOCKET).await.map_err(io_error(id, "connect to envd"))?;
        Ok(Box::new(stream))
    }

    async fn connect_port(&self, id: SandboxId, port: u16) -> Result<tokio::net::TcpStream, BackendError> {
        let (_, pid) = self.live_record(id)?;
        let stream = tokio::task::spawn_blocking(move || {
            network::in_netns(pid, move || {
                let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
                let stream = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(5))?;
                stream.set_nonblocking(true)?;
                Ok(stream)
            })
        })
        .await
        .map_err(|error| failed(id, format!("a backend task failed: {error}")))?
        .map_err(io_error(id, format!("connect to port {port}")))?;
        tokio::net::TcpStream::from_std(stream).map_err(io_error(id, "register the connection"))
    }

    async fn pause(&self, id: SandboxId) -> Result<(), BackendError> {
        let _guard = self.id_lock(id).await;
        let (record, _) = self.live_record(id)?;
        blocking(id, move || {
            record.cgroups.freeze(FREEZE_TIMEOUT).map_err(|error| {
                let _ = record.cgroups.thaw();
                io_error(id, "freeze the sandbox")(error)
            })
        })
        .await
    }

    async fn resume(&self, id: SandboxId) -> Result<(), BackendError> {
        let _guard = self.id_lock(id).await;
        let (record, _) = self.live_record(id)?;
        blocking(id, move || record.cgroups.thaw().map_err(io_error(id, "thaw the sandbox"))).await
    }

    async fn delete(&self, id: SandboxId) -> Result<(), BackendError> {
        let _guard = self.id_lock(id).await;
        let result = self.destroy(id).await;
        if result.is_ok() {
            lock(&self.locks).remove(&id);
        }
        result
    }

    async fn list(&self) -> Result<Vec<(SandboxId, Observed)>, BackendError> {
        let mut found = Vec::new();
        for id in self.ids()? {
            // A sandbox being created right now is not anything's to judge yet.
            if lock(&self.creating).contains(&id) {
                continue;
            }
            found.push((id, self.observe(id).await));
        }
        Ok(found)
    }

    async fn recover(&self, id: SandboxId) -> Result<Observed, BackendError> {
        let _guard = self.id_lock(id).await;
        lock(&self.records).remove(&id);
        let observed = self.observe(id).await;
        if matches!(observed, Observed::Running | Observed::Paused) {
            self.record(id)?;
        }
        Ok(observed)
    }

    async fn usage(&self, id: SandboxId) -> Result<Usage, BackendError> {
        let (record, _) = self.live_record(id)?;
        let (memory_bytes, cpu_nanos, pids) = record.cgroups.usage().map_err(io_error(id, "read cgroup usage"))?;
        Ok(Usage { memory_bytes, cpu_nanos, pids })
    }
}
