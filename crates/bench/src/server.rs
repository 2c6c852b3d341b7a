//! The server under test for the `http` benchmark: a real [`runtools_server::Server`] on
//! `127.0.0.1:0`, running on its own multi-thread runtime (its own OS threads, separate from the
//! load generator's), plus the throwaway PostgreSQL database it may run on.

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use runtools_server::{ServeError, Server, ServerConfig};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection};
use tokio::runtime::Runtime;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::cpu::SERVER_THREAD_PREFIX;

/// A running in-process server and the runtime that drives it.
#[derive(Debug)]
pub struct BenchServer {
    runtime: Runtime,
    addr: SocketAddr,
    admin_key: String,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), ServeError>>>,
}

impl BenchServer {
    /// Opens `config` (a fresh data dir / database) on a new runtime with `worker_threads` threads
    /// and starts serving. Call from outside any runtime.
    pub fn start(config: ServerConfig, worker_threads: usize) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(worker_threads)
            .thread_name(SERVER_THREAD_PREFIX)
            .enable_all()
            .build()
            .context("cannot start the server's runtime")?;
        let (listener, server) = runtime.block_on(async {
            let listener = tokio::net::TcpListener::bind(config.listen)
                .await
                .with_context(|| format!("cannot listen on {}", config.listen))?;
            let server = Server::open(config).await.context("cannot open the server")?;
            anyhow::Ok((listener, server))
        })?;
        let addr = listener.local_addr().context("the listener has no address")?;
        let admin_key = server
            .new_admin_key()
            .map(|key| key.secret.clone())
            .context("a fresh data dir should have created an admin key")?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(server.serve(listener, async move {
            let _ = stopped.await;
        }));
        Ok(Self { runtime, addr, admin_key, stop: Some(stop), task: Some(task) })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn admin_key(&self) -> &str {
        &self.admin_key
    }

    /// Signals graceful shutdown, waits for `serve` to return, and stops the runtime.
    pub fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = match self.task.take() {
            Some(task) => self.runtime.block_on(task).context("the server task panicked")?,
            None => Ok(()),
        };
        self.runtime.shutdown_timeout(Duration::from_secs(5));
        result.context("the server failed")
    }
}

/// A database created for one benchmark run on a PostgreSQL server, dropped afterwards.
#[derive(Debug)]
pub struct PostgresDatabase {
    admin: PgConnectOptions,
    name: String,
    /// The URL of the new database, for the server's `database_url`.
    pub url: String,
}

impl PostgresDatabase {
    /// `CREATE DATABASE rt_bench_<random>` on the server at `admin_url`.
    pub async fn create(admin_url: &str) -> anyhow::Result<Self> {
        let admin = PgConnectOptions::from_str(admin_url).context("invalid PostgreSQL URL")?;
        let mut connection = admin.connect().await.context("cannot connect to the PostgreSQL server")?;
        let name = format!("rt_bench_{}", ulid::Ulid::new().to_string().to_ascii_lowercase());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut connection)
            .await
            .with_context(|| format!("CREATE DATABASE {name}"))?;
        connection.close().await.context("cannot close the admin connection")?;
        let mut url = url::Url::parse(admin_url).context("invalid PostgreSQL URL")?;
        url.set_path(&name);
        Ok(Self { admin, name, url: url.to_string() })
    }

    /// Drops the database (the server must have closed its connections).
    pub async fn drop_database(self) -> anyhow::Result<()> {
        let mut connection = self.admin.connect().await.context("cannot connect to the PostgreSQL server")?;
        sqlx::query(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name))
            .execute(&mut connection)
            .await
            .with_context(|| format!("DROP DATABASE {}", self.name))?;
        connection.close().await.context("cannot close the admin connection")?;
        Ok(())
    }
}
