//! Error types of the store's operations, each carrying what was being done.

use std::path::PathBuf;

/// Opening the store failed.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("cannot create the data directory {}: {source}", path.display())]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot connect to the database at {location}: {source}")]
    Connect { location: String, source: sqlx::Error },
    #[error("cannot apply migrations to the database at {location}: {source}")]
    Migrate { location: String, source: sqlx::migrate::MigrateError },
}

/// A query failed, or the database holds something this version cannot read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error while trying to {operation}: {source}")]
    Query { operation: &'static str, source: sqlx::Error },
    #[error("the database holds an unreadable {what}: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("cannot decrypt secret `{name}`: the secrets key does not match the one it was sealed with")]
    Unseal { name: String },
}

impl StoreError {
    /// Adapter for `map_err` that records which operation failed.
    pub(crate) fn query(operation: &'static str) -> impl FnOnce(sqlx::Error) -> Self {
        move |source| Self::Query { operation, source }
    }

    pub(crate) fn corrupt(what: &'static str, detail: impl ToString) -> Self {
        Self::Corrupt { what, detail: detail.to_string() }
    }
}

/// Why a presented API key does not authenticate.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("no such API key")]
    Unknown,
    #[error("the API key was revoked")]
    Revoked,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Creating the workspace on first start failed.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot save the new admin key: {0}")]
    SaveAdminKey(#[source] std::io::Error),
    #[error(
        "the secrets key does not match the one this database was created with; \
         give every server node the same key (RUNTOOLS_SECRETS_KEY or `secrets_key` in runtools.toml)"
    )]
    SecretsKeyMismatch,
}
