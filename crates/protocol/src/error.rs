//! The error body every API route returns on failure, and the stable error codes.
//!
//! Codes are part of the public contract: clients branch on `code`, humans read `message`, and
//! `request_id` finds the matching server log lines.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::RequestId;

/// `{"error": {"code", "message", "request_id"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, for programs (`code`) and for people (`message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema, JsonSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    pub request_id: RequestId,
}

/// Stable, snake_case error codes. New codes may be added; clients should treat an unknown code
/// by its HTTP status (it deserializes as [`ErrorCode::Unknown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not syntactically valid JSON.
    InvalidJson,
    /// The body is JSON but does not fit the route's schema (unknown field, wrong type, missing field).
    InvalidBody,
    /// A JSON body was sent without `Content-Type: application/json`.
    UnsupportedMediaType,
    /// The body is larger than the route accepts.
    PayloadTooLarge,
    /// A path segment is not a valid id of the expected kind.
    InvalidId,
    /// A query parameter is missing, unknown or of the wrong type.
    InvalidQuery,
    /// The pagination cursor is not one this server issued.
    InvalidCursor,
    /// The request is well-formed but a value is not acceptable (e.g. a name too long).
    InvalidRequest,
    /// No `Authorization: Bearer …` header was sent.
    MissingApiKey,
    /// The bearer token is not shaped like a RunTools key.
    MalformedApiKey,
    /// The key is well-formed but unknown.
    InvalidApiKey,
    /// The key was revoked.
    RevokedApiKey,
    /// The key is valid but may not use this route.
    PermissionDenied,
    /// The route or resource does not exist (or is not visible to this key).
    NotFound,
    /// The route exists but not with this method.
    MethodNotAllowed,
    /// The request conflicts with the resource's current state.
    Conflict,
    /// The server is shutting down, its store is unreachable, or a sandbox's agent does not answer.
    Unavailable,
    /// A disk (e.g. a sandbox's writable layer) is full.
    InsufficientStorage,
    /// Something failed on the server; the message is deliberately opaque, the logs have the detail.
    Internal,
    /// A code this client does not know yet.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// The HTTP status that goes with the code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidJson
            | Self::InvalidBody
            | Self::InvalidId
            | Self::InvalidQuery
            | Self::InvalidCursor
            | Self::InvalidRequest => 400,
            Self::MissingApiKey | Self::MalformedApiKey | Self::InvalidApiKey | Self::RevokedApiKey => 401,
            Self::PermissionDenied => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::Conflict => 409,
            Self::PayloadTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::Unavailable => 503,
            Self::InsufficientStorage => 507,
            Self::Internal | Self::Unknown => 500,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidJson => "invalid_json",
            Self::InvalidBody => "invalid_body",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::PayloadTooLarge => "payload_too_large",
            Self::InvalidId => "invalid_id",
            Self::InvalidQuery => "invalid_query",
            Self::InvalidCursor => "invalid_cursor",
            Self::InvalidRequest => "invalid_request",
            Self::MissingApiKey => "missing_api_key",
            Self::MalformedApiKey => "malformed_api_key",
            Self::InvalidApiKey => "invalid_api_key",
            Self::RevokedApiKey => "revoked_api_key",
            Self::PermissionDenied => "permission_denied",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::Conflict => "conflict",
            Self::Unavailable => "unavailable",
            Self::InsufficientStorage => "insufficient_storage",
            Self::Internal => "internal",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde() {
        for code in [
            ErrorCode::InvalidJson,
            ErrorCode::PayloadTooLarge,
            ErrorCode::RevokedApiKey,
            ErrorCode::PermissionDenied,
            ErrorCode::Internal,
        ] {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }

    #[test]
    fn unknown_codes_deserialize_as_unknown() {
        let code: ErrorCode = serde_json::from_str("\"brand_new_code\"").unwrap();
        assert_eq!(code, ErrorCode::Unknown);
    }
}
