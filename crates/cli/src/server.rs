//! `runtools server`: runs the control plane until SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Instant;

use anyhow::Context;
use runtools_server::config::{LoadedConfigFile, SandboxSection, ServerSection};
use runtools_server::{Server, ServerConfig, ServerOverrides};

use crate::GlobalArgs;

#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Address to listen on [default: 127.0.0.1:7070].
    #[arg(long, env = "RUNTOOLS_LISTEN")]
    listen: Option<SocketAddr>,
    /// A `postgres://` URL; without it the server uses an embedded SQLite file in the data dir.
    #[arg(long, env = "RUNTOOLS_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// Seconds to let in-flight requests finish after SIGINT/SIGTERM [default: 30].
    #[arg(long, env = "RUNTOOLS_SHUTDOWN_TIMEOUT_SECS")]
    shutdown_timeout_secs: Option<u64>,
    /// The static `envd` binary sandboxes run [default: next to `runtools`].
    #[arg(long, env = "RUNTOOLS_ENVD_BINARY")]
    envd_binary: Option<std::path::PathBuf>,
    /// Do not run sandboxes on this node.
    #[arg(long)]
    no_sandboxes: bool,
}

pub async fn run(global: &GlobalArgs, args: ServerArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let file = LoadedConfigFile::discover(global.config.as_deref())?;
    let sandbox = SandboxSection {
        enabled: args.no_sandboxes.then_some(false),
        envd_binary: args.envd_binary,
        node_name: None,
        cgroup_parent: None,
    };
    let overrides = ServerOverrides(
        ServerSection {
            listen: args.listen.map(|addr| addr.to_string()),
            data_dir: global.data_dir.clone(),
            database_url: args.database_url,
            // Only from the environment or the file: a flag would show the key in `ps`.
            secrets_key: std::env::var("RUNTOOLS_SECRETS_KEY").ok(),
            shutdown_timeout_secs: args.shutdown_timeout_secs,
            max_body_bytes: None,
        },
        sandbox,
    );
    let config = ServerConfig::resolve(file.as_ref(), overrides)?;
    tracing::debug!(?config, "configuration");
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let address = listener.local_addr()?;
    let location = config.store_location();
    let shutdown = shutdown_signal()?;
    let server = Server::open(config).await?;
    if let Some(key) = server.new_admin_key() {
        print_admin_key(&key.secret, &key.path);
    }
    println!(
        "RunTools server listening on http://{address} (store: {location:?}), ready in {} ms",
        started.elapsed().as_millis()
    );
    server.serve(listener, shutdown).await?;
    Ok(())
}

fn print_admin_key(secret: &str, path: &Path) {
    println!(
        "Created the workspace admin key. It is shown only this once and saved to {} (mode 0600):",
        path.display()
    );
    println!();
    println!("    {secret}");
    println!();
}

/// A future that resolves on SIGINT or SIGTERM. The handlers are installed when this is called,
/// not when the future is first polled, so a signal sent right after the server says it is
/// listening is never missed.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutdown signal received");
    })
}
