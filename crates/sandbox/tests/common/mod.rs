//! Shared helpers for the namespace backend's tests: a backend on a temporary state dir with its
//! own cgroup parent (so tests running in parallel never see each other's sandboxes), the base
//! template, and exec through envd.
//!
//! These tests need root (namespaces, mounts, cgroups) and a static envd: `RUNTOOLS_ENVD_BINARY`
//! (or `RUNTOOLS_ENVD_BIN`), else `<repo>/target/envd/x86_64-unknown-linux-gnu/release/envd`, which
//! `scripts/build-envd` builds. Without them each test prints why and returns, unless
//! `RUNTOOLS_TEST_REQUIRE_SANDBOXES=1` (CI), which turns that into a failure.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use std::path::PathBuf;
use std::time::Duration;

use runtools_envd::{EnvdClient, ExecOutput};
use runtools_protocol::SandboxId;
use runtools_protocol::envd::ExecSpec;
use runtools_protocol::sandbox::NetworkMode;
use runtools_sandbox::{Backend, NamespaceBackend, NamespaceConfig, ResolvedLimits, SandboxSpec, Template, Templates};

/// True when the test can run here (root, an envd binary); otherwise prints why it is skipped —
/// or fails, when `RUNTOOLS_TEST_REQUIRE_SANDBOXES=1` (CI).
pub fn can_run(test: &str) -> bool {
    // SAFETY: geteuid cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let envd = envd_binary();
    let problem = if !root {
        Some("the namespace backend's tests need root (namespaces, mounts, cgroups)".to_owned())
    } else if !envd.is_file() {
        Some(format!("no envd binary at {} (run scripts/build-envd, or set RUNTOOLS_ENVD_BINARY)", envd.display()))
    } else {
        None
    };
    let Some(problem) = problem else { return true };
    if std::env::var("RUNTOOLS_TEST_REQUIRE_SANDBOXES").is_ok_and(|value| value == "1") {
        panic!("{test}: {problem}, and RUNTOOLS_TEST_REQUIRE_SANDBOXES=1");
    }
    eprintln!("note: skipping {test}: {problem}");
    false
}

/// `RUNTOOLS_ENVD_BINARY` (or `RUNTOOLS_ENVD_BIN`), else the one `scripts/build-envd` builds. A
/// relative path (what `scripts/build-envd` prints) is taken from the workspace root.
pub fn envd_binary() -> PathBuf {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    for variable in ["RUNTOOLS_ENVD_BINARY", "RUNTOOLS_ENVD_BIN"] {
        if let Some(path) = std::env::var_os(variable) {
            return workspace.join(path);
        }
    }
    workspace.join("target/envd/x86_64-unknown-linux-gnu/release/envd")
}

/// A backend on a temporary state dir, with the base template.
pub struct Harness {
    pub backend: NamespaceBackend,
    pub templates: Templates,
    pub base: Template,
    pub dir: tempfile::TempDir,
    pub cgroup_parent: String,
}

impl Harness {
    pub fn new() -> Harness {
        Self::with_config(|_| {})
    }

    pub fn with_config(adjust: impl FnOnce(&mut NamespaceConfig)) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let cgroup_parent = format!("runtools-test-{}", SandboxId::new().ulid().to_string().to_ascii_lowercase());
        let mut config = NamespaceConfig::new(dir.path().join("sandboxes"), envd_binary());
        config.cgroup_parent = cgroup_parent.clone();
        adjust(&mut config);
        let backend = NamespaceBackend::new(config).unwrap();
        let templates = Templates::open(dir.path().join("templates")).unwrap();
        let base = templates.get("base").unwrap();
        Harness { backend, templates, base, dir, cgroup_parent }
    }

    pub fn spec(&self) -> SandboxSpec {
        spec_for(&self.base)
    }

    /// Creates a sandbox from the base template with default limits.
    pub async fn create(&self) -> SandboxId {
        let spec = self.spec();
        self.backend.create(&spec).await.unwrap();
        spec.id
    }

    pub async fn client(&self, id: SandboxId) -> EnvdClient {
        EnvdClient::new(self.backend.connect_envd(id).await.unwrap())
    }

    /// Runs a shell command (as root) and returns its output.
    pub async fn sh(&self, id: SandboxId, cmd: &str) -> ExecOutput {
        run_sh(&self.backend, id, cmd).await
    }

    /// Runs a shell command, asserts it succeeded, returns stdout.
    pub async fn ok(&self, id: SandboxId, cmd: &str) -> String {
        let output = self.sh(id, cmd).await;
        assert!(output.exit.success(), "`{cmd}` failed: {output:?}");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The cgroup directories the harness's sandboxes live under.
    pub fn cgroup_parent_dirs(&self) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        for controller in ["cpu", "cpuacct", "memory", "pids", "freezer", ""] {
            let dir = PathBuf::from("/sys/fs/cgroup").join(controller).join(&self.cgroup_parent);
            if dir.exists() {
                dirs.push(dir);
            }
        }
        dirs
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        // Best effort: sandboxes a failed test left behind, then the cgroup parents.
        let ids: Vec<SandboxId> = std::fs::read_dir(self.backend.config().state_dir.clone())
            .map(|entries| entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect())
            .unwrap_or_default();
        if !ids.is_empty() {
            let backend = &self.backend;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            std::thread::scope(|scope| {
                scope.spawn(|| {
                    runtime.block_on(async {
                        for id in ids {
                            let _ = backend.delete(id).await;
                        }
                    })
                });
            });
        }
        for dir in self.cgroup_parent_dirs() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

pub fn default_limits() -> ResolvedLimits {
    ResolvedLimits { cpu: 1.0, memory_bytes: 256 << 20, pids: 256, disk_bytes: 256 << 20 }
}

pub fn spec_for(template: &Template) -> SandboxSpec {
    SandboxSpec {
        id: SandboxId::new(),
        rootfs: template.rootfs.clone(),
        host_layers: template.host_layers.clone(),
        hostname: "sandbox".into(),
        env: vec![("RUNTOOLS_TEST".into(), "1".into())],
        limits: default_limits(),
        network: NetworkMode::None,
        volumes: Vec::new(),
    }
}

pub async fn run_sh(backend: &NamespaceBackend, id: SandboxId, cmd: &str) -> ExecOutput {
    let client = EnvdClient::new(backend.connect_envd(id).await.unwrap());
    let spec = ExecSpec { cmd: Some(cmd.to_owned()), timeout_ms: Some(60_000), ..ExecSpec::default() };
    tokio::time::timeout(Duration::from_secs(90), client.run(spec, None)).await.expect("exec timed out").unwrap()
}

/// Everything on the host that mentions `id`: mounts, cgroup dirs, the state dir, veths.
pub fn traces_of(harness: &Harness, id: SandboxId) -> Vec<String> {
    let name = id.to_string();
    let mut traces = Vec::new();
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    for line in mountinfo.lines().filter(|line| line.contains(&name)) {
        traces.push(format!("mount: {line}"));
    }
    for dir in harness.cgroup_parent_dirs() {
        if dir.join(&name).exists() {
            traces.push(format!("cgroup: {}", dir.join(&name).display()));
        }
    }
    let state = harness.backend.sandbox_dir(id);
    if state.exists() {
        traces.push(format!("state dir: {}", state.display()));
    }
    let suffix = {
        let ulid = id.ulid().to_string().to_ascii_lowercase();
        ulid[ulid.len() - 12..].to_owned()
    };
    for entry in std::fs::read_dir("/sys/class/net").unwrap().flatten() {
        let iface = entry.file_name().to_string_lossy().into_owned();
        if iface.ends_with(&suffix) {
            traces.push(format!("veth: {iface}"));
        }
    }
    traces
}

impl Harness {
    /// Starts `cmd` as a background process (with a tag) and detaches from it.
    pub async fn background(&self, id: SandboxId, cmd: &str, tag: &str) {
        let client = self.client(id).await;
        let spec =
            ExecSpec { cmd: Some(cmd.to_owned()), background: true, tag: Some(tag.to_owned()), ..ExecSpec::default() };
        let process = client.exec(spec).await.unwrap();
        process.detach().await.unwrap();
    }

    /// Creates a sandbox from a spec the caller adjusted.
    pub async fn create_with(&self, adjust: impl FnOnce(&mut SandboxSpec)) -> SandboxId {
        let mut spec = self.spec();
        adjust(&mut spec);
        self.backend.create(&spec).await.unwrap();
        spec.id
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
pub async fn eventually(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The process no longer runs (gone, or a zombie its new parent has not reaped yet).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z') || rest.starts_with('X')),
        Err(_) => true,
    }
}
