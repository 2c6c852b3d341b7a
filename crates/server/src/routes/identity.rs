//! `GET /v1/me` and `GET /v1/environments`: who the key is and where it may act.

use axum::Json;
use axum::extract::State;
use runtools_protocol::{ApiKeyKind, Environment, ErrorBody, Page, Whoami};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// The presented key, its workspace and (for environment keys) its environment.
#[utoipa::path(
    get,
    path = "/v1/me",
    tag = "identity",
    security(("api_key" = [])),
    responses(
        (status = 200, body = Whoami),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn me(caller: Caller) -> Json<Whoami> {
    let Caller(authenticated) = caller;
    Json(Whoami { workspace: authenticated.workspace, environment: authenticated.environment, key: authenticated.key })
}

/// The environments this key can see: both for the admin key, its own for an environment key.
#[utoipa::path(
    get,
    path = "/v1/environments",
    tag = "identity",
    security(("api_key" = [])),
    responses(
        (status = 200, body = Page<Environment>),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn environments(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Page<Environment>>, ApiError> {
    let all = state.store().environments(caller.workspace_id()).await?;
    let visible = match caller.0.kind() {
        ApiKeyKind::Admin => all,
        _ => all.into_iter().filter(|env| Some(env.id) == caller.0.environment_id()).collect(),
    };
    Ok(Json(Page { data: visible, next_cursor: None }))
}
