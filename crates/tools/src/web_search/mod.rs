//! The `web_search` tool: searches the web from the host (it needs no sandbox) through a pluggable
//! provider — Brave Search, Tavily or a SearXNG instance — chosen by [`WebSearchConfig`], which
//! [`WebSearchConfig::from_env`] fills from the environment. Without a provider the tool still
//! exists and tells the model how the operator can enable it. The HTTP side is in `providers`.

mod providers;

use std::sync::OnceLock;
use std::time::Duration;

use runtools_agent::ToolOutput;
use runtools_protocol::agent::ToolSpec;
use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::ToolContext;
pub use providers::SearchResult;

pub(crate) const NAME: &str = "web_search";

/// Default Brave Search API base URL.
pub const BRAVE_DEFAULT_BASE_URL: &str = "https://api.search.brave.com";
/// Default Tavily API base URL.
pub const TAVILY_DEFAULT_BASE_URL: &str = "https://api.tavily.com";

/// Chooses the provider explicitly: `brave`, `tavily`, `searxng` or `none`.
pub const ENV_PROVIDER: &str = "RUNTOOLS_WEB_SEARCH_PROVIDER";
/// The Brave Search API key (the `X-Subscription-Token`).
pub const ENV_BRAVE_KEY: &str = "BRAVE_SEARCH_API_KEY";
/// Overrides the Brave API base URL (tests, proxies).
pub const ENV_BRAVE_URL: &str = "BRAVE_SEARCH_BASE_URL";
/// The Tavily API key.
pub const ENV_TAVILY_KEY: &str = "TAVILY_API_KEY";
/// Overrides the Tavily API base URL.
pub const ENV_TAVILY_URL: &str = "TAVILY_BASE_URL";
/// The base URL of a SearXNG instance with the JSON output format enabled.
pub const ENV_SEARXNG_URL: &str = "SEARXNG_URL";

/// Results asked for when the model does not say.
const DEFAULT_RESULTS: u32 = 5;
const MAX_RESULTS: u32 = 20;
/// Characters of a result's snippet shown to the model.
const SNIPPET_CHARS: usize = 400;

/// A search provider and its credentials.
#[derive(Clone, PartialEq, Eq)]
pub enum SearchProvider {
    /// `GET {base_url}/res/v1/web/search?q=…&count=…` with `X-Subscription-Token: {api_key}`.
    Brave { api_key: String, base_url: String },
    /// `POST {base_url}/search` with `{query, max_results}` and `Authorization: Bearer {api_key}`.
    Tavily { api_key: String, base_url: String },
    /// `GET {base_url}/search?q=…&format=json`.
    Searxng { base_url: String },
}

impl SearchProvider {
    pub fn brave(api_key: impl Into<String>) -> Self {
        Self::Brave { api_key: api_key.into(), base_url: BRAVE_DEFAULT_BASE_URL.to_owned() }
    }

    pub fn tavily(api_key: impl Into<String>) -> Self {
        Self::Tavily { api_key: api_key.into(), base_url: TAVILY_DEFAULT_BASE_URL.to_owned() }
    }

    pub fn searxng(base_url: impl Into<String>) -> Self {
        Self::Searxng { base_url: base_url.into() }
    }

    /// The same provider at another base URL (a proxy, a test server).
    pub fn with_base_url(mut self, url: impl Into<String>) -> Self {
        match &mut self {
            Self::Brave { base_url, .. } | Self::Tavily { base_url, .. } | Self::Searxng { base_url } => {
                *base_url = url.into()
            }
        }
        self
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Brave { .. } => "Brave Search",
            Self::Tavily { .. } => "Tavily",
            Self::Searxng { .. } => "SearXNG",
        }
    }

    pub fn base_url(&self) -> &str {
        match self {
            Self::Brave { base_url, .. } | Self::Tavily { base_url, .. } | Self::Searxng { base_url } => base_url,
        }
    }
}

/// Never prints the API key.
impl std::fmt::Debug for SearchProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct(self.name()).field("base_url", &self.base_url()).finish_non_exhaustive()
    }
}

/// Why the web-search environment is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebSearchConfigError {
    #[error("{ENV_PROVIDER}=`{value}` is not a web search provider (expected brave, tavily, searxng or none)")]
    UnknownProvider { value: String },
    #[error("{ENV_PROVIDER}={provider} needs {variable} to be set")]
    MissingVariable { provider: &'static str, variable: &'static str },
}

/// Which provider `web_search` uses, if any.
#[derive(Debug, Clone)]
pub struct WebSearchConfig {
    pub provider: Option<SearchProvider>,
    /// Timeout of one search request (default 20 s).
    timeout: Duration,
    /// One HTTP client per configuration, built on first use.
    client: OnceLock<reqwest::Client>,
}

impl PartialEq for WebSearchConfig {
    fn eq(&self, other: &Self) -> bool {
        self.provider == other.provider && self.timeout == other.timeout
    }
}

impl Default for WebSearchConfig {
    fn default() -> Self {
        Self::disabled()
    }
}

impl WebSearchConfig {
    /// No provider: `web_search` answers with how to enable it.
    pub fn disabled() -> Self {
        Self { provider: None, timeout: Duration::from_secs(20), client: OnceLock::new() }
    }

    pub fn new(provider: SearchProvider) -> Self {
        Self { provider: Some(provider), ..Self::disabled() }
    }

    /// Resolves the provider from the process environment:
    ///
    /// - `RUNTOOLS_WEB_SEARCH_PROVIDER` = `brave` | `tavily` | `searxng` | `none` chooses one
    ///   explicitly (its variable must then be set);
    /// - otherwise the first configured of `BRAVE_SEARCH_API_KEY` (Brave), `TAVILY_API_KEY`
    ///   (Tavily) and `SEARXNG_URL` (SearXNG) is used, and none of them means no web search;
    /// - `BRAVE_SEARCH_BASE_URL` and `TAVILY_BASE_URL` override those APIs' base URLs.
    ///
    /// Empty values count as unset.
    pub fn from_env() -> Result<Self, WebSearchConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any variable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, WebSearchConfigError> {
        let get = |name: &str| lookup(name).map(|value| value.trim().to_owned()).filter(|value| !value.is_empty());
        let brave = || {
            get(ENV_BRAVE_KEY).map(|key| {
                let provider = SearchProvider::brave(key);
                match get(ENV_BRAVE_URL) {
                    Some(url) => provider.with_base_url(url),
                    None => provider,
                }
            })
        };
        let tavily = || {
            get(ENV_TAVILY_KEY).map(|key| {
                let provider = SearchProvider::tavily(key);
                match get(ENV_TAVILY_URL) {
                    Some(url) => provider.with_base_url(url),
                    None => provider,
                }
            })
        };
        let searxng = || get(ENV_SEARXNG_URL).map(SearchProvider::searxng);
        let missing = |provider, variable| WebSearchConfigError::MissingVariable { provider, variable };
        let provider = match get(ENV_PROVIDER).map(|value| value.to_ascii_lowercase()).as_deref() {
            None => brave().or_else(tavily).or_else(searxng),
            Some("none") => None,
            Some("brave") => Some(brave().ok_or_else(|| missing("brave", ENV_BRAVE_KEY))?),
            Some("tavily") => Some(tavily().ok_or_else(|| missing("tavily", ENV_TAVILY_KEY))?),
            Some("searxng") => Some(searxng().ok_or_else(|| missing("searxng", ENV_SEARXNG_URL))?),
            Some(other) => return Err(WebSearchConfigError::UnknownProvider { value: other.to_owned() }),
        };
        Ok(Self { provider, ..Self::disabled() })
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self.client = OnceLock::new();
        self
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    fn client(&self) -> Result<&reqwest::Client, String> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let client = reqwest::Client::builder()
            .timeout(self.timeout)
            .user_agent(concat!("runtools/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|error| format!("cannot set up the HTTP client: {error}"))?;
        Ok(self.client.get_or_init(|| client))
    }
}

/// What the operator must do to enable web search; the tool answers with it when unconfigured.
pub fn not_configured_message() -> String {
    format!(
        "web_search is not configured on this RunTools server, so it cannot search the web. To enable it, \
         the server operator sets one of these environment variables and restarts the server: \
         {ENV_BRAVE_KEY} (a Brave Search API key), {ENV_TAVILY_KEY} (a Tavily API key), or {ENV_SEARXNG_URL} \
         (the base URL of a SearXNG instance with the JSON format enabled). With several set, \
         {ENV_PROVIDER}=brave|tavily|searxng picks one. Until then, answer from what you know or fetch \
         known URLs with bash (e.g. curl) if the sandbox has network access."
    )
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebSearchInput {
    /// What to search for, as you would type it into a search engine.
    query: String,
    /// How many results to return (default 5, at most 20).
    #[serde(default)]
    max_results: Option<u32>,
}

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: "Searches the web and returns the top results, each with its title, URL and a short snippet. \
            Use it for information that may be newer than your training data or that you are unsure of: current \
            documentation, release notes, error messages, news. Results are snippets only; to read a page, fetch \
            its URL (e.g. with curl in bash) if the sandbox has network access. `max_results` defaults to 5 \
            (at most 20)."
            .to_owned(),
        input_schema: crate::schema::input_schema::<WebSearchInput>(),
    }
}

pub(crate) async fn call(context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
    let input: WebSearchInput = match crate::parse_input(NAME, input) {
        Ok(input) => input,
        Err(output) => return output,
    };
    let query = input.query.trim();
    if query.is_empty() {
        return ToolOutput::error("`query` is empty; say what to search for");
    }
    let count = input.max_results.unwrap_or(DEFAULT_RESULTS);
    if count == 0 || count > MAX_RESULTS {
        return ToolOutput::error(format!("`max_results` must be between 1 and {MAX_RESULTS} (got {count})"));
    }
    let config = context.web_search();
    let Some(provider) = &config.provider else {
        return ToolOutput::error(not_configured_message());
    };
    let client = match config.client() {
        Ok(client) => client,
        Err(message) => return ToolOutput::error(message),
    };
    tracing::debug!(provider = provider.name(), count, "web search");
    match providers::search(client, provider, query, count).await {
        Ok(results) => ToolOutput::ok(format_results(query, &results)),
        Err(error) => {
            tracing::info!(provider = provider.name(), %error, "web search failed");
            ToolOutput::error(error.to_string())
        }
    }
}

/// Numbered results: title, URL, snippet.
fn format_results(query: &str, results: &[SearchResult]) -> String {
    if results.is_empty() {
        return format!("No results for \"{query}\".");
    }
    let mut out = format!("Results for \"{query}\":\n");
    for (index, result) in results.iter().enumerate() {
        let title = if result.title.is_empty() { "(untitled)" } else { &result.title };
        out.push_str(&format!("\n{}. {}\n   {}\n", index + 1, title, result.url));
        let snippet = crate::output::cut_line(&result.snippet, SNIPPET_CHARS);
        if !snippet.is_empty() {
            out.push_str(&format!("   {snippet}\n"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn resolve(vars: &[(&str, &str)]) -> Result<WebSearchConfig, WebSearchConfigError> {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        WebSearchConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn the_environment_picks_the_first_configured_provider() {
        assert_eq!(resolve(&[]).unwrap().provider, None);
        assert_eq!(resolve(&[(ENV_BRAVE_KEY, " ")]).unwrap().provider, None);
        assert_eq!(
            resolve(&[(ENV_SEARXNG_URL, "http://searx")]).unwrap().provider,
            Some(SearchProvider::searxng("http://searx"))
        );
        assert_eq!(
            resolve(&[(ENV_TAVILY_KEY, "tv"), (ENV_BRAVE_KEY, "br")]).unwrap().provider,
            Some(SearchProvider::brave("br"))
        );
        assert_eq!(
            resolve(&[(ENV_TAVILY_KEY, "tv"), (ENV_TAVILY_URL, "http://proxy")]).unwrap().provider,
            Some(SearchProvider::tavily("tv").with_base_url("http://proxy"))
        );
    }

    #[test]
    fn an_explicit_provider_needs_its_variable() {
        assert_eq!(
            resolve(&[(ENV_PROVIDER, "tavily"), (ENV_TAVILY_KEY, "tv"), (ENV_BRAVE_KEY, "br")]).unwrap().provider,
            Some(SearchProvider::tavily("tv"))
        );
        assert_eq!(resolve(&[(ENV_PROVIDER, "none"), (ENV_BRAVE_KEY, "br")]).unwrap().provider, None);
        assert_eq!(
            resolve(&[(ENV_PROVIDER, "Brave")]).unwrap_err(),
            WebSearchConfigError::MissingVariable { provider: "brave", variable: ENV_BRAVE_KEY }
        );
        let error = resolve(&[(ENV_PROVIDER, "google")]).unwrap_err();
        assert!(error.to_string().contains("`google` is not a web search provider"), "{error}");
    }

    #[test]
    fn debug_output_hides_the_key() {
        let debug = format!("{:?}", SearchProvider::brave("secret-key"));
        assert!(!debug.contains("secret-key"), "{debug}");
        assert!(debug.contains("api.search.brave.com"), "{debug}");
    }

    #[test]
    fn results_are_numbered_with_title_url_and_snippet() {
        let results = vec![
            SearchResult { title: "Rust".into(), url: "https://rust-lang.org".into(), snippet: "A language.".into() },
            SearchResult { title: String::new(), url: "https://example.com".into(), snippet: String::new() },
        ];
        assert_eq!(
            format_results("rust", &results),
            "Results for \"rust\":\n\n1. Rust\n   https://rust-lang.org\n   A language.\n\n2. (untitled)\n   https://example.com\n"
        );
        assert_eq!(format_results("zzz", &[]), "No results for \"zzz\".");
    }
}
