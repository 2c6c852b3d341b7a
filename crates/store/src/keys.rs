//! API keys at rest: creation (the secret leaves the store exactly once), authentication by hash,
//! listing, and revocation.

use runtools_protocol::{ApiKey, ApiKeyKind, Environment, EnvironmentId, KeyId, Workspace, WorkspaceId};
use sqlx::FromRow;
use subtle::ConstantTimeEq;

use crate::crypto::{generate_key_secret, hash_key_secret};
use crate::time::{from_millis, from_millis_opt, now_millis};
use crate::workspace::last4;
use crate::{AuthError, Store, StoreError, on_db};

/// How stale `last_used_at` may get before a request refreshes it. Keeps authentication a pure
/// read on the hot path while still answering "is this key in use?".
const LAST_USED_RESOLUTION_MS: i64 = 60_000;

/// A key that presented a valid secret, with the workspace and environment it acts in — all that
/// a request needs to know about its caller, read in one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthenticatedKey {
    pub key: ApiKey,
    pub workspace: Workspace,
    /// The environment the key acts in (`None` for admin keys).
    pub environment: Option<Environment>,
}

impl AuthenticatedKey {
    pub fn kind(&self) -> ApiKeyKind {
        self.key.kind
    }

    pub fn workspace_id(&self) -> WorkspaceId {
        self.workspace.id
    }

    /// The environment this key acts in (`None` for admin keys).
    pub fn environment_id(&self) -> Option<EnvironmentId> {
        self.environment.as_ref().map(|environment| environment.id)
    }
}

/// One row of the authentication query: the key joined with its workspace and environment.
#[derive(FromRow)]
struct AuthRow {
    #[sqlx(flatten)]
    key: KeyRow,
    workspace_name: String,
    workspace_created_at: i64,
    environment_kind: Option<String>,
    environment_name: Option<String>,
    environment_created_at: Option<i64>,
}

const AUTH_QUERY: &str = "SELECT k.id, k.workspace_id, k.environment_id, k.kind, k.name, k.secret_hash, k.last4, \
     k.created_at, k.last_used_at, k.revoked_at, \
     w.name AS workspace_name, w.created_at AS workspace_created_at, \
     e.kind AS environment_kind, e.name AS environment_name, e.created_at AS environment_created_at \
     FROM api_keys k JOIN workspaces w ON w.id = k.workspace_id LEFT JOIN environments e ON e.id = k.environment_id \
     WHERE k.secret_hash = $1";

impl AuthRow {
    fn into_authenticated(self) -> Result<AuthenticatedKey, StoreError> {
        let workspace = Workspace {
            id: self.key.workspace_id.parse().map_err(|e| StoreError::corrupt("workspace id", e))?,
            name: self.workspace_name,
            created_at: from_millis(self.workspace_created_at)?,
        };
        let environment =
            match (&self.key.environment_id, self.environment_kind, self.environment_name, self.environment_created_at)
            {
                (None, ..) => None,
                (Some(id), Some(kind), Some(name), Some(created_at)) => Some(Environment {
                    id: id.parse().map_err(|e| StoreError::corrupt("environment id", e))?,
                    kind: kind.parse().map_err(|e| StoreError::corrupt("environment kind", e))?,
                    name,
                    created_at: from_millis(created_at)?,
                }),
                (Some(id), ..) => {
                    return Err(StoreError::corrupt("API key", format!("its environment {id} does not exist")));
                }
            };
        Ok(AuthenticatedKey { key: self.key.into_api_key()?, workspace, environment })
    }
}

#[derive(FromRow)]
struct KeyRow {
    id: String,
    workspace_id: String,
    environment_id: Option<String>,
    kind: String,
    name: String,
    secret_hash: Vec<u8>,
    last4: String,
    created_at: i64,
    last_used_at: Option<i64>,
    revoked_at: Option<i64>,
}

const KEY_COLUMNS: &str =
    "id, workspace_id, environment_id, kind, name, secret_hash, last4, created_at, last_used_at, revoked_at";

impl KeyRow {
    fn kind(&self) -> Result<ApiKeyKind, StoreError> {
        match self.kind.as_str() {
            "admin" => Ok(ApiKeyKind::Admin),
            "development" => Ok(ApiKeyKind::Development),
            "production" => Ok(ApiKeyKind::Production),
            other => Err(StoreError::corrupt("API key kind", other)),
        }
    }

    fn into_api_key(self) -> Result<ApiKey, StoreError> {
        let kind = self.kind()?;
        Ok(ApiKey {
            id: self.id.parse().map_err(|e| StoreError::corrupt("API key id", e))?,
            kind,
            environment_id: self
                .environment_id
                .map(|id| id.parse())
                .transpose()
                .map_err(|e| StoreError::corrupt("environment id", e))?,
            name: self.name,
            redacted: format!("{}…{}", kind.prefix(), self.last4),
            created_at: from_millis(self.created_at)?,
            last_used_at: from_millis_opt(self.last_used_at)?,
            revoked_at: from_millis_opt(self.revoked_at)?,
        })
    }
}

impl Store {
    /// Creates a key and returns it with its secret — the only time the secret exists outside the
    /// caller's hands. `environment` must be `None` exactly for admin keys (the schema enforces it).
    pub async fn create_key(
        &self,
        workspace: WorkspaceId,
        kind: ApiKeyKind,
        environment: Option<EnvironmentId>,
        name: &str,
    ) -> Result<(ApiKey, String), StoreError> {
        let id = KeyId::new();
        let secret = generate_key_secret(kind);
        let hash = hash_key_secret(&secret);
        let now = now_millis();
        on_db!(self, pool => {
            sqlx::query(
                "INSERT INTO api_keys (id, workspace_id, environment_id, kind, name, secret_hash, last4, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(id.to_string())
            .bind(workspace.to_string())
            .bind(environment.map(|e| e.to_string()))
            .bind(kind.as_str())
            .bind(name)
            .bind(hash.as_slice())
            .bind(last4(&secret))
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query("create API key"))?;
        let key = self
            .workspace_key(workspace, id)
            .await?
            .ok_or_else(|| StoreError::corrupt("API key", "vanished right after creation"))?;
        Ok((key, secret))
    }

    /// Finds the key a presented secret belongs to. The lookup is by SHA-256 hash and the stored
    /// hash is compared again in constant time, so timing reveals nothing about other keys.
    pub async fn authenticate(&self, secret: &str) -> Result<AuthenticatedKey, AuthError> {
        let hash = hash_key_secret(secret);
        let row: Option<AuthRow> = on_db!(self, pool => {
            sqlx::query_as(AUTH_QUERY).bind(hash.as_slice()).fetch_optional(pool).await
        })
        .map_err(StoreError::query("look up API key"))?;
        let row = row.ok_or(AuthError::Unknown)?;
        if !bool::from(row.key.secret_hash.as_slice().ct_eq(hash.as_slice())) {
            return Err(AuthError::Unknown);
        }
        if row.key.revoked_at.is_some() {
            return Err(AuthError::Revoked);
        }
        let now = now_millis();
        let stale = row.key.last_used_at.is_none_or(|last| now - last >= LAST_USED_RESOLUTION_MS);
        let mut key = row.into_authenticated()?;
        if stale {
            self.touch_key(key.key.id, now).await?;
            key.key.last_used_at = Some(from_millis(now)?);
        }
        Ok(key)
    }

    async fn touch_key(&self, id: KeyId, now: i64) -> Result<(), StoreError> {
        on_db!(self, pool => {
            sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)")
                .bind(now)
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map(drop)
        .map_err(StoreError::query("record API key use"))
    }

    /// A page of a workspace's keys, oldest first, starting after `after`. Returns up to `limit`
    /// keys and whether more follow.
    pub async fn list_keys(
        &self,
        workspace: WorkspaceId,
        after: Option<KeyId>,
        limit: u32,
    ) -> Result<(Vec<ApiKey>, bool), StoreError> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE workspace_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let rows: Vec<KeyRow> = on_db!(self, pool => {
            sqlx::query_as(&sql)
                .bind(workspace.to_string())
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::query("list API keys"))?;
        let more = rows.len() > limit as usize;
        let keys = rows.into_iter().take(limit as usize).map(KeyRow::into_api_key).collect::<Result<_, _>>()?;
        Ok((keys, more))
    }

    /// Revokes a key. Revoking an already revoked key keeps its first revocation time. Returns
    /// `None` when the workspace has no such key.
    pub async fn revoke_key(&self, workspace: WorkspaceId, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        on_db!(self, pool => {
            sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND workspace_id = $3 AND revoked_at IS NULL")
                .bind(now_millis())
                .bind(id.to_string())
                .bind(workspace.to_string())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query("revoke API key"))?;
        self.workspace_key(workspace, id).await
    }

    /// One key of a workspace by id (revoked keys included).
    pub async fn workspace_key(&self, workspace: WorkspaceId, id: KeyId) -> Result<Option<ApiKey>, StoreError> {
        let sql = format!("SELECT {KEY_COLUMNS} FROM api_keys WHERE id = $1 AND workspace_id = $2");
        let row: Option<KeyRow> = on_db!(self, pool => {
            sqlx::query_as(&sql).bind(id.to_string()).bind(workspace.to_string()).fetch_optional(pool).await
        })
        .map_err(StoreError::query("read API key"))?;
        row.map(KeyRow::into_api_key).transpose()
    }
}
