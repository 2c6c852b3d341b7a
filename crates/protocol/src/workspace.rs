//! The tenancy model: one workspace with two environments, `development` and `production`.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::{EnvironmentId, WorkspaceId};

/// Which of a workspace's two environments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum EnvironmentKind {
    /// Local iteration: hot reload, verbose logs, `pk_test_` keys.
    Development,
    /// Stable, deployed code: `sk_live_` keys.
    Production,
}

impl EnvironmentKind {
    pub const ALL: [EnvironmentKind; 2] = [Self::Development, Self::Production];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Development => "development",
            Self::Production => "production",
        }
    }
}

impl fmt::Display for EnvironmentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text is not `development` or `production`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown environment `{0}`: expected `development` or `production`")]
pub struct UnknownEnvironment(pub String);

impl FromStr for EnvironmentKind {
    type Err = UnknownEnvironment;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        match text {
            "development" => Ok(Self::Development),
            "production" => Ok(Self::Production),
            other => Err(UnknownEnvironment(other.to_owned())),
        }
    }
}

/// The installation's workspace.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: DateTime<Utc>,
}

/// One environment of the workspace. Resources (secrets, deployments, runs, runners…) belong to
/// exactly one environment and are invisible to the other environment's keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Environment {
    pub id: EnvironmentId,
    pub kind: EnvironmentKind,
    pub name: String,
    pub created_at: DateTime<Utc>,
}
