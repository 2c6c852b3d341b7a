//! `/v1/secrets`: an environment's secrets. Values go in, never come out over the API.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use runtools_protocol::{ErrorBody, ErrorCode, ListParams, Page, PutSecretRequest, Secret, SecretId, SecretName};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::pagination::{PageRequest, page};
use crate::state::AppState;

/// Lists the environment's secrets (names and times only), oldest first.
#[utoipa::path(
    get,
    path = "/v1/secrets",
    tag = "secrets",
    security(("api_key" = [])),
    params(ListParams),
    responses(
        (status = 200, body = Page<Secret>),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn list_secrets(
    State(state): State<AppState>,
    caller: Caller,
    ApiQuery(params): ApiQuery<ListParams>,
) -> Result<Json<Page<Secret>>, ApiError> {
    let environment = caller.require_environment()?;
    let request = PageRequest::<SecretId>::from_params("secrets", params)?;
    let (secrets, more) = state.store().list_secrets(environment, request.after, request.limit).await?;
    Ok(Json(page("secrets", secrets, more, |secret| secret.id)))
}

/// Creates a secret or replaces its value.
#[utoipa::path(
    put,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    security(("api_key" = [])),
    params(("name" = SecretName, Path, description = "The secret's name, e.g. `OPENAI_API_KEY`")),
    request_body = PutSecretRequest,
    responses(
        (status = 200, body = Secret),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn put_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<SecretName>,
    ApiJson(request): ApiJson<PutSecretRequest>,
) -> Result<Json<Secret>, ApiError> {
    let environment = caller.require_environment()?;
    if request.value.len() > PutSecretRequest::MAX_VALUE_BYTES {
        return Err(ApiError::new(
            ErrorCode::InvalidRequest,
            format!("a secret's value may be at most {} bytes", PutSecretRequest::MAX_VALUE_BYTES),
        ));
    }
    let secret = state.store().put_secret(environment, &name, &request.value).await?;
    tracing::info!(secret = %name, "secret stored");
    Ok(Json(secret))
}

/// A secret's metadata.
#[utoipa::path(
    get,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    security(("api_key" = [])),
    params(("name" = SecretName, Path, description = "The secret's name")),
    responses(
        (status = 200, body = Secret),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn get_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<SecretName>,
) -> Result<Json<Secret>, ApiError> {
    let environment = caller.require_environment()?;
    let secret = state
        .store()
        .secret(environment, &name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("secret `{name}`")))?;
    Ok(Json(secret))
}

/// Deletes a secret.
#[utoipa::path(
    delete,
    path = "/v1/secrets/{name}",
    tag = "secrets",
    security(("api_key" = [])),
    params(("name" = SecretName, Path, description = "The secret's name")),
    responses(
        (status = 204, description = "Deleted"),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn delete_secret(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<SecretName>,
) -> Result<StatusCode, ApiError> {
    let environment = caller.require_environment()?;
    if state.store().delete_secret(environment, &name).await? {
        tracing::info!(secret = %name, "secret deleted");
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("secret `{name}`")))
    }
}
