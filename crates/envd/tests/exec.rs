//! Processes through the real envd binary: argv and shell commands, exit codes and signals,
//! stdout/stderr, stdin, timeouts, background processes with attach, PTYs and users.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{TestEnvd, argv, running_as_root, sh};
use runtools_envd::{ClientError, ProcessEvent};
use runtools_protocol::envd::{AttachSpec, EnvdErrorCode, ExecSpec, PtySize};

const SIGTERM: i32 = 15;
const SIGKILL: i32 = 9;

#[tokio::test]
async fn runs_argv_and_shell_commands_with_exit_codes() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;

    let output = client.run(argv(&["echo", "hello", "world"]), None).await.unwrap();
    assert_eq!(output.stdout, b"hello world\n");
    assert!(output.exit.success());

    let output = client.run(sh("echo out; echo err >&2; exit 3"), None).await.unwrap();
    assert_eq!(output.stdout, b"out\n");
    assert_eq!(output.stderr, b"err\n");
    assert_eq!(output.exit.exit_code, Some(3));
    assert_eq!(output.exit.signal, None);
    assert!(!output.exit.timed_out);

    let spec = ExecSpec {
        env: [("GREETING".to_owned(), "hi".to_owned())].into(),
        cwd: Some("/tmp".to_owned()),
        ..sh("echo $GREETING; pwd; echo $PATH")
    };
    let output = client.run(spec, None).await.unwrap();
    assert_eq!(
        String::from_utf8(output.stdout).unwrap(),
        "hi\n/tmp\n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
    );
}

#[tokio::test]
async fn refuses_bad_requests_and_missing_programs() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;

    let both = ExecSpec { argv: Some(vec!["true".into()]), cmd: Some("true".into()), ..Default::default() };
    let Err(ClientError::Envd(error)) = client.exec(both).await else { panic!("both argv and cmd accepted") };
    assert_eq!(error.code, EnvdErrorCode::InvalidRequest);
    let Err(ClientError::Envd(error)) = client.exec(ExecSpec::default()).await else { panic!("empty spec accepted") };
    assert_eq!(error.code, EnvdErrorCode::InvalidRequest);

    let Err(ClientError::Envd(error)) = client.exec(argv(&["/definitely/not/here"])).await else {
        panic!("missing program started")
    };
    assert_eq!(error.code, EnvdErrorCode::SpawnFailed);
    assert!(error.message.contains("/definitely/not/here"), "{}", error.message);

    let Err(ClientError::Envd(error)) = client.exec(ExecSpec { user: Some("no-such-user".into()), ..sh("true") }).await
    else {
        panic!("unknown user accepted")
    };
    assert_eq!(error.code, EnvdErrorCode::UnknownUser);
    // The connection is still fine.
    assert!(client.run(sh("true"), None).await.unwrap().exit.success());
}

#[tokio::test]
async fn separates_stdout_and_stderr_in_order() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let output = client
        .run(sh("for i in 1 2 3; do echo out$i; echo err$i >&2; done; head -c 300000 /dev/zero | tr '\\0' x"), None)
        .await
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("out1\nout2\nout3\n"));
    assert_eq!(stdout.len(), 15 + 300_000);
    assert_eq!(output.stderr, b"err1\nerr2\nerr3\n");
}

#[tokio::test]
async fn streams_stdin() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;

    let output = client.run(argv(&["cat"]), Some(b"through cat".to_vec())).await.unwrap();
    assert_eq!(output.stdout, b"through cat");

    // Interactive: each line comes back before the next is written.
    let mut process = client.exec(sh("while read line; do echo \"got $line\"; done")).await.unwrap();
    for word in ["one", "two", "three"] {
        process.write_stdin(format!("{word}\n").as_bytes()).await.unwrap();
        let Some(ProcessEvent::Stdout(bytes)) = process.next().await else { panic!("no echo") };
        assert_eq!(bytes, format!("got {word}\n").as_bytes());
    }
    process.close_stdin().await.unwrap();
    let output = process.wait().await.unwrap();
    assert!(output.exit.success());

    // Large input through a pipe both ways.
    let input: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let output = client.run(argv(&["cat"]), Some(input.clone())).await.unwrap();
    assert!(output.stdout == input, "cat mangled {} bytes", input.len());
}

#[tokio::test]
async fn signals_end_processes() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;

    let process = client.exec(argv(&["sleep", "100"])).await.unwrap();
    process.signal(SIGTERM).await.unwrap();
    let output = process.wait().await.unwrap();
    assert_eq!(output.exit.signal, Some(SIGTERM));
    assert_eq!(output.exit.exit_code, None);

    // By id, on another stream; the signal reaches the whole group (the shell's child too).
    let process = client.exec(sh("sleep 100; echo not reached")).await.unwrap();
    client.signal(process.process_id, SIGKILL).await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), process.wait()).await.unwrap().unwrap();
    assert_eq!(output.exit.signal, Some(SIGKILL));
    assert!(output.stdout.is_empty());

    let Err(ClientError::Envd(error)) = client.signal(987_654, SIGTERM).await else { panic!("unknown id signalled") };
    assert_eq!(error.code, EnvdErrorCode::NotFound);
}

#[tokio::test]
async fn timeout_kills_a_process_that_ignores_sigterm() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let started = std::time::Instant::now();
    let spec = ExecSpec { timeout_ms: Some(300), ..sh("trap '' TERM; sleep 99.7; echo survived") };
    let output = tokio::time::timeout(Duration::from_secs(10), client.run(spec, None)).await.unwrap().unwrap();
    assert!(output.exit.timed_out);
    assert_eq!(output.exit.signal, Some(SIGKILL));
    assert!(started.elapsed() < Duration::from_secs(5), "took {:?}", started.elapsed());
    assert!(output.stdout.is_empty());
    // The group's `sleep` died with it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(common::pids_running(b"sleep\x0099.7\x00"), Vec::<u32>::new());
}

#[tokio::test]
async fn background_processes_survive_detach_and_replay_on_attach() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let spec = ExecSpec {
        background: true,
        tag: Some("worker".into()),
        ..sh("echo first; echo oops >&2; read go; echo second; exit 7")
    };
    let mut process = client.exec(spec.clone()).await.unwrap();
    let process_id = process.process_id;
    // Wait for both lines (stdout and stderr are separate pipes: either may come first).
    let mut seen = 0;
    while seen < 2 {
        match process.next().await {
            Some(ProcessEvent::Stdout(bytes)) => assert_eq!(bytes, "first\n"),
            Some(ProcessEvent::Stderr(bytes)) => assert_eq!(bytes, "oops\n"),
            other => panic!("unexpected {other:?}"),
        }
        seen += 1;
    }
    process.detach().await.unwrap();

    // The tag is taken while it runs.
    let Err(ClientError::Envd(error)) = client.exec(spec).await else { panic!("duplicate tag accepted") };
    assert_eq!(error.code, EnvdErrorCode::TagInUse);

    // Visible from another connection too, and survives this one closing.
    drop(client);
    let client = envd.connect().await;
    let listed = client.list_processes().await.unwrap();
    let info = listed.iter().find(|p| p.process_id == process_id).expect("listed");
    assert!(info.running && info.background);
    assert_eq!(info.tag.as_deref(), Some("worker"));

    let mut attached = client.attach(AttachSpec { process_id: None, tag: Some("worker".into()) }).await.unwrap();
    assert_eq!(attached.process_id, process_id);
    let mut replay = Vec::new();
    while replay.len() < 2 {
        match attached.next().await.unwrap() {
            ProcessEvent::Stdout(bytes) => replay.push(("out", bytes)),
            ProcessEvent::Stderr(bytes) => replay.push(("err", bytes)),
            ProcessEvent::Exited(exit) => panic!("exited early: {exit:?}"),
        }
    }
    replay.sort();
    assert_eq!(replay, [("err", "oops\n".into()), ("out", "first\n".into())]);
    attached.write_stdin(b"go\n").await.unwrap();
    let rest = attached.wait().await.unwrap();
    assert_eq!(rest.stdout, b"second\n");
    assert_eq!(rest.exit.exit_code, Some(7));

    // After the exit: listed as finished, the tag is free, and attach replays everything.
    let info = client.list_processes().await.unwrap().into_iter().find(|p| p.process_id == process_id).unwrap();
    assert!(!info.running);
    assert_eq!(info.exit_code, Some(7));
    let replayed = client.attach(AttachSpec { process_id: Some(process_id), tag: None }).await.unwrap();
    let replayed = replayed.wait().await.unwrap();
    assert_eq!(replayed.stdout, b"first\nsecond\n");
    assert_eq!(replayed.exit.exit_code, Some(7));
    let again = ExecSpec { background: true, tag: Some("worker".into()), ..sh("true") };
    client.exec(again).await.unwrap().wait().await.unwrap();

    let Err(ClientError::Envd(error)) = client.attach(AttachSpec { process_id: Some(999), tag: None }).await else {
        panic!("attached to nothing")
    };
    assert_eq!(error.code, EnvdErrorCode::NotFound);
}

#[tokio::test]
async fn foreground_processes_die_with_their_stream() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let process = client.exec(argv(&["sleep", "100"])).await.unwrap();
    let pid = process.pid;
    drop(process);
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(std::time::Instant::now() < deadline, "foreground process survived its stream");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn pty_reports_and_changes_its_size() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let spec =
        ExecSpec { pty: Some(PtySize { cols: 100, rows: 40 }), ..sh("stty size; echo $TERM; tty -s && echo tty") };
    let output = client.run(spec, None).await.unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    assert_eq!(text.replace('\r', ""), "40 100\nxterm-256color\ntty\n");
    assert!(output.stderr.is_empty());

    let spec = ExecSpec { pty: Some(PtySize { cols: 80, rows: 24 }), ..sh("read x; stty size") };
    let process = client.exec(spec).await.unwrap();
    process.resize(132, 50).await.unwrap();
    // Give the resize a moment to land before the shell asks.
    tokio::time::sleep(Duration::from_millis(100)).await;
    process.write_stdin(b"go\n").await.unwrap();
    let output = process.wait().await.unwrap();
    let text = String::from_utf8(output.stdout).unwrap().replace('\r', "");
    assert!(text.ends_with("50 132\n"), "{text:?}");
    assert!(output.exit.success());
}

#[tokio::test]
async fn pty_processes_get_job_control_signals() {
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let spec = ExecSpec { pty: Some(PtySize { cols: 80, rows: 24 }), ..argv(&["cat"]) };
    let mut process = client.exec(spec).await.unwrap();
    process.write_stdin(b"typed\n").await.unwrap();
    let mut seen = Vec::new();
    while !String::from_utf8_lossy(&seen).contains("typed\r\ntyped\r\n") {
        let Some(ProcessEvent::Stdout(bytes)) = process.next().await else { panic!("no echo") };
        seen.extend_from_slice(&bytes);
    }
    // ^C on the terminal interrupts the foreground job.
    process.write_stdin(&[0x03]).await.unwrap();
    let output = tokio::time::timeout(Duration::from_secs(10), process.wait()).await.unwrap().unwrap();
    assert_eq!(output.exit.signal, Some(2));
}

#[tokio::test]
async fn runs_as_another_user() {
    if !running_as_root() {
        eprintln!("skipping: switching users needs root");
        return;
    }
    let envd = TestEnvd::start().await;
    let client = envd.connect().await;
    let spec = ExecSpec { user: Some("nobody".into()), ..sh("id -u; id -g; echo $USER; echo $HOME; pwd") };
    let output = client.run(spec, None).await.unwrap();
    let text = String::from_utf8(output.stdout).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "65534", "{text}");
    assert_eq!(lines[2], "nobody");
    let by_uid = ExecSpec { user: Some("65534".into()), ..argv(&["id", "-u"]) };
    assert_eq!(client.run(by_uid, None).await.unwrap().stdout, b"65534\n");
    let as_root = client.run(argv(&["id", "-u"]), None).await.unwrap();
    assert_eq!(as_root.stdout, b"0\n");
}
