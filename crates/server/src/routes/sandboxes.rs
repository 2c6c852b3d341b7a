//! `/v1/sandboxes`: create, list, inspect, pause, resume, extend and delete sandboxes, and run a
//! command to completion. Environment keys only; a sandbox belongs to the key's environment.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use runtools_protocol::sandbox::{
    CreateSandboxRequest, ExecRequest, ExecResult, Sandbox, SandboxState, SetTimeoutRequest, Volume,
};
use runtools_protocol::{ErrorBody, ErrorCode, ListParams, Page, SandboxId};
use runtools_store::SandboxFilter;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{PageRequest, page};
use crate::state::AppState;

/// Creates a sandbox from a template and returns it running.
#[utoipa::path(
    post,
    path = "/v1/sandboxes",
    tag = "sandboxes",
    security(("api_key" = [])),
    request_body = CreateSandboxRequest,
    responses(
        (status = 201, body = Sandbox),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
        (status = 503, description = "Sandboxes are not available on this server", body = ErrorBody),
    )
)]
pub(super) async fn create_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(request): ApiJson<CreateSandboxRequest>,
) -> Result<(StatusCode, Json<Sandbox>), ApiError> {
    let environment = caller.require_environment()?;
    let record = state.sandboxes()?.create(environment, request).await?;
    Ok((StatusCode::CREATED, Json(record.to_api())))
}

/// Lists the environment's sandboxes (all but stopped ones unless `state` says otherwise).
/// Filter with `state=`, `template=` and `metadata.<key>=<value>` (repeatable; all must match).
#[utoipa::path(
    get,
    path = "/v1/sandboxes",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(
        ListParams,
        ("state" = Option<SandboxState>, Query, description = "Only sandboxes in this state"),
        ("template" = Option<String>, Query, description = "Only sandboxes of this template"),
        ("metadata.<key>" = Option<String>, Query, description = "Only sandboxes with this metadata value"),
    ),
    responses(
        (status = 200, body = Page<Sandbox>),
        (status = "4XX", description = "See `error.code`", body = ErrorBody),
    )
)]
pub(super) async fn list_sandboxes(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<Page<Sandbox>>, ApiError> {
    let environment = caller.require_environment()?;
    let (params, filter) = parse_list_query(query.as_deref().unwrap_or_default())?;
    let request = PageRequest::<SandboxId>::from_params("sandboxes", params)?;
    let (records, more) = state.sandboxes()?.list(environment, &filter, request.after, request.limit).await?;
    let sandboxes = records.iter().map(|record| record.to_api()).collect();
    Ok(Json(page("sandboxes", sandboxes, more, |sandbox: &Sandbox| sandbox.id)))
}

fn parse_list_query(query: &str) -> Result<(ListParams, SandboxFilter), ApiError> {
    let mut params = ListParams::default();
    let mut filter = SandboxFilter::default();
    let mut metadata = BTreeMap::new();
    for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
        let invalid = |what: &str| ApiError::new(ErrorCode::InvalidQuery, format!("invalid query string: {what}"));
        match key.as_ref() {
            "limit" => {
                params.limit =
                    Some(value.parse().map_err(|_| invalid(&format!("`limit` must be a number, got `{value}`")))?)
            }
            "cursor" => params.cursor = Some(value.into_owned()),
            "state" => filter.state = Some(value.parse().map_err(|e: String| invalid(&e))?),
            "template" => filter.template = Some(value.into_owned()),
            other => match other.strip_prefix("metadata.") {
                Some(name) if !name.is_empty() => {
                    metadata.insert(name.to_owned(), value.into_owned());
                }
                _ => {
                    return Err(invalid(&format!(
                        "unknown parameter `{other}`; use limit, cursor, state, template or metadata.<key>"
                    )));
                }
            },
        }
    }
    filter.metadata = metadata;
    Ok((params, filter))
}

/// One sandbox.
#[utoipa::path(
    get,
    path = "/v1/sandboxes/{id}",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    responses((status = 200, body = Sandbox), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn get_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
) -> Result<Json<Sandbox>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(state.sandboxes()?.get(environment, id).await?.to_api()))
}

/// Deletes a sandbox: kills its processes and removes its writable layer. Volumes stay.
#[utoipa::path(
    delete,
    path = "/v1/sandboxes/{id}",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    responses((status = 200, description = "The stopped sandbox", body = Sandbox), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn delete_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
) -> Result<Json<Sandbox>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(state.sandboxes()?.delete(environment, id).await?.to_api()))
}

/// Pauses every process of the sandbox, keeping all state; a paused sandbox uses no CPU.
#[utoipa::path(
    post,
    path = "/v1/sandboxes/{id}/pause",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    responses((status = 200, body = Sandbox), (status = 409, description = "Not running", body = ErrorBody), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn pause_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
) -> Result<Json<Sandbox>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(state.sandboxes()?.pause(environment, id).await?.to_api()))
}

/// Resumes a paused sandbox; its lifetime starts again.
#[utoipa::path(
    post,
    path = "/v1/sandboxes/{id}/resume",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    responses((status = 200, body = Sandbox), (status = 409, description = "Not paused", body = ErrorBody), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn resume_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
) -> Result<Json<Sandbox>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(state.sandboxes()?.resume(environment, id).await?.to_api()))
}

/// Sets the sandbox's remaining lifetime (a keep-alive).
#[utoipa::path(
    post,
    path = "/v1/sandboxes/{id}/timeout",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    request_body = SetTimeoutRequest,
    responses((status = 200, body = Sandbox), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn set_sandbox_timeout(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiJson(request): ApiJson<SetTimeoutRequest>,
) -> Result<Json<Sandbox>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(state.sandboxes()?.set_timeout(environment, id, request.timeout_secs).await?.to_api()))
}

/// Runs a command to completion: `{"cmd": "…"}` (through `/bin/sh -c`) or `{"argv": […]}`.
#[utoipa::path(
    post,
    path = "/v1/sandboxes/{id}/exec",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    request_body = ExecRequest,
    responses((status = 200, body = ExecResult), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn exec_in_sandbox(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiJson(request): ApiJson<ExecRequest>,
) -> Result<Json<ExecResult>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(state.sandboxes()?.exec(environment, id, request).await?))
}

/// The environment's volumes.
#[utoipa::path(
    get,
    path = "/v1/volumes",
    tag = "sandboxes",
    security(("api_key" = [])),
    responses((status = 200, body = Page<Volume>), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn list_volumes(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<Page<Volume>>, ApiError> {
    let environment = caller.require_environment()?;
    Ok(Json(Page { data: state.store().list_volumes(environment).await?, next_cursor: None }))
}

/// Deletes a volume and its files (refused while a sandbox that is not stopped mounts it).
#[utoipa::path(
    delete,
    path = "/v1/volumes/{name}",
    tag = "sandboxes",
    security(("api_key" = [])),
    params(("name" = String, Path)),
    responses((status = 204, description = "Deleted"), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn delete_volume(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(name): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let environment = caller.require_environment()?;
    state.sandboxes()?.delete_volume(environment, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}
