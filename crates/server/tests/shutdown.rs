//! Graceful shutdown: stop accepting, finish what is in flight, close the store.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use std::time::Duration;

use runtools_protocol::{ApiKeyKind, CreatedApiKey};
use runtools_test_support::TestServer;
use runtools_test_support::reqwest::{self, Body, StatusCode};
use tokio::sync::mpsc;

#[tokio::test]
async fn an_in_flight_request_completes_during_graceful_shutdown() {
    let mut server = TestServer::start().await;
    // A request whose body is still arriving when shutdown begins.
    let (chunks, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let request = reqwest::Client::new()
        .post(server.url_of("/v1/keys"))
        .bearer_auth(&server.admin_key)
        .header("content-type", "application/json")
        .body(Body::wrap_stream(stream))
        .send();
    let in_flight = tokio::spawn(request);
    chunks.send(Ok(br#"{"environment":"#.to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.begin_stop();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let refused = reqwest::Client::new().get(server.url_of("/healthz")).timeout(Duration::from_secs(2)).send().await;
    assert!(refused.is_err(), "no new connections once shutdown has begun: {refused:?}");

    chunks.send(Ok(br#""development","name":"late"}"#.to_vec())).await.unwrap();
    drop(chunks);
    let response = in_flight.await.unwrap().unwrap();
    assert_eq!(response.status(), StatusCode::CREATED, "the in-flight request completed");
    let created: CreatedApiKey = response.json().await.unwrap();
    assert_eq!((created.key.name.as_str(), created.key.kind), ("late", ApiKeyKind::Development));
    tokio::time::timeout(Duration::from_secs(10), server.stop()).await.expect("server stops once the request is done");
}

#[tokio::test]
async fn requests_still_running_at_the_deadline_are_dropped_and_the_server_stops() {
    let db = runtools_test_support::TestDatabase::create(runtools_test_support::Engine::Sqlite).await.unwrap();
    let mut server = TestServer::start_with(db, |config| config.shutdown_timeout = Duration::from_millis(300)).await;
    let (chunks, rx) = mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let stream = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) });
    let stalled = tokio::spawn(
        reqwest::Client::new()
            .post(server.url_of("/v1/keys"))
            .bearer_auth(&server.admin_key)
            .header("content-type", "application/json")
            .body(Body::wrap_stream(stream))
            .send(),
    );
    chunks.send(Ok(b"{".to_vec())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.begin_stop();
    tokio::time::timeout(Duration::from_secs(5), server.stop()).await.expect("the deadline bounds shutdown");
    assert!(stalled.await.unwrap().is_err(), "the stalled request was cut off");
}
