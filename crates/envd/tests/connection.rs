//! Connections to the real envd binary: ping, many concurrent streams on one connection, a
//! malformed frame closing only its own connection, zombie reaping, and shutdown on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestEnvd, argv, process_states, sh};
use runtools_envd::frame::{Frame, read_frame, write_frame};
use runtools_envd::{ClientError, EnvdClient, WriteOptions};
use runtools_protocol::envd::{ENVD_PROTOCOL_VERSION, ExecSpec, FrameKind, Reply, Request};
use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn answers_ping() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let pong = client.ping().await.unwrap();
    assert_eq!(pong.version, ENVD_PROTOCOL_VERSION);
    assert_eq!(pong.envd_version, env!("CARGO_PKG_VERSION"));
    assert!(!client.is_closed());
}

#[tokio::test]
async fn runs_many_streams_concurrently_on_one_connection() {
    let envd = TestEnvd::start_with_root().await;
    let client = envd.connect().await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..40u32 {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                // Each sleeps, so running them one after another would take 40 × 0.3 s.
                0 => {
                    let output = client.run(sh(&format!("sleep 0.3; echo {i}")), None).await.unwrap();
                    assert_eq!(output.stdout, format!("{i}\n").as_bytes());
                }
                1 => {
                    let path = format!("/file-{i}");
                    let data = vec![i as u8; 300_000];
                    client.write(&path, WriteOptions::default(), data.as_slice()).await.unwrap();
                    let (_, mut reader) = client.read(&path, None, None).await.unwrap();
                    assert_eq!(reader.read_to_end().await.unwrap(), data);
                }
                _ => {
                    let output = client.run(argv(&["cat"]), Some(vec![b'z'; 200_000])).await.unwrap();
                    assert_eq!(output.stdout.len(), 200_000);
                    client.ping().await.unwrap();
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    assert!(started.elapsed() < Duration::from_secs(6), "streams did not overlap: {:?}", started.elapsed());
}

#[tokio::test]
async fn a_malformed_frame_closes_only_its_connection() {
    let envd = TestEnvd::start().await;
    let healthy = envd.connect().await;
    let background = ExecSpec { background: true, tag: Some("survivor".into()), ..sh("sleep 0.5; echo alive") };
    let process = healthy.exec(background).await.unwrap();
    let process_id = process.process_id;
    process.detach().await.unwrap();

    // A victim connection with a long-running foreground process, then garbage.
    let mut raw = envd.raw_connection().await;
    let open = Frame::json(1, FrameKind::Open, &Request::Exec(sh("sleep 100"))).unwrap();
    write_frame(&mut raw, &open).await.unwrap();
    let started = read_frame(&mut raw).await.unwrap().unwrap();
    let Reply::Started { pid, .. } = serde_json::from_slice(&started.payload).unwrap() else { panic!("not started") };
    raw.write_all(&[0, 0, 0, 9, 0, 0, 0, 1, 99, 1, 2, 3, 4]).await.unwrap();
    // envd hangs up on it…
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(Some(_)) = read_frame(&mut raw).await {
        assert!(Instant::now() < deadline, "envd kept the connection");
    }
    // …and kills that connection's foreground process…
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_states().iter().any(|(p, _, _)| *p == pid) {
        assert!(Instant::now() < deadline, "the foreground process outlived its connection");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // …while the other connection, new connections and background processes carry on.
    healthy.ping().await.unwrap();
    let fresh = envd.connect().await;
    assert_eq!(fresh.run(argv(&["echo", "ok"]), None).await.unwrap().stdout, b"ok\n");
    let attached = fresh.attach(runtools_protocol::envd::AttachSpec { process_id: Some(process_id), tag: None });
    let output = attached.await.unwrap().wait().await.unwrap();
    assert_eq!(output.stdout, b"alive\n");

    // Other protocol violations get the same treatment: an oversized length, a reserved id.
    for garbage in [vec![0xff, 0xff, 0xff, 0xff], vec![0, 0, 0, 5, 0, 0, 0, 0, 1]] {
        let mut raw = envd.raw_connection().await;
        raw.write_all(&garbage).await.unwrap();
        assert!(matches!(read_frame(&mut raw).await, Ok(None) | Err(_)));
    }
    // An unparseable request is only an error on its stream.
    let mut raw = envd.raw_connection().await;
    write_frame(&mut raw, &Frame::new(7, FrameKind::Open, &b"{\"op\":\"launch\"}"[..])).await.unwrap();
    let reply = read_frame(&mut raw).await.unwrap().unwrap();
    let Reply::Error { error } = serde_json::from_slice(&reply.payload).unwrap() else { panic!("no error reply") };
    assert_eq!(error.code, runtools_protocol::envd::EnvdErrorCode::InvalidRequest);
    assert_eq!(read_frame(&mut raw).await.unwrap().unwrap().kind, FrameKind::Close);
    let client = EnvdClient::new(raw);
    client.ping().await.unwrap();
}

#[tokio::test]
async fn client_reports_a_closed_connection() {
    let mut envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let process = client.exec(argv(&["sleep", "100"])).await.unwrap();
    let pid = process.pid;
    // envd dies without a chance to report anything.
    envd.kill_hard();
    let Err(error) = process.wait().await else { panic!("envd reported an exit after SIGKILL") };
    assert!(matches!(error, ClientError::ConnectionClosed), "{error:?}");
    let group = rustix::process::Pid::from_raw(pid as i32).unwrap();
    let _ = rustix::process::kill_process_group(group, rustix::process::Signal::KILL);
    assert!(matches!(client.ping().await, Err(ClientError::ConnectionClosed)));
    assert!(client.is_closed());
}

#[tokio::test]
async fn reaps_orphaned_grandchildren() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    // The shell exits at once; its background child is orphaned and re-parented to envd (a child
    // subreaper here, PID 1 in a sandbox), which must reap it when it exits.
    let output = client.run(sh("(sleep 0.3; exit 3) & (sleep 0.2 &) ; echo $!"), None).await.unwrap();
    assert!(output.exit.success());
    let orphans = |states: &[(u32, char, u32)]| -> Vec<(u32, char)> {
        states.iter().filter(|(_, _, ppid)| *ppid == envd.pid()).map(|(pid, state, _)| (*pid, *state)).collect()
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let children = orphans(&process_states());
        if children.is_empty() {
            break;
        }
        assert!(Instant::now() < deadline, "children of envd left behind: {children:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // envd's exec bookkeeping is unaffected.
    assert!(client.run(sh("exit 4"), None).await.unwrap().exit.exit_code == Some(4));
}

#[tokio::test]
async fn sigterm_stops_envd_and_its_processes() {
    let mut envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let spec = ExecSpec { background: true, ..sh("trap '' TERM; sleep 98.76") };
    let process = client.exec(spec).await.unwrap();
    let pid = process.pid;
    process.detach().await.unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(envd.pid() as i32).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while envd.is_running() {
        assert!(Instant::now() < deadline, "envd ignored SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The process that ignored SIGTERM got SIGKILL after the grace period.
    let deadline = Instant::now() + Duration::from_secs(5);
    while process_states().iter().any(|(p, state, _)| *p == pid && *state != 'Z') {
        assert!(Instant::now() < deadline, "a child outlived envd");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(common::pids_running(b"sleep\x0098.76\x00").is_empty());
}
