//! Authentication and environment isolation through the real HTTP API, on both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use runtools_protocol::{EnvironmentKind, ErrorBody, ErrorCode, SecretName};
use runtools_test_support::reqwest::{self, StatusCode};
use runtools_test_support::{TestDatabase, TestServer, on_both_engines};

on_both_engines!(
    environment_keys_cannot_see_each_others_resources,
    missing_malformed_unknown_and_revoked_keys_get_401_json,
    keys_used_on_routes_their_kind_may_not_use_get_403,
);

async fn get_with_header(server: &TestServer, path: &str, authorization: Option<&str>) -> (StatusCode, ErrorBody) {
    let mut request = reqwest::Client::new().get(server.url_of(path));
    if let Some(value) = authorization {
        request = request.header("authorization", value);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    assert_eq!(response.headers()["content-type"], "application/json");
    let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.error.request_id.to_string(), request_id, "the body names the request id of the header");
    (status, body)
}

async fn environment_keys_cannot_see_each_others_resources(db: TestDatabase) {
    let server = TestServer::start_on(db).await;
    let admin = server.admin();
    let dev = server.client(Some(admin.create_key(EnvironmentKind::Development, None).await.unwrap().secret));
    let prod = server.client(Some(admin.create_key(EnvironmentKind::Production, None).await.unwrap().secret));
    let dev_only: SecretName = "DEV_ONLY".parse().unwrap();
    let prod_only: SecretName = "PROD_ONLY".parse().unwrap();
    dev.put_secret(&dev_only, "d").await.unwrap();
    prod.put_secret(&prod_only, "p").await.unwrap();

    let dev_names: Vec<_> =
        dev.list_secrets(&Default::default()).await.unwrap().data.into_iter().map(|s| s.name).collect();
    let prod_names: Vec<_> =
        prod.list_secrets(&Default::default()).await.unwrap().data.into_iter().map(|s| s.name).collect();
    assert_eq!(dev_names, vec![dev_only.clone()]);
    assert_eq!(prod_names, vec![prod_only.clone()]);

    for (client, foreign) in [(&dev, &prod_only), (&prod, &dev_only)] {
        assert_eq!(client.secret(foreign).await.unwrap_err().code(), Some(ErrorCode::NotFound));
        assert_eq!(client.delete_secret(foreign).await.unwrap_err().code(), Some(ErrorCode::NotFound));
    }
    assert!(prod.secret(&prod_only).await.is_ok(), "a failed foreign delete removed nothing");
    assert!(dev.secret(&dev_only).await.is_ok());

    let dev_envs = dev.environments().await.unwrap().data;
    assert_eq!(dev_envs.iter().map(|e| e.kind).collect::<Vec<_>>(), vec![EnvironmentKind::Development]);
    let me = prod.whoami().await.unwrap();
    assert_eq!(me.environment.map(|e| e.kind), Some(EnvironmentKind::Production));
    assert_eq!(admin.environments().await.unwrap().data.len(), 2, "the admin key sees both environments");
}

async fn missing_malformed_unknown_and_revoked_keys_get_401_json(db: TestDatabase) {
    let server = TestServer::start_on(db).await;
    let admin = server.admin();
    let created = admin.create_key(EnvironmentKind::Development, Some("to-revoke".into())).await.unwrap();
    let valid = format!("Bearer {}", created.secret);
    assert_eq!(server.client(Some(created.secret.clone())).whoami().await.unwrap().key.id, created.key.id);
    admin.revoke_key(created.key.id).await.unwrap();

    let unknown = format!("Bearer pk_test_{}", "2".repeat(32));
    let cases: [(Option<&str>, ErrorCode); 7] = [
        (None, ErrorCode::MissingApiKey),
        (Some("Basic dXNlcjpwYXNz"), ErrorCode::MalformedApiKey),
        (Some("Bearer "), ErrorCode::MalformedApiKey),
        (Some("Bearer not-a-key"), ErrorCode::MalformedApiKey),
        (Some("Bearer pk_test_short"), ErrorCode::MalformedApiKey),
        (Some(&unknown), ErrorCode::InvalidApiKey),
        (Some(&valid), ErrorCode::RevokedApiKey),
    ];
    for (header, code) in cases {
        let (status, body) = get_with_header(&server, "/v1/me", header).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{header:?}");
        assert_eq!(body.error.code, code, "{header:?}: {}", body.error.message);
    }
}

async fn keys_used_on_routes_their_kind_may_not_use_get_403(db: TestDatabase) {
    let server = TestServer::start_on(db).await;
    let admin = server.admin();
    let dev_secret = admin.create_key(EnvironmentKind::Development, None).await.unwrap().secret;
    let dev = server.client(Some(dev_secret.clone()));

    let error = dev.create_key(EnvironmentKind::Production, None).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::PermissionDenied), "{error}");
    let error = dev.list_keys(&Default::default()).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::PermissionDenied));

    let error = admin.list_secrets(&Default::default()).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::PermissionDenied));
    assert!(error.to_string().contains("pk_test_"), "the message says which key to use: {error}");

    let (status, _) = get_with_header(&server, "/v1/keys", Some(&format!("Bearer {dev_secret}"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}
