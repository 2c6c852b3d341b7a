//! Resource limits: a fork bomb hits the pids limit and a memory hog is OOM-killed inside its
//! sandbox while the host and another sandbox carry on; the disk and CPU limits hold.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{Harness, can_run, traces_of};
use runtools_protocol::envd::ExecSpec;
use runtools_sandbox::{Backend, ResolvedLimits};

/// How many forks the pids controller refused in the sandbox's cgroup (`max` in `pids.events`).
fn refused_forks(harness: &Harness, id: runtools_protocol::SandboxId) -> u64 {
    let dir =
        harness.cgroup_parent_dirs().into_iter().find(|dir| dir.join(id.to_string()).join("pids.events").exists());
    let Some(dir) = dir else { return 0 };
    let events = std::fs::read_to_string(dir.join(id.to_string()).join("pids.events")).unwrap_or_default();
    events.lines().find_map(|line| line.strip_prefix("max ")).and_then(|n| n.trim().parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fork_bomb_hits_the_pids_limit_and_others_carry_on() {
    if !can_run("a_fork_bomb_hits_the_pids_limit_and_others_carry_on") {
        return;
    }
    let harness = Harness::new();
    let limits = ResolvedLimits { pids: 64, cpu: 0.5, ..common::default_limits() };
    let bomb = harness.create_with(|spec| spec.limits = limits).await;
    let bystander = harness.create().await;

    // Counting forks until the kernel says no: the limit, minus what already runs.
    let count = harness
        .ok(
            bomb,
            "python3 -c \"
import os, signal, time
children = []
while True:
    try:
        pid = os.fork()
    except OSError as error:
        print(len(children), error.errno)
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    children.append(pid)
for pid in children:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
\"",
        )
        .await;
    let (forked, errno) = count.trim().split_once(' ').unwrap();
    let forked: u32 = forked.parse().unwrap();
    assert_eq!(errno, "11", "EAGAIN from fork");
    assert!((40..64).contains(&forked), "forked {forked} times under pids=64 ({count})");

    let refused_before = refused_forks(&harness, bomb);
    assert!(refused_before > 0, "the counting fork loop was refused");

    // The classic bomb, for a while, with the host and the other sandbox checked meanwhile.
    let client = harness.client(bomb).await;
    let spec = ExecSpec { cmd: Some("bash -c ':(){ :|:& };:'".into()), timeout_ms: Some(3_000), ..ExecSpec::default() };
    let bombing = tokio::spawn(async move { client.run(spec, None).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    assert_eq!(harness.ok(bystander, "echo still here").await, "still here\n");
    assert!(started.elapsed() < Duration::from_secs(10), "the other sandbox answered in {:?}", started.elapsed());
    assert!(std::process::Command::new("true").status().unwrap().success(), "the host can still fork");
    // The bomb runs into the limit (the kernel counts refused forks in pids.events) and never
    // past it.
    let mut refused = refused_forks(&harness, bomb);
    for _ in 0..500 {
        let usage = harness.backend.usage(bomb).await.unwrap();
        assert!(usage.pids <= 64, "{usage:?}");
        refused = refused_forks(&harness, bomb);
        if refused > refused_before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(refused > refused_before, "the bomb never hit the limit ({refused} refused forks)");
    let _ = bombing.await;
    // Deleting the bombed sandbox gets rid of every last process.
    harness.backend.delete(bomb).await.unwrap();
    assert_eq!(traces_of(&harness, bomb), Vec::<String>::new());
    assert_eq!(harness.ok(bystander, "echo fine").await, "fine\n");
    harness.backend.delete(bystander).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_memory_hog_is_oom_killed_inside_and_the_sandbox_survives() {
    if !can_run("a_memory_hog_is_oom_killed_inside_and_the_sandbox_survives") {
        return;
    }
    let harness = Harness::new();
    let limits = ResolvedLimits { memory_bytes: 64 << 20, ..common::default_limits() };
    let id = harness.create_with(|spec| spec.limits = limits).await;
    let bystander = harness.create().await;
    let hog = harness.sh(id, "exec python3 -c \"b = b'x' * (300 << 20); print(len(b))\"").await;
    assert_eq!(hog.exit.signal, Some(9), "the hog is SIGKILLed by the OOM killer: {hog:?}");
    assert!(hog.stdout.is_empty());
    // The sandbox and its envd survive; memory use is back under the limit.
    assert_eq!(harness.ok(id, "echo survived").await, "survived\n");
    assert!(harness.backend.usage(id).await.unwrap().memory_bytes < 64 << 20);
    assert_eq!(harness.ok(bystander, "echo unaffected").await, "unaffected\n");
    harness.backend.delete(id).await.unwrap();
    harness.backend.delete(bystander).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_disk_limit_gives_enospc() {
    if !can_run("the_disk_limit_gives_enospc") {
        return;
    }
    let harness = Harness::new();
    let limits = ResolvedLimits { disk_bytes: 16 << 20, ..common::default_limits() };
    let id = harness.create_with(|spec| spec.limits = limits).await;
    for path in ["/root/big", "/tmp/big", "/usr/big"] {
        let out = harness.sh(id, &format!("head -c 32M /dev/zero > {path}")).await;
        assert!(!out.exit.success(), "{path}: {out:?}");
        assert!(String::from_utf8_lossy(&out.stderr).contains("No space left on device"), "{path}: {out:?}");
        harness.ok(id, &format!("rm -f {path}")).await;
    }
    assert_eq!(harness.ok(id, "head -c 1M /dev/zero > /root/small && echo ok").await, "ok\n");
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cpu_quota_holds() {
    if !can_run("the_cpu_quota_holds") {
        return;
    }
    let harness = Harness::new();
    let limits = ResolvedLimits { cpu: 0.2, ..common::default_limits() };
    let id = harness.create_with(|spec| spec.limits = limits).await;
    let before = harness.backend.usage(id).await.unwrap().cpu_nanos;
    let started = Instant::now();
    harness.sh(id, "timeout 1 sh -c 'while :; do :; done'").await;
    let wall = started.elapsed().as_nanos() as u64;
    let used = harness.backend.usage(id).await.unwrap().cpu_nanos - before;
    assert!(used < wall / 2, "0.2 cores: used {used} ns of CPU in {wall} ns");
    assert!(used > wall / 20, "the loop did run: {used} ns");
    harness.backend.delete(id).await.unwrap();
}
