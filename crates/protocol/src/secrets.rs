//! Environment secrets: named values (API keys for model providers, tokens for tools) that agents
//! and tools reference by name. Values are write-only over the API and encrypted at rest.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{EnvironmentId, SecretId};

/// A secret's name: an environment-variable name, `[A-Za-z_][A-Za-z0-9_]*`, at most 128 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, ToSchema, JsonSchema)]
#[serde(transparent)]
pub struct SecretName(String);

/// The text is not a valid secret name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not a valid secret name: use letters, digits and `_`, not starting with a digit, at most 128 characters"
)]
pub struct InvalidSecretName(pub String);

impl SecretName {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for SecretName {
    type Err = InvalidSecretName;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut bytes = text.bytes();
        let valid_start = bytes.next().is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
        if valid_start && text.len() <= 128 && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            Ok(Self(text.to_owned()))
        } else {
            Err(InvalidSecretName(text.to_owned()))
        }
    }
}

impl<'de> Deserialize<'de> for SecretName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// `PUT /v1/secrets/{name}`: creates the secret or replaces its value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecretRequest {
    /// The value, at most 64 KiB. Never returned by the API.
    pub value: String,
}

impl fmt::Debug for PutSecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PutSecretRequest").field("value", &"<redacted>").finish()
    }
}

impl PutSecretRequest {
    pub const MAX_VALUE_BYTES: usize = 64 * 1024;
}

/// A secret as listed: its name and times, never its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Secret {
    pub id: SecretId,
    pub name: SecretName,
    pub environment_id: EnvironmentId,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_environment_variable_rules() {
        for good in ["OPENAI_API_KEY", "_x", "a1"] {
            assert!(good.parse::<SecretName>().is_ok(), "{good}");
        }
        for bad in ["", "1ABC", "has-dash", "has space", "ÜBER", &"A".repeat(129)] {
            assert!(bad.parse::<SecretName>().is_err(), "{bad}");
        }
    }

    #[test]
    fn debug_never_shows_the_value() {
        let request = PutSecretRequest { value: "hunter2".into() };
        assert!(!format!("{request:?}").contains("hunter2"));
    }
}
