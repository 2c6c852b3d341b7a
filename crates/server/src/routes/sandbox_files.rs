//! `/v1/sandboxes/{id}/files…`: a sandbox's filesystem over HTTP, streamed both ways so large files
//! never sit in the server's memory. Paths are absolute paths inside the sandbox; one that escapes
//! it is refused by envd.

use axum::Json;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::response::Response;
use futures::TryStreamExt;
use runtools_envd::WriteOptions;
use runtools_protocol::envd::FileEntry;
use runtools_protocol::sandbox::{MkdirRequest, MoveRequest};
use runtools_protocol::{ErrorBody, SandboxId};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::sandboxes::envd_error;
use crate::state::AppState;

/// `?path=` and friends.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct PathQuery {
    /// Absolute path inside the sandbox.
    path: String,
    /// For list: how deep to go (default 1).
    #[serde(default)]
    depth: Option<u32>,
    /// For delete: remove directories with their contents.
    #[serde(default)]
    recursive: bool,
    /// For upload: create missing parent directories.
    #[serde(default)]
    create_parents: bool,
    /// For upload: append instead of replacing.
    #[serde(default)]
    append: bool,
    /// For download: start at this byte.
    #[serde(default)]
    offset: Option<u64>,
    /// For download: at most this many bytes.
    #[serde(default)]
    length: Option<u64>,
}

async fn envd_of(state: &AppState, caller: &Caller, id: SandboxId) -> Result<runtools_envd::EnvdClient, ApiError> {
    let environment = caller.require_environment()?;
    let service = state.sandboxes()?;
    let record = service.get(environment, id).await?;
    service.envd(&record).await
}

/// Downloads a file (streamed).
#[utoipa::path(
    get,
    path = "/v1/sandboxes/{id}/files",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path), PathQuery),
    responses((status = 200, description = "The file's bytes", content_type = "application/octet-stream"), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn download_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> Result<Response, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    let (entry, reader) = envd.read(&query.path, query.offset, query.length).await.map_err(|e| envd_error(id, e))?;
    // Stream chunks as envd sends them; after an error the stream ends.
    let chunks = futures::stream::unfold(Some(reader), |reader| async move {
        let mut reader = reader?;
        match reader.chunk().await {
            Ok(Some(chunk)) => Some((Ok(chunk), Some(reader))),
            Ok(None) => None,
            Err(error) => Some((Err(std::io::Error::other(error.to_string())), None)),
        }
    });
    let body = Body::from_stream(chunks);
    let length = match (query.offset, query.length) {
        (None, None) => Some(entry.size),
        _ => None,
    };
    let mut response = Response::builder().status(StatusCode::OK).header(CONTENT_TYPE, "application/octet-stream");
    if let Some(length) = length {
        response = response.header(CONTENT_LENGTH, length);
    }
    response.body(body).map_err(ApiError::internal)
}

/// Uploads a file (the request body, streamed; any size). Replaces the file atomically unless
/// `append` is set.
#[utoipa::path(
    put,
    path = "/v1/sandboxes/{id}/files",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path), PathQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 200, description = "The written file", body = FileEntry), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn upload_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiQuery(query): ApiQuery<PathQuery>,
    request: Request,
) -> Result<Json<FileEntry>, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    let stream = request.into_body().into_data_stream().map_err(std::io::Error::other);
    let reader = tokio_util::io::StreamReader::new(stream);
    let options = WriteOptions { mode: None, create_parents: query.create_parents, append: query.append };
    envd.write(&query.path, options, reader).await.map_err(|e| envd_error(id, e))?;
    Ok(Json(envd.stat(&query.path).await.map_err(|e| envd_error(id, e))?))
}

/// Deletes a file or (with `recursive`) a directory tree.
#[utoipa::path(
    delete,
    path = "/v1/sandboxes/{id}/files",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path), PathQuery),
    responses((status = 204, description = "Removed"), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn remove_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> Result<StatusCode, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    envd.remove(&query.path, query.recursive).await.map_err(|e| envd_error(id, e))?;
    Ok(StatusCode::NO_CONTENT)
}

/// A file's or directory's metadata.
#[utoipa::path(
    get,
    path = "/v1/sandboxes/{id}/files/stat",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path), PathQuery),
    responses((status = 200, body = FileEntry), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn stat_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> Result<Json<FileEntry>, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    Ok(Json(envd.stat(&query.path).await.map_err(|e| envd_error(id, e))?))
}

/// A directory's entries.
#[utoipa::path(
    get,
    path = "/v1/sandboxes/{id}/files/list",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path), PathQuery),
    responses((status = 200, body = Vec<FileEntry>), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn list_files(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiQuery(query): ApiQuery<PathQuery>,
) -> Result<Json<Vec<FileEntry>>, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    Ok(Json(envd.list(&query.path, query.depth).await.map_err(|e| envd_error(id, e))?))
}

/// Creates a directory.
#[utoipa::path(
    post,
    path = "/v1/sandboxes/{id}/files/mkdir",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    request_body = MkdirRequest,
    responses((status = 200, body = FileEntry), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn make_directory(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiJson(request): ApiJson<MkdirRequest>,
) -> Result<Json<FileEntry>, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    envd.mkdir(&request.path, request.parents).await.map_err(|e| envd_error(id, e))?;
    Ok(Json(envd.stat(&request.path).await.map_err(|e| envd_error(id, e))?))
}

/// Moves or renames a file or directory.
#[utoipa::path(
    post,
    path = "/v1/sandboxes/{id}/files/move",
    tag = "files",
    security(("api_key" = [])),
    params(("id" = SandboxId, Path)),
    request_body = MoveRequest,
    responses((status = 200, body = FileEntry), (status = "4XX", description = "See `error.code`", body = ErrorBody))
)]
pub(super) async fn move_file(
    State(state): State<AppState>,
    caller: Caller,
    ApiPath(id): ApiPath<SandboxId>,
    ApiJson(request): ApiJson<MoveRequest>,
) -> Result<Json<FileEntry>, ApiError> {
    let envd = envd_of(&state, &caller, id).await?;
    envd.rename(&request.from, &request.to).await.map_err(|e| envd_error(id, e))?;
    Ok(Json(envd.stat(&request.to).await.map_err(|e| envd_error(id, e))?))
}
