//! RunTools wire types — the one place every request, response, id, error code and event shape is
//! defined. Everything that crosses a process boundary (HTTP API, WebSockets, runner protocol) is
//! declared here so the server, the CLI, runners and SDK generators agree by construction.
//!
//! This crate is deliberately free of runtime dependencies (no tokio, axum or sqlx): only serde for
//! the wire format, `schemars` for JSON Schema and `utoipa` for OpenAPI descriptions.

pub mod agent;
pub mod envd;
pub mod error;
pub mod event;
pub mod health;
pub mod ids;
pub mod keys;
pub mod pagination;
pub mod sandbox;
pub mod secrets;
pub mod workspace;

pub use error::{ErrorBody, ErrorCode, ErrorDetail};
pub use event::EventEnvelope;
pub use ids::{
    EnvironmentId, EventId, IdParseError, KeyId, RequestId, RunId, SandboxId, SecretId, VolumeId, WorkspaceId,
};
pub use keys::{ApiKey, ApiKeyKind, CreateApiKeyRequest, CreatedApiKey, KeySecretError, Whoami};
pub use pagination::{ListParams, Page};
pub use secrets::{PutSecretRequest, Secret, SecretName};
pub use workspace::{Environment, EnvironmentKind, Workspace};

/// The version of this API and wire format, reported by `/healthz` and the runner handshake.
pub const API_VERSION: &str = "v1";
