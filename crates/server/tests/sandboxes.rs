//! Sandboxes through the public API on a real server with the namespace backend: lifecycle, exec
//! (plain and streamed), files, volumes, lifetimes, port URLs and re-adoption after a restart.
//! They need root and a built envd; elsewhere they print why and pass (CI runs them).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use std::collections::BTreeMap;
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use runtools_client::Client;
use runtools_protocol::sandbox::{
    CreateSandboxRequest, ExecRequest, ExecStreamClientMessage, ExecStreamServerMessage, ExecStreamStart, OnTimeout,
    SandboxLimits, SandboxState, TerminalSize, VolumeMount,
};
use runtools_protocol::{EnvironmentKind, ErrorCode, ListParams};
use runtools_test_support::TestServer;
use runtools_test_support::reqwest::{self, StatusCode};
use sha2::{Digest, Sha256};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

async fn env_client(server: &TestServer, environment: EnvironmentKind) -> (Client, String) {
    let secret = server.admin().create_key(environment, None).await.unwrap().secret;
    (server.client(Some(secret.clone())), secret)
}

async fn sh(client: &Client, id: runtools_protocol::SandboxId, cmd: &str) -> runtools_protocol::sandbox::ExecResult {
    client.exec(id, &ExecRequest { cmd: Some(cmd.into()), ..Default::default() }).await.unwrap()
}

#[tokio::test]
async fn lifecycle_exec_and_environment_isolation() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, _) = env_client(&server, EnvironmentKind::Development).await;
    let (prod, _) = env_client(&server, EnvironmentKind::Production).await;

    let request = CreateSandboxRequest {
        metadata: BTreeMap::from([("job".to_string(), "42".to_string())]),
        env: BTreeMap::from([("GREETING".to_string(), "hello".to_string())]),
        ..Default::default()
    };
    let sandbox = dev.create_sandbox(&request).await.unwrap();
    assert_eq!(sandbox.state, SandboxState::Running);
    let id = sandbox.id;

    // Sandbox env may hold secrets: it must never show on a host command line (`ps`).
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            assert!(!String::from_utf8_lossy(&cmdline).contains("GREETING"), "env leaked into {:?}", entry.path());
        }
    }
    let result = sh(&dev, id, "echo $GREETING from $(hostname); echo oops >&2; exit 3").await;
    assert_eq!(result.stdout.trim(), format!("hello from sandbox-{}", &id.to_string()[4..12]));
    assert_eq!((result.stderr.trim(), result.exit_code), ("oops", Some(3)));
    let argv = ExecRequest { argv: Some(vec!["cat".into()]), stdin: Some("piped".into()), ..Default::default() };
    assert_eq!(dev.exec(id, &argv).await.unwrap().stdout, "piped");
    let slow = ExecRequest { cmd: Some("sleep 30".into()), timeout_secs: Some(1), ..Default::default() };
    assert!(dev.exec(id, &slow).await.unwrap().timed_out);

    assert_eq!(prod.sandbox(id).await.unwrap_err().code(), Some(ErrorCode::NotFound), "invisible to production");
    assert_eq!(prod.exec(id, &argv).await.unwrap_err().code(), Some(ErrorCode::NotFound));
    let listed = dev.list_sandboxes(&ListParams::default(), &[("metadata.job".into(), "42".into())]).await.unwrap();
    assert_eq!(listed.data.iter().map(|s| s.id).collect::<Vec<_>>(), vec![id]);
    assert!(prod.list_sandboxes(&ListParams::default(), &[]).await.unwrap().data.is_empty());

    let paused = dev.pause_sandbox(id).await.unwrap();
    assert_eq!(paused.state, SandboxState::Paused);
    let error = dev.exec(id, &argv).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Conflict), "{error}");
    let error = dev.pause_sandbox(id).await.unwrap_err();
    assert!(error.to_string().contains("paused"), "the conflict names the state: {error}");
    assert_eq!(dev.resume_sandbox(id).await.unwrap().state, SandboxState::Running);
    assert_eq!(sh(&dev, id, "echo back").await.stdout, "back\n");

    let stopped = dev.delete_sandbox(id).await.unwrap();
    assert_eq!(stopped.state, SandboxState::Stopped);
    assert_eq!(dev.delete_sandbox(id).await.unwrap_err().code(), Some(ErrorCode::Conflict));
    assert_eq!(dev.sandbox(id).await.unwrap().state, SandboxState::Stopped, "history stays readable");
}

#[tokio::test]
async fn bad_requests_create_nothing() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, _) = env_client(&server, EnvironmentKind::Development).await;
    let unknown = CreateSandboxRequest { template: Some("no-such-template".into()), ..Default::default() };
    let error = dev.create_sandbox(&unknown).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidRequest));
    assert!(error.to_string().contains("base"), "the error lists the templates: {error}");
    let impossible = CreateSandboxRequest {
        limits: SandboxLimits { memory_mb: Some(1), ..Default::default() },
        ..Default::default()
    };
    assert_eq!(dev.create_sandbox(&impossible).await.unwrap_err().code(), Some(ErrorCode::InvalidRequest));
    let all = dev.list_sandboxes(&ListParams::default(), &[("state".into(), "error".into())]).await.unwrap();
    assert!(all.data.is_empty() && dev.list_sandboxes(&ListParams::default(), &[]).await.unwrap().data.is_empty());
}

#[tokio::test]
async fn files_stream_both_ways_and_stay_inside() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, key) = env_client(&server, EnvironmentKind::Development).await;
    let id = dev.create_sandbox(&CreateSandboxRequest::default()).await.unwrap().id;
    let http = reqwest::Client::new();
    let files = server.url_of(&format!("/v1/sandboxes/{id}/files"));

    // 100 MiB up and down, streamed.
    let size = 100 * 1024 * 1024;
    let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
    let mut expected = Sha256::new();
    for _ in 0..100 {
        expected.update(&chunk);
    }
    let expected = expected.finalize();
    let body = futures::stream::iter((0..100).map(move |_| Ok::<_, std::io::Error>(chunk.clone())));
    let uploaded = http
        .put(format!("{files}?path=/home/user/big.bin&create_parents=true"))
        .bearer_auth(&key)
        .body(reqwest::Body::wrap_stream(body))
        .send()
        .await
        .unwrap();
    assert_eq!(uploaded.status(), StatusCode::OK, "{}", uploaded.text().await.unwrap());
    let response = http.get(format!("{files}?path=/home/user/big.bin")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut stream = response.bytes_stream();
    let mut digest = Sha256::new();
    let mut received = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        received += chunk.len();
        digest.update(&chunk);
    }
    assert_eq!(received, size);
    assert_eq!(digest.finalize(), expected);
    assert_eq!(sh(&dev, id, "wc -c < /home/user/big.bin").await.stdout.trim(), size.to_string());

    let escape = http.get(format!("{files}?path=/../../../etc/shadow")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(escape.status(), StatusCode::BAD_REQUEST, "{}", escape.text().await.unwrap());
    let relative = http.get(format!("{files}?path=etc/passwd")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(relative.status(), StatusCode::BAD_REQUEST);
    let missing = http.get(format!("{files}?path=/nope")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);

    let mkdir = http
        .post(format!("{files}/mkdir"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"path": "/tmp/a/b", "parents": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(mkdir.status(), StatusCode::OK);
    let moved = http
        .post(format!("{files}/move"))
        .bearer_auth(&key)
        .json(&serde_json::json!({"from": "/home/user/big.bin", "to": "/tmp/a/b/big.bin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(moved.status(), StatusCode::OK);
    let listing: serde_json::Value =
        http.get(format!("{files}/list?path=/tmp/a/b")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
    assert_eq!(listing[0]["name"], "big.bin");
    let removed = http.delete(format!("{files}?path=/tmp/a&recursive=true")).bearer_auth(&key).send().await.unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);
    dev.delete_sandbox(id).await.unwrap();
}

#[tokio::test]
async fn volumes_outlive_their_sandboxes() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, _) = env_client(&server, EnvironmentKind::Development).await;
    let with_volume = || CreateSandboxRequest {
        volumes: vec![VolumeMount { volume: "cache".into(), path: "/data".into(), read_only: false }],
        ..Default::default()
    };
    let first = dev.create_sandbox(&with_volume()).await.unwrap().id;
    assert_eq!(sh(&dev, first, "echo kept > /data/note && echo gone > /tmp/note && echo ok").await.stdout, "ok\n");
    dev.delete_sandbox(first).await.unwrap();
    let second = dev.create_sandbox(&with_volume()).await.unwrap().id;
    assert_eq!(sh(&dev, second, "cat /data/note").await.stdout, "kept\n");
    assert_eq!(sh(&dev, second, "cat /tmp/note 2>/dev/null || echo absent").await.stdout, "absent\n");
    let in_use = dev.request(reqwest::Method::DELETE, "/v1/volumes/cache").unwrap().send().await.unwrap();
    assert_eq!(in_use.status(), StatusCode::CONFLICT, "a mounted volume is not deleted");
    dev.delete_sandbox(second).await.unwrap();
    let deleted = dev.request(reqwest::Method::DELETE, "/v1/volumes/cache").unwrap().send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let third = dev.create_sandbox(&with_volume()).await.unwrap().id;
    assert_eq!(sh(&dev, third, "ls /data | wc -l").await.stdout, "0\n", "a deleted volume comes back empty");
    dev.delete_sandbox(third).await.unwrap();
}

#[tokio::test]
async fn lifetimes_kill_or_pause() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, _) = env_client(&server, EnvironmentKind::Development).await;
    let killed =
        dev.create_sandbox(&CreateSandboxRequest { timeout_secs: Some(1), ..Default::default() }).await.unwrap().id;
    let paused = dev
        .create_sandbox(&CreateSandboxRequest {
            timeout_secs: Some(1),
            on_timeout: OnTimeout::Pause,
            ..Default::default()
        })
        .await
        .unwrap()
        .id;
    let kept =
        dev.create_sandbox(&CreateSandboxRequest { timeout_secs: Some(1), ..Default::default() }).await.unwrap().id;
    dev.set_sandbox_timeout(kept, 60).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let k = dev.sandbox(killed).await.unwrap().state;
        let p = dev.sandbox(paused).await.unwrap().state;
        if k == SandboxState::Stopped && p == SandboxState::Paused {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "lifetimes not applied: {k} {p}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dev.sandbox(kept).await.unwrap().state, SandboxState::Running, "a keep-alive extends the lifetime");
    let resumed = dev.resume_sandbox(paused).await.unwrap();
    assert_eq!(resumed.state, SandboxState::Running);
    for id in [paused, kept] {
        dev.delete_sandbox(id).await.unwrap();
    }
}

#[tokio::test]
async fn streamed_exec_with_stdin_pty_and_reattach() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, key) = env_client(&server, EnvironmentKind::Development).await;
    let id = dev.create_sandbox(&CreateSandboxRequest::default()).await.unwrap().id;
    let open = || async {
        let url = server.url.replace("http://", "ws://") + &format!("/v1/sandboxes/{id}/exec/ws");
        let mut request = url.into_client_request().unwrap();
        request.headers_mut().insert("authorization", format!("Bearer {key}").parse().unwrap());
        tokio_tungstenite::connect_async(request).await.unwrap().0
    };
    let send = |message: ExecStreamClientMessage| Message::Text(serde_json::to_string(&message).unwrap().into());

    // stdin → cat → stdout, then EOF ends it.
    let mut socket = open().await;
    socket
        .send(send(ExecStreamClientMessage::Start(ExecStreamStart {
            argv: Some(vec!["cat".into()]),
            ..Default::default()
        })))
        .await
        .unwrap();
    socket.send(Message::Binary(b"ping\n".to_vec().into())).await.unwrap();
    socket.send(send(ExecStreamClientMessage::StdinEof)).await.unwrap();
    let (stdout, exit) = collect(&mut socket).await;
    assert_eq!((stdout.as_str(), exit), ("ping\n", Some(0)));

    // A PTY reports its size.
    let mut socket = open().await;
    let start = ExecStreamStart {
        cmd: Some("stty size".into()),
        pty: Some(TerminalSize { cols: 101, rows: 33 }),
        ..Default::default()
    };
    socket.send(send(ExecStreamClientMessage::Start(start))).await.unwrap();
    let (stdout, _) = collect(&mut socket).await;
    assert_eq!(stdout.trim(), "33 101");

    // A tagged background process survives its stream and is re-attached by tag.
    let mut socket = open().await;
    let start = ExecStreamStart {
        cmd: Some("echo first; sleep 1; echo second".into()),
        background: true,
        tag: Some("job".into()),
        ..Default::default()
    };
    socket.send(send(ExecStreamClientMessage::Start(start))).await.unwrap();
    socket.send(send(ExecStreamClientMessage::Detach)).await.unwrap();
    drop(socket);
    let mut socket = open().await;
    socket.send(send(ExecStreamClientMessage::Attach { process_id: None, tag: Some("job".into()) })).await.unwrap();
    let (stdout, exit) = collect(&mut socket).await;
    assert_eq!((stdout.as_str(), exit), ("first\nsecond\n", Some(0)));
    dev.delete_sandbox(id).await.unwrap();
}

/// Reads a stream to its end: stdout text and the exit code.
async fn collect(
    socket: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
) -> (String, Option<i32>) {
    let mut stdout = Vec::new();
    while let Some(message) =
        tokio::time::timeout(Duration::from_secs(20), socket.next()).await.expect("stream stalled")
    {
        match message.unwrap() {
            Message::Binary(bytes) if bytes.first() == Some(&1) => stdout.extend_from_slice(&bytes[1..]),
            Message::Text(text) => match serde_json::from_str::<ExecStreamServerMessage>(&text).unwrap() {
                ExecStreamServerMessage::Exited { exit_code, .. } => {
                    return (String::from_utf8(stdout).unwrap(), exit_code);
                }
                ExecStreamServerMessage::Error { message, .. } => panic!("stream error: {message}"),
                ExecStreamServerMessage::Started { .. } => {}
            },
            _ => {}
        }
    }
    panic!("stream closed without an exit")
}

#[tokio::test]
async fn port_urls_reach_a_dev_server_inside() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, key) = env_client(&server, EnvironmentKind::Development).await;
    let sandbox = dev.create_sandbox(&CreateSandboxRequest::default()).await.unwrap();
    let id = sandbox.id;
    sh(
        &dev,
        id,
        "mkdir -p /srv && echo served > /srv/index.html && cd /srv && (python3 -m http.server 8000 >/dev/null 2>&1 &)",
    )
    .await;
    let http = reqwest::Client::new();
    let address = server.config.listen;
    let host = format!("8000-{id}.localhost");
    let via_host = reqwest::Client::builder().resolve(&host, address).build().unwrap();
    let mut answered = None;
    for _ in 0..100 {
        let response = via_host
            .get(format!("http://{host}:{}/index.html?rt_token={}", address.port(), sandbox.access_token))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::OK {
            answered = Some(response);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let answered = answered.expect("the dev server answers through the host-routed URL");
    assert!(answered.headers().get("set-cookie").is_some(), "the token is kept in a cookie");
    assert_eq!(answered.text().await.unwrap(), "served\n");

    let without_token = via_host.get(format!("http://{host}:{}/index.html", address.port())).send().await.unwrap();
    assert_eq!(without_token.status(), StatusCode::UNAUTHORIZED);
    let via_path = http
        .get(server.url_of(&format!("/v1/sandboxes/{id}/ports/8000/index.html")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(via_path.text().await.unwrap(), "served\n");
    let closed =
        http.get(server.url_of(&format!("/v1/sandboxes/{id}/ports/9/"))).bearer_auth(&key).send().await.unwrap();
    assert_eq!(closed.status(), StatusCode::SERVICE_UNAVAILABLE);
    dev.delete_sandbox(id).await.unwrap();
}

#[tokio::test]
async fn a_restarted_server_readopts_running_sandboxes() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, key) = env_client(&server, EnvironmentKind::Development).await;
    let id = dev.create_sandbox(&CreateSandboxRequest::default()).await.unwrap().id;
    sh(&dev, id, "echo before > /tmp/state").await;
    let server = server.restart().await;
    let dev = server.client(Some(key));
    assert_eq!(dev.sandbox(id).await.unwrap().state, SandboxState::Running);
    assert_eq!(sh(&dev, id, "cat /tmp/state").await.stdout, "before\n", "the same sandbox, state intact");
    dev.delete_sandbox(id).await.unwrap();
}

#[tokio::test]
async fn a_sandbox_whose_agent_dies_is_marked_error_and_can_be_deleted() {
    let Some(server) = TestServer::start_with_sandboxes().await else { return };
    let (dev, _) = env_client(&server, EnvironmentKind::Development).await;
    let id = dev.create_sandbox(&CreateSandboxRequest::default()).await.unwrap().id;
    sh(&dev, id, "true").await;
    // Kill every process of the sandbox from the host, envd (its PID 1) included.
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        if std::fs::read_to_string(entry.path().join("cgroup")).is_ok_and(|cgroups| cgroups.contains(&id.to_string())) {
            let _ = std::process::Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let error = dev.exec(id, &ExecRequest { cmd: Some("true".into()), ..Default::default() }).await.unwrap_err();
        assert!(matches!(error.code(), Some(ErrorCode::Unavailable | ErrorCode::Conflict)), "{error}");
        let sandbox = dev.sandbox(id).await.unwrap();
        if sandbox.state == SandboxState::Error {
            assert!(sandbox.error.unwrap().contains("agent"), "the reason is recorded");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "the dead sandbox was never marked: {:?}", sandbox.state);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(dev.delete_sandbox(id).await.unwrap().state, SandboxState::Stopped);
}
