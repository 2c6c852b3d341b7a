//! What a sandbox cannot see or do: host processes and files, other sandboxes, the network when
//! it is off, the template and host layers it runs on, and the privileged parts of the kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::TcpListener;

use common::{Harness, can_run};
use runtools_sandbox::Backend;

#[tokio::test(flavor = "multi_thread")]
async fn host_processes_are_invisible() {
    if !can_run("host_processes_are_invisible") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    let pids = harness.ok(id, "ls /proc | grep -E '^[0-9]+$' | sort -n | tr '\\n' ' '").await;
    let pids: Vec<u32> = pids.split_whitespace().map(|pid| pid.parse().unwrap()).collect();
    // envd (1), the shell, ls, grep, sort, tr: nothing of the host's hundreds.
    assert!(pids.len() <= 8 && pids.contains(&1), "{pids:?}");
    assert!(pids.iter().all(|&pid| pid < 100), "{pids:?}");
    let test_pid = std::process::id();
    let out = harness.sh(id, &format!("test -e /proc/{test_pid}/cmdline && cat /proc/{test_pid}/cmdline")).await;
    assert!(!String::from_utf8_lossy(&out.stdout).contains("isolation"), "the test process is not visible");
    assert_eq!(harness.ok(id, "tr '\\0' '\\n' < /proc/1/cmdline | head -1").await, "envd\n");
    // Killing "everything" inside cannot touch the host (there is nothing else to see).
    harness.sh(id, "kill -9 -1").await;
    assert!(common::process_gone(0) || std::path::Path::new(&format!("/proc/{test_pid}")).exists());
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn host_files_outside_the_rootfs_are_invisible() {
    if !can_run("host_files_outside_the_rootfs_are_invisible") {
        return;
    }
    let harness = Harness::new();
    let marker_name = format!("runtools-marker-{}", std::process::id());
    let host_marker = std::path::Path::new("/root").join(&marker_name);
    std::fs::write(&host_marker, "secret").unwrap();
    let state_marker = harness.backend.config().state_dir.join(&marker_name);
    std::fs::write(&state_marker, "secret").unwrap();
    let id = harness.create().await;
    for path in [host_marker.to_str().unwrap(), &format!("/{marker_name}"), harness.dir.path().to_str().unwrap()] {
        let out = harness.sh(id, &format!("test -e '{path}'")).await;
        assert_eq!(out.exit.exit_code, Some(1), "{path} must not exist inside");
    }
    let out = harness.sh(id, &format!("find / -xdev -name '{marker_name}' 2>/dev/null | head -1")).await;
    assert_eq!(String::from_utf8_lossy(&out.stdout), "", "the marker is nowhere inside");
    // The curated /etc: no secrets of the host.
    for secret in
        ["/etc/shadow", "/etc/gshadow", "/etc/machine-id", "/etc/ssh", "/etc/ssl/private", "/root/.cargo", "/work"]
    {
        let out = harness.sh(id, &format!("test -e {secret}")).await;
        assert_eq!(out.exit.exit_code, Some(1), "{secret} must not exist inside");
    }
    assert_eq!(harness.ok(id, "ls -A /root").await, "");
    std::fs::remove_file(&host_marker).unwrap();
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn sandboxes_cannot_see_each_other() {
    if !can_run("sandboxes_cannot_see_each_other") {
        return;
    }
    let harness = Harness::new();
    let a = harness.create().await;
    let b = harness.create().await;
    harness.ok(a, "echo a-secret > /root/a-file; echo a-tmp > /tmp/a-file; echo a-usr > /usr/a-file").await;
    harness.background(a, "exec sleep 1001", "sleeper").await;
    for path in ["/root/a-file", "/tmp/a-file", "/usr/a-file"] {
        assert_eq!(harness.sh(b, &format!("test -e {path}")).await.exit.exit_code, Some(1), "{path} leaks from a to b");
    }
    let b_procs = harness.ok(b, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").await;
    assert!(!b_procs.contains("sleep 1001"), "{b_procs}");
    assert!(harness.ok(a, "cat /proc/[0-9]*/cmdline | tr '\\0' ' '").await.contains("sleep 1001"));
    // Different hostnames stay apart too.
    harness.ok(b, "hostname").await;
    harness.backend.delete(a).await.unwrap();
    harness.backend.delete(b).await.unwrap();
}

/// The host's non-loopback IPv4 addresses.
fn host_addresses() -> Vec<String> {
    let output =
        std::process::Command::new("ip").args(["-4", "-o", "addr", "show", "scope", "global"]).output().unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().nth(3)?.split('/').next().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn network_off_means_loopback_only() {
    if !can_run("network_off_means_loopback_only") {
        return;
    }
    let harness = Harness::new();
    let listener = TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let id = harness.create().await;
    let devices = harness.ok(id, "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' '").await;
    assert_eq!(devices, "lo\n");
    let routes = harness.ok(id, "ip route show").await;
    assert_eq!(routes, "", "no routes at all");
    let mut targets = vec!["127.0.0.1".to_owned()];
    targets.extend(host_addresses());
    for target in targets {
        let probe = format!(
            "python3 -c \"import socket; socket.create_connection(('{target}', {port}), 2)\" 2>&1 && echo CONNECTED || echo REFUSED"
        );
        let out = harness.ok(id, &probe).await;
        assert!(out.trim_end().ends_with("REFUSED"), "{target}:{port} reachable from a sandbox without network: {out}");
    }
    // Loopback inside works.
    let out = harness
        .ok(id, "python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1', 0)); s.listen(); c=socket.create_connection(s.getsockname()); print('ok')\"")
        .await;
    assert_eq!(out, "ok\n");
    drop(listener);
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_stay_in_the_sandbox() {
    if !can_run("writes_stay_in_the_sandbox") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    let name = format!("rt-write-{}", std::process::id());
    let passwd_before = std::fs::read_to_string(harness.base.rootfs.join("etc/passwd")).unwrap();
    harness
        .ok(id, &format!("echo x > /usr/{name} && echo y > /{name} && echo z >> /etc/passwd && rm /usr/bin/yes && mkdir /usr/lib/{name}"))
        .await;
    assert_eq!(harness.ok(id, &format!("cat /usr/{name} /{name}")).await, "x\ny\n");
    assert_eq!(harness.sh(id, "test -e /usr/bin/yes").await.exit.exit_code, Some(1), "deleted inside");
    assert!(!std::path::Path::new("/usr").join(&name).exists(), "a write to /usr reached the host");
    assert!(!std::path::Path::new("/usr/lib").join(&name).exists(), "a mkdir in /usr reached the host");
    assert!(std::path::Path::new("/usr/bin/yes").exists(), "a delete in /usr reached the host");
    assert!(!harness.base.rootfs.join(&name).exists(), "a write to / reached the template");
    assert!(!harness.base.rootfs.join("usr").join(&name).exists(), "a write to /usr reached the template");
    assert_eq!(std::fs::read_to_string(harness.base.rootfs.join("etc/passwd")).unwrap(), passwd_before);
    // A second sandbox of the same template starts clean.
    let other = harness.create().await;
    assert_eq!(harness.sh(other, &format!("test -e /usr/{name} -o -e /{name}")).await.exit.exit_code, Some(1));
    assert_eq!(harness.ok(other, "grep -c . /etc/passwd").await, "3\n");
    harness.backend.delete(id).await.unwrap();
    harness.backend.delete(other).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn privileges_are_dropped() {
    if !can_run("privileges_are_dropped") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    let status =
        harness.ok(id, "grep -E '^(CapBnd|CapEff|NoNewPrivs|Seccomp):' /proc/self/status | tr -s '\\t' ' '").await;
    assert_eq!(status, "CapEff: 00000000000004fb\nCapBnd: 00000000000004fb\nNoNewPrivs: 1\nSeccomp: 2\n");
    for (what, cmd) in [
        ("mount", "mount -t tmpfs none /mnt"),
        ("remount /proc/sys", "mount -o remount,rw /proc/sys"),
        ("unshare a user namespace", "unshare -U true"),
        ("unshare a net namespace", "unshare -n true"),
        ("write a sysctl", "echo evil > /proc/sys/kernel/core_pattern"),
        ("sysrq", "echo h > /proc/sysrq-trigger"),
        ("read the kernel log", "dmesg"),
        ("set the clock", "date -s '2000-01-01'"),
        ("create a device", "mknod /tmp/sda b 8 0"),
        ("raw sockets", "python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_RAW, 1)'"),
        (
            "load a module",
            "python3 -c 'import ctypes, sys; sys.exit(0 if ctypes.CDLL(None).syscall(175, 0, 0, 0) == 0 else 1)'",
        ),
        (
            "reboot",
            "python3 -c 'import ctypes, sys; sys.exit(0 if ctypes.CDLL(None).syscall(169, 0xfee1dead, 672274793, 0x4321fedc, 0) == 0 else 1)'",
        ),
        ("chroot", "chroot / true"),
    ] {
        let out = harness.sh(id, cmd).await;
        assert!(!out.exit.success(), "{what} must fail inside a sandbox: {out:?}");
    }
    // /proc/kcore and friends are masked (where this kernel has them).
    for masked in ["/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug"] {
        let size = harness.ok(id, &format!("test -e {masked} && wc -c < {masked} || echo 0")).await;
        assert_eq!(size.trim(), "0", "{masked} is masked");
    }
    // ptrace of its own children stays allowed (debuggers, strace).
    let out = harness.ok(id, "python3 -c 'import ctypes; print(ctypes.CDLL(None).ptrace(0, 0, 0, 0))' || true").await;
    assert!(!out.is_empty());
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_base_template_has_the_hosts_userland() {
    if !can_run("the_base_template_has_the_hosts_userland") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    let out = harness.ok(id, "bash -c 'echo $BASH_VERSION' >/dev/null && python3 -c 'print(2+2)' && ls /usr/bin/env && id user && cat /etc/hostname").await;
    assert!(out.contains("4\n"), "{out}");
    assert!(out.contains("uid=1000(user)"), "{out}");
    assert!(out.ends_with("sandbox\n"), "{out}");
    harness.backend.delete(id).await.unwrap();
}
