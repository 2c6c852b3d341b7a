//! The store's behaviour, run on both engines (`sqlite::…` and `postgres::…` in the test output).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use runtools_protocol::{ApiKeyKind, EnvironmentKind, SecretName};
use runtools_store::{AuthError, BootstrapError, Bootstrapped, SecretsKey, Store, StoreLocation};
use runtools_test_support::{TestDatabase, on_both_engines};

fn location(db: &TestDatabase) -> StoreLocation {
    db.server_config().store_location()
}

async fn open(db: &TestDatabase, key: &SecretsKey) -> Store {
    Store::open(&location(db), key.clone()).await.unwrap()
}

/// Opens and bootstraps a store; returns it with the admin secret.
async fn bootstrapped(db: &TestDatabase) -> (Store, String) {
    let store = open(db, &SecretsKey::generate()).await;
    match store.bootstrap("test", |_| Ok(())).await.unwrap() {
        Bootstrapped::Created { admin_secret, .. } => (store, admin_secret),
        Bootstrapped::Existing { .. } => panic!("fresh database must bootstrap"),
    }
}

on_both_engines!(
    bootstrap_happens_once,
    concurrent_bootstraps_create_one_workspace,
    failed_admin_key_save_leaves_nothing_behind,
    a_different_secrets_key_is_refused,
    keys_authenticate_until_revoked,
    key_listing_pages_in_creation_order,
    secrets_are_sealed_replaced_and_deleted,
    secrets_are_per_environment,
    migrations_are_idempotent,
);

async fn bootstrap_happens_once(db: TestDatabase) {
    let key = SecretsKey::generate();
    let store = open(&db, &key).await;
    let mut saved = None;
    let first = store.bootstrap("acme", |secret| {
        saved = Some(secret.to_owned());
        Ok(())
    });
    let Bootstrapped::Created { workspace, admin_secret, .. } = first.await.unwrap() else {
        panic!("first start creates")
    };
    assert_eq!(saved.as_deref(), Some(admin_secret.as_str()), "the secret handed to the saver is the admin key");
    assert_eq!(workspace.name, "acme");
    assert_eq!(ApiKeyKind::of_secret(&admin_secret), Ok(ApiKeyKind::Admin));

    let environments = store.environments(workspace.id).await.unwrap();
    let kinds: Vec<_> = environments.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, vec![EnvironmentKind::Development, EnvironmentKind::Production]);

    store.close().await;
    let reopened = open(&db, &key).await;
    let second = reopened.bootstrap("other", |_| panic!("no second admin key")).await.unwrap();
    assert!(matches!(second, Bootstrapped::Existing { workspace: ref w } if w.id == workspace.id));
    let admin = reopened.authenticate(&admin_secret).await.unwrap();
    assert_eq!(admin.kind(), ApiKeyKind::Admin);
}

async fn concurrent_bootstraps_create_one_workspace(db: TestDatabase) {
    let key = SecretsKey::generate();
    let mut nodes = Vec::new();
    for _ in 0..3 {
        let store = open(&db, &key).await;
        nodes.push(tokio::spawn(async move { store.bootstrap("race", |_| Ok(())).await }));
    }
    let mut results = Vec::new();
    for node in nodes {
        results.push(node.await.unwrap());
    }
    let created = results.iter().filter(|r| matches!(r, Ok(Bootstrapped::Created { .. }))).count();
    let existing = results.iter().filter(|r| matches!(r, Ok(Bootstrapped::Existing { .. }))).count();
    assert_eq!((created, existing), (1, 2), "{results:?}");
}

async fn failed_admin_key_save_leaves_nothing_behind(db: TestDatabase) {
    let key = SecretsKey::generate();
    let store = open(&db, &key).await;
    let error = store.bootstrap("acme", |_| Err(std::io::Error::other("disk full"))).await.unwrap_err();
    assert!(matches!(error, BootstrapError::SaveAdminKey(_)), "{error}");
    assert!(store.workspace().await.unwrap().is_none(), "the workspace must not exist without its admin key");
    let retried = store.bootstrap("acme", |_| Ok(())).await.unwrap();
    assert!(matches!(retried, Bootstrapped::Created { .. }), "a later start can still bootstrap");
}

async fn a_different_secrets_key_is_refused(db: TestDatabase) {
    let store = open(&db, &SecretsKey::generate()).await;
    store.bootstrap("acme", |_| Ok(())).await.unwrap();
    let other_node = open(&db, &SecretsKey::generate()).await;
    let error = other_node.bootstrap("acme", |_| Ok(())).await.unwrap_err();
    assert!(matches!(error, BootstrapError::SecretsKeyMismatch), "{error}");
    assert!(error.to_string().contains("RUNTOOLS_SECRETS_KEY"), "the error says how to fix it: {error}");
}

async fn keys_authenticate_until_revoked(db: TestDatabase) {
    let (store, admin_secret) = bootstrapped(&db).await;
    let workspace = store.workspace().await.unwrap().unwrap();
    let production = store.environment_by_kind(workspace.id, EnvironmentKind::Production).await.unwrap().unwrap();
    let (key, secret) =
        store.create_key(workspace.id, ApiKeyKind::Production, Some(production.id), "deploy").await.unwrap();
    assert!(secret.starts_with("sk_live_"));
    assert_eq!(key.redacted, format!("sk_live_…{}", &secret[secret.len() - 4..]));
    assert_eq!(key.last_used_at, None);

    let authenticated = store.authenticate(&secret).await.unwrap();
    assert_eq!(authenticated.key.id, key.id);
    assert_eq!(authenticated.environment_id(), Some(production.id));
    assert!(
        store.workspace_key(workspace.id, key.id).await.unwrap().unwrap().last_used_at.is_some(),
        "first use is recorded"
    );

    let unknown = format!("sk_live_{}", "1".repeat(32));
    assert!(matches!(store.authenticate(&unknown).await, Err(AuthError::Unknown)));

    let revoked = store.revoke_key(workspace.id, key.id).await.unwrap().unwrap();
    let revoked_at = revoked.revoked_at.expect("revocation time");
    assert!(matches!(store.authenticate(&secret).await, Err(AuthError::Revoked)));
    let again = store.revoke_key(workspace.id, key.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, Some(revoked_at), "revoking twice keeps the first time");
    assert!(store.authenticate(&admin_secret).await.is_ok(), "other keys are unaffected");
}

async fn key_listing_pages_in_creation_order(db: TestDatabase) {
    let (store, _) = bootstrapped(&db).await;
    let workspace = store.workspace().await.unwrap().unwrap();
    let development = store.environment_by_kind(workspace.id, EnvironmentKind::Development).await.unwrap().unwrap();
    let mut created = Vec::new();
    for n in 0..5 {
        let (key, _) = store
            .create_key(workspace.id, ApiKeyKind::Development, Some(development.id), &format!("k{n}"))
            .await
            .unwrap();
        created.push(key.id);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let (page, more) = store.list_keys(workspace.id, after, 2).await.unwrap();
        assert!(page.len() <= 2);
        seen.extend(page.iter().map(|k| k.id));
        if !more {
            break;
        }
        after = page.last().map(|k| k.id);
    }
    assert_eq!(seen.len(), 6, "admin key + 5");
    assert_eq!(&seen[1..], created.as_slice(), "oldest first, no gaps, no repeats");
}

async fn secrets_are_sealed_replaced_and_deleted(db: TestDatabase) {
    let (store, _) = bootstrapped(&db).await;
    let workspace = store.workspace().await.unwrap().unwrap();
    let env = store.environment_by_kind(workspace.id, EnvironmentKind::Development).await.unwrap().unwrap();
    let name: SecretName = "OPENAI_API_KEY".parse().unwrap();

    let first = store.put_secret(env.id, &name, "sk-first").await.unwrap();
    assert_eq!(store.reveal_secret(env.id, &name).await.unwrap().as_deref(), Some("sk-first"));
    let second = store.put_secret(env.id, &name, "sk-second ✓").await.unwrap();
    assert_eq!(second.id, first.id, "replacing keeps the secret's identity");
    assert_eq!(second.created_at, first.created_at);
    assert!(second.updated_at >= first.updated_at);
    assert_eq!(store.reveal_secret(env.id, &name).await.unwrap().as_deref(), Some("sk-second ✓"));

    let (listed, more) = store.list_secrets(env.id, None, 10).await.unwrap();
    assert_eq!((listed.len(), more), (1, false));
    assert!(store.delete_secret(env.id, &name).await.unwrap());
    assert!(!store.delete_secret(env.id, &name).await.unwrap(), "deleting twice reports nothing deleted");
    assert_eq!(store.reveal_secret(env.id, &name).await.unwrap(), None);
}

async fn secrets_are_per_environment(db: TestDatabase) {
    let (store, _) = bootstrapped(&db).await;
    let workspace = store.workspace().await.unwrap().unwrap();
    let dev = store.environment_by_kind(workspace.id, EnvironmentKind::Development).await.unwrap().unwrap();
    let prod = store.environment_by_kind(workspace.id, EnvironmentKind::Production).await.unwrap().unwrap();
    let name: SecretName = "DATABASE_URL".parse().unwrap();
    store.put_secret(dev.id, &name, "dev-value").await.unwrap();
    store.put_secret(prod.id, &name, "prod-value").await.unwrap();
    assert_eq!(store.reveal_secret(dev.id, &name).await.unwrap().as_deref(), Some("dev-value"));
    assert_eq!(store.reveal_secret(prod.id, &name).await.unwrap().as_deref(), Some("prod-value"));
    store.delete_secret(dev.id, &name).await.unwrap();
    assert!(store.secret(dev.id, &name).await.unwrap().is_none());
    assert!(store.secret(prod.id, &name).await.unwrap().is_some(), "the other environment's secret is untouched");
}

async fn migrations_are_idempotent(db: TestDatabase) {
    let key = SecretsKey::generate();
    let first = open(&db, &key).await;
    first.bootstrap("acme", |_| Ok(())).await.unwrap();
    first.close().await;
    let second = open(&db, &key).await;
    second.ping().await.unwrap();
    assert!(second.workspace().await.unwrap().is_some(), "reopening keeps the data");
}
