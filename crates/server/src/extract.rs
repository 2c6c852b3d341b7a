//! Extractors that turn every malformed input into an [`ApiError`] naming the problem: a JSON body
//! (`ApiJson`), path parameters (`ApiPath`) and query strings (`ApiQuery`). Handlers use these
//! instead of axum's own, whose rejections are plain text.

use axum::body::Bytes;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use runtools_protocol::ErrorCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// A JSON request body. Unknown fields are refused by the body types themselves
/// (`deny_unknown_fields`).
#[derive(Debug)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !has_json_content_type(request.headers()) {
            return Err(ApiError::new(
                ErrorCode::UnsupportedMediaType,
                "send the request body as JSON with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(request, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than this route accepts")
            } else {
                ApiError::new(
                    ErrorCode::InvalidRequest,
                    format!("cannot read the request body: {}", rejection.body_text()),
                )
            }
        })?;
        parse_json(&bytes).map(Self)
    }
}

/// Parses a body, telling "not JSON at all" (`invalid_json`) from "JSON of the wrong shape"
/// (`invalid_body`, with the path of the offending field).
fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(bytes).is_err() {
            ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {}", error.inner()))
        } else {
            let at = match error.path().to_string().as_str() {
                "." | "" => String::new(),
                path => format!(" (at `{path}`)"),
            };
            ApiError::new(
                ErrorCode::InvalidBody,
                format!("the request body does not match the expected shape: {}{at}", error.inner()),
            )
        }
    })?;
    deserializer.end().map_err(|error| {
        ApiError::new(ErrorCode::InvalidJson, format!("the request body is not valid JSON: {error}"))
    })?;
    Ok(value)
}

fn has_json_content_type(headers: &axum::http::HeaderMap) -> bool {
    let Some(value) = headers.get(CONTENT_TYPE).and_then(|value| value.to_str().ok()) else { return false };
    let mime = value.split(';').next().unwrap_or_default().trim();
    mime.eq_ignore_ascii_case("application/json")
        || mime.rsplit_once('+').is_some_and(|(_, suffix)| suffix.eq_ignore_ascii_case("json"))
}

/// The innermost cause of an extractor error: serde's own message, which names the field, the
/// expected type and the position.
fn source_text(error: &dyn std::error::Error) -> String {
    let mut current = error;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

/// Path parameters. An id of the wrong kind or shape is `invalid_id`.
#[derive(Debug)]
pub struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(Self(value)),
            Err(PathRejection::FailedToDeserializePathParams(error)) => {
                Err(ApiError::new(ErrorCode::InvalidId, error.into_kind().to_string()))
            }
            Err(other) => Err(ApiError::internal(other.body_text())),
        }
    }
}

/// A query string. Unknown or mistyped parameters are `invalid_query`.
#[derive(Debug)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(value)) => Ok(Self(value)),
            Err(QueryRejection::FailedToDeserializeQueryString(error)) => {
                Err(ApiError::new(ErrorCode::InvalidQuery, format!("invalid query string: {}", source_text(&error))))
            }
            Err(other) => Err(ApiError::new(ErrorCode::InvalidQuery, other.body_text())),
        }
    }
}
