//! Keeping the store and the host in agreement: at start, re-adopt the sandboxes this node ran
//! before a restart and remove whatever is left of sandboxes that should not exist; while running,
//! apply lifetimes (`on_timeout: kill | pause`).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use runtools_protocol::sandbox::{OnTimeout, SandboxState};
use runtools_sandbox::Observed;

use super::SandboxService;

impl SandboxService {
    /// Reconciles this node's sandboxes after a start: the store says what should exist, the
    /// backend says what does.
    pub async fn recover(&self) -> Result<(), runtools_store::StoreError> {
        let records = self.store().live_sandboxes_on_host(self.host()).await?;
        let expected: HashSet<_> = records.iter().map(|record| record.id).collect();
        for record in records {
            let observed = self.backend().recover(record.id).await.unwrap_or_else(|error| {
                tracing::warn!(sandbox = %record.id, %error, "cannot inspect sandbox");
                Observed::Broken
            });
            // A live sandbox takes whatever state its processes are really in; anything else
            // (mid-create, mid-delete, already in error, or gone) is handled below.
            let live = matches!(
                record.state,
                SandboxState::Running | SandboxState::Resuming | SandboxState::Paused | SandboxState::Pausing
            );
            let wanted = match observed {
                Observed::Running if live => Some(SandboxState::Running),
                Observed::Paused if live => Some(SandboxState::Paused),
                _ => None,
            };
            match wanted {
                Some(state) if state == record.state => {
                    tracing::info!(sandbox = %record.id, %state, "re-adopted sandbox");
                }
                Some(state) => {
                    self.store().transition_sandbox(record.id, record.state, state, None).await?;
                    tracing::info!(sandbox = %record.id, from = %record.state, to = %state, "re-adopted sandbox");
                }
                None if record.state == SandboxState::Error
                    && matches!(observed, Observed::Running | Observed::Paused) =>
                {
                    tracing::info!(sandbox = %record.id, "kept sandbox in error for inspection");
                }
                None => {
                    // Interrupted mid-create or mid-delete, or lost with the host: finish it off.
                    let _ = self.backend().delete(record.id).await;
                    let (state, reason) = match record.state {
                        SandboxState::Stopping => (SandboxState::Stopped, None),
                        SandboxState::Creating => (SandboxState::Error, Some("the server stopped while creating it")),
                        _ => (SandboxState::Error, Some("its processes were gone when the server restarted")),
                    };
                    self.store().transition_sandbox(record.id, record.state, state, reason).await?;
                    tracing::warn!(sandbox = %record.id, from = %record.state, to = %state, "sandbox could not be re-adopted");
                }
            }
        }
        match self.backend().list().await {
            Ok(found) => {
                for (id, _) in found.into_iter().filter(|(id, _)| !expected.contains(id)) {
                    tracing::info!(sandbox = %id, "removing leftovers of a sandbox that should not exist");
                    if let Err(error) = self.backend().delete(id).await {
                        tracing::warn!(sandbox = %id, %error, "cannot remove leftovers");
                    }
                }
            }
            Err(error) => tracing::warn!(%error, "cannot list sandboxes on this host"),
        }
        Ok(())
    }

    /// Applies expired lifetimes once.
    pub async fn apply_timeouts(&self) -> Result<(), runtools_store::StoreError> {
        for record in self.store().expired_sandboxes(self.host()).await? {
            let id = record.id;
            let result = match (record.settings.on_timeout, record.state) {
                (OnTimeout::Pause, SandboxState::Running) => self.pause_record(record).await.map(drop),
                (OnTimeout::Pause, _) => {
                    self.store().clear_sandbox_timeout(id).await?;
                    Ok(())
                }
                (OnTimeout::Kill, _) => self.delete_record(record).await.map(drop),
            };
            match result {
                Ok(()) => tracing::info!(sandbox = %id, "lifetime ran out"),
                Err(error) => {
                    tracing::warn!(sandbox = %id, error = error.message(), "cannot apply the sandbox's timeout")
                }
            }
        }
        Ok(())
    }
}

/// Checks lifetimes every `interval` until the service is dropped.
pub(crate) fn spawn_reaper(service: &Arc<SandboxService>, interval: Duration) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(service);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let Some(service) = weak.upgrade() else { return };
            if let Err(error) = service.apply_timeouts().await {
                tracing::warn!(%error, "cannot check sandbox lifetimes");
            }
        }
    })
}
