//! The RunTools control-plane server.
//!
//! - [`app`] builds the whole HTTP API as a plain axum `Router` for a given [`AppState`].
//! - [`Server::open`] prepares a node from its [`ServerConfig`]: opens (and migrates) the store,
//!   loads or creates the secrets key, and on a fresh install creates the workspace and its admin
//!   key.
//! - [`Server::serve`] (or the one-call [`serve`]) answers requests on an already-bound listener
//!   until the shutdown future resolves, then drains in-flight requests within the configured
//!   deadline and closes the store. Tests bind port 0 and pass their own shutdown signal.

pub mod auth;
pub mod config;
mod context;
pub mod error;
pub mod extract;
mod listener;
pub mod metrics;
mod pagination;
mod proxy;
mod routes;
pub mod sandboxes;
pub mod state;

use std::future::Future;
use std::io::Write;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware::{from_fn, from_fn_with_state};
use axum::response::IntoResponse;
use runtools_protocol::{ErrorCode, KeyId};
use runtools_store::{BootstrapError, Bootstrapped, OpenError, SecretsKey, SecretsKeyError, Store};
use tokio::net::TcpListener;
use tower_http::catch_panic::CatchPanicLayer;

pub use config::{ServerConfig, ServerOverrides};
pub use context::REQUEST_ID_HEADER;
pub use error::ApiError;
pub use routes::openapi;
pub use state::AppState;

/// The HTTP API for `state`: every route, the authentication layer on `/v1`, JSON errors for
/// everything (unknown routes, wrong methods, oversized bodies, panics), request ids and metrics.
pub fn app(state: AppState) -> Router {
    let openapi_json = std::sync::Arc::new(serde_json::to_string(&openapi()).unwrap_or_default());
    let authenticated =
        Router::from(routes::authenticated_routes()).route_layer(from_fn_with_state(state.clone(), auth::authenticate));
    let public = Router::from(routes::public_routes()).route(
        "/v1/openapi.json",
        axum::routing::get(move || {
            let document = openapi_json.clone();
            async move { ([(http::header::CONTENT_TYPE, "application/json")], document.as_str().to_owned()) }
        }),
    );
    let sandbox_ports = Router::new()
        .route("/v1/sandboxes/{id}/ports/{port}", axum::routing::any(routes::proxy_port_root))
        .route("/v1/sandboxes/{id}/ports/{port}/", axum::routing::any(routes::proxy_port_root))
        .route("/v1/sandboxes/{id}/ports/{port}/{*rest}", axum::routing::any(routes::proxy_port));
    public
        .merge(authenticated)
        .merge(sandbox_ports)
        .route_layer(from_fn(context::record_route))
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route; see /v1/openapi.json") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(ErrorCode::MethodNotAllowed, "this route does not accept that method; see /v1/openapi.json")
        })
        .layer(DefaultBodyLimit::max(state.config().max_body_bytes))
        .layer(CatchPanicLayer::custom(|_| ApiError::internal("a handler panicked").into_response()))
        .layer(from_fn_with_state(state.clone(), proxy::route_sandbox_hosts))
        .layer(from_fn_with_state(state.clone(), context::request_context))
        .with_state(state)
}

/// A prepared server node.
#[derive(Debug)]
pub struct Server {
    state: AppState,
    new_admin_key: Option<NewAdminKey>,
}

/// The admin key created by the first start of a fresh install.
#[derive(Debug, Clone)]
pub struct NewAdminKey {
    pub id: KeyId,
    pub secret: String,
    /// The 0600 file the secret was saved to.
    pub path: PathBuf,
}

/// Preparing or running the server failed.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot create the data directory {}: {source}", path.display())]
    DataDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read or create the secrets key at {}: {source}", path.display())]
    SecretsKeyFile { path: PathBuf, source: std::io::Error },
    #[error("the secrets key in {} is unusable: {source}", path.display())]
    SecretsKeyContents { path: PathBuf, source: SecretsKeyError },
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("cannot initialise the workspace: {0}")]
    Bootstrap(#[from] BootstrapError),
}

impl Server {
    /// Opens the store (creating and migrating it if needed) and bootstraps a fresh install.
    pub async fn open(mut config: ServerConfig) -> Result<Self, ServeError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| ServeError::DataDir { path: config.data_dir.clone(), source })?;
        // Absolute from here on: sandboxes mount paths under it from other working directories.
        config.data_dir = std::fs::canonicalize(&config.data_dir)
            .map_err(|source| ServeError::DataDir { path: config.data_dir.clone(), source })?;
        let secrets_key = match &config.secrets_key {
            Some(key) => key.clone(),
            None => load_or_create_secrets_key(&config.data_dir.join("secrets.key"))?,
        };
        let location = config.store_location();
        tracing::info!(store = ?location, "opening store");
        let store = Store::open(&location, secrets_key).await?;
        let admin_key_path = config.admin_key_path();
        let bootstrapped =
            store.bootstrap("default", |secret| write_private_file(&admin_key_path, &format!("{secret}\n"))).await?;
        let new_admin_key = match bootstrapped {
            Bootstrapped::Created { admin_key_id, admin_secret, workspace } => {
                tracing::info!(workspace = %workspace.id, admin_key = %admin_key_id, path = %admin_key_path.display(), "created workspace and admin key");
                Some(NewAdminKey { id: admin_key_id, secret: admin_secret, path: admin_key_path })
            }
            Bootstrapped::Existing { .. } => None,
        };
        let sandboxes = if config.sandbox.enabled {
            sandboxes::start(&config, store.clone()).await
        } else {
            Err("disabled in the configuration (`[sandbox] enabled = false` or --no-sandboxes)".to_owned())
        };
        if let Err(reason) = &sandboxes {
            tracing::warn!(%reason, "sandboxes are not available on this node");
        }
        Ok(Self { state: AppState::new(store, config, sandboxes), new_admin_key })
    }

    /// The admin key, if this start created the workspace. Show it to the user once.
    pub fn new_admin_key(&self) -> Option<&NewAdminKey> {
        self.new_admin_key.as_ref()
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting connections, lets in-flight requests
    /// finish (at most `shutdown_timeout`), and closes the store.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let state = self.state;
        let deadline = state.config().shutdown_timeout;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let draining_state = state.clone();
        tokio::spawn(async move {
            shutdown.await;
            draining_state.begin_shutdown();
            let _ = stop_tx.send(true);
        });
        let drained = listener::serve_connections(listener, app(state.clone()), stop_rx, deadline).await;
        if let listener::Drained::Aborted(connections) = drained {
            tracing::warn!(?deadline, connections, "shutdown deadline passed; cut off the requests still in flight");
        }
        state.store().close().await;
        tracing::info!("server stopped");
        Ok(())
    }
}

/// Opens the server described by `config` and serves on `listener` until `shutdown` resolves.
///
/// ```no_run
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use runtools_server::{ServerConfig, serve};
///
/// let config = ServerConfig::ephemeral("/tmp/runtools-example");
/// let listener = tokio::net::TcpListener::bind(config.listen).await?;
/// println!("listening on {}", listener.local_addr()?);
/// serve(listener, config, async {
///     let _ = tokio::signal::ctrl_c().await;
/// })
/// .await?;
/// # Ok(())
/// # }
/// ```
pub async fn serve(
    listener: TcpListener,
    config: ServerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Server::open(config).await?.serve(listener, shutdown).await
}

fn load_or_create_secrets_key(path: &Path) -> Result<SecretsKey, ServeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => SecretsKey::from_base64(&text)
            .map_err(|source| ServeError::SecretsKeyContents { path: path.to_owned(), source }),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            let key = SecretsKey::generate();
            write_private_file(path, &format!("{}\n", key.to_base64()))
                .map_err(|source| ServeError::SecretsKeyFile { path: path.to_owned(), source })?;
            tracing::info!(path = %path.display(), "created secrets key");
            Ok(key)
        }
        Err(source) => Err(ServeError::SecretsKeyFile { path: path.to_owned(), source }),
    }
}

/// Writes a file only its owner can read, atomically (temp file + rename), so a crash never leaves
/// a half-written key behind.
fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let temp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&temp)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&temp, path)
}
