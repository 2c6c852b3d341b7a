//! The workspace and its two environments, and the first-start bootstrap that creates them together
//! with the workspace admin key.

use runtools_protocol::{ApiKeyKind, Environment, EnvironmentId, EnvironmentKind, KeyId, Workspace, WorkspaceId};
use sqlx::FromRow;

use crate::crypto::{generate_key_secret, hash_key_secret};
use crate::time::{from_millis, now_millis};
use crate::{BootstrapError, Store, StoreError, on_db};

/// What [`Store::bootstrap`] did.
#[derive(Debug)]
pub enum Bootstrapped {
    /// This call created the workspace; the admin key's secret is here and nowhere else.
    Created { workspace: Workspace, admin_key_id: KeyId, admin_secret: String },
    /// The workspace already existed (a previous start, or another node sharing the database).
    Existing { workspace: Workspace },
}

#[derive(FromRow)]
struct WorkspaceRow {
    id: String,
    name: String,
    created_at: i64,
}

impl WorkspaceRow {
    fn into_workspace(self) -> Result<Workspace, StoreError> {
        Ok(Workspace {
            id: self.id.parse().map_err(|e| StoreError::corrupt("workspace id", e))?,
            name: self.name,
            created_at: from_millis(self.created_at)?,
        })
    }
}

#[derive(FromRow)]
struct EnvironmentRow {
    id: String,
    kind: String,
    name: String,
    created_at: i64,
}

impl EnvironmentRow {
    fn into_environment(self) -> Result<Environment, StoreError> {
        Ok(Environment {
            id: self.id.parse().map_err(|e| StoreError::corrupt("environment id", e))?,
            kind: self.kind.parse().map_err(|e| StoreError::corrupt("environment kind", e))?,
            name: self.name,
            created_at: from_millis(self.created_at)?,
        })
    }
}

const BOOTSTRAP_MARKER: &str = "bootstrapped_at";
const SECRETS_KEY_FINGERPRINT: &str = "secrets_key_fingerprint";

impl Store {
    /// Creates the workspace, its `development` and `production` environments and an admin key on
    /// the first start of an empty database, in one transaction. `save_admin_secret` runs before
    /// the commit: if it fails nothing is written, so a user is never left with a workspace whose
    /// only admin key was lost. On every later start (or on a second node) it creates nothing and
    /// checks that this node's secrets key is the one the database was created with.
    pub async fn bootstrap(
        &self,
        workspace_name: &str,
        save_admin_secret: impl FnOnce(&str) -> std::io::Result<()>,
    ) -> Result<Bootstrapped, BootstrapError> {
        if let Some(workspace) = self.workspace().await? {
            self.check_secrets_key().await?;
            return Ok(Bootstrapped::Existing { workspace });
        }
        let fingerprint = self.secrets_key.fingerprint();
        let now = now_millis();
        let workspace_id = WorkspaceId::new();
        let admin_key_id = KeyId::new();
        let admin_secret = generate_key_secret(ApiKeyKind::Admin);
        let admin_hash = hash_key_secret(&admin_secret);
        let last4 = last4(&admin_secret);
        let won = on_db!(self, pool => {
            let mut tx = pool.begin().await.map_err(StoreError::query("begin bootstrap"))?;
            // The marker's primary key makes bootstrap happen once even when several nodes race.
            let claimed = sqlx::query("INSERT INTO installation (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
                .bind(BOOTSTRAP_MARKER)
                .bind(now.to_string())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("claim bootstrap"))?
                .rows_affected() == 1;
            if claimed {
                sqlx::query("INSERT INTO installation (key, value) VALUES ($1, $2)")
                    .bind(SECRETS_KEY_FINGERPRINT)
                    .bind(&fingerprint)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("record secrets key fingerprint"))?;
                sqlx::query("INSERT INTO workspaces (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(workspace_id.to_string())
                    .bind(workspace_name)
                    .bind(now)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::query("create workspace"))?;
                for kind in EnvironmentKind::ALL {
                    sqlx::query("INSERT INTO environments (id, workspace_id, kind, name, created_at) VALUES ($1, $2, $3, $4, $5)")
                        .bind(EnvironmentId::new().to_string())
                        .bind(workspace_id.to_string())
                        .bind(kind.as_str())
                        .bind(kind.as_str())
                        .bind(now)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::query("create environment"))?;
                }
                sqlx::query(
                    "INSERT INTO api_keys (id, workspace_id, environment_id, kind, name, secret_hash, last4, created_at) \
                     VALUES ($1, $2, NULL, 'admin', 'admin', $3, $4, $5)",
                )
                .bind(admin_key_id.to_string())
                .bind(workspace_id.to_string())
                .bind(admin_hash.as_slice())
                .bind(&last4)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::query("create admin key"))?;
                save_admin_secret(&admin_secret).map_err(BootstrapError::SaveAdminKey)?;
                tx.commit().await.map_err(StoreError::query("commit bootstrap"))?;
            }
            Ok::<bool, BootstrapError>(claimed)
        })?;
        let workspace = self
            .workspace()
            .await?
            .ok_or_else(|| StoreError::corrupt("installation", "bootstrapped but no workspace"))?;
        if won {
            Ok(Bootstrapped::Created { workspace, admin_key_id, admin_secret })
        } else {
            self.check_secrets_key().await?;
            Ok(Bootstrapped::Existing { workspace })
        }
    }

    async fn check_secrets_key(&self) -> Result<(), BootstrapError> {
        let recorded: Option<String> = on_db!(self, pool => {
            sqlx::query_scalar("SELECT value FROM installation WHERE key = $1")
                .bind(SECRETS_KEY_FINGERPRINT)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("read secrets key fingerprint"))?;
        match recorded {
            Some(recorded) if recorded != self.secrets_key.fingerprint() => Err(BootstrapError::SecretsKeyMismatch),
            _ => Ok(()),
        }
    }

    /// The installation's workspace, if bootstrap has run.
    pub async fn workspace(&self) -> Result<Option<Workspace>, StoreError> {
        let row: Option<WorkspaceRow> = on_db!(self, pool => {
            sqlx::query_as("SELECT id, name, created_at FROM workspaces ORDER BY id LIMIT 1")
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("read workspace"))?;
        row.map(WorkspaceRow::into_workspace).transpose()
    }

    /// Both environments of a workspace, development first.
    pub async fn environments(&self, workspace: WorkspaceId) -> Result<Vec<Environment>, StoreError> {
        let rows: Vec<EnvironmentRow> = on_db!(self, pool => {
            sqlx::query_as("SELECT id, kind, name, created_at FROM environments WHERE workspace_id = $1 ORDER BY kind")
                .bind(workspace.to_string())
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::query("list environments"))?;
        rows.into_iter().map(EnvironmentRow::into_environment).collect()
    }

    /// One environment by id.
    pub async fn environment(&self, id: EnvironmentId) -> Result<Option<Environment>, StoreError> {
        let row: Option<EnvironmentRow> = on_db!(self, pool => {
            sqlx::query_as("SELECT id, kind, name, created_at FROM environments WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("read environment"))?;
        row.map(EnvironmentRow::into_environment).transpose()
    }

    /// The workspace's environment of the given kind.
    pub async fn environment_by_kind(
        &self,
        workspace: WorkspaceId,
        kind: EnvironmentKind,
    ) -> Result<Option<Environment>, StoreError> {
        let row: Option<EnvironmentRow> = on_db!(self, pool => {
            sqlx::query_as("SELECT id, kind, name, created_at FROM environments WHERE workspace_id = $1 AND kind = $2")
                .bind(workspace.to_string())
                .bind(kind.as_str())
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("read environment"))?;
        row.map(EnvironmentRow::into_environment).transpose()
    }
}

/// The last four characters of a secret, shown in listings to tell keys apart.
pub(crate) fn last4(secret: &str) -> String {
    secret.chars().rev().take(4).collect::<Vec<_>>().into_iter().rev().collect()
}
