//! Prometheus metrics of one server node, served at `GET /metrics` in the text exposition format.
//! The registry is owned by the node's state (no process-global recorder), so several servers in
//! one process — as in tests — keep separate counts, and each node of a cluster is scraped on its own.

use std::sync::atomic::AtomicI64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    store: String,
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

/// The node's metric registry and the handles the middleware updates.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: HistogramFamily,
    in_flight: Gauge<i64, AtomicI64>,
}

fn duration_histogram() -> Histogram {
    // 100 µs … ~1.6 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 15))
}

impl Metrics {
    pub fn new(store_engine: &str) -> Self {
        let mut registry = Registry::with_prefix("runtools");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests answered, by route and status", requests.clone());
        let durations: HistogramFamily = Family::new_with_constructor(duration_histogram);
        registry.register("http_request_duration_seconds", "Time to answer an HTTP request", durations.clone());
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register("http_requests_in_flight", "HTTP requests being answered now", in_flight.clone());
        let build = Family::<BuildLabels, Gauge>::default();
        build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                store: store_engine.to_owned(),
            })
            .set(1);
        registry.register("build_info", "The server's version and store engine", build);
        Self { registry, requests, durations, in_flight }
    }

    pub(crate) fn request_started(&self) {
        self.in_flight.inc();
    }

    pub(crate) fn request_finished(&self, method: &str, route: &str, status: u16, seconds: f64) {
        self.in_flight.dec();
        let labels = RequestLabels { method: method.to_owned(), route: route.to_owned(), status };
        self.requests.get_or_create(&labels).inc();
        let labels = RouteLabels { method: labels.method, route: labels.route };
        self.durations.get_or_create(&labels).observe(seconds);
    }

    /// The exposition text.
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}
