//! Environment secrets at rest: values sealed with the installation's secrets key, bound to their
//! environment and name so a sealed value cannot be replayed under another name.

use runtools_protocol::{EnvironmentId, Secret, SecretId, SecretName};
use sqlx::FromRow;

use crate::crypto::Sealed;
use crate::time::{from_millis, now_millis};
use crate::{Store, StoreError, on_db};

#[derive(FromRow)]
struct SecretRow {
    id: String,
    environment_id: String,
    name: String,
    created_at: i64,
    updated_at: i64,
}

impl SecretRow {
    fn into_secret(self) -> Result<Secret, StoreError> {
        Ok(Secret {
            id: self.id.parse().map_err(|e| StoreError::corrupt("secret id", e))?,
            name: self.name.parse().map_err(|e| StoreError::corrupt("secret name", e))?,
            environment_id: self.environment_id.parse().map_err(|e| StoreError::corrupt("environment id", e))?,
            created_at: from_millis(self.created_at)?,
            updated_at: from_millis(self.updated_at)?,
        })
    }
}

const SECRET_COLUMNS: &str = "id, environment_id, name, created_at, updated_at";

fn associated_data(environment: EnvironmentId, name: &SecretName) -> String {
    format!("{environment}/{name}")
}

impl Store {
    /// Creates a secret or replaces its value, in one statement.
    pub async fn put_secret(
        &self,
        environment: EnvironmentId,
        name: &SecretName,
        value: &str,
    ) -> Result<Secret, StoreError> {
        let sealed = self
            .secrets_key
            .seal(&associated_data(environment, name), value.as_bytes())
            .ok_or_else(|| StoreError::corrupt("secret value", "too large to encrypt"))?;
        let now = now_millis();
        on_db!(self, pool => {
            sqlx::query(
                "INSERT INTO secrets (id, environment_id, name, nonce, ciphertext, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $6) \
                 ON CONFLICT (environment_id, name) DO UPDATE \
                 SET nonce = excluded.nonce, ciphertext = excluded.ciphertext, updated_at = excluded.updated_at",
            )
            .bind(SecretId::new().to_string())
            .bind(environment.to_string())
            .bind(name.as_str())
            .bind(&sealed.nonce)
            .bind(&sealed.ciphertext)
            .bind(now)
            .execute(pool)
            .await
            .map(|done| done.rows_affected())
        })
        .map_err(StoreError::query("store secret"))?;
        self.secret(environment, name)
            .await?
            .ok_or_else(|| StoreError::corrupt("secret", "vanished right after it was written"))
    }

    /// A secret's metadata (never its value).
    pub async fn secret(&self, environment: EnvironmentId, name: &SecretName) -> Result<Option<Secret>, StoreError> {
        let sql = format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE environment_id = $1 AND name = $2");
        let row: Option<SecretRow> = on_db!(self, pool => {
            sqlx::query_as(&sql).bind(environment.to_string()).bind(name.as_str()).fetch_optional(pool).await
        })
        .map_err(StoreError::query("read secret"))?;
        row.map(SecretRow::into_secret).transpose()
    }

    /// A secret's decrypted value, for the server's own use (injecting into runs and tools).
    pub async fn reveal_secret(
        &self,
        environment: EnvironmentId,
        name: &SecretName,
    ) -> Result<Option<String>, StoreError> {
        let row: Option<(Vec<u8>, Vec<u8>)> = on_db!(self, pool => {
            sqlx::query_as("SELECT nonce, ciphertext FROM secrets WHERE environment_id = $1 AND name = $2")
                .bind(environment.to_string())
                .bind(name.as_str())
                .fetch_optional(pool)
                .await
        })
        .map_err(StoreError::query("read secret value"))?;
        let Some((nonce, ciphertext)) = row else { return Ok(None) };
        let plaintext = self
            .secrets_key
            .open(&associated_data(environment, name), &Sealed { nonce, ciphertext })
            .ok_or_else(|| StoreError::Unseal { name: name.to_string() })?;
        String::from_utf8(plaintext).map(Some).map_err(|e| StoreError::corrupt("secret value", e))
    }

    /// A page of an environment's secrets, oldest first.
    pub async fn list_secrets(
        &self,
        environment: EnvironmentId,
        after: Option<SecretId>,
        limit: u32,
    ) -> Result<(Vec<Secret>, bool), StoreError> {
        let sql =
            format!("SELECT {SECRET_COLUMNS} FROM secrets WHERE environment_id = $1 AND id > $2 ORDER BY id LIMIT $3");
        let rows: Vec<SecretRow> = on_db!(self, pool => {
            sqlx::query_as(&sql)
                .bind(environment.to_string())
                .bind(after.map(|id| id.to_string()).unwrap_or_default())
                .bind(i64::from(limit) + 1)
                .fetch_all(pool)
                .await
        })
        .map_err(StoreError::query("list secrets"))?;
        let more = rows.len() > limit as usize;
        let secrets = rows.into_iter().take(limit as usize).map(SecretRow::into_secret).collect::<Result<_, _>>()?;
        Ok((secrets, more))
    }

    /// Deletes a secret; `false` when there was none.
    pub async fn delete_secret(&self, environment: EnvironmentId, name: &SecretName) -> Result<bool, StoreError> {
        on_db!(self, pool => {
            sqlx::query("DELETE FROM secrets WHERE environment_id = $1 AND name = $2")
                .bind(environment.to_string())
                .bind(name.as_str())
                .execute(pool)
                .await
                .map(|done| done.rows_affected())
        })
        .map(|rows| rows == 1)
        .map_err(StoreError::query("delete secret"))
    }
}
