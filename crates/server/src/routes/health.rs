//! `/healthz`, `/readyz` and `/metrics`.

use axum::Json;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use runtools_protocol::ErrorCode;
use runtools_protocol::health::{Health, Ready};

use crate::error::ApiError;
use crate::state::AppState;

/// Liveness: the process is serving HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health", responses((status = 200, body = Health)))]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok".into(), version: env!("CARGO_PKG_VERSION").into() })
}

/// Readiness: the store answers and the node is not shutting down.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, body = Ready),
        (status = 503, description = "Shutting down, or the store does not answer", body = runtools_protocol::ErrorBody),
    )
)]
pub(super) async fn readyz(State(state): State<AppState>) -> Result<Json<Ready>, ApiError> {
    if state.is_shutting_down() {
        return Err(ApiError::new(ErrorCode::Unavailable, "the server is shutting down"));
    }
    state.store().ping().await.map_err(|error| {
        tracing::warn!(%error, "store is not answering");
        ApiError::new(ErrorCode::Unavailable, "the store is not answering")
    })?;
    Ok(Json(Ready { status: "ready".into(), store: state.store().engine().as_str().into() }))
}

/// Prometheus metrics of this node, in the text exposition format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((status = 200, description = "Metrics in the Prometheus/OpenMetrics text format", content_type = "text/plain"))
)]
pub(super) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let text = state.metrics().render().map_err(ApiError::internal)?;
    Ok(([(CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], text))
}
