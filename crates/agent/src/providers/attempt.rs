//! One streamed model call as every adapter makes it: the body encoded once, then per attempt
//! (retried by [`retrying`]) the request sent with the provider's headers and the body, the whole
//! exchange bounded by `request_timeout`, a non-2xx answer turned into a [`ModelError`] by the
//! provider's error-body parser, and the server-sent events read into a [`StreamParser`] whose
//! deltas reach the caller through an [`Emitter`]; an error after any delta went out is marked
//! `partial`, so it is not retried. What differs between providers is an [`Exchange`].

use std::sync::{Mutex, PoisonError};

use eventsource_stream::{Event, EventStreamError, Eventsource};
use futures::StreamExt;
use http::HeaderMap;
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::model::{Delta, DeltaSink, ModelError, ModelErrorKind, ModelRequest, ModelResponse};
use crate::providers::http::{retrying, transport_error};
use crate::providers::{ApiKey, ProviderSettings};

/// Whether a stream goes on after an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    /// The terminal event arrived; anything after it is ignored.
    Done,
}

/// Turns one attempt's SSE events into deltas and, at the end, the consolidated response.
pub(crate) trait StreamParser: Send {
    /// Handles one event, pushing deltas through `emit`.
    fn event(&mut self, event: &Event, emit: &mut Emitter<'_, '_>) -> Result<Flow, ModelError>;

    /// The stream is over (after [`Flow::Done`] or when the body ended).
    fn finish(self) -> Result<ModelResponse, ModelError>;
}

/// What one provider's streamed call adds to the shared machinery.
pub(crate) trait Exchange: Sync {
    type Parser: StreamParser;

    /// The POST with its URL, key and protocol headers; the body is added per attempt.
    fn request(&self) -> Result<reqwest::RequestBuilder, ModelError>;

    /// A non-2xx answer as the provider's error, from its status, headers and body text.
    fn error(&self, status: u16, headers: &HeaderMap, body: &str) -> ModelError;

    /// Refuses a 2xx answer that cannot be the event stream; by default every one is read.
    fn check(&self, _response: &reqwest::Response) -> Result<(), ModelError> {
        Ok(())
    }

    /// A fresh parser for one attempt.
    fn parser(&self) -> Self::Parser;
}

/// Forwards deltas to the caller's sink and remembers whether this attempt sent any.
pub(crate) struct Emitter<'m, 's> {
    sink: &'m Mutex<DeltaSink<'s>>,
    sent: bool,
}

impl<'m, 's> Emitter<'m, 's> {
    fn new(sink: &'m Mutex<DeltaSink<'s>>) -> Self {
        Self { sink, sent: false }
    }

    pub(crate) fn emit(&mut self, delta: Delta) {
        self.sent = true;
        let mut sink = self.sink.lock().unwrap_or_else(PoisonError::into_inner);
        (*sink)(delta);
    }
}

/// Streams `request` (sent as `body`) through `exchange`, retried per `settings.retry`; `label`
/// names the call in debug logs (`anthropic messages`).
pub(crate) async fn stream_call(
    settings: &ProviderSettings,
    label: &'static str,
    request: &ModelRequest,
    body: Value,
    sink: DeltaSink<'_>,
    exchange: &impl Exchange,
) -> Result<ModelResponse, ModelError> {
    let provider = settings.name;
    let encoded = serde_json::to_vec(&body).map_err(|error| {
        ModelError::new(provider, ModelErrorKind::InvalidRequest, format!("cannot encode the request: {error}"))
    });
    // The JSON tree is many times the size of its text: free it before the call is in flight.
    drop(body);
    let body = bytes::Bytes::from(encoded?);
    tracing::debug!(
        provider,
        model = %request.model,
        messages = request.messages.len(),
        tools = request.tools.len(),
        "{label} call"
    );
    let sink = Mutex::new(sink);
    let response = retrying(&settings.retry, |_| attempt(settings, exchange, &body, &sink)).await?;
    tracing::debug!(
        provider,
        model = %response.model,
        stop_reason = ?response.stop_reason,
        input_tokens = response.usage.input_tokens,
        output_tokens = response.usage.output_tokens,
        "{label} call finished"
    );
    Ok(response)
}

/// One try: the timeout covers sending and reading the whole stream. An error after deltas
/// reached the sink is marked `partial`, so it is not retried.
async fn attempt(
    settings: &ProviderSettings,
    exchange: &impl Exchange,
    body: &bytes::Bytes,
    sink: &Mutex<DeltaSink<'_>>,
) -> Result<ModelResponse, ModelError> {
    let mut emitter = Emitter::new(sink);
    let timeout = settings.request_timeout;
    let call = exchange_once(settings.name, exchange, body, &mut emitter);
    let result = tokio::time::timeout(timeout, call).await.unwrap_or_else(|_| {
        Err(ModelError::new(
            settings.name,
            ModelErrorKind::Transport,
            format!("no complete answer within {}s", timeout.as_secs_f64()),
        ))
    });
    result.map_err(|mut error| {
        error.partial |= emitter.sent;
        error
    })
}

async fn exchange_once<X: Exchange>(
    provider: &'static str,
    exchange: &X,
    body: &bytes::Bytes,
    emitter: &mut Emitter<'_, '_>,
) -> Result<ModelResponse, ModelError> {
    let response =
        exchange.request()?.body(body.clone()).send().await.map_err(|error| transport_error(provider, &error))?;
    let status = response.status();
    if !status.is_success() {
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        return Err(exchange.error(status.as_u16(), &headers, &text));
    }
    exchange.check(&response)?;
    let mut parser = exchange.parser();
    let mut events = response.bytes_stream().eventsource();
    while let Some(event) = events.next().await {
        let event = event.map_err(|error| match error {
            EventStreamError::Transport(error) => transport_error(provider, &error),
            EventStreamError::Utf8(error) => {
                ModelError::protocol(provider, format!("the stream is not UTF-8: {error}"))
            }
            EventStreamError::Parser(error) => {
                ModelError::protocol(provider, format!("malformed event stream: {error}"))
            }
        })?;
        if parser.event(&event, emitter)? == Flow::Done {
            break;
        }
    }
    parser.finish()
}

/// A POST to `url` asking for an event stream, with the key in the `key_header` header (marked
/// sensitive), the protocol's own `headers`, and then `settings.headers`, which replace
/// same-named defaults. A key or extra header HTTP does not allow is a configuration mistake, not
/// a network failure to retry.
pub(crate) fn keyed_post(
    settings: &ProviderSettings,
    http: &reqwest::Client,
    url: String,
    key_header: &'static str,
    headers: &[(&'static str, &'static str)],
) -> Result<reqwest::RequestBuilder, ModelError> {
    let provider = settings.name;
    let mut builder = http.post(url).header("content-type", "application/json").header("accept", "text/event-stream");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    if let Some(key) = &settings.api_key {
        builder = builder.header(key_header, secret(provider, key_header, key)?);
    }
    Ok(builder.headers(extra_headers(provider, &settings.headers)?))
}

/// The key as the value of `key_header`: `Bearer <key>` for `authorization`, the key itself for
/// providers' own key headers (`x-api-key`, `x-goog-api-key`).
fn secret(provider: &'static str, key_header: &str, key: &ApiKey) -> Result<HeaderValue, ModelError> {
    let text = if key_header.eq_ignore_ascii_case("authorization") {
        format!("Bearer {}", key.expose())
    } else {
        key.expose().to_owned()
    };
    let mut value = HeaderValue::from_str(&text).map_err(|_| {
        ModelError::new(provider, ModelErrorKind::Authentication, "the API key is not a valid header value")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn extra_headers(provider: &'static str, headers: &[(String, String)]) -> Result<HeaderMap, ModelError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let invalid = || {
            ModelError::new(
                provider,
                ModelErrorKind::InvalidRequest,
                format!("the extra header `{name}` is not valid HTTP"),
            )
        };
        let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
        let value = HeaderValue::from_str(value).map_err(|_| invalid())?;
        map.append(name, value);
    }
    Ok(map)
}

/// Feeds `events` to `parser` as one attempt would (stopping at [`Flow::Done`] or the first
/// error) and returns the deltas it emitted and the outcome.
#[cfg(test)]
pub(crate) fn feed(
    mut parser: impl StreamParser,
    events: impl IntoIterator<Item = Event>,
) -> (Vec<Delta>, Result<ModelResponse, ModelError>) {
    let mut deltas = Vec::new();
    let mut collect = |delta: Delta| deltas.push(delta);
    let sink: Mutex<DeltaSink<'_>> = Mutex::new(&mut collect);
    let mut emitter = Emitter::new(&sink);
    let mut outcome = None;
    for event in events {
        match parser.event(&event, &mut emitter) {
            Ok(Flow::Continue) => {}
            Ok(Flow::Done) => break,
            Err(error) => {
                outcome = Some(Err(error));
                break;
            }
        }
    }
    let outcome = outcome.unwrap_or_else(|| parser.finish());
    (deltas, outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::WireProtocol;

    #[test]
    fn keyed_posts_mark_the_key_and_let_extra_headers_replace_defaults() {
        let mut settings = ProviderSettings::new("p", WireProtocol::Anthropic, "http://x");
        settings.api_key = Some(ApiKey::new("k"));
        settings.headers = vec![("accept".into(), "application/json".into()), ("x-b".into(), "2".into())];
        let http = reqwest::Client::new();
        let request =
            keyed_post(&settings, &http, "http://x/y".into(), "x-key", &[("x-a", "1")]).unwrap().build().unwrap();
        let headers = request.headers();
        assert!(headers["x-key"].is_sensitive());
        assert_eq!(headers.get_all("accept").iter().collect::<Vec<_>>(), ["application/json"]);
        assert_eq!((headers["x-a"].to_str().unwrap(), headers["x-b"].to_str().unwrap()), ("1", "2"));

        settings.headers = vec![("bad header".into(), "1".into())];
        let error = keyed_post(&settings, &http, "http://x/y".into(), "x-key", &[]).unwrap_err();
        assert_eq!(error.kind, ModelErrorKind::InvalidRequest);
        settings.headers.clear();
        settings.api_key = Some(ApiKey::new("line\nbreak"));
        let error = keyed_post(&settings, &http, "http://x/y".into(), "x-key", &[]).unwrap_err();
        assert_eq!(error.kind, ModelErrorKind::Authentication);
    }
}
