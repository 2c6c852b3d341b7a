//! Sandbox and volume records, on both engines.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test helpers: a failed step should panic with its location

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use runtools_protocol::sandbox::{Isolation, NetworkMode, OnTimeout, SandboxLimits, SandboxState};
use runtools_protocol::{EnvironmentId, EnvironmentKind, SandboxId};
use runtools_store::{SandboxFilter, SandboxRecord, SandboxSettings, SecretsKey, Store};
use runtools_test_support::{TestDatabase, on_both_engines};

async fn store_with_environments(db: &TestDatabase) -> (Store, EnvironmentId, EnvironmentId) {
    let store = Store::open(&db.server_config().store_location(), SecretsKey::generate()).await.unwrap();
    store.bootstrap("test", |_| Ok(())).await.unwrap();
    let workspace = store.workspace().await.unwrap().unwrap();
    let dev = store.environment_by_kind(workspace.id, EnvironmentKind::Development).await.unwrap().unwrap();
    let prod = store.environment_by_kind(workspace.id, EnvironmentKind::Production).await.unwrap().unwrap();
    (store, dev.id, prod.id)
}

fn record(environment: EnvironmentId, template: &str, metadata: &[(&str, &str)]) -> SandboxRecord {
    let now = Utc::now();
    SandboxRecord {
        id: SandboxId::new(),
        environment_id: environment,
        host: "node-a".into(),
        template: template.into(),
        isolation: Isolation::Namespace,
        state: SandboxState::Creating,
        error: None,
        settings: SandboxSettings {
            limits: SandboxLimits { cpu: Some(1.0), memory_mb: Some(256), pids: Some(128), disk_mb: None },
            network: NetworkMode::None,
            on_timeout: OnTimeout::Kill,
            volumes: vec![],
            metadata: metadata.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>(),
            env: BTreeMap::from([("TOKEN".to_string(), "secret".to_string())]),
            access_token: "tok".into(),
            timeout_secs: 300,
        },
        timeout_at: Some(now + Duration::minutes(5)),
        created_at: now,
        updated_at: now,
    }
}

on_both_engines!(
    records_round_trip_and_stay_in_their_environment,
    lists_filter_by_state_template_and_metadata,
    state_changes_are_compare_and_set,
    timeouts_and_host_queries,
    volumes_are_named_per_environment
);

async fn records_round_trip_and_stay_in_their_environment(db: TestDatabase) {
    let (store, dev, prod) = store_with_environments(&db).await;
    let sandbox = record(dev, "base", &[("owner", "alice")]);
    store.insert_sandbox(&sandbox).await.unwrap();
    let read = store.sandbox(dev, sandbox.id).await.unwrap().unwrap();
    assert_eq!(read.settings, sandbox.settings);
    assert_eq!(read.state, SandboxState::Creating);
    assert_eq!(read.created_at.timestamp_millis(), sandbox.created_at.timestamp_millis());
    assert!(store.sandbox(prod, sandbox.id).await.unwrap().is_none(), "invisible to the other environment");
    assert!(store.sandbox_by_id(sandbox.id).await.unwrap().is_some());
    let api = read.to_api();
    assert_eq!(api.metadata["owner"], "alice");
    assert!(!serde_json::to_string(&api).unwrap().contains("\"secret\""), "env never reaches the API view");
}

async fn lists_filter_by_state_template_and_metadata(db: TestDatabase) {
    let (store, dev, prod) = store_with_environments(&db).await;
    let a = record(dev, "base", &[("team", "red"), ("job", "1")]);
    let b = record(dev, "python", &[("team", "red")]);
    let c = record(dev, "base", &[("team", "blue")]);
    let other = record(prod, "base", &[("team", "red")]);
    for sandbox in [&a, &b, &c, &other] {
        store.insert_sandbox(sandbox).await.unwrap();
    }
    store.transition_sandbox(c.id, SandboxState::Creating, SandboxState::Running, None).await.unwrap();

    let ids = |filter: SandboxFilter| {
        let store = store.clone();
        async move {
            store.list_sandboxes(dev, &filter, None, 10).await.unwrap().0.into_iter().map(|r| r.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(ids(SandboxFilter::default()).await, vec![a.id, b.id, c.id]);
    assert_eq!(ids(SandboxFilter { state: Some(SandboxState::Running), ..Default::default() }).await, vec![c.id]);
    assert_eq!(ids(SandboxFilter { template: Some("base".into()), ..Default::default() }).await, vec![a.id, c.id]);
    let red = BTreeMap::from([("team".to_string(), "red".to_string())]);
    assert_eq!(ids(SandboxFilter { metadata: red.clone(), ..Default::default() }).await, vec![a.id, b.id]);
    let red_job = BTreeMap::from([("team".to_string(), "red".to_string()), ("job".to_string(), "1".to_string())]);
    assert_eq!(ids(SandboxFilter { metadata: red_job, ..Default::default() }).await, vec![a.id]);

    let (page, more) = store.list_sandboxes(dev, &SandboxFilter::default(), None, 2).await.unwrap();
    assert!(more);
    let (rest, more) = store.list_sandboxes(dev, &SandboxFilter::default(), Some(page[1].id), 2).await.unwrap();
    assert_eq!((rest.len(), more), (1, false));

    store.transition_sandbox(a.id, SandboxState::Creating, SandboxState::Stopped, None).await.unwrap();
    assert_eq!(ids(SandboxFilter::default()).await, vec![b.id, c.id], "stopped sandboxes are listed only on request");
    assert_eq!(ids(SandboxFilter { state: Some(SandboxState::Stopped), ..Default::default() }).await, vec![a.id]);
}

async fn state_changes_are_compare_and_set(db: TestDatabase) {
    let (store, dev, _) = store_with_environments(&db).await;
    let sandbox = record(dev, "base", &[]);
    store.insert_sandbox(&sandbox).await.unwrap();
    assert!(store.transition_sandbox(sandbox.id, SandboxState::Creating, SandboxState::Running, None).await.unwrap());
    assert!(
        !store.transition_sandbox(sandbox.id, SandboxState::Creating, SandboxState::Error, Some("late")).await.unwrap(),
        "a stale expectation changes nothing"
    );
    let read = store.sandbox(dev, sandbox.id).await.unwrap().unwrap();
    assert_eq!((read.state, read.error), (SandboxState::Running, None));
    assert!(
        store
            .transition_sandbox(sandbox.id, SandboxState::Running, SandboxState::Error, Some("envd died"))
            .await
            .unwrap()
    );
    assert_eq!(store.sandbox(dev, sandbox.id).await.unwrap().unwrap().error.as_deref(), Some("envd died"));
    assert!(store.transition_sandbox(sandbox.id, SandboxState::Error, SandboxState::Stopped, None).await.unwrap());
    assert_eq!(
        store.sandbox(dev, sandbox.id).await.unwrap().unwrap().timeout_at,
        None,
        "stopped sandboxes have no timeout"
    );
}

async fn timeouts_and_host_queries(db: TestDatabase) {
    let (store, dev, _) = store_with_environments(&db).await;
    let mut expired = record(dev, "base", &[]);
    expired.timeout_at = Some(Utc::now() - Duration::seconds(1));
    let fresh = record(dev, "base", &[]);
    let mut elsewhere = record(dev, "base", &[]);
    elsewhere.host = "node-b".into();
    for sandbox in [&expired, &fresh, &elsewhere] {
        store.insert_sandbox(sandbox).await.unwrap();
        store.transition_sandbox(sandbox.id, SandboxState::Creating, SandboxState::Running, None).await.unwrap();
    }
    let due: Vec<_> = store.expired_sandboxes("node-a").await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(due, vec![expired.id]);
    store.set_sandbox_timeout(expired.id, Utc::now() + Duration::minutes(1)).await.unwrap();
    assert!(store.expired_sandboxes("node-a").await.unwrap().is_empty(), "a keep-alive moves the deadline");
    let live: Vec<_> = store.live_sandboxes_on_host("node-a").await.unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(live, vec![expired.id, fresh.id]);
}

async fn volumes_are_named_per_environment(db: TestDatabase) {
    let (store, dev, prod) = store_with_environments(&db).await;
    let first = store.ensure_volume(dev, "cache").await.unwrap();
    let again = store.ensure_volume(dev, "cache").await.unwrap();
    assert_eq!(first.id, again.id, "ensure is idempotent");
    let other = store.ensure_volume(prod, "cache").await.unwrap();
    assert_ne!(first.id, other.id);
    assert_eq!(store.list_volumes(dev).await.unwrap().len(), 1);
    assert!(store.delete_volume(dev, "cache").await.unwrap());
    assert!(!store.delete_volume(dev, "cache").await.unwrap());
    assert!(store.volume(prod, "cache").await.unwrap().is_some());
}
