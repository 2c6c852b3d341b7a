//! The HTTP load generator: N keep-alive HTTP/1.1 connections, each a task sending one request at
//! a time (closed loop) for a warmup and then a measured period, recording every measured
//! request's latency in an HDR histogram (microseconds).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Method, Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// What to send, where, and for how long.
#[derive(Debug, Clone)]
pub struct LoadPlan {
    pub addr: SocketAddr,
    /// The request target, e.g. `/v1/me`.
    pub path: String,
    /// The `Authorization` header value, e.g. `Bearer pk_test_...`.
    pub authorization: String,
    pub connections: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What a run measured.
#[derive(Debug)]
pub struct LoadReport {
    /// Successful requests started in the measured period.
    pub requests: u64,
    /// Non-200 answers and transport failures, warmup included.
    pub errors: u64,
    /// The first error seen, for the report.
    pub first_error: Option<String>,
    /// Latencies of the measured successful requests, in microseconds.
    pub latency_us: Histogram<u64>,
    /// From the end of the warmup until the last measured request finished.
    pub elapsed: Duration,
}

impl LoadReport {
    pub fn requests_per_sec(&self) -> f64 {
        if self.elapsed.is_zero() { 0.0 } else { self.requests as f64 / self.elapsed.as_secs_f64() }
    }
}

/// One connection's share of the report.
struct ConnectionStats {
    requests: u64,
    errors: u64,
    first_error: Option<String>,
    latency_us: Histogram<u64>,
    last_finish: Option<Instant>,
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs .. 60 s at three significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).context("cannot create the latency histogram")
}

/// Runs `plan` on the current runtime and merges every connection's results.
pub async fn run(plan: &LoadPlan) -> anyhow::Result<LoadReport> {
    let authorization = HeaderValue::from_str(&plan.authorization).context("invalid Authorization header")?;
    let host = HeaderValue::from_str(&plan.addr.to_string()).context("invalid Host header")?;
    let measure_from = Instant::now() + plan.warmup;
    let stop_at = measure_from + plan.duration;
    let mut tasks = JoinSet::new();
    for _ in 0..plan.connections {
        let uri = Uri::try_from(plan.path.as_str()).with_context(|| format!("invalid path `{}`", plan.path))?;
        let (addr, authorization, host) = (plan.addr, authorization.clone(), host.clone());
        tasks.spawn(async move { connection(addr, uri, authorization, host, measure_from, stop_at).await });
    }
    let mut report =
        LoadReport { requests: 0, errors: 0, first_error: None, latency_us: new_histogram()?, elapsed: Duration::ZERO };
    let mut last_finish = measure_from;
    while let Some(joined) = tasks.join_next().await {
        let stats = joined.context("a load task panicked")??;
        report.requests += stats.requests;
        report.errors += stats.errors;
        report.first_error = report.first_error.or(stats.first_error);
        report.latency_us.add(&stats.latency_us).context("cannot merge latency histograms")?;
        last_finish = last_finish.max(stats.last_finish.unwrap_or(measure_from));
    }
    report.elapsed = last_finish.saturating_duration_since(measure_from);
    Ok(report)
}

/// One closed-loop connection: sequential requests until `stop_at`, reconnecting after a
/// transport failure.
async fn connection(
    addr: SocketAddr,
    uri: Uri,
    authorization: HeaderValue,
    host: HeaderValue,
    measure_from: Instant,
    stop_at: Instant,
) -> anyhow::Result<ConnectionStats> {
    let mut stats =
        ConnectionStats { requests: 0, errors: 0, first_error: None, latency_us: new_histogram()?, last_finish: None };
    let mut sender: Option<SendRequest<Empty<Bytes>>> = None;
    loop {
        if Instant::now() >= stop_at {
            return Ok(stats);
        }
        let mut ready = match sender.take() {
            Some(ready) => ready,
            None => connect(addr).await?,
        };
        let request = Request::builder()
            .method(Method::GET)
            .uri(uri.clone())
            .header(HOST, host.clone())
            .header(AUTHORIZATION, authorization.clone())
            .body(Empty::<Bytes>::new())
            .context("cannot build the request")?;
        let started = Instant::now();
        let outcome = async {
            ready.ready().await?;
            let response = ready.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            Ok::<_, hyper::Error>((status, body))
        }
        .await;
        let finished = Instant::now();
        match outcome {
            Ok((StatusCode::OK, _)) => {
                sender = Some(ready);
                if started >= measure_from {
                    stats.requests += 1;
                    let micros = u64::try_from(finished.duration_since(started).as_micros()).unwrap_or(u64::MAX);
                    stats.latency_us.saturating_record(micros.max(1));
                    stats.last_finish = Some(finished);
                }
            }
            Ok((status, body)) => {
                sender = Some(ready);
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
            }
            Err(error) => {
                // The connection is unusable; the next iteration opens a new one.
                stats.errors += 1;
                stats.first_error.get_or_insert_with(|| format!("transport error: {error}"));
            }
        }
    }
}

/// Opens one HTTP/1.1 connection and spawns its driver on the current runtime.
async fn connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Empty<Bytes>>> {
    let stream = TcpStream::connect(addr).await.with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true).context("cannot set TCP_NODELAY")?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .with_context(|| format!("HTTP/1.1 handshake with {addr} failed"))?;
    tokio::spawn(async move {
        // Errors surface on the sender as a failed request.
        let _ = connection.await;
    });
    if sender.is_closed() {
        bail!("the connection to {addr} closed right after the handshake");
    }
    Ok(sender)
}
