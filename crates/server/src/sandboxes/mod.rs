//! The sandbox service: turns API requests into backend calls while keeping the store the source
//! of truth for every sandbox's lifecycle state. Each state change is validated by the shared
//! state machine and written compare-and-set, so a second request (or a second node) racing on the
//! same sandbox gets a clear conflict instead of a half-done operation.
//!
//! Exec and files go through the sandbox's envd over one multiplexed connection per sandbox, kept
//! in a per-node cache (a connection is node-local by nature; the sandbox itself is in the store).

mod recovery;
mod validate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use runtools_envd::{EnvdClient, ExecOutput};
use runtools_protocol::sandbox::{CreateSandboxRequest, ExecRequest, ExecResult, Isolation, SandboxState};
use runtools_protocol::{EnvironmentId, ErrorCode, SandboxId};
use runtools_sandbox::{
    Backend, BackendError, LifecycleEvent, Mount, Observed, SandboxSpec, TemplateError, Templates, transition,
};
use runtools_store::{SandboxFilter, SandboxRecord, SandboxSettings, Store};
use tokio::sync::Mutex;

use crate::error::ApiError;
pub(crate) use recovery::spawn_reaper;

/// Defaults applied to what a create request leaves unset.
#[derive(Debug, Clone)]
pub struct SandboxDefaults {
    pub cpu: f64,
    pub memory_mb: u64,
    pub pids: u32,
    pub disk_mb: u64,
    pub timeout_secs: u64,
    pub max_timeout_secs: u64,
}

impl Default for SandboxDefaults {
    fn default() -> Self {
        Self { cpu: 1.0, memory_mb: 512, pids: 512, disk_mb: 1024, timeout_secs: 300, max_timeout_secs: 24 * 3600 }
    }
}

/// Runs this node's sandboxes.
#[derive(Debug)]
pub struct SandboxService {
    store: Store,
    backend: Arc<dyn Backend>,
    templates: Templates,
    /// This node's name; sandboxes are recorded with the node that runs them.
    host: String,
    defaults: SandboxDefaults,
    volumes_dir: PathBuf,
    connections: Mutex<HashMap<SandboxId, EnvdClient>>,
}

impl SandboxService {
    pub fn new(
        store: Store,
        backend: Arc<dyn Backend>,
        templates: Templates,
        host: String,
        defaults: SandboxDefaults,
        volumes_dir: PathBuf,
    ) -> Self {
        Self { store, backend, templates, host, defaults, volumes_dir, connections: Mutex::new(HashMap::new()) }
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn isolation(&self) -> Isolation {
        self.backend.isolation()
    }

    /// Creates a sandbox and waits until its envd answers.
    pub async fn create(
        &self,
        environment: EnvironmentId,
        request: CreateSandboxRequest,
    ) -> Result<SandboxRecord, ApiError> {
        let validated = validate::create_request(&request, &self.defaults, self.backend.isolation())?;
        let template = self.templates.get(&validated.template).map_err(|error| match error {
            TemplateError::Unknown { .. } | TemplateError::InvalidName(_) => {
                ApiError::new(ErrorCode::InvalidRequest, error.to_string())
            }
            other => ApiError::internal(other),
        })?;
        let mut mounts = Vec::new();
        for volume in &request.volumes {
            let stored = self.store.ensure_volume(environment, &volume.volume).await?;
            let host_path = self.volumes_dir.join(stored.id.to_string());
            std::fs::create_dir_all(&host_path)
                .map_err(|error| ApiError::internal(format!("volume dir {}: {error}", host_path.display())))?;
            mounts.push(Mount { host_path, sandbox_path: volume.path.clone(), read_only: volume.read_only });
        }
        let now = Utc::now();
        let id = SandboxId::new();
        let record = SandboxRecord {
            id,
            environment_id: environment,
            host: self.host.clone(),
            template: validated.template.clone(),
            isolation: self.backend.isolation(),
            state: SandboxState::Creating,
            error: None,
            settings: SandboxSettings {
                limits: validated.limits_view.clone(),
                network: request.network,
                on_timeout: request.on_timeout,
                volumes: request.volumes.clone(),
                metadata: request.metadata.clone(),
                env: request.env.clone(),
                access_token: validate::access_token(),
                timeout_secs: validated.timeout_secs,
            },
            timeout_at: Some(now + chrono::Duration::seconds(validated.timeout_secs as i64)),
            created_at: now,
            updated_at: now,
        };
        self.store.insert_sandbox(&record).await?;
        let spec = SandboxSpec {
            id,
            rootfs: template.rootfs.clone(),
            host_layers: template.host_layers.clone(),
            hostname: format!("sandbox-{}", &id.to_string()[4..12]),
            // The template's defaults, overridden by the request's.
            env: template
                .env
                .iter()
                .chain(&request.env)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<std::collections::BTreeMap<_, _>>()
                .into_iter()
                .collect(),
            limits: validated.limits,
            network: request.network,
            volumes: mounts,
        };
        let started = Instant::now();
        if let Err(error) = self.backend.create(&spec).await {
            let reason = error.to_string();
            self.store.transition_sandbox(id, SandboxState::Creating, SandboxState::Error, Some(&reason)).await?;
            return Err(backend_error(error));
        }
        tracing::info!(sandbox = %id, template = %record.template, elapsed_ms = started.elapsed().as_millis() as u64, "sandbox created");
        self.set_state(&record, LifecycleEvent::Started, None).await
    }

    /// A sandbox of the environment, or 404.
    pub async fn get(&self, environment: EnvironmentId, id: SandboxId) -> Result<SandboxRecord, ApiError> {
        self.store.sandbox(environment, id).await?.ok_or_else(|| ApiError::not_found(format!("sandbox {id}")))
    }

    pub async fn list(
        &self,
        environment: EnvironmentId,
        filter: &SandboxFilter,
        after: Option<SandboxId>,
        limit: u32,
    ) -> Result<(Vec<SandboxRecord>, bool), ApiError> {
        Ok(self.store.list_sandboxes(environment, filter, after, limit).await?)
    }

    pub async fn pause(&self, environment: EnvironmentId, id: SandboxId) -> Result<SandboxRecord, ApiError> {
        let record = self.get(environment, id).await?;
        self.pause_record(record).await
    }

    pub(crate) async fn pause_record(&self, record: SandboxRecord) -> Result<SandboxRecord, ApiError> {
        let pausing = self.set_state(&record, LifecycleEvent::Pause, None).await?;
        if let Err(error) = self.backend.pause(record.id).await {
            self.fail(&pausing, &error).await?;
            return Err(backend_error(error));
        }
        self.set_state(&pausing, LifecycleEvent::Paused, None).await
    }

    pub async fn resume(&self, environment: EnvironmentId, id: SandboxId) -> Result<SandboxRecord, ApiError> {
        let record = self.get(environment, id).await?;
        let resuming = self.set_state(&record, LifecycleEvent::Resume, None).await?;
        if let Err(error) = self.backend.resume(id).await {
            self.fail(&resuming, &error).await?;
            return Err(backend_error(error));
        }
        let running = self.set_state(&resuming, LifecycleEvent::Resumed, None).await?;
        self.extend(&running, running.settings.timeout_secs).await
    }

    /// Deletes a sandbox: every process, mount and byte of its writable layer.
    pub async fn delete(&self, environment: EnvironmentId, id: SandboxId) -> Result<SandboxRecord, ApiError> {
        let record = self.get(environment, id).await?;
        self.delete_record(record).await
    }

    pub(crate) async fn delete_record(&self, record: SandboxRecord) -> Result<SandboxRecord, ApiError> {
        let stopping = self.set_state(&record, LifecycleEvent::Stop, None).await?;
        self.connections.lock().await.remove(&record.id);
        if let Err(error) = self.backend.delete(record.id).await {
            self.fail(&stopping, &error).await?;
            return Err(backend_error(error));
        }
        self.set_state(&stopping, LifecycleEvent::Stopped, None).await
    }

    /// Sets the lifetime to `timeout_secs` from now (a keep-alive).
    pub async fn set_timeout(
        &self,
        environment: EnvironmentId,
        id: SandboxId,
        timeout_secs: u64,
    ) -> Result<SandboxRecord, ApiError> {
        let record = self.get(environment, id).await?;
        if timeout_secs == 0 || timeout_secs > self.defaults.max_timeout_secs {
            return Err(ApiError::new(
                ErrorCode::InvalidRequest,
                format!("`timeout_secs` must be between 1 and {}", self.defaults.max_timeout_secs),
            ));
        }
        if record.state == SandboxState::Stopped {
            return Err(ApiError::new(ErrorCode::Conflict, "the sandbox is stopped; create a new one"));
        }
        self.extend(&record, timeout_secs).await
    }

    async fn extend(&self, record: &SandboxRecord, timeout_secs: u64) -> Result<SandboxRecord, ApiError> {
        self.store.set_sandbox_timeout(record.id, Utc::now() + chrono::Duration::seconds(timeout_secs as i64)).await?;
        self.get(record.environment_id, record.id).await
    }

    /// Deletes a volume and its files. Refused while a sandbox that is not stopped mounts it.
    pub async fn delete_volume(&self, environment: EnvironmentId, name: &str) -> Result<(), ApiError> {
        let volume = self
            .store
            .volume(environment, name)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("volume `{name}`")))?;
        let mut after = None;
        loop {
            let (page, more) = self.store.list_sandboxes(environment, &SandboxFilter::default(), after, 100).await?;
            if let Some(user) =
                page.iter().find(|record| record.settings.volumes.iter().any(|mount| mount.volume == name))
            {
                return Err(ApiError::new(
                    ErrorCode::Conflict,
                    format!("volume `{name}` is mounted by sandbox {} ({}); delete that first", user.id, user.state),
                ));
            }
            if !more {
                break;
            }
            after = page.last().map(|record| record.id);
        }
        self.store.delete_volume(environment, name).await?;
        let dir = self.volumes_dir.join(volume.id.to_string());
        if let Err(error) = std::fs::remove_dir_all(&dir)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(volume = %volume.id, dir = %dir.display(), %error, "cannot remove a deleted volume's files");
        }
        Ok(())
    }

    /// Runs a command to completion.
    pub async fn exec(
        &self,
        environment: EnvironmentId,
        id: SandboxId,
        request: ExecRequest,
    ) -> Result<ExecResult, ApiError> {
        let record = self.get(environment, id).await?;
        let spec = validate::exec_request(&request)?;
        let client = self.envd(&record).await?;
        let started = Instant::now();
        let output: ExecOutput =
            client.run(spec, request.stdin.map(String::into_bytes)).await.map_err(|error| envd_error(id, error))?;
        Ok(ExecResult {
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            exit_code: output.exit.exit_code,
            signal: output.exit.signal,
            timed_out: output.exit.timed_out,
            duration_ms: started.elapsed().as_millis() as u64,
        })
    }

    /// The envd connection of a running sandbox (opened on first use, reopened if it dropped).
    pub async fn envd(&self, record: &SandboxRecord) -> Result<EnvdClient, ApiError> {
        if record.state != SandboxState::Running {
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("sandbox {} is {}; commands and files need it running", record.id, record.state),
            ));
        }
        let mut connections = self.connections.lock().await;
        if let Some(client) = connections.get(&record.id).filter(|client| !client.is_closed()) {
            return Ok(client.clone());
        }
        let stream = match self.backend.connect_envd(record.id).await {
            Ok(stream) => stream,
            Err(error) => {
                drop(connections);
                return Err(self.lost(record, error).await);
            }
        };
        let client = EnvdClient::new(stream);
        connections.insert(record.id, client.clone());
        Ok(client)
    }

    /// The sandbox's agent cannot be reached: if the sandbox itself is gone or broken (its init
    /// died, the host rebooted), record that as `error` with the reason instead of leaving a
    /// `running` sandbox that can never answer.
    async fn lost(&self, record: &SandboxRecord, error: BackendError) -> ApiError {
        match self.backend.recover(record.id).await {
            Ok(Observed::Gone | Observed::Broken) => {
                let reason = format!("its agent is gone ({error})");
                if let Err(store_error) = self.set_state(record, LifecycleEvent::Fail, Some(&reason)).await {
                    tracing::warn!(sandbox = %record.id, error = store_error.message(), "cannot record a lost sandbox");
                }
                ApiError::new(ErrorCode::Conflict, format!("sandbox {} is in error: {reason}; delete it", record.id))
            }
            _ => backend_error(error),
        }
    }

    /// A TCP connection to a port inside a running sandbox.
    pub async fn connect_port(&self, record: &SandboxRecord, port: u16) -> Result<tokio::net::TcpStream, ApiError> {
        if record.state != SandboxState::Running {
            return Err(ApiError::new(ErrorCode::Conflict, format!("sandbox {} is {}", record.id, record.state)));
        }
        self.backend.connect_port(record.id, port).await.map_err(backend_error)
    }

    /// Applies a lifecycle event: validates it against the state machine, writes it
    /// compare-and-set, and returns the updated record.
    async fn set_state(
        &self,
        record: &SandboxRecord,
        event: LifecycleEvent,
        error: Option<&str>,
    ) -> Result<SandboxRecord, ApiError> {
        let next = transition(record.state, event)
            .map_err(|illegal| ApiError::new(ErrorCode::Conflict, illegal.to_string()))?;
        if !self.store.transition_sandbox(record.id, record.state, next, error).await? {
            let current = self.store.sandbox_by_id(record.id).await?.map_or(SandboxState::Stopped, |r| r.state);
            return Err(ApiError::new(
                ErrorCode::Conflict,
                format!("sandbox {} changed state concurrently; it is now {current}", record.id),
            ));
        }
        self.store
            .sandbox_by_id(record.id)
            .await?
            .ok_or_else(|| ApiError::internal(format!("sandbox {} vanished", record.id)))
    }

    async fn fail(&self, record: &SandboxRecord, error: &BackendError) -> Result<(), ApiError> {
        tracing::warn!(sandbox = %record.id, %error, "sandbox operation failed");
        self.set_state(record, LifecycleEvent::Fail, Some(&error.to_string())).await.map(drop)
    }

    pub(crate) fn store(&self) -> &Store {
        &self.store
    }

    pub(crate) fn backend(&self) -> &Arc<dyn Backend> {
        &self.backend
    }
}

/// Maps a backend failure onto the API: impossible limits are the caller's mistake, the rest is ours.
pub(crate) fn backend_error(error: BackendError) -> ApiError {
    match error {
        BackendError::InvalidLimits(message) => ApiError::new(ErrorCode::InvalidRequest, message),
        BackendError::Unsupported { .. } => ApiError::new(ErrorCode::InvalidRequest, error.to_string()),
        BackendError::NotFound(id) => ApiError::new(ErrorCode::Conflict, format!("sandbox {id} is gone from its host")),
        other => ApiError::internal(other),
    }
}

/// Maps an envd failure onto the API.
pub(crate) fn envd_error(id: SandboxId, error: runtools_envd::ClientError) -> ApiError {
    use runtools_protocol::envd::EnvdErrorCode as C;
    match error {
        runtools_envd::ClientError::Envd(envd) => {
            let code = match envd.code {
                C::NotFound => ErrorCode::NotFound,
                C::PathOutsideSandbox
                | C::InvalidRequest
                | C::UnknownUser
                | C::SpawnFailed
                | C::NotADirectory
                | C::IsADirectory => ErrorCode::InvalidRequest,
                C::AlreadyExists | C::DirectoryNotEmpty | C::TagInUse => ErrorCode::Conflict,
                C::PermissionDenied => ErrorCode::PermissionDenied,
                C::NoSpace => ErrorCode::InsufficientStorage,
                C::Io | C::Unknown => return ApiError::internal(format!("sandbox {id}: {envd}")),
            };
            ApiError::new(code, envd.message)
        }
        other => ApiError::new(ErrorCode::Unavailable, format!("sandbox {id}'s agent is not answering: {other}")),
    }
}

/// Starts this node's sandbox service: the namespace backend in `<data_dir>/sandboxes`, templates
/// in `<data_dir>/templates`, volumes in `<data_dir>/volumes`; re-adopts what a previous run left
/// and starts the lifetime reaper. `Err` says why this node cannot run sandboxes.
pub async fn start(config: &crate::ServerConfig, store: Store) -> Result<Arc<SandboxService>, String> {
    let envd_binary = locate_envd(config.sandbox.envd_binary.as_deref())?;
    let mut backend_config = runtools_sandbox::NamespaceConfig::new(config.data_dir.join("sandboxes"), envd_binary);
    backend_config.cgroup_parent = config.sandbox.cgroup_parent.clone();
    let backend = runtools_sandbox::NamespaceBackend::new(backend_config).map_err(|error| error.to_string())?;
    let templates = Templates::open(config.data_dir.join("templates")).map_err(|error| error.to_string())?;
    let host = config.sandbox.node_name.clone().unwrap_or_else(node_name);
    let service = Arc::new(SandboxService::new(
        store,
        Arc::new(backend),
        templates,
        host,
        SandboxDefaults::default(),
        config.data_dir.join("volumes"),
    ));
    service.recover().await.map_err(|error| format!("cannot re-adopt sandboxes: {error}"))?;
    spawn_reaper(&service, config.sandbox.reaper_interval);
    Ok(service)
}

/// The configured envd, or the one installed next to this binary, or a development build.
fn locate_envd(configured: Option<&std::path::Path>) -> Result<PathBuf, String> {
    if let Some(path) = configured {
        return std::fs::canonicalize(path)
            .ok()
            .filter(|path| path.is_file())
            .ok_or_else(|| format!("envd binary {} does not exist", path.display()));
    }
    let exe = std::env::current_exe().map_err(|error| format!("cannot find the running binary: {error}"))?;
    let mut candidates = vec![exe.with_file_name("envd")];
    // A development checkout: target/{debug,release,…}/runtools next to target/envd/….
    for ancestor in exe.ancestors().skip(1).take(3) {
        candidates.push(ancestor.join("envd/x86_64-unknown-linux-gnu/release/envd"));
    }
    candidates.into_iter().find(|path| path.is_file()).ok_or_else(|| {
        "no envd binary found: build it with `scripts/build-envd` and pass --envd-binary (or RUNTOOLS_ENVD_BINARY)"
            .to_owned()
    })
}

/// This host's name.
fn node_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "localhost".to_owned())
}
