//! `/v1/keys`: create, list, show and revoke API keys. Admin key only.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use runtools_protocol::{
    ApiKey, ApiKeyKind, CreateApiKeyRequest, CreatedApiKey, ErrorBody, ErrorCode, KeyId, ListParams, Page,
};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{PageRequest, page};
use crate::state::AppState;

const MAX_NAME_CHARS: usize = 100;

/// Creates a key for an environment. The response is the only time its secret is shown.
#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "keys",
    security(("api_key" = [])),
    request_body = CreateApiKeyRequest,
    responses(
        (status = 201, body = CreatedApiKey),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn create_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateApiKeyRequest>,
) -> Result<(StatusCode, Json<CreatedApiKey>), ApiError> {
    let workspace = caller.require_admin()?;
    let name = match request.name {
        Some(name) => {
            let name = name.trim().to_owned();
            if name.is_empty() || name.chars().count() > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("`name` must be 1–{MAX_NAME_CHARS} printable characters"),
                ));
            }
            name
        }
        None => request.environment.as_str().to_owned(),
    };
    let environment = state
        .store()
        .environment_by_kind(workspace, request.environment)
        .await?
        .ok_or_else(|| ApiError::internal(format!("workspace has no {} environment", request.environment)))?;
    let kind = ApiKeyKind::for_environment(request.environment);
    let (key, secret) = state.store().create_key(workspace, kind, Some(environment.id), &name).await?;
    tracing::info!(key_id = %key.id, environment = %request.environment, "API key created");
    Ok((StatusCode::CREATED, Json(CreatedApiKey { key, secret })))
}

/// Lists the workspace's keys (revoked ones included), oldest first.
#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "keys",
    security(("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, body = Page<ApiKey>),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn list_keys(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<ApiKey>>, ApiError> {
    let workspace = caller.require_admin()?;
    let request = PageRequest::<KeyId>::from_params("keys", params)?;
    let (keys, more) = state.store().list_keys(workspace, request.after, request.limit).await?;
    Ok(Json(page("keys", keys, more, |key| key.id)))
}

/// One key.
#[utoipa::path(
    get,
    path = "/v1/keys/{id}",
    tag = "keys",
    security(("api_key" = [])),
    params(("id" = KeyId, Path, description = "The key's id")),
    responses(
        (status = 200, body = ApiKey),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn get_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<Json<ApiKey>, ApiError> {
    let workspace = caller.require_admin()?;
    let key = state
        .store()
        .workspace_key(workspace, id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("API key {id}")))?;
    Ok(Json(key))
}

/// Revokes a key: it stops authenticating at once and stays listed with `revoked_at`. Revoking a
/// revoked key changes nothing. A key cannot revoke itself.
#[utoipa::path(
    delete,
    path = "/v1/keys/{id}",
    tag = "keys",
    security(("api_key" = [])),
    params(("id" = KeyId, Path, description = "The key's id")),
    responses(
        (status = 200, description = "The revoked key", body = ApiKey),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn revoke_key(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<KeyId>,
) -> Result<Json<ApiKey>, ApiError> {
    let workspace = caller.require_admin()?;
    if id == caller.key_id() {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "a key cannot revoke itself; revoke it with another admin key so the workspace is never left without one",
        ));
    }
    let key =
        state.store().revoke_key(workspace, id).await?.ok_or_else(|| ApiError::not_found(format!("API key {id}")))?;
    tracing::info!(key_id = %id, "API key revoked");
    Ok(Json(key))
}
