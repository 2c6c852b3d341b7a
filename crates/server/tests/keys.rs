//! Key management through the HTTP API.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use runtools_protocol::{ApiKeyKind, EnvironmentKind, ErrorCode, ListParams};
use runtools_test_support::TestServer;

#[tokio::test]
async fn a_created_key_is_shown_once_and_listed_redacted() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let created = admin.create_key(EnvironmentKind::Production, Some("deploy bot".into())).await.unwrap();
    assert!(created.secret.starts_with("sk_live_"));
    assert_eq!(created.key.kind, ApiKeyKind::Production);
    assert_eq!(created.key.name, "deploy bot");

    let listed = admin.key(created.key.id).await.unwrap();
    assert_eq!(listed.redacted, format!("sk_live_…{}", &created.secret[created.secret.len() - 4..]));
    let listing = serde_json::to_string(&admin.all_keys().await.unwrap()).unwrap();
    assert!(!listing.contains(&created.secret), "the secret never appears again");
    assert!(!listing.contains(&server.admin_key));

    let me = server.client(Some(created.secret)).whoami().await.unwrap();
    assert_eq!(me.key.id, created.key.id);
    assert!(me.key.last_used_at.is_some(), "use is recorded");
}

#[tokio::test]
async fn listing_pages_with_cursors() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for n in 0..4 {
        admin.create_key(EnvironmentKind::Development, Some(format!("k{n}"))).await.unwrap();
    }
    let first = admin.list_keys(&ListParams { limit: Some(3), cursor: None }).await.unwrap();
    assert_eq!(first.data.len(), 3);
    let cursor = first.next_cursor.clone().expect("more pages");
    let second = admin.list_keys(&ListParams { limit: Some(3), cursor: Some(cursor) }).await.unwrap();
    assert_eq!(second.data.len(), 2);
    assert_eq!(second.next_cursor, None);
    let names: Vec<_> = first.data.iter().chain(&second.data).map(|k| k.name.as_str()).collect();
    assert_eq!(names, ["admin", "k0", "k1", "k2", "k3"]);

    let error = admin.list_keys(&ListParams { limit: Some(0), cursor: None }).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidQuery));
    let error = admin.list_keys(&ListParams { limit: None, cursor: Some("garbage".into()) }).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::InvalidCursor));
}

#[tokio::test]
async fn revoking_is_immediate_idempotent_and_never_self_inflicted() {
    let server = TestServer::start().await;
    let admin = server.admin();
    let created = admin.create_key(EnvironmentKind::Development, None).await.unwrap();
    let user = server.client(Some(created.secret.clone()));
    user.whoami().await.unwrap();

    let revoked = admin.revoke_key(created.key.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(user.whoami().await.unwrap_err().code(), Some(ErrorCode::RevokedApiKey));
    assert_eq!(admin.revoke_key(created.key.id).await.unwrap().revoked_at, revoked.revoked_at);

    let me = admin.whoami().await.unwrap();
    let error = admin.revoke_key(me.key.id).await.unwrap_err();
    assert_eq!(error.code(), Some(ErrorCode::Conflict));
    admin.whoami().await.expect("the admin key still works");

    let missing = runtools_protocol::KeyId::new();
    assert_eq!(admin.revoke_key(missing).await.unwrap_err().code(), Some(ErrorCode::NotFound));
}

#[tokio::test]
async fn key_names_are_validated() {
    let server = TestServer::start().await;
    let admin = server.admin();
    for bad in ["", "   ", &"x".repeat(101), "line\nbreak"] {
        let error = admin.create_key(EnvironmentKind::Development, Some(bad.to_owned())).await.unwrap_err();
        assert_eq!(error.code(), Some(ErrorCode::InvalidRequest), "{bad:?}");
    }
    assert_eq!(admin.all_keys().await.unwrap().len(), 1, "nothing was created by the failed requests");
}
