//! Test harness: a real `envd` serving the host filesystem on a Unix socket in a temp dir, and a
//! fixture tree (a temp dir) that a [`Toolbox`] works in. envd's file operations and exec then see
//! the same paths, as they do in a sandbox.
//!
//! The envd binary is `ENVD_TEST_BINARY` when set; otherwise it is built (a no-op when fresh) with
//! `cargo build -p runtools-envd --bin envd`, so the tests always run against the current envd.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use runtools_agent::{ToolCall, ToolOutput, ToolSet};
use runtools_envd::EnvdClient;
use runtools_tools::{ToolContext, Toolbox};
use tokio::net::UnixStream;

/// The envd binary to test with.
pub fn envd_binary() -> PathBuf {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            if let Some(path) = std::env::var_os("ENVD_TEST_BINARY") {
                return PathBuf::from(path);
            }
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
            let output = Command::new(env!("CARGO"))
                .args(["build", "-p", "runtools-envd", "--bin", "envd", "--message-format=json-render-diagnostics"])
                .current_dir(&workspace)
                .stderr(Stdio::inherit())
                .output()
                .expect("cargo build of envd could not run");
            assert!(output.status.success(), "building envd failed");
            String::from_utf8_lossy(&output.stdout)
                .lines()
                .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
                .filter(|message| message["target"]["name"] == "envd")
                .find_map(|message| message["executable"].as_str().map(PathBuf::from))
                .expect("cargo did not report the envd executable")
        })
        .clone()
}

/// envd serving `/`, stopped when dropped.
pub struct TestEnvd {
    child: Child,
    socket: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestEnvd {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("envd.sock");
        let child = Command::new(envd_binary())
            .arg("--listen")
            .arg(format!("unix:{}", socket.display()))
            .env("ENVD_LOG", std::env::var("ENVD_LOG").unwrap_or_else(|_| "warn".into()))
            .spawn()
            .unwrap();
        let envd = Self { child, socket, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&envd.socket).await.is_err() {
            assert!(Instant::now() < deadline, "envd did not start listening");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        envd
    }

    pub async fn client(&self) -> EnvdClient {
        EnvdClient::new(UnixStream::connect(&self.socket).await.unwrap())
    }
}

impl Drop for TestEnvd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fixture directory, envd, and every tool working in that directory.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub toolbox: Toolbox,
    envd: TestEnvd,
}

impl Fixture {
    pub async fn new() -> Self {
        Self::with_context(|context| context).await
    }

    /// With the context adjusted (its working directory is already the fixture directory).
    pub async fn with_context(adjust: impl FnOnce(ToolContext) -> ToolContext) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let envd = TestEnvd::start().await;
        let context = ToolContext::new(envd.client().await).with_working_dir(dir.path().to_str().unwrap());
        let toolbox = Toolbox::all(adjust(context));
        Self { dir, toolbox, envd }
    }

    /// The fixture directory, as tools see it.
    pub fn root(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }

    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes a file (creating its directories) and returns its absolute path.
    pub fn write(&self, relative: &str, contents: impl AsRef<[u8]>) -> String {
        let path = self.path(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap()
    }

    pub async fn call(&self, tool: &str, input: serde_json::Value) -> ToolOutput {
        call(&self.toolbox, tool, input).await
    }
}

pub async fn call(toolbox: &Toolbox, tool: &str, input: serde_json::Value) -> ToolOutput {
    let call = ToolCall { id: "call_1".into(), name: tool.into(), input };
    tokio::time::timeout(Duration::from_secs(60), toolbox.call(&call)).await.expect("the tool call hung")
}
