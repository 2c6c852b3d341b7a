//! The HTTP side of `web_search`: one request per provider (Brave Search, Tavily, SearXNG), their
//! JSON answers decoded into [`SearchResult`]s, and failures turned into [`SearchError`]s that say
//! what went wrong (the HTTP status, what to check).

use serde::Deserialize;

use super::{ENV_BRAVE_KEY, ENV_TAVILY_KEY, SearchProvider};

/// One search hit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchResult {
    pub title: String,
    pub url: String,
    /// Plain text (any HTML markup the provider adds is removed).
    pub snippet: String,
}

/// Why a search failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SearchError {
    #[error("web search failed: {provider} could not be reached at {url}: {source}")]
    Request { provider: &'static str, url: String, source: reqwest::Error },
    #[error("web search failed: {provider} answered HTTP {status}{hint}{body}")]
    Status { provider: &'static str, status: reqwest::StatusCode, hint: String, body: String },
    #[error("web search failed: {provider} sent an answer that is not the expected JSON: {message}")]
    Decode { provider: &'static str, message: String },
    #[error("web search failed: the {provider} URL `{url}` is invalid: {message}")]
    BadUrl { provider: &'static str, url: String, message: String },
}

#[derive(Debug, Deserialize)]
struct BraveAnswer {
    #[serde(default)]
    web: Option<BraveWeb>,
}

#[derive(Debug, Deserialize)]
struct BraveWeb {
    #[serde(default)]
    results: Vec<BraveResult>,
}

#[derive(Debug, Deserialize)]
struct BraveResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    description: String,
}

/// Tavily's and SearXNG's answers have the same shape.
#[derive(Debug, Deserialize)]
struct ContentAnswer {
    #[serde(default)]
    results: Vec<ContentResult>,
}

#[derive(Debug, Deserialize)]
struct ContentResult {
    #[serde(default)]
    title: String,
    url: String,
    #[serde(default)]
    content: String,
}

/// Searches `query` with `provider`, returning at most `count` results.
pub(crate) async fn search(
    client: &reqwest::Client,
    provider: &SearchProvider,
    query: &str,
    count: u32,
) -> Result<Vec<SearchResult>, SearchError> {
    let name = provider.name();
    let endpoint = |path: &str| -> Result<url::Url, SearchError> {
        let base = provider.base_url().trim_end_matches('/');
        url::Url::parse(&format!("{base}{path}")).map_err(|error| SearchError::BadUrl {
            provider: name,
            url: provider.base_url().to_owned(),
            message: error.to_string(),
        })
    };
    let (request, key_variable) = match provider {
        SearchProvider::Brave { api_key, .. } => {
            let mut url = endpoint("/res/v1/web/search")?;
            url.query_pairs_mut().append_pair("q", query).append_pair("count", &count.to_string());
            let request = client
                .get(url)
                .header("X-Subscription-Token", api_key)
                .header(reqwest::header::ACCEPT, "application/json");
            (request, Some(ENV_BRAVE_KEY))
        }
        SearchProvider::Tavily { api_key, .. } => {
            let request = client
                .post(endpoint("/search")?)
                .bearer_auth(api_key)
                .json(&serde_json::json!({ "query": query, "max_results": count }));
            (request, Some(ENV_TAVILY_KEY))
        }
        SearchProvider::Searxng { .. } => {
            let mut url = endpoint("/search")?;
            url.query_pairs_mut().append_pair("q", query).append_pair("format", "json");
            (client.get(url).header(reqwest::header::ACCEPT, "application/json"), None)
        }
    };
    let response = request.send().await.map_err(|source| SearchError::Request {
        provider: name,
        url: provider.base_url().to_owned(),
        source: source.without_url(),
    })?;
    let status = response.status();
    let body = response.bytes().await.map_err(|source| SearchError::Request {
        provider: name,
        url: provider.base_url().to_owned(),
        source: source.without_url(),
    })?;
    if !status.is_success() {
        return Err(SearchError::Status {
            provider: name,
            status,
            hint: status_hint(status, key_variable, provider),
            body: body_excerpt(&body),
        });
    }
    let decode = |error: serde_json::Error| SearchError::Decode { provider: name, message: error.to_string() };
    let results: Vec<SearchResult> = match provider {
        SearchProvider::Brave { .. } => {
            let answer: BraveAnswer = serde_json::from_slice(&body).map_err(decode)?;
            let results = answer.web.map(|web| web.results).unwrap_or_default();
            results.into_iter().map(|r| hit(&r.title, r.url, &r.description)).collect()
        }
        SearchProvider::Tavily { .. } | SearchProvider::Searxng { .. } => {
            let answer: ContentAnswer = serde_json::from_slice(&body).map_err(decode)?;
            answer.results.into_iter().map(|r| hit(&r.title, r.url, &r.content)).collect()
        }
    };
    Ok(results.into_iter().take(count as usize).collect())
}

fn hit(title: &str, url: String, snippet: &str) -> SearchResult {
    SearchResult { title: plain_text(title), url, snippet: plain_text(snippet) }
}

/// What a failing status most likely means.
fn status_hint(status: reqwest::StatusCode, key_variable: Option<&str>, provider: &SearchProvider) -> String {
    let searxng = matches!(provider, SearchProvider::Searxng { .. });
    match (status.as_u16(), key_variable) {
        (400 | 403, _) if searxng => " (is the JSON format enabled in the SearXNG settings?)".to_owned(),
        (401 | 403, Some(variable)) => format!(" (the API key was refused: check {variable})"),
        (401 | 403, None) => " (access refused)".to_owned(),
        (429, _) => " (rate limited: too many searches; wait before searching again)".to_owned(),
        (500..=599, _) => " (the search service is failing; try again later)".to_owned(),
        _ => String::new(),
    }
}

/// The start of an error body, on one line.
fn body_excerpt(body: &[u8]) -> String {
    let text = plain_text(&String::from_utf8_lossy(body));
    if text.is_empty() { String::new() } else { format!(": {}", crate::output::cut_line(&text, 300)) }
}

/// `text` without HTML tags, with the common entities decoded and whitespace collapsed.
pub(crate) fn plain_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            _ if in_tag => {}
            _ => out.push(c),
        }
    }
    let decoded = out
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#x27;", "'")
        .replace("&apos;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&nbsp;", " ")
        .replace("&amp;", "&");
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_is_stripped_from_snippets() {
        assert_eq!(plain_text("The <strong>Rust</strong>   language &amp; more&#39;s\n"), "The Rust language & more's");
        assert_eq!(plain_text("a &lt;b&gt; c"), "a <b> c");
    }

    #[test]
    fn failing_statuses_say_what_to_check() {
        let brave = SearchProvider::brave("k");
        assert!(status_hint(reqwest::StatusCode::UNAUTHORIZED, Some(ENV_BRAVE_KEY), &brave).contains(ENV_BRAVE_KEY));
        assert!(status_hint(reqwest::StatusCode::TOO_MANY_REQUESTS, None, &brave).contains("rate limited"));
        assert!(status_hint(reqwest::StatusCode::BAD_GATEWAY, None, &brave).contains("try again later"));
        let searx = SearchProvider::searxng("http://s");
        assert!(status_hint(reqwest::StatusCode::BAD_REQUEST, None, &searx).contains("JSON format"));
    }
}
