//! Extractors that turn every malformed input into an [`ApiError`] naming the problem: a JSON body
//! (`ApiJson`), path parameters (`ApiPath`) and query strings (`ApiQuery`). Handlers use these
//! instead of axum's own, whose rejections are plain text.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Json, Path, Query, Request};
use axum::http::StatusCode;
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
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    match rejection {
        JsonRejection::JsonSyntaxError(error) => ApiError::new(
            ErrorCode::InvalidJson,
            format!("the request body is not valid JSON: {}", source_text(&error)),
        ),
        JsonRejection::JsonDataError(error) => ApiError::new(
            ErrorCode::InvalidBody,
            format!("the request body does not match the expected shape: {}", source_text(&error)),
        ),
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            ErrorCode::UnsupportedMediaType,
            "send the request body as JSON with `Content-Type: application/json`",
        ),
        JsonRejection::BytesRejection(error) if error.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::new(ErrorCode::PayloadTooLarge, "the request body is larger than this route accepts")
        }
        other => {
            ApiError::new(ErrorCode::InvalidRequest, format!("cannot read the request body: {}", other.body_text()))
        }
    }
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
