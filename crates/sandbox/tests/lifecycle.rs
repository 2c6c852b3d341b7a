//! The namespace backend's lifecycle: create → exec → pause/resume → delete, re-adoption by a new
//! backend after a "server restart", reaching a port inside, volumes, usage, and failures that
//! leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{Harness, can_run, eventually, traces_of};
use runtools_protocol::envd::{ExecSpec, PtySize};
use runtools_sandbox::{Backend, BackendError, Mount, NamespaceBackend, Observed, ResolvedLimits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[tokio::test(flavor = "multi_thread")]
async fn create_exec_delete_leaves_nothing() {
    if !can_run("create_exec_delete_leaves_nothing") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    let pid = harness.backend.init_pid(id).unwrap();
    let out = harness
        .ok(id, "echo hello from $(hostname); id -u; echo $RUNTOOLS_TEST; tr '\\0' '\\n' < /proc/1/cmdline | head -1")
        .await;
    assert_eq!(out, "hello from sandbox\n0\n1\nenvd\n");
    assert!(!traces_of(&harness, id).is_empty());
    harness.backend.delete(id).await.unwrap();
    assert_eq!(traces_of(&harness, id), Vec::<String>::new());
    assert!(common::process_gone(pid), "the init is gone");
    // Idempotent, and the id is unknown afterwards.
    harness.backend.delete(id).await.unwrap();
    assert_eq!(harness.backend.recover(id).await.unwrap(), Observed::Gone);
    assert!(matches!(harness.backend.connect_envd(id).await, Err(BackendError::NotFound(_))));
}

#[tokio::test(flavor = "multi_thread")]
async fn pause_stops_cpu_and_resume_keeps_state() {
    if !can_run("pause_stops_cpu_and_resume_keeps_state") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    harness
        .background(
            id,
            "i=0; while :; do i=$((i+1)); echo $i > /tmp/counter.tmp; mv /tmp/counter.tmp /tmp/counter; done",
            "counter",
        )
        .await;
    let pid = harness.backend.init_pid(id).unwrap();
    let counter_path = format!("/proc/{pid}/root/tmp/counter");
    let counter =
        || std::fs::read_to_string(&counter_path).ok().and_then(|text| text.trim().parse::<u64>().ok()).unwrap_or(0);
    assert!(eventually(Duration::from_secs(10), || counter() > 10).await, "the counter runs");

    let started = Instant::now();
    harness.backend.pause(id).await.unwrap();
    let pause_took = started.elapsed();
    let frozen_at = counter();
    let cpu_at = harness.backend.usage(id).await.unwrap().cpu_nanos;
    assert_eq!(harness.backend.recover(id).await.unwrap(), Observed::Paused);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(counter(), frozen_at, "the counter does not advance while paused");
    let cpu_after = harness.backend.usage(id).await.unwrap().cpu_nanos;
    assert!(cpu_after - cpu_at < 5_000_000, "a paused sandbox uses no CPU ({} ns in 500 ms)", cpu_after - cpu_at);
    let listed = harness.backend.list().await.unwrap();
    assert_eq!(listed, vec![(id, Observed::Paused)]);

    let started = Instant::now();
    harness.backend.resume(id).await.unwrap();
    let resume_took = started.elapsed();
    eprintln!("pause took {pause_took:?}, resume took {resume_took:?}");
    assert!(
        eventually(Duration::from_secs(10), || counter() > frozen_at + 10).await,
        "the counter continues after resume"
    );
    // State kept: the same process, still counting from where it stopped.
    let processes = harness.client(id).await.list_processes().await.unwrap();
    assert!(processes.iter().any(|p| p.tag.as_deref() == Some("counter") && p.running), "{processes:?}");
    assert_eq!(harness.backend.recover(id).await.unwrap(), Observed::Running);
    harness.backend.delete(id).await.unwrap();
    assert_eq!(traces_of(&harness, id), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_paused_sandbox_can_be_deleted() {
    if !can_run("a_paused_sandbox_can_be_deleted") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    harness.background(id, "sleep 1000", "sleeper").await;
    harness.backend.pause(id).await.unwrap();
    harness.backend.delete(id).await.unwrap();
    assert_eq!(traces_of(&harness, id), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_backend_re_adopts_running_sandboxes() {
    if !can_run("a_new_backend_re_adopts_running_sandboxes") {
        return;
    }
    let mut harness = Harness::new();
    let id = harness.create().await;
    harness.ok(id, "echo kept > /root/state").await;
    harness.background(id, "sleep 1000", "sleeper").await;
    let pid = harness.backend.init_pid(id).unwrap();

    // "Restart the server": a new backend on the same state dir; the old one is dropped.
    let config = harness.backend.config().clone();
    let old = std::mem::replace(&mut harness.backend, NamespaceBackend::new(config).unwrap());
    drop(old);
    assert_eq!(harness.backend.list().await.unwrap(), vec![(id, Observed::Running)]);
    assert_eq!(harness.backend.recover(id).await.unwrap(), Observed::Running);
    assert_eq!(harness.backend.init_pid(id), Some(pid), "the same init, never restarted");
    assert_eq!(harness.ok(id, "cat /root/state").await, "kept\n");
    let processes = harness.client(id).await.list_processes().await.unwrap();
    assert!(processes.iter().any(|p| p.tag.as_deref() == Some("sleeper") && p.running), "{processes:?}");
    harness.backend.delete(id).await.unwrap();
    assert_eq!(traces_of(&harness, id), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn orphans_and_half_made_sandboxes_are_reaped() {
    if !can_run("orphans_and_half_made_sandboxes_are_reaped") {
        return;
    }
    let harness = Harness::new();
    let keep = harness.create().await;
    let orphan = harness.create().await;
    let half_made = harness.create().await;
    // Pretend the server died mid-create: the record still says `creating`.
    let state_file = harness.backend.sandbox_dir(half_made).join("state.json");
    let mut state: serde_json::Value = serde_json::from_slice(&std::fs::read(&state_file).unwrap()).unwrap();
    state["phase"] = "creating".into();
    std::fs::write(&state_file, serde_json::to_vec(&state).unwrap()).unwrap();
    let fresh = NamespaceBackend::new(harness.backend.config().clone()).unwrap();
    let mut listed = fresh.list().await.unwrap();
    listed.sort_by_key(|(id, _)| *id);
    let mut expected = vec![(keep, Observed::Running), (orphan, Observed::Running), (half_made, Observed::Broken)];
    expected.sort_by_key(|(id, _)| *id);
    assert_eq!(listed, expected);

    let removed = fresh.reap_orphans(&HashSet::from([keep])).await.unwrap();
    assert_eq!(removed.len(), 2, "{removed:?}");
    for id in [orphan, half_made] {
        assert_eq!(traces_of(&harness, id), Vec::<String>::new());
    }
    assert_eq!(fresh.list().await.unwrap(), vec![(keep, Observed::Running)]);
    assert_eq!(harness.ok(keep, "echo alive").await, "alive\n");
    fresh.delete(keep).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_port_reaches_a_server_inside() {
    if !can_run("connect_port_reaches_a_server_inside") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    harness.ok(id, "mkdir -p /srv/www && echo 'hello over http' > /srv/www/index.txt").await;
    harness.background(id, "cd /srv/www && exec python3 -m http.server 8000 --bind 127.0.0.1", "http").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut stream = loop {
        match harness.backend.connect_port(id, 8000).await {
            Ok(stream) => break stream,
            Err(error) if Instant::now() < deadline => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => panic!("the server never listened: {error}"),
        }
    };
    stream.write_all(b"GET /index.txt HTTP/1.0\r\nHost: x\r\n\r\n").await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.0 200"), "{response}");
    assert!(response.ends_with("hello over http\n"), "{response}");
    // Nothing listens on another port.
    assert!(harness.backend.connect_port(id, 8001).await.is_err());
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn volumes_persist_on_the_host_and_read_only_ones_refuse_writes() {
    if !can_run("volumes_persist_on_the_host_and_read_only_ones_refuse_writes") {
        return;
    }
    let harness = Harness::new();
    let data = harness.dir.path().join("volume-data");
    let config = harness.dir.path().join("volume-config");
    std::fs::create_dir_all(&data).unwrap();
    std::fs::create_dir_all(&config).unwrap();
    std::fs::write(config.join("settings"), "mode=test\n").unwrap();
    let id = harness
        .create_with(|spec| {
            spec.volumes = vec![
                Mount { host_path: data.clone(), sandbox_path: "/home/user/data".into(), read_only: false },
                Mount { host_path: config.clone(), sandbox_path: "/etc/app".into(), read_only: true },
            ];
        })
        .await;
    harness.ok(id, "echo written inside > /home/user/data/out.txt").await;
    assert_eq!(harness.ok(id, "cat /etc/app/settings").await, "mode=test\n");
    let refused = harness.sh(id, "echo nope > /etc/app/other").await;
    assert!(!refused.exit.success(), "a read-only volume refuses writes");
    harness.backend.delete(id).await.unwrap();
    assert_eq!(
        std::fs::read_to_string(data.join("out.txt")).unwrap(),
        "written inside\n",
        "the volume outlives the sandbox"
    );
    assert!(!config.join("other").exists());
    assert_eq!(traces_of(&harness, id), Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_reports_memory_cpu_and_pids() {
    if !can_run("usage_reports_memory_cpu_and_pids") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    harness.ok(id, "i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done").await;
    harness.background(id, "sleep 1000", "a").await;
    let usage = harness.backend.usage(id).await.unwrap();
    assert!(usage.memory_bytes > 0, "{usage:?}");
    assert!(usage.cpu_nanos > 1_000_000, "{usage:?}");
    assert!(usage.pids >= 2, "envd and sleep: {usage:?}");
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_pty_and_another_user_work_inside() {
    if !can_run("a_pty_and_another_user_work_inside") {
        return;
    }
    let harness = Harness::new();
    let id = harness.create().await;
    let client = harness.client(id).await;
    let as_user = ExecSpec {
        cmd: Some("id -un; id -u; pwd; touch ~/mine".into()),
        user: Some("user".into()),
        ..ExecSpec::default()
    };
    let output = client.run(as_user, None).await.unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "user\n1000\n/home/user\n", "{output:?}");
    let on_pty = ExecSpec {
        cmd: Some("tty; stty size".into()),
        pty: Some(PtySize { cols: 100, rows: 30 }),
        ..ExecSpec::default()
    };
    let output = client.run(on_pty, None).await.unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("/dev/pts/"), "{text}");
    assert!(text.contains("30 100"), "{text}");
    harness.backend.delete(id).await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn failed_creates_leave_nothing_and_say_why() {
    if !can_run("failed_creates_leave_nothing_and_say_why") {
        return;
    }
    // An "envd" that exits at once.
    let harness = Harness::with_config(|config| config.envd_binary = "/bin/false".into());
    let spec = harness.spec();
    let error = harness.backend.create(&spec).await.unwrap_err();
    assert!(error.to_string().contains("envd exited while starting"), "{error}");
    assert_eq!(traces_of(&harness, spec.id), Vec::<String>::new());

    let harness = Harness::new();
    let mut spec = harness.spec();
    spec.volumes =
        vec![Mount { host_path: harness.dir.path().to_owned(), sandbox_path: "/proc/x".into(), read_only: false }];
    let error = harness.backend.create(&spec).await.unwrap_err();
    assert!(error.to_string().contains("cannot be mounted at `/proc/x`"), "{error}");
    assert_eq!(traces_of(&harness, spec.id), Vec::<String>::new());

    let mut spec = harness.spec();
    spec.rootfs = harness.dir.path().join("no-such-rootfs");
    let error = harness.backend.create(&spec).await.unwrap_err();
    assert!(error.to_string().contains("no-such-rootfs"), "{error}");
    assert_eq!(traces_of(&harness, spec.id), Vec::<String>::new());

    for limits in [
        ResolvedLimits { cpu: 0.0, ..common::default_limits() },
        ResolvedLimits { memory_bytes: 1024, ..common::default_limits() },
        ResolvedLimits { pids: 1, ..common::default_limits() },
        ResolvedLimits { disk_bytes: 10, ..common::default_limits() },
    ] {
        let mut spec = harness.spec();
        spec.limits = limits;
        let error = harness.backend.create(&spec).await.unwrap_err();
        assert!(matches!(error, BackendError::InvalidLimits(_)), "{error}");
        assert_eq!(traces_of(&harness, spec.id), Vec::<String>::new());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_creates_and_deletes_do_not_interfere() {
    if !can_run("concurrent_creates_and_deletes_do_not_interfere") {
        return;
    }
    let harness = Harness::new();
    let specs: Vec<_> = (0..12).map(|_| harness.spec()).collect();
    let created = futures::future::join_all(specs.iter().map(|spec| harness.backend.create(spec))).await;
    for result in created {
        result.unwrap();
    }
    let outputs = futures::future::join_all(
        specs.iter().map(|spec| harness.ok(spec.id, "cat /etc/hostname; ls /proc | grep -c '^[0-9]'")),
    )
    .await;
    for output in outputs {
        assert!(output.starts_with("sandbox\n"), "{output}");
    }
    let listed = harness.backend.list().await.unwrap();
    assert_eq!(listed.len(), specs.len());
    assert!(listed.iter().all(|(_, observed)| *observed == Observed::Running), "{listed:?}");
    let deleted = futures::future::join_all(specs.iter().map(|spec| harness.backend.delete(spec.id))).await;
    for (spec, result) in specs.iter().zip(deleted) {
        result.unwrap();
        assert_eq!(traces_of(&harness, spec.id), Vec::<String>::new());
    }
}
