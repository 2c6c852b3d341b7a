//! Test harness: starts the real `envd` binary on a Unix socket in a temp dir (optionally with a
//! temp sandbox root) and connects clients to it. Dropping it sends SIGTERM, as a backend would.
//! `ENVD_TEST_BINARY` runs the suite against another build (e.g. the static one from
//! `scripts/build-envd`) instead of the test profile's.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use runtools_envd::EnvdClient;
use tokio::net::UnixStream;

pub struct TestEnvd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
    root: Option<tempfile::TempDir>,
}

impl TestEnvd {
    /// envd serving the whole host filesystem (root `/`).
    pub async fn start() -> Self {
        Self::spawn(None).await
    }

    /// envd confined to a fresh temp directory.
    pub async fn start_with_root() -> Self {
        Self::spawn(Some(tempfile::tempdir().unwrap())).await
    }

    async fn spawn(root: Option<tempfile::TempDir>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("envd.sock");
        let mut command =
            Command::new(std::env::var("ENVD_TEST_BINARY").unwrap_or_else(|_| env!("CARGO_BIN_EXE_envd").to_owned()));
        command.arg("--listen").arg(format!("unix:{}", socket.display()));
        if let Some(root) = &root {
            command.arg("--root").arg(root.path());
        }
        command.env("ENVD_LOG", std::env::var("ENVD_LOG").unwrap_or_else(|_| "debug".into()));
        let child = command.spawn().unwrap();
        let envd = Self { child, socket, _dir: dir, root };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&envd.socket).await.is_err() {
            assert!(Instant::now() < deadline, "envd did not start listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        envd
    }

    pub async fn connect(&self) -> EnvdClient {
        EnvdClient::new(self.raw_connection().await)
    }

    pub async fn raw_connection(&self) -> UnixStream {
        UnixStream::connect(&self.socket).await.unwrap()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The sandbox root in the host's view.
    pub fn root(&self) -> &Path {
        self.root.as_ref().map_or(Path::new("/"), |root| root.path())
    }

    /// SIGKILL: envd gets no chance to clean up (its children are left to the test).
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for TestEnvd {
    fn drop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `ExecSpec` for a shell command line.
pub fn sh(cmd: &str) -> runtools_protocol::envd::ExecSpec {
    runtools_protocol::envd::ExecSpec { cmd: Some(cmd.to_owned()), ..Default::default() }
}

/// `ExecSpec` for an argv.
pub fn argv(args: &[&str]) -> runtools_protocol::envd::ExecSpec {
    runtools_protocol::envd::ExecSpec {
        argv: Some(args.iter().map(|arg| (*arg).to_owned()).collect()),
        ..Default::default()
    }
}

pub fn running_as_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Pids of live (non-zombie) processes whose command line contains `needle` (NUL-separated).
pub fn pids_running(needle: &[u8]) -> Vec<u32> {
    process_states()
        .into_iter()
        .filter(|(pid, state, _)| *state != 'Z' && cmdline(*pid).windows(needle.len()).any(|window| window == needle))
        .map(|(pid, _, _)| pid)
        .collect()
}

fn cmdline(pid: u32) -> Vec<u8> {
    std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default()
}

/// Every process as (pid, state letter, parent pid).
pub fn process_states() -> Vec<(u32, char, u32)> {
    let mut states = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else { continue };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else { continue };
        let field = |name: &str| {
            status.lines().find_map(|line| line.strip_prefix(name)).map(str::trim).unwrap_or_default().to_owned()
        };
        let state = field("State:").chars().next().unwrap_or('?');
        let ppid = field("PPid:").parse().unwrap_or(0);
        states.push((pid, state, ppid));
    }
    states
}
