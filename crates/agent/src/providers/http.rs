//! What every provider adapter shares on the HTTP side: the retry loop (exponential backoff with
//! jitter, honouring `retry-after` / `retry-after-ms`), reading `retry-after` headers, the
//! default mapping from an HTTP status to a [`ModelErrorKind`], and the pieces of error messages
//! the adapters' error-body parsers have in common.

use std::future::Future;
use std::time::Duration;

use http::HeaderMap;
use rand::Rng;

use crate::model::{ModelError, ModelErrorKind};

/// How transient failures (429, 5xx, overloaded, dropped connections) are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub max_attempts: u32,
    /// The backoff before the first retry; it doubles each time.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A `retry-after` longer than this is not waited for: the call fails at once and says so.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(120),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self { max_attempts: 1, ..Self::default() }
    }

    /// The wait before retry number `retry` (1-based): `retry-after` when the provider sent one,
    /// else exponential backoff with "equal jitter" (half fixed, half random).
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(wait) = retry_after {
            return wait;
        }
        let exponent = retry.saturating_sub(1).min(16);
        let backoff = self.initial_backoff.saturating_mul(1 << exponent).min(self.max_backoff);
        let half = backoff / 2;
        let jitter_ms = u64::try_from(half.as_millis()).unwrap_or(u64::MAX);
        half + Duration::from_millis(rand::rng().random_range(0..=jitter_ms))
    }
}

/// Runs `call` until it succeeds, fails with an error that is not retryable, fails after output
/// was already streamed (`partial`), or `policy.max_attempts` is reached. The returned error
/// records how many attempts were made.
pub async fn retrying<T, Fut>(policy: &RetryPolicy, mut call: impl FnMut(u32) -> Fut) -> Result<T, ModelError>
where
    Fut: Future<Output = Result<T, ModelError>>,
{
    let mut attempt = 1;
    loop {
        match call(attempt).await {
            Ok(value) => return Ok(value),
            Err(mut error) => {
                error.attempts = attempt;
                let retryable = error.kind.is_retryable() && !error.partial;
                if !retryable || attempt >= policy.max_attempts.max(1) {
                    return Err(error);
                }
                if let Some(wait) = error.retry_after
                    && wait > policy.max_retry_after
                {
                    error.message = format!(
                        "{} (the provider asked to retry after {}s, more than the {}s this client waits)",
                        error.message,
                        wait.as_secs(),
                        policy.max_retry_after.as_secs()
                    );
                    return Err(error);
                }
                let delay = policy.delay(attempt, error.retry_after);
                tracing::warn!(
                    provider = error.provider,
                    kind = ?error.kind,
                    status = error.status,
                    attempt,
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "model call failed; retrying"
                );
                tokio::time::sleep(delay).await;
                attempt += 1;
            }
        }
    }
}

/// `retry-after-ms` (OpenAI, Anthropic) or `retry-after` (seconds, or an HTTP date).
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    if let Some(ms) =
        headers.get("retry-after-ms").and_then(|v| v.to_str().ok()).and_then(|v| v.trim().parse::<f64>().ok())
        && ms.is_finite()
        && ms >= 0.0
    {
        return Some(Duration::from_secs_f64(ms / 1000.0));
    }
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds.is_finite() && seconds >= 0.0).then(|| Duration::from_secs_f64(seconds));
    }
    let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = date.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

/// The default meaning of an error status; adapters refine it from the error body (e.g. context
/// overflow, which providers report as a 400).
pub fn kind_for_status(status: u16) -> ModelErrorKind {
    match status {
        429 => ModelErrorKind::RateLimited,
        503 | 529 => ModelErrorKind::Overloaded,
        408 | 500..=599 => ModelErrorKind::Server,
        401 | 403 => ModelErrorKind::Authentication,
        404 => ModelErrorKind::NotFound,
        413 => ModelErrorKind::ContextOverflow,
        _ => ModelErrorKind::InvalidRequest,
    }
}

/// An error body's type or status and its message as one line: `overloaded_error: Overloaded`.
pub(crate) fn describe(kind: &str, message: &str) -> String {
    match (kind.is_empty(), message.is_empty()) {
        (false, false) => format!("{kind}: {message}"),
        (false, true) => kind.to_owned(),
        (true, _) => message.to_owned(),
    }
}

/// The message of an error body that could not be parsed: its first 500 characters, or
/// `HTTP <status>` when it is blank.
pub(crate) fn body_snippet(status: u16, body: &str) -> String {
    let snippet: String = body.chars().take(500).collect();
    if snippet.trim().is_empty() { format!("HTTP {status}") } else { snippet }
}

/// A transport failure (connect, TLS, a dropped body) as a retryable error.
pub fn transport_error(provider: &'static str, error: &reqwest::Error) -> ModelError {
    // `{:#}`-style chain without the URL's query (which may carry a Gemini key).
    let mut message = error.without_url_ref().to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    ModelError::new(provider, ModelErrorKind::Transport, message)
}

trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(url.as_str(), "").replace(" ()", "").replace(" for url", "");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_every_form() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(3)));
        headers.insert("retry-after-ms", "250".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(250)));
        let mut headers = HeaderMap::new();
        let later = chrono::Utc::now() + chrono::Duration::seconds(30);
        headers.insert("retry-after", later.to_rfc2822().parse().unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30), "{wait:?}");
        headers.insert("retry-after", "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn backoff_grows_with_jitter_and_honours_retry_after() {
        let policy = RetryPolicy::default();
        for retry in 1..=8 {
            let delay = policy.delay(retry, None);
            let full = policy.initial_backoff.saturating_mul(1 << (retry - 1)).min(policy.max_backoff);
            assert!(delay >= full / 2 && delay <= full, "retry {retry}: {delay:?} vs {full:?}");
        }
        assert_eq!(policy.delay(1, Some(Duration::from_secs(7))), Duration::from_secs(7));
    }

    #[tokio::test(start_paused = true)]
    async fn retries_transient_errors_then_gives_up_with_the_count() {
        let policy = RetryPolicy { max_attempts: 3, ..RetryPolicy::default() };
        let mut calls = 0;
        let result: Result<(), ModelError> = retrying(&policy, |_| {
            calls += 1;
            async { Err(ModelError::new("test", ModelErrorKind::Overloaded, "busy").with_status(529)) }
        })
        .await;
        let error = result.unwrap_err();
        assert_eq!(calls, 3);
        assert_eq!(error.attempts, 3);
        assert!(error.to_string().contains("after 3 attempts"), "{error}");

        let mut calls = 0;
        let result: Result<(), ModelError> = retrying(&policy, |_| {
            calls += 1;
            async { Err(ModelError::new("test", ModelErrorKind::InvalidRequest, "bad").with_status(400)) }
        })
        .await;
        assert!(result.is_err());
        assert_eq!(calls, 1, "a client error is not retried");

        let mut calls = 0;
        let result = retrying(&policy, |attempt| {
            calls += 1;
            async move {
                if attempt < 2 {
                    Err(ModelError::new("test", ModelErrorKind::RateLimited, "slow down")
                        .with_retry_after(Some(Duration::from_secs(2))))
                } else {
                    Ok(attempt)
                }
            }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls, 2);
    }
}
