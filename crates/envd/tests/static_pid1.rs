//! The static envd build as a sandbox runs it: PID 1 of a new pid namespace, chrooted into a rootfs
//! that holds nothing but the binary (and a static busybox, when the host has one). Runs when
//! `RUNTOOLS_ENVD_BINARY` names the static build (`scripts/build-envd`) and the tests run as root;
//! otherwise it is skipped with a note.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use common::{process_states, running_as_root, sh};
use runtools_envd::{EnvdClient, WriteOptions};
use runtools_protocol::envd::FileType;
use tokio::net::UnixStream;

struct Pid1Envd {
    unshare: Child,
    rootfs: tempfile::TempDir,
}

impl Drop for Pid1Envd {
    fn drop(&mut self) {
        let _ = self.unshare.kill();
        let _ = self.unshare.wait();
    }
}

fn static_binary() -> Option<PathBuf> {
    let binary = PathBuf::from(std::env::var_os("RUNTOOLS_ENVD_BINARY")?);
    // `scripts/build-envd` prints a path relative to the workspace root.
    let binary =
        if binary.is_relative() { Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(binary) } else { binary };
    if !binary.is_file() && std::env::var("RUNTOOLS_TEST_REQUIRE_SANDBOXES").is_ok_and(|v| v == "1") {
        panic!("RUNTOOLS_TEST_REQUIRE_SANDBOXES=1 but RUNTOOLS_ENVD_BINARY={} does not exist", binary.display());
    }
    binary.is_file().then_some(binary)
}

/// The host pid of the envd whose parent is `unshare`.
fn envd_host_pid(unshare: u32) -> Option<u32> {
    process_states().into_iter().find(|(_, _, ppid)| *ppid == unshare).map(|(pid, _, _)| pid)
}

async fn start(binary: &Path) -> (Pid1Envd, EnvdClient) {
    let rootfs = tempfile::tempdir().unwrap();
    std::fs::copy(binary, rootfs.path().join("envd")).unwrap();
    std::fs::create_dir(rootfs.path().join("tmp")).unwrap();
    let busybox = Path::new("/bin/busybox");
    if busybox.is_file() {
        std::fs::create_dir(rootfs.path().join("bin")).unwrap();
        std::fs::copy(busybox, rootfs.path().join("bin/busybox")).unwrap();
        for applet in ["sh", "sleep", "echo"] {
            std::os::unix::fs::symlink("busybox", rootfs.path().join("bin").join(applet)).unwrap();
        }
    }
    let unshare = Command::new("unshare")
        .args(["--pid", "--fork", "--mount", "--kill-child", "chroot"])
        .arg(rootfs.path())
        .args(["/envd", "--listen", "unix:/tmp/envd.sock"])
        .spawn()
        .unwrap();
    let socket = rootfs.path().join("tmp/envd.sock");
    let envd = Pid1Envd { unshare, rootfs };
    let deadline = Instant::now() + Duration::from_secs(10);
    let stream = loop {
        if let Ok(stream) = UnixStream::connect(&socket).await {
            break stream;
        }
        assert!(Instant::now() < deadline, "envd did not start in the empty rootfs");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    (envd, EnvdClient::new(stream))
}

#[tokio::test]
async fn static_envd_serves_as_pid1_in_an_empty_rootfs() {
    let Some(binary) = static_binary() else {
        eprintln!("skipping: set RUNTOOLS_ENVD_BINARY to the static envd (scripts/build-envd)");
        return;
    };
    if !running_as_root() {
        eprintln!("skipping: needs root for unshare and chroot");
        return;
    }
    let (mut envd, client) = start(&binary).await;
    client.ping().await.unwrap();

    // No /lib, no /etc, no NSS: exec, users and files still work.
    let output = client
        .run(
            runtools_protocol::envd::ExecSpec {
                argv: Some(vec!["/envd".into(), "--version".into()]),
                user: Some("4242".into()),
                ..Default::default()
            },
            None,
        )
        .await
        .unwrap();
    assert!(String::from_utf8_lossy(&output.stdout).starts_with("envd "), "{output:?}");
    client.write("/tmp/hello", WriteOptions::default(), &b"hi"[..]).await.unwrap();
    let names: Vec<String> = client.list("/", None).await.unwrap().into_iter().map(|e| e.name).collect();
    assert!(names.contains(&"envd".to_owned()) && names.contains(&"tmp".to_owned()), "{names:?}");
    assert_eq!(client.stat("/tmp/hello").await.unwrap().file_type, FileType::File);
    assert!(envd.rootfs.path().join("tmp/hello").exists());

    let envd_pid = envd_host_pid(envd.unshare.id()).expect("envd's host pid");
    if Path::new("/bin/busybox").is_file() {
        // envd's children see it as PID 1, and it reaps the orphans they leave.
        let output = client.run(sh("echo $PPID; (sleep 0.2; exit 1) & (sleep 0.1 &)"), None).await.unwrap();
        assert_eq!(output.stdout, b"1\n");
        let deadline = Instant::now() + Duration::from_secs(5);
        while process_states().iter().any(|(_, _, ppid)| *ppid == envd_pid) {
            assert!(Instant::now() < deadline, "PID 1 envd left children behind");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // SIGTERM ends PID 1 (and so the namespace).
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(envd_pid as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while envd.unshare.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "PID 1 envd ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
