//! The outermost middleware: gives each request an id (`x-request-id`, every log line, every error
//! body), renders error bodies in the one standard shape, and records metrics by matched route.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use runtools_protocol::{ErrorBody, ErrorDetail, RequestId};
use tracing::Instrument;

use crate::error::{ErrorPayload, code_for_status};
use crate::state::AppState;

/// The header carrying the request id.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

/// The route template a request matched, carried out on the response for the metrics label.
#[derive(Debug, Clone)]
struct MatchedRoute(String);

/// Route-level middleware: copies the matched route template onto the response.
pub(crate) async fn record_route(request: Request, next: Next) -> Response {
    let route = request.extensions().get::<MatchedPath>().map(|path| path.as_str().to_owned());
    let mut response = next.run(request).await;
    if let Some(route) = route {
        response.extensions_mut().insert(MatchedRoute(route));
    }
    response
}

/// Outermost middleware; see the module docs.
pub(crate) async fn request_context(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = RequestId::new();
    let method = request.method().clone();
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %method,
        path = %request.uri().path(),
        key_id = tracing::field::Empty,
    );
    let started = Instant::now();
    state.metrics().request_started();
    let mut response = next.run(request).instrument(span.clone()).await;

    let payload = response.extensions_mut().remove::<ErrorPayload>();
    let status = response.status();
    if let Some(payload) = payload {
        response = render_error(response, payload, request_id);
    } else if (status.is_client_error() || status.is_server_error()) && !is_json(&response) {
        let payload = ErrorPayload { code: code_for_status(status), message: status_message(status) };
        response = render_error(response, payload, request_id);
    }
    if let Ok(value) = HeaderValue::from_str(&request_id.to_string()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }

    let elapsed = started.elapsed();
    let route = response.extensions().get::<MatchedRoute>().map_or("unmatched", |route| route.0.as_str());
    state.metrics().request_finished(method.as_str(), route, status.as_u16(), elapsed.as_secs_f64());
    span.in_scope(|| {
        let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
        if status.is_server_error() {
            tracing::warn!(status = status.as_u16(), elapsed_ms, "request failed");
        } else {
            tracing::debug!(status = status.as_u16(), elapsed_ms, "request finished");
        }
    });
    response
}

fn is_json(response: &Response) -> bool {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("application/json"))
}

fn status_message(status: StatusCode) -> String {
    status.canonical_reason().unwrap_or("error").to_lowercase()
}

fn render_error(response: Response, payload: ErrorPayload, request_id: RequestId) -> Response {
    // Keep the original status and headers (e.g. `Allow` on a 405); replace only the body.
    let (mut parts, _) = response.into_parts();
    let body = ErrorBody { error: ErrorDetail { code: payload.code, message: payload.message, request_id } };
    parts.headers.remove(CONTENT_LENGTH);
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            parts.headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            Response::from_parts(parts, Body::from(bytes))
        }
        Err(_) => Response::from_parts(parts, Body::empty()),
    }
}
