//! The `runtools` binary end to end: a real server process, real signals, real client commands.

#![allow(clippy::unwrap_used)] // test helpers: a failed step should panic with its location

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_runtools");

/// A `runtools server` child process.
struct ServerProcess {
    child: Child,
    url: String,
    /// Everything it printed on stdout up to and including the "listening" line.
    banner: String,
}

impl ServerProcess {
    /// A server without sandboxes (they are tested on their own, with their own cgroup parent).
    fn start(data_dir: &Path) -> Self {
        Self::start_with(data_dir, &["--no-sandboxes"])
    }

    fn start_with(data_dir: &Path, extra: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env_remove("RUNTOOLS_DATABASE_URL")
            // The tests' own envd path would override the config file's.
            .env_remove("RUNTOOLS_ENVD_BINARY")
            .env("RUNTOOLS_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let url = loop {
            let mut line = String::new();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "server exited early; printed:\n{banner}");
            banner.push_str(&line);
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().to_owned();
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
        Self { child, url, banner }
    }

    fn run(&self, data_dir: &Path, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["--url", &self.url, "--data-dir"])
            .arg(data_dir)
            .args(args)
            .env_remove("RUNTOOLS_API_KEY")
            .output()
            .unwrap()
    }

    /// Sends SIGTERM and waits for a clean exit.
    fn terminate(mut self) -> String {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                let mut stderr = String::new();
                self.child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
                assert!(status.success(), "server exited with {status}: {stderr}");
                return stderr;
            }
            assert!(Instant::now() < deadline, "server did not stop within 10 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "failed: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

#[test]
fn first_start_prints_the_admin_key_once_and_a_restart_prints_none() {
    let data = tempfile::tempdir().unwrap();
    let first = ServerProcess::start(data.path());
    assert_eq!(first.banner.matches("rt_admin_").count(), 1, "{}", first.banner);
    let saved = std::fs::read_to_string(data.path().join("admin.key")).unwrap();
    assert!(first.banner.contains(saved.trim()), "the printed key is the saved one");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(data.path().join("admin.key")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the admin key file is private");
    first.terminate();

    let second = ServerProcess::start(data.path());
    assert!(!second.banner.contains("rt_admin_"), "a restart prints no key: {}", second.banner);
    let whoami = stdout(&second.run(data.path(), &["whoami"]));
    assert!(whoami.contains("admin key"), "the saved admin key still works: {whoami}");
    second.terminate();
}

#[test]
fn keys_are_created_listed_and_revoked_from_the_cli() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path());

    let created =
        stdout(&server.run(data.path(), &["--json", "keys", "create", "--env", "production", "--name", "ci"]));
    let created: serde_json::Value = serde_json::from_str(&created).unwrap();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("sk_live_"));

    let listed = stdout(&server.run(data.path(), &["keys", "list"]));
    assert!(listed.contains(&id) && listed.contains("sk_live_…") && !listed.contains(&secret), "{listed}");

    let as_key = Command::new(BIN).args(["--url", &server.url, "--api-key", &secret, "whoami"]).output().unwrap();
    assert!(stdout(&as_key).contains("production"));

    stdout(&server.run(data.path(), &["keys", "revoke", &id]));
    let as_key = Command::new(BIN).args(["--url", &server.url, "--api-key", &secret, "whoami"]).output().unwrap();
    assert!(!as_key.status.success());
    let error = String::from_utf8_lossy(&as_key.stderr);
    assert!(error.contains("revoked_api_key"), "the error names the code: {error}");

    let bad = server.run(data.path(), &["keys", "revoke", "not-an-id"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("not-an-id"));
    server.terminate();
}

#[test]
fn secrets_are_set_from_stdin_and_listed_without_values() {
    let data = tempfile::tempdir().unwrap();
    let server = ServerProcess::start(data.path());
    let created = stdout(&server.run(data.path(), &["--json", "keys", "create", "--env", "development"]));
    let secret = serde_json::from_str::<serde_json::Value>(&created).unwrap()["secret"].as_str().unwrap().to_owned();

    let mut set = Command::new(BIN)
        .args(["--url", &server.url, "--api-key", &secret, "secrets", "set", "GITHUB_TOKEN"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut set.stdin.take().unwrap(), b"ghp_supersecret\n").unwrap();
    assert!(set.wait().unwrap().success());

    let listed =
        Command::new(BIN).args(["--url", &server.url, "--api-key", &secret, "secrets", "list"]).output().unwrap();
    let listed = stdout(&listed);
    assert!(listed.contains("GITHUB_TOKEN") && !listed.contains("ghp_supersecret"), "{listed}");
    server.terminate();
}

#[test]
fn unknown_config_keys_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("runtools.toml");
    std::fs::write(&config, "[server]\nlisten = \"127.0.0.1:0\"\ndatabase = \"x\"\n").unwrap();
    let output = Command::new(BIN).arg("--config").arg(&config).arg("server").output().unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("database") && error.contains("runtools.toml"), "{error}");
}

#[test]
fn client_commands_without_a_key_say_how_to_get_one() {
    let empty = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .args(["--url", "http://127.0.0.1:9", "--data-dir"])
        .arg(empty.path())
        .arg("whoami")
        .env_remove("RUNTOOLS_API_KEY")
        .output()
        .unwrap();
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("--api-key") && error.contains("RUNTOOLS_API_KEY"), "{error}");
}

#[test]
fn a_server_killed_mid_create_leaves_nothing_behind_after_restart() {
    let Some(envd) = runtools_test_support::sandbox_prerequisites() else { return };
    let data = tempfile::tempdir().unwrap();
    let parent = format!("runtools-test-cli-{}", std::process::id());
    let config = data.path().join("runtools.toml");
    std::fs::write(&config, format!("[sandbox]\ncgroup_parent = \"{parent}\"\nenvd_binary = \"{}\"\n", envd.display()))
        .unwrap();
    let config = config.to_string_lossy().into_owned();
    let server = ServerProcess::start_with(data.path(), &["--config", &config]);
    let created = stdout(&server.run(data.path(), &["--json", "keys", "create", "--env", "development"]));
    let key = serde_json::from_str::<serde_json::Value>(&created).unwrap()["secret"].as_str().unwrap().to_owned();
    let client = |url: &str, args: &[&str]| {
        Command::new(BIN).args(["--url", url, "--api-key", &key]).args(args).output().unwrap()
    };

    // Creates keep arriving from several clients; once some exist, SIGKILL the server, so some
    // are finished and others cut off mid-way.
    let creators: Vec<_> = (0..4)
        .map(|_| {
            let (url, key) = (server.url.clone(), key.clone());
            std::thread::spawn(move || {
                while Command::new(BIN)
                    .args(["--url", &url, "--api-key", &key, "sandbox", "create"])
                    .output()
                    .unwrap()
                    .status
                    .success()
                {}
            })
        })
        .collect();
    let state_dir = data.path().join("sandboxes");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&state_dir).map_or(0, |dir| dir.count()) < 6 {
        assert!(Instant::now() < deadline, "sandboxes were never created");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut server = server;
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    for creator in creators {
        creator.join().unwrap();
    }

    let server = ServerProcess::start_with(data.path(), &["--config", &config]);
    let listed = stdout(&client(&server.url, &["--json", "sandbox", "ls"]));
    let sandboxes: Vec<serde_json::Value> = serde_json::from_str(&listed).unwrap();
    for sandbox in &sandboxes {
        let state = sandbox["state"].as_str().unwrap();
        assert!(state == "running" || state == "error", "after the restart every sandbox is settled: {sandbox}");
        stdout(&client(&server.url, &["sandbox", "rm", sandbox["id"].as_str().unwrap()]));
    }
    let leftovers: Vec<_> = std::fs::read_dir(data.path().join("sandboxes"))
        .map(|dir| dir.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "no sandbox state is left: {leftovers:?}");
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = hierarchy.path().join(&parent);
        let cgroups: Vec<_> = std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten().filter(|e| e.file_name().to_string_lossy().starts_with("sbx_")).map(|e| e.path()).collect()
            })
            .unwrap_or_default();
        assert!(cgroups.is_empty(), "no sandbox cgroup is left: {cgroups:?}");
        let _ = std::fs::remove_dir(&dir);
    }
    server.terminate();
}
