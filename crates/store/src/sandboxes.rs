//! Sandboxes and volumes at rest. The store is the source of truth for a sandbox's lifecycle state;
//! state changes are compare-and-set (`UPDATE … WHERE state = <expected>`), so two server nodes (or
//! two requests) can never both move a sandbox out of the same state.

use std::collections::BTreeMap;

use runtools_protocol::sandbox::{
    Isolation, NetworkMode, OnTimeout, Sandbox, SandboxLimits, SandboxState, Volume, VolumeMount,
};
use runtools_protocol::{EnvironmentId, SandboxId, VolumeId};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

use crate::time::{from_millis, from_millis_opt, now_millis};
use crate::{Store, StoreError, on_db};

/// What a sandbox was created with, kept as JSON beside its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SandboxSettings {
    pub limits: SandboxLimits,
    pub network: NetworkMode,
    pub on_timeout: OnTimeout,
    pub volumes: Vec<VolumeMount>,
    pub metadata: BTreeMap<String, String>,
    /// Environment variables for every process (may hold secrets; never returned by the API).
    pub env: BTreeMap<String, String>,
    /// Guards the sandbox's port URLs.
    pub access_token: String,
    /// The lifetime a resume restarts (seconds).
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
}

fn default_timeout_secs() -> u64 {
    300
}

/// A sandbox as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct SandboxRecord {
    pub id: SandboxId,
    pub environment_id: EnvironmentId,
    /// The server node whose backend runs it.
    pub host: String,
    pub template: String,
    pub isolation: Isolation,
    pub state: SandboxState,
    pub error: Option<String>,
    pub settings: SandboxSettings,
    pub timeout_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl SandboxRecord {
    /// The API view (without env, which may hold secrets).
    pub fn to_api(&self) -> Sandbox {
        Sandbox {
            id: self.id,
            environment_id: self.environment_id,
            template: self.template.clone(),
            state: self.state,
            error: self.error.clone(),
            isolation: self.isolation,
            network: self.settings.network,
            limits: self.settings.limits.clone(),
            on_timeout: self.settings.on_timeout,
            timeout_at: self.timeout_at,
            volumes: self.settings.volumes.clone(),
            metadata: self.settings.metadata.clone(),
            access_token: self.settings.access_token.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Which sandboxes a list returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SandboxFilter {
    /// Only this state; `None` means every state except `stopped`.
    pub state: Option<SandboxState>,
    pub template: Option<String>,
    /// Every pair must match.
    pub metadata: BTreeMap<String, String>,
}

#[derive(FromRow)]
struct SandboxRow {
    id: String,
    environment_id: String,
    host: String,
    template: String,
    isolation: String,
    state: String,
    error: Option<String>,
    spec: String,
    timeout_at: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

const SANDBOX_COLUMNS: &str = "s.id, s.environment_id, s.host, s.template, s.isolation, s.state, s.error, s.spec, s.timeout_at, s.created_at, s.updated_at";

fn isolation_str(isolation: Isolation) -> &'static str {
    match isolation {
        Isolation::Namespace => "namespace",
        Isolation::Gvisor => "gvisor",
    }
}

impl SandboxRow {
    fn into_record(self) -> Result<SandboxRecord, StoreError> {
        Ok(SandboxRecord {
            id: self.id.parse().map_err(|e| StoreError::corrupt("sandbox id", e))?,
            environment_id: self.environment_id.parse().map_err(|e| StoreError::corrupt("environment id", e))?,
            host: self.host,
            template: self.template,
            isolation: match self.isolation.as_str() {
                "namespace" => Isolation::Namespace,
                "gvisor" => Isolation::Gvisor,
                other => return Err(StoreError::corrupt("sandbox isolation", other)),
            },
            state: self.state.parse().map_err(|e: String| StoreError::corrupt("sandbox state", e))?,
            error: self.error,
            settings: serde_json::from_str(&self.spec).map_err(|e| StoreError::corrupt("sandbox settings", e))?,
            timeout_at: from_millis_opt(self.timeout_at)?,
            created_at: from_millis(self.created_at)?,
            updated_at: from_millis(self.updated_at)?,
        })
    }
}

impl Store {
    /// Records a new sandbox (normally in `creating`) with its metadata labels, atomically.
    pub async fn insert_sandbox(&self, record: &SandboxRecord) -> Result<(), StoreError> {
        let spec = serde_json::to_string(&record.settings).map_err(|e| StoreError::corrupt("sandbox settings", e))?;
        on_db!(self, pool => async {
            let mut tx = pool.begin().await?;
            sqlx::query(
                "INSERT INTO sandboxes (id, environment_id, host, template, isolation, state, error, spec, timeout_at, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            )
            .bind(record.id.to_string())
            .bind(record.environment_id.to_string())
            .bind(&record.host)
            .bind(&record.template)
            .bind(isolation_str(record.isolation))
            .bind(record.state.as_str())
            .bind(&record.error)
            .bind(&spec)
            .bind(record.timeout_at.map(|t| t.timestamp_millis()))
            .bind(record.created_at.timestamp_millis())
            .bind(record.updated_at.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            for (key, value) in &record.settings.metadata {
                sqlx::query("INSERT INTO sandbox_metadata (sandbox_id, key, value) VALUES ($1, $2, $3)")
                    .bind(record.id.to_string())
                    .bind(key)
                    .bind(value)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await)
        .map_err(StoreError::query("create sandbox"))
    }

    /// One sandbox of an environment.
    pub async fn sandbox(
        &self,
        environment: EnvironmentId,
        id: SandboxId,
    ) -> Result<Option<SandboxRecord>, StoreError> {
        let sql = format!("SELECT {SANDBOX_COLUMNS} FROM sandboxes s WHERE s.id = $1 AND s.environment_id = $2");
        let row: Option<SandboxRow> = on_db!(self, pool => {
            sqlx::query_as(&sql).bind(id.to_string()).bind(environment.to_string()).fetch_optional(pool).await
        })
        .map_err(StoreError::query("read sandbox"))?;
        row.map(SandboxRow::into_record).transpose()
    }

    /// One sandbox by id, in any environment (for the server's own bookkeeping).
    pub async fn sandbox_by_id(&self, id: SandboxId) -> Result<Option<SandboxRecord>, StoreError> {
        let sql = format!("SELECT {SANDBOX_COLUMNS} FROM sandboxes s WHERE s.id = $1");
        let row: Option<SandboxRow> = on_db!(self, pool => {
            sqlx::query_as(&sql).bind(id.to_string()).fetch_optional(pool).await
        })
        .map_err(StoreError::query("read sandbox"))?;
        row.map(SandboxRow::into_record).transpose()
    }

    /// A page of an environment's sandboxes, oldest first.
    pub async fn list_sandboxes(
        &self,
        environment: EnvironmentId,
        filter: &SandboxFilter,
        after: Option<SandboxId>,
        limit: u32,
    ) -> Result<(Vec<SandboxRecord>, bool), StoreError> {
        let after = after.map(|id| id.to_string()).unwrap_or_default();
        let rows: Vec<SandboxRow> = on_db!(self, pool => {
            let mut query = sqlx::QueryBuilder::new(format!("SELECT {SANDBOX_COLUMNS} FROM sandboxes s WHERE s.environment_id = "));
            query.push_bind(environment.to_string()).push(" AND s.id > ").push_bind(&after);
            match filter.state {
                Some(state) => query.push(" AND s.state = ").push_bind(state.as_str()),
                None => query.push(" AND s.state <> 'stopped'"),
            };
            if let Some(template) = &filter.template {
                query.push(" AND s.template = ").push_bind(template);
            }
            for (key, value) in &filter.metadata {
                query
                    .push(" AND EXISTS (SELECT 1 FROM sandbox_metadata m WHERE m.sandbox_id = s.id AND m.key = ")
                    .push_bind(key)
                    .push(" AND m.value = ")
                    .push_bind(value)
                    .push(")");
            }
            query.push(" ORDER BY s.id LIMIT ").push_bind(i64::from(limit) + 1);
            query.build_query_as().fetch_all(pool).await
        })
        .map_err(StoreError::query("list sandboxes"))?;
        let more = rows.len() > limit as usize;
        let records = rows.into_iter().take(limit as usize).map(SandboxRow::into_record).collect::<Result<_, _>>()?;
        Ok((records, more))
    }

    /// Every sandbox a host runs that is not stopped (to re-adopt at start).
    pub async fn live_sandboxes_on_host(&self, host: &str) -> Result<Vec<SandboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {SANDBOX_COLUMNS} FROM sandboxes s WHERE s.host = $1 AND s.state <> 'stopped' ORDER BY s.id"
        );
        let rows: Vec<SandboxRow> = on_db!(self, pool => {
            sqlx::query_as(&sql).bind(host).fetch_all(pool).await
        })
        .map_err(StoreError::query("list sandboxes on host"))?;
        rows.into_iter().map(SandboxRow::into_record).collect()
    }

    /// Sandboxes of a host whose lifetime has run out.
    pub async fn expired_sandboxes(&self, host: &str) -> Result<Vec<SandboxRecord>, StoreError> {
        let sql = format!(
            "SELECT {SANDBOX_COLUMNS} FROM sandboxes s WHERE s.host = $1 AND s.timeout_at <= $2 \
             AND s.state IN ('running', 'paused') ORDER BY s.timeout_at"
        );
        let rows: Vec<SandboxRow> = on_db!(self, pool => {
            sqlx::query_as(&sql).bind(host).bind(now_millis()).fetch_all(pool).await
        })
        .map_err(StoreError::query("list expired sandboxes"))?;
        rows.into_iter().map(SandboxRow::into_record).collect()
    }

    /// Moves a sandbox from `from` to `to` if it is still in `from`. Returns whether it moved.
    /// `timeout_at` is cleared when the sandbox stops.
    pub async fn transition_sandbox(
        &self,
        id: SandboxId,
        from: SandboxState,
        to: SandboxState,
        error: Option<&str>,
    ) -> Result<bool, StoreError> {
        on_db!(self, pool => {
            sqlx::query(
                "UPDATE sandboxes SET state = $1, error = $2, updated_at = $3, \
                 timeout_at = CASE WHEN $1 = 'stopped' THEN NULL ELSE timeout_at END \
                 WHERE id = $4 AND state = $5",
            )
            .bind(to.as_str())
            .bind(error)
            .bind(now_millis())
            .bind(id.to_string())
            .bind(from.as_str())
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map(|rows| rows == 1)
        .map_err(StoreError::query("change sandbox state"))
    }

    /// Sets when a sandbox's lifetime runs out.
    pub async fn set_sandbox_timeout(
        &self,
        id: SandboxId,
        timeout_at: chrono::DateTime<chrono::Utc>,
    ) -> Result<bool, StoreError> {
        on_db!(self, pool => {
            sqlx::query("UPDATE sandboxes SET timeout_at = $1, updated_at = $2 WHERE id = $3 AND state <> 'stopped'")
                .bind(timeout_at.timestamp_millis())
                .bind(now_millis())
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map(|rows| rows == 1)
        .map_err(StoreError::query("set sandbox timeout"))
    }

    /// Removes a sandbox's deadline (after `on_timeout: pause` has paused it).
    pub async fn clear_sandbox_timeout(&self, id: SandboxId) -> Result<(), StoreError> {
        on_db!(self, pool => {
            sqlx::query("UPDATE sandboxes SET timeout_at = NULL, updated_at = $1 WHERE id = $2")
                .bind(now_millis())
                .bind(id.to_string())
                .execute(pool)
                .await
                .map(drop)
        })
        .map_err(StoreError::query("clear sandbox timeout"))
    }

    /// The volume of this name, created if it does not exist yet.
    pub async fn ensure_volume(&self, environment: EnvironmentId, name: &str) -> Result<Volume, StoreError> {
        on_db!(self, pool => {
            sqlx::query(
                "INSERT INTO volumes (id, environment_id, name, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (environment_id, name) DO NOTHING",
            )
            .bind(VolumeId::new().to_string())
            .bind(environment.to_string())
            .bind(name)
            .bind(now_millis())
            .execute(pool)
            .await
            .map(drop)
        })
        .map_err(StoreError::query("create volume"))?;
        self.volume(environment, name).await?.ok_or_else(|| StoreError::corrupt("volume", "vanished after creation"))
    }

    /// A volume by name.
    pub async fn volume(&self, environment: EnvironmentId, name: &str) -> Result<Option<Volume>, StoreError> {
        let row: Option<(String, String, String, i64)> = on_db!(self, pool => {
            sqlx::query_as("SELECT id, environment_id, name, created_at FROM volumes WHERE environment_id = $1 AND name = $2")
                .bind(environment.to_string())
                .bind(name)
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("read volume"))?;
        row.map(volume_from_row).transpose()
    }

    /// An environment's volumes, by name.
    pub async fn list_volumes(&self, environment: EnvironmentId) -> Result<Vec<Volume>, StoreError> {
        let rows: Vec<(String, String, String, i64)> = on_db!(self, pool => {
            sqlx::query_as("SELECT id, environment_id, name, created_at FROM volumes WHERE environment_id = $1 ORDER BY name")
                .bind(environment.to_string())
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::query("list volumes"))?;
        rows.into_iter().map(volume_from_row).collect()
    }

    /// Forgets a volume; `false` when there was none. The caller removes its files.
    pub async fn delete_volume(&self, environment: EnvironmentId, name: &str) -> Result<bool, StoreError> {
        on_db!(self, pool => {
            sqlx::query("DELETE FROM volumes WHERE environment_id = $1 AND name = $2")
                .bind(environment.to_string())
                .bind(name)
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map(|rows| rows == 1)
        .map_err(StoreError::query("delete volume"))
    }
}

fn volume_from_row(
    (id, environment_id, name, created_at): (String, String, String, i64),
) -> Result<Volume, StoreError> {
    Ok(Volume {
        id: id.parse().map_err(|e| StoreError::corrupt("volume id", e))?,
        environment_id: environment_id.parse().map_err(|e| StoreError::corrupt("environment id", e))?,
        name,
        created_at: from_millis(created_at)?,
    })
}
