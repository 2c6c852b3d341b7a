//! web_search against local servers speaking Brave's, Tavily's and SearXNG's JSON, their failures,
//! and the explanation when no provider is configured. No sandbox is needed: the tool runs on the
//! host.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use runtools_agent::{ToolCall, ToolOutput, ToolSet};
use runtools_envd::EnvdClient;
use runtools_protocol::agent::ToolStatus;
use runtools_tools::{SearchProvider, ToolContext, Toolbox, WebSearchConfig};
use serde_json::{Value, json};

/// What a mock provider was asked.
#[derive(Debug, Default, Clone)]
struct Seen {
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Seen {
    fn record(&self, value: Value) {
        self.requests.lock().unwrap().push(value);
    }

    fn all(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// Serves `router` on a free local port; returns its base URL.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{address}")
}

fn hits(count: usize, snippet_key: &str) -> Vec<Value> {
    (1..=count)
        .map(|n| {
            json!({
                "title": format!("Result <b>{n}</b>"),
                "url": format!("https://example.com/{n}"),
                snippet_key: format!("Snippet &amp; text {n}"),
            })
        })
        .collect()
}

/// A toolbox with only web_search; its envd connection is never used.
fn toolbox(config: WebSearchConfig) -> Toolbox {
    let (stream, _other_end) = tokio::io::duplex(64);
    let context = ToolContext::new(EnvdClient::new(stream)).with_web_search(config);
    Toolbox::new(["web_search"], context).unwrap()
}

async fn search(toolbox: &Toolbox, input: Value) -> ToolOutput {
    toolbox.call(&ToolCall { id: "1".into(), name: "web_search".into(), input }).await
}

#[tokio::test]
async fn brave_results_are_numbered_with_title_url_and_snippet() {
    let seen = Seen::default();
    let router = axum::Router::new()
        .route(
            "/res/v1/web/search",
            get(|State(seen): State<Seen>, headers: HeaderMap, Query(query): Query<Value>| async move {
                seen.record(json!({"token": headers["x-subscription-token"].to_str().unwrap(), "query": query}));
                Json(json!({"type": "search", "web": {"results": hits(3, "description")}}))
            }),
        )
        .with_state(seen.clone());
    let base = serve(router).await;
    let toolbox = toolbox(WebSearchConfig::new(SearchProvider::brave("brave-key").with_base_url(base)));

    let output = search(&toolbox, json!({"query": "rust & tokio", "max_results": 3})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert_eq!(
        output.content,
        "Results for \"rust & tokio\":\n\n\
         1. Result 1\n   https://example.com/1\n   Snippet & text 1\n\n\
         2. Result 2\n   https://example.com/2\n   Snippet & text 2\n\n\
         3. Result 3\n   https://example.com/3\n   Snippet & text 3\n"
    );
    assert_eq!(seen.all(), [json!({"token": "brave-key", "query": {"q": "rust & tokio", "count": "3"}})]);
}

#[tokio::test]
async fn tavily_gets_a_json_post_with_a_bearer_token() {
    let seen = Seen::default();
    let router = axum::Router::new()
        .route(
            "/search",
            post(|State(seen): State<Seen>, headers: HeaderMap, Json(body): Json<Value>| async move {
                seen.record(json!({"auth": headers["authorization"].to_str().unwrap(), "body": body}));
                Json(json!({"query": "q", "results": hits(2, "content"), "response_time": 0.5}))
            }),
        )
        .with_state(seen.clone());
    let base = serve(router).await;
    let toolbox = toolbox(WebSearchConfig::new(SearchProvider::tavily("tv-key").with_base_url(format!("{base}/"))));

    let output = search(&toolbox, json!({"query": "axum 0.8"})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert!(
        output.content.contains("2. Result 2\n   https://example.com/2\n   Snippet & text 2\n"),
        "{}",
        output.content
    );
    // The default is five results.
    assert_eq!(seen.all(), [json!({"auth": "Bearer tv-key", "body": {"query": "axum 0.8", "max_results": 5}})]);
}

#[tokio::test]
async fn searxng_results_are_cut_to_max_results() {
    let seen = Seen::default();
    let router = axum::Router::new()
        .route(
            "/search",
            get(|State(seen): State<Seen>, Query(query): Query<Value>| async move {
                seen.record(query);
                Json(json!({"query": "q", "number_of_results": 30, "results": hits(30, "content")}))
            }),
        )
        .with_state(seen.clone());
    let base = serve(router).await;
    let toolbox = toolbox(WebSearchConfig::new(SearchProvider::searxng(base)));

    let output = search(&toolbox, json!({"query": "self-hosted search", "max_results": 2})).await;
    assert_eq!(output.status, ToolStatus::Ok, "{}", output.content);
    assert!(output.content.contains("2. Result 2"), "{}", output.content);
    assert!(!output.content.contains("3. Result 3"), "{}", output.content);
    assert_eq!(seen.all(), [json!({"q": "self-hosted search", "format": "json"})]);
}

#[tokio::test]
async fn provider_failures_say_the_status() {
    let router = axum::Router::new()
        .route("/unauthorized/res/v1/web/search", get(|| async { (StatusCode::UNAUTHORIZED, "bad token") }))
        .route(
            "/limited/search",
            post(|| async { (StatusCode::TOO_MANY_REQUESTS, Json(json!({"detail": "slow down"}))) }),
        )
        .route("/broken/search", get(|| async { StatusCode::BAD_GATEWAY }))
        .route("/garbage/search", get(|| async { "<html>not json</html>" }));
    let base = serve(router).await;

    let brave = toolbox(WebSearchConfig::new(SearchProvider::brave("k").with_base_url(format!("{base}/unauthorized"))));
    let output = search(&brave, json!({"query": "x"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert_eq!(
        output.content,
        "web search failed: Brave Search answered HTTP 401 Unauthorized (the API key was refused: check \
         BRAVE_SEARCH_API_KEY): bad token"
    );

    let tavily = toolbox(WebSearchConfig::new(SearchProvider::tavily("k").with_base_url(format!("{base}/limited"))));
    let output = search(&tavily, json!({"query": "x"})).await;
    assert!(output.content.contains("Tavily answered HTTP 429 Too Many Requests (rate limited"), "{}", output.content);
    assert!(output.content.contains("slow down"), "{}", output.content);

    let searx = toolbox(WebSearchConfig::new(SearchProvider::searxng(format!("{base}/broken"))));
    let output = search(&searx, json!({"query": "x"})).await;
    assert!(
        output.content.contains("SearXNG answered HTTP 502 Bad Gateway (the search service is failing"),
        "{}",
        output.content
    );

    let searx = toolbox(WebSearchConfig::new(SearchProvider::searxng(format!("{base}/garbage"))));
    let output = search(&searx, json!({"query": "x"})).await;
    assert!(output.content.contains("SearXNG sent an answer that is not the expected JSON"), "{}", output.content);

    // Nothing listening.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let closed = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let output = search(&toolbox(WebSearchConfig::new(SearchProvider::searxng(closed))), json!({"query": "x"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    assert!(output.content.contains("SearXNG could not be reached"), "{}", output.content);
}

#[tokio::test]
async fn without_a_provider_the_tool_explains_how_to_enable_it() {
    let toolbox = toolbox(WebSearchConfig::disabled());
    assert_eq!(toolbox.specs()[0].name, "web_search");
    let output = search(&toolbox, json!({"query": "anything"})).await;
    assert_eq!(output.status, ToolStatus::Error);
    for variable in ["BRAVE_SEARCH_API_KEY", "TAVILY_API_KEY", "SEARXNG_URL", "RUNTOOLS_WEB_SEARCH_PROVIDER"] {
        assert!(output.content.contains(variable), "{variable} missing from: {}", output.content);
    }
    assert!(output.content.starts_with("web_search is not configured"), "{}", output.content);
}

#[tokio::test]
async fn invalid_input_is_refused_before_searching() {
    let toolbox = toolbox(WebSearchConfig::disabled());
    let output = search(&toolbox, json!({"query": "x", "max_results": 21})).await;
    assert!(output.content.contains("`max_results` must be between 1 and 20"), "{}", output.content);
    let output = search(&toolbox, json!({"query": " "})).await;
    assert!(output.content.contains("`query` is empty"), "{}", output.content);
}
