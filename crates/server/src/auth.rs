//! Bearer-key authentication for every `/v1` route, and the [`Caller`] that handlers receive.
//!
//! Missing, malformed, unknown or revoked keys are 401; a valid key used on a route its kind may
//! not use is 403. Which environment a request acts in is decided by the key alone.

use axum::extract::{FromRequestParts, Request, State};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use runtools_protocol::{ApiKeyKind, EnvironmentId, ErrorCode, KeyId, WorkspaceId};
use runtools_store::{AuthError, AuthenticatedKey};

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated key behind a request.
#[derive(Debug, Clone)]
pub struct Caller(pub AuthenticatedKey);

impl Caller {
    pub fn key_id(&self) -> KeyId {
        self.0.key.id
    }

    pub fn workspace_id(&self) -> WorkspaceId {
        self.0.workspace_id()
    }

    /// The workspace, for routes only the admin key may use.
    pub fn require_admin(&self) -> Result<WorkspaceId, ApiError> {
        match self.0.kind() {
            ApiKeyKind::Admin => Ok(self.0.workspace_id()),
            kind => Err(ApiError::new(
                ErrorCode::PermissionDenied,
                format!(
                    "this route needs the workspace admin key (`rt_admin_…`); this is a {kind} key (`{}…`), which acts inside its environment only",
                    kind.prefix()
                ),
            )),
        }
    }

    /// The environment, for routes that act on one environment's resources.
    pub fn require_environment(&self) -> Result<EnvironmentId, ApiError> {
        self.0.environment_id().ok_or_else(|| {
            ApiError::new(
                ErrorCode::PermissionDenied,
                "admin keys manage keys and environments but own no environment's resources; \
                 use a `pk_test_…` (development) or `sk_live_…` (production) key",
            )
        })
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal(format!("route {} is not behind the authentication layer", parts.uri.path()))
        })
    }
}

/// Middleware: authenticates the request's bearer key and attaches the [`Caller`].
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let token = bearer_token(request.headers())?;
    let caller = caller_of(&state, &token).await?;
    tracing::Span::current().record("key_id", tracing::field::display(caller.key_id()));
    request.extensions_mut().insert(caller);
    Ok(next.run(request).await)
}

/// The caller when the request carries an `Authorization` header (which must then be valid), or
/// `None` for requests authorised another way (a sandbox access token).
pub(crate) async fn optional_caller(
    state: &AppState,
    headers: &axum::http::HeaderMap,
) -> Result<Option<Caller>, ApiError> {
    if !headers.contains_key(AUTHORIZATION) {
        return Ok(None);
    }
    let token = bearer_token(headers)?;
    caller_of(state, &token).await.map(Some)
}

fn bearer_token(headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
    let header = headers.get(AUTHORIZATION).ok_or_else(|| {
        ApiError::new(ErrorCode::MissingApiKey, "send your API key in an `Authorization: Bearer <key>` header")
    })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|value| value.strip_prefix("Bearer ").or_else(|| value.strip_prefix("bearer ")))
        .map(str::trim)
        .ok_or_else(|| ApiError::new(ErrorCode::MalformedApiKey, "the Authorization header must be `Bearer <key>`"))?;
    Ok(token.to_owned())
}

async fn caller_of(state: &AppState, token: &str) -> Result<Caller, ApiError> {
    ApiKeyKind::of_secret(token)
        .map_err(|problem| ApiError::new(ErrorCode::MalformedApiKey, format!("malformed API key: {problem}")))?;
    match state.store().authenticate(token).await {
        Ok(key) => Ok(Caller(key)),
        Err(AuthError::Unknown) => Err(ApiError::new(ErrorCode::InvalidApiKey, "unknown API key")),
        Err(AuthError::Revoked) => Err(ApiError::new(ErrorCode::RevokedApiKey, "this API key has been revoked")),
        Err(AuthError::Store(error)) => Err(ApiError::internal(error)),
    }
}
