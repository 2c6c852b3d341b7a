//! `ApiError`, the one error type every handler returns, and its rendering as
//! `{"error": {"code", "message", "request_id"}}`.
//!
//! A handler's error becomes a response carrying an [`ErrorPayload`] extension and no body yet;
//! the request-context middleware, which knows the request id, renders the JSON body. That way
//! every error — from a handler, an extractor, a panic or an unmatched route — has the same shape.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use runtools_protocol::ErrorCode;

/// A request failed. Client mistakes carry a message meant for the caller; internal failures carry
/// a detail that is logged and never sent.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

/// The error a response carries until the middleware renders it.
#[derive(Debug, Clone)]
pub(crate) struct ErrorPayload {
    pub code: ErrorCode,
    pub message: String,
}

impl ApiError {
    /// A client-facing error with the given code and message.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self { code, message: message.into() }
    }

    /// An internal failure. `detail` is logged with the request id; the caller sees only
    /// "internal error".
    pub fn internal(detail: impl std::fmt::Display) -> Self {
        tracing::error!(error = %detail, "internal error");
        Self::new(ErrorCode::Internal, "internal error; quote the request id when reporting it")
    }

    pub fn not_found(what: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NotFound, format!("{what} not found"))
    }

    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut response = status.into_response();
        response.extensions_mut().insert(ErrorPayload { code: self.code, message: self.message });
        response
    }
}

impl From<runtools_store::StoreError> for ApiError {
    fn from(error: runtools_store::StoreError) -> Self {
        Self::internal(error)
    }
}

/// The code to report for an error response that did not come from an [`ApiError`] (a status
/// produced by a lower layer), so even those have the standard body.
pub(crate) fn code_for_status(status: StatusCode) -> ErrorCode {
    match status {
        StatusCode::BAD_REQUEST => ErrorCode::InvalidRequest,
        StatusCode::UNAUTHORIZED => ErrorCode::MissingApiKey,
        StatusCode::FORBIDDEN => ErrorCode::PermissionDenied,
        StatusCode::NOT_FOUND => ErrorCode::NotFound,
        StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
        StatusCode::CONFLICT => ErrorCode::Conflict,
        StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
        StatusCode::SERVICE_UNAVAILABLE => ErrorCode::Unavailable,
        status if status.is_client_error() => ErrorCode::InvalidRequest,
        _ => ErrorCode::Internal,
    }
}
