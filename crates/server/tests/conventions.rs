//! API conventions every route follows: JSON errors with stable codes and the request id, 4xx for

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location
//! every client mistake, never a 500 for bad input.

use runtools_protocol::{ErrorBody, ErrorCode};
use runtools_test_support::TestServer;
use runtools_test_support::reqwest::{self, Method, StatusCode};

struct Answer {
    status: StatusCode,
    body: ErrorBody,
}

async fn send(server: &TestServer, method: Method, path: &str, content_type: Option<&str>, body: Vec<u8>) -> Answer {
    let mut request = reqwest::Client::new()
        .request(method, server.url_of(path))
        .header("authorization", format!("Bearer {}", server.admin_key))
        .body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{status}: not a JSON error body ({e}): {text}"));
    Answer { status, body }
}

async fn post_keys(server: &TestServer, body: &str) -> Answer {
    send(server, Method::POST, "/v1/keys", Some("application/json"), body.as_bytes().to_vec()).await
}

#[tokio::test]
async fn malformed_json_is_400_invalid_json() {
    let server = TestServer::start().await;
    for body in ["{", "not json", "{\"environment\": }", ""] {
        let answer = post_keys(&server, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(
            matches!(answer.body.error.code, ErrorCode::InvalidJson | ErrorCode::InvalidBody),
            "{body:?}: {:?}",
            answer.body
        );
    }
    assert_eq!(post_keys(&server, "{").await.body.error.code, ErrorCode::InvalidJson);
}

#[tokio::test]
async fn unknown_fields_wrong_types_and_bad_values_are_400_naming_the_problem() {
    let server = TestServer::start().await;
    let cases = [
        (r#"{"environment":"development","admin":true}"#, "admin"),
        (r#"{"environment":42}"#, "`environment`"),
        (r#"{"environment":"staging"}"#, "staging"),
        (r#"{"name":"x"}"#, "environment"),
    ];
    for (body, mentioned) in cases {
        let answer = post_keys(&server, body).await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(answer.body.error.code, ErrorCode::InvalidBody, "{body}");
        assert!(answer.body.error.message.contains(mentioned), "{body}: {}", answer.body.error.message);
    }
}

#[tokio::test]
async fn oversized_bodies_are_413() {
    let server = TestServer::start().await;
    let huge = format!(r#"{{"environment":"development","name":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let answer = post_keys(&server, &huge).await;
    assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer.body.error.code, ErrorCode::PayloadTooLarge);
}

#[tokio::test]
async fn bodies_without_json_content_type_are_415() {
    let server = TestServer::start().await;
    let answer =
        send(&server, Method::POST, "/v1/keys", Some("text/plain"), br#"{"environment":"development"}"#.to_vec()).await;
    assert_eq!(answer.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(answer.body.error.code, ErrorCode::UnsupportedMediaType);
}

#[tokio::test]
async fn bad_ids_unknown_routes_and_wrong_methods_are_json_errors() {
    let server = TestServer::start().await;
    let cases = [
        (Method::GET, "/v1/keys/not-an-id", StatusCode::BAD_REQUEST, ErrorCode::InvalidId),
        (Method::GET, "/v1/keys/env_01jd6w2k3m4n5p6q7r8s9t0v1w", StatusCode::BAD_REQUEST, ErrorCode::InvalidId),
        (Method::GET, "/v1/keys/key_01jd6w2k3m4n5p6q7r8s9t0v1w", StatusCode::NOT_FOUND, ErrorCode::NotFound),
        (Method::GET, "/v1/secrets/1-bad-name", StatusCode::BAD_REQUEST, ErrorCode::InvalidId),
        (Method::GET, "/v1/no-such-thing", StatusCode::NOT_FOUND, ErrorCode::NotFound),
        (Method::PATCH, "/v1/keys", StatusCode::METHOD_NOT_ALLOWED, ErrorCode::MethodNotAllowed),
        (Method::GET, "/v1/keys?unknown=1", StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery),
        (Method::GET, "/v1/keys?limit=-1", StatusCode::BAD_REQUEST, ErrorCode::InvalidQuery),
    ];
    for (method, path, status, code) in cases {
        let answer = send(&server, method.clone(), path, None, Vec::new()).await;
        assert_eq!((answer.status, answer.body.error.code), (status, code), "{method} {path}: {:?}", answer.body);
        assert!(!answer.body.error.message.is_empty());
    }
    let answer = send(&server, Method::GET, "/v1/keys/key_x", None, Vec::new()).await;
    assert!(answer.body.error.message.contains("key_x"), "the message names the bad value: {:?}", answer.body);
}

#[tokio::test]
async fn secret_values_over_64_kib_are_refused_and_nothing_is_written() {
    let server = TestServer::start().await;
    let dev = server.client(Some(
        server.admin().create_key(runtools_protocol::EnvironmentKind::Development, None).await.unwrap().secret,
    ));
    let name = "BIG".parse().unwrap();
    let error = dev.put_secret(&name, "x".repeat(64 * 1024 + 1)).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidRequest));
    assert_eq!(dev.secret(&name).await.unwrap_err().code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn probes_and_metrics_answer_without_a_key() {
    let server = TestServer::start().await;
    let anonymous = server.client(None);
    assert_eq!(anonymous.health().await.unwrap().status, "ok");
    let ready = anonymous.ready().await.unwrap();
    assert_eq!((ready.status.as_str(), ready.store.as_str()), ("ready", "sqlite"));
    server.admin().whoami().await.unwrap();

    let metrics = reqwest::get(server.url_of("/metrics")).await.unwrap().text().await.unwrap();
    assert!(
        metrics.contains(r#"runtools_http_requests_total{method="GET",route="/v1/me",status="200"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("runtools_http_request_duration_seconds_bucket"), "{metrics}");
    assert!(metrics.contains("runtools_build_info"), "{metrics}");
}
