//! Bodies of the unauthenticated probe routes `/healthz` and `/readyz`.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `GET /healthz`: the process is up and serving.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
    /// The server's version.
    pub version: String,
}

/// `GET /readyz`: the server can serve requests (its store answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct Ready {
    /// Always `ready` (a server that is not ready answers 503 with an error body).
    pub status: String,
    /// The store engine in use: `sqlite` or `postgres`.
    pub store: String,
}
