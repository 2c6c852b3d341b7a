//! API keys: their kinds and secret format, and the key-management request/response bodies.
//!
//! A key's secret is `<prefix><body>`: `rt_admin_` for the workspace admin key, `pk_test_` for a
//! development-environment key, `sk_live_` for a production one; the body is ≥128 random bits in
//! base58. The server stores only a hash; the secret is shown once, when the key is created.

use std::fmt;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{Environment, EnvironmentId, EnvironmentKind, KeyId, Workspace};

/// What a key may do: manage the workspace (`admin`), or act inside one environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApiKeyKind {
    /// `rt_admin_…`: manages keys and environments; owns no environment's resources.
    Admin,
    /// `pk_test_…`: acts in the development environment.
    Development,
    /// `sk_live_…`: acts in the production environment.
    Production,
}

/// Shortest and longest random body a well-formed key can have.
const BODY_LEN: std::ops::RangeInclusive<usize> = 22..=64;

impl ApiKeyKind {
    /// The secret's prefix for this kind.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Admin => "rt_admin_",
            Self::Development => "pk_test_",
            Self::Production => "sk_live_",
        }
    }

    /// The environment a key of this kind acts in (`None` for admin keys).
    pub fn environment(self) -> Option<EnvironmentKind> {
        match self {
            Self::Admin => None,
            Self::Development => Some(EnvironmentKind::Development),
            Self::Production => Some(EnvironmentKind::Production),
        }
    }

    /// The key kind for an environment.
    pub fn for_environment(environment: EnvironmentKind) -> Self {
        match environment {
            EnvironmentKind::Development => Self::Development,
            EnvironmentKind::Production => Self::Production,
        }
    }

    /// Checks a presented secret's shape and returns its kind. Says nothing about whether the key
    /// exists; that needs the store.
    ///
    /// ```
    /// use runtools_protocol::{ApiKeyKind, EnvironmentKind};
    ///
    /// let kind = ApiKeyKind::of_secret("pk_test_3mJr7AoUXx2Wqd8KpHvT9sLbNc4EfGh").unwrap();
    /// assert_eq!(kind.environment(), Some(EnvironmentKind::Development));
    /// assert!(ApiKeyKind::of_secret("sk_test_nope").is_err());
    /// ```
    pub fn of_secret(secret: &str) -> Result<Self, KeySecretError> {
        let kind = [Self::Admin, Self::Development, Self::Production]
            .into_iter()
            .find(|kind| secret.starts_with(kind.prefix()))
            .ok_or(KeySecretError::UnknownPrefix)?;
        let body = &secret[kind.prefix().len()..];
        if !BODY_LEN.contains(&body.len()) {
            return Err(KeySecretError::BadLength);
        }
        if !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(KeySecretError::BadCharacters);
        }
        Ok(kind)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for ApiKeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a bearer token is not shaped like a RunTools key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeySecretError {
    #[error("API keys start with `pk_test_`, `sk_live_` or `rt_admin_`")]
    UnknownPrefix,
    #[error("the API key has the wrong length")]
    BadLength,
    #[error("the API key contains characters that never appear in RunTools keys")]
    BadCharacters,
}

/// A key as listed: never its secret, only enough to recognise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ApiKey {
    pub id: KeyId,
    pub kind: ApiKeyKind,
    /// The environment the key acts in; `null` for admin keys.
    pub environment_id: Option<EnvironmentId>,
    /// A label chosen at creation.
    pub name: String,
    /// How to recognise the key: its prefix, an ellipsis and its last 4 characters, e.g. `pk_test_…a1B2`.
    pub redacted: String,
    pub created_at: DateTime<Utc>,
    /// Updated at most once a minute.
    pub last_used_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /v1/keys`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKeyRequest {
    /// The environment the new key acts in.
    pub environment: EnvironmentKind,
    /// A label, e.g. `ci` or `alice-laptop` (1–100 characters). Defaults to the environment name.
    #[serde(default)]
    pub name: Option<String>,
}

/// The response to `POST /v1/keys`: the only time the secret is ever shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct CreatedApiKey {
    #[serde(flatten)]
    pub key: ApiKey,
    /// The full secret. Store it now: the server keeps only its hash.
    pub secret: String,
}

/// `GET /v1/me`: who the presented key is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Whoami {
    pub workspace: Workspace,
    /// The key's environment; `null` for admin keys.
    pub environment: Option<Environment>,
    pub key: ApiKey,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn recognises_each_kind() {
        let body = "3mJr7AoUXx2Wqd8KpHvT9sLbNc4EfGh";
        assert_eq!(ApiKeyKind::of_secret(&format!("pk_test_{body}")), Ok(ApiKeyKind::Development));
        assert_eq!(ApiKeyKind::of_secret(&format!("sk_live_{body}")), Ok(ApiKeyKind::Production));
        assert_eq!(ApiKeyKind::of_secret(&format!("rt_admin_{body}")), Ok(ApiKeyKind::Admin));
    }

    #[test]
    fn rejects_malformed_tokens() {
        assert_eq!(ApiKeyKind::of_secret("Bearer x"), Err(KeySecretError::UnknownPrefix));
        assert_eq!(ApiKeyKind::of_secret("pk_test_short"), Err(KeySecretError::BadLength));
        assert_eq!(
            ApiKeyKind::of_secret("pk_test_3mJr7AoUXx2Wqd8KpHvT9sLbNc4EfG-"),
            Err(KeySecretError::BadCharacters)
        );
    }

    proptest! {
        #[test]
        fn of_secret_never_panics(token in "\\PC*") {
            let _ = ApiKeyKind::of_secret(&token);
        }
    }
}
