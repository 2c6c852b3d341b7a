//! Placeholder: this API's rendering is being written.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::{ErrorReply, Recorded, Turn};

pub(crate) fn turn(_request: &Recorded, _turn: &Turn) -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}

pub(crate) fn error(_request: &Recorded, _error: &ErrorReply) -> Response {
    StatusCode::NOT_IMPLEMENTED.into_response()
}
