//! RunTools persistence. One [`Store`] type fronts either an embedded SQLite file (the default,
//! WAL mode) or a PostgreSQL database shared by several server nodes; both engines run the same
//! schema (see `migrations/`) and the same queries, and every test in this crate runs on both.
//!
//! The store owns how data looks at rest: API keys are kept only as SHA-256 hashes, and secret
//! values are sealed with XChaCha20-Poly1305 under the installation's secrets key.

mod crypto;
mod error;
mod keys;
mod sandboxes;
mod secrets;
mod time;
mod workspace;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{PgPool, SqlitePool};

pub use crypto::{SecretsKey, SecretsKeyError};
pub use error::{AuthError, BootstrapError, OpenError, StoreError};
pub use keys::AuthenticatedKey;
pub use sandboxes::{SandboxFilter, SandboxRecord, SandboxSettings};
pub use workspace::Bootstrapped;

/// Where the data lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// An embedded SQLite database file, created if missing.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL (`postgres://user:pass@host:port/db`).
    Postgres(String),
}

impl StoreLocation {
    /// A description safe to log: the SQLite path, or the PostgreSQL URL without its password.
    pub fn redacted(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite:{}", path.display()),
            Self::Postgres(url) => redact_url_password(url),
        }
    }

    /// The engine behind this location.
    pub fn engine(&self) -> Engine {
        match self {
            Self::Sqlite(_) => Engine::Sqlite,
            Self::Postgres(_) => Engine::Postgres,
        }
    }
}

impl std::fmt::Debug for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// Replaces the password of a URL with `***` so it can be logged or shown.
pub fn redact_url_password(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Setting a password only fails for URLs that cannot have one, which we just saw it has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable database url>".to_owned(),
    }
}

/// The database engine in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone)]
enum Db {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same sqlx code against whichever pool the store holds. The body is compiled once per
/// engine, so a query that one engine cannot type-check fails the build, not a test.
macro_rules! on_db {
    ($store:expr, $pool:ident => $body:expr) => {
        match &$store.db {
            crate::Db::Sqlite($pool) => $body,
            crate::Db::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_db;

/// A handle to the database. Cheap to clone; all clones share one connection pool.
#[derive(Debug, Clone)]
pub struct Store {
    db: Db,
    secrets_key: SecretsKey,
}

impl Store {
    /// Connects (creating the SQLite file if needed) and applies pending migrations.
    pub async fn open(location: &StoreLocation, secrets_key: SecretsKey) -> Result<Self, OpenError> {
        let db = match location {
            StoreLocation::Sqlite(path) => Db::Sqlite(open_sqlite(path).await?),
            StoreLocation::Postgres(url) => Db::Postgres(open_postgres(url).await?),
        };
        let store = Self { db, secrets_key };
        let migrated = match &store.db {
            Db::Sqlite(pool) => sqlx::migrate!("./migrations/sqlite").run(pool).await,
            Db::Postgres(pool) => sqlx::migrate!("./migrations/postgres").run(pool).await,
        };
        migrated.map_err(|source| OpenError::Migrate { location: location.redacted(), source })?;
        Ok(store)
    }

    /// The engine behind this store.
    pub fn engine(&self) -> Engine {
        match self.db {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Checks that the database answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        on_db!(self, pool => sqlx::query("SELECT 1").execute(pool).await.map(|done| done.rows_affected()))
            .map(drop)
            .map_err(StoreError::query("ping"))
    }

    /// Waits for checked-out connections to be returned and closes the pool.
    pub async fn close(&self) {
        on_db!(self, pool => pool.close().await)
    }
}

async fn open_sqlite(path: &Path) -> Result<SqlitePool, OpenError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| OpenError::CreateDir { path: parent.to_owned(), source })?;
    }
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(5))
        .foreign_keys(true);
    SqlitePoolOptions::new()
        // A local file does not go stale: skipping the per-checkout ping saves a round trip to
        // the connection's worker thread on every query.
        .test_before_acquire(false)
        .max_connections(8)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect { location: format!("sqlite:{}", path.display()), source })
}

async fn open_postgres(url: &str) -> Result<PgPool, OpenError> {
    let options = PgConnectOptions::from_str(url)
        .map_err(|source| OpenError::Connect { location: redact_url_password(url), source })?;
    PgPoolOptions::new()
        .max_connections(16)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(options)
        .await
        .map_err(|source| OpenError::Connect { location: redact_url_password(url), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_passwords_never_reach_logs() {
        let location = StoreLocation::Postgres("postgres://runtools:hunter2@db:5432/runtools".into());
        let shown = format!("{location:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("runtools:***@db:5432"), "{shown}");
    }
}
