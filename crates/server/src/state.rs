//! The state every handler shares: the store, the node's metrics and its shutdown flag. Nothing
//! here is authoritative data — that lives in the store — so any number of nodes can serve the
//! same database.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use runtools_protocol::ErrorCode;
use runtools_store::Store;

use crate::config::ServerConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::sandboxes::SandboxService;

/// Cheap to clone; all clones share one inner value.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    store: Store,
    config: ServerConfig,
    metrics: Metrics,
    shutting_down: AtomicBool,
    /// This node's sandboxes, or why it cannot run any.
    sandboxes: Result<Arc<SandboxService>, String>,
}

impl AppState {
    pub fn new(store: Store, config: ServerConfig, sandboxes: Result<Arc<SandboxService>, String>) -> Self {
        let metrics = Metrics::new(store.engine().as_str());
        Self(Arc::new(Inner { store, config, metrics, shutting_down: AtomicBool::new(false), sandboxes }))
    }

    /// The sandbox service, or 503 saying why this node has none.
    pub fn sandboxes(&self) -> Result<&Arc<SandboxService>, ApiError> {
        self.0.sandboxes.as_ref().map_err(|reason| {
            ApiError::new(ErrorCode::Unavailable, format!("sandboxes are not available on this server: {reason}"))
        })
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    pub fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }

    /// Marks the node as draining: `/readyz` answers 503 so load balancers stop sending work.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }
}
