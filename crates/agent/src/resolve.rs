//! From what an agent file says (`model: 'claude-sonnet-4-20250514'`, `'openai/gpt-4.1'`, or
//! `{provider: 'custom', endpoint, apiKey}`) to a connected [`Model`]: which provider, which wire
//! protocol, which base URL and which API key.
//!
//! Bare model names resolve by family — `claude-…` → Anthropic, `gpt-…`/`o1…`/`o3…`/`o4…` →
//! OpenAI, `gemini-…` → Google, `llama-…`/`mistral-…`/`qwen…`/`deepseek-…` → the configured
//! OpenAI-compatible endpoint — and `provider/model` is always accepted. Base URLs and keys come
//! from [`ProvidersConfig`], which reads the providers' own environment variables
//! (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`, `OPENAI_API_KEY`, `OPENAI_BASE_URL`,
//! `GEMINI_API_KEY`, …) on top of the server's config file.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::model::Model;
use crate::providers::{self, ApiKey, ProviderSettings, WireProtocol};

/// A model as an agent definition names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ModelRef {
    /// `claude-sonnet-4-20250514`, `gpt-4.1`, `anthropic/claude-…`, `ollama/llama3.2`…
    Name(String),
    /// `{provider: "custom", endpoint, apiKey?, model?, protocol?}`.
    Custom(CustomModel),
}

/// A model at an endpoint of the user's own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CustomModel {
    /// Must be `custom`.
    pub provider: String,
    /// The URL requests go to: either the exact endpoint (`…/v1/chat/completions`, `…/v1/chat`)
    /// or a base URL (`…/v1`) that the protocol's path is appended to.
    pub endpoint: String,
    #[serde(default)]
    pub api_key: Option<String>,
    /// The model id sent in requests (default `default`).
    #[serde(default)]
    pub model: Option<String>,
    /// Which wire protocol the endpoint speaks (default `openai-chat`).
    #[serde(default)]
    pub protocol: Option<WireProtocol>,
}

/// Where one provider is and how to authenticate.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderEndpoint {
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default)]
    pub api_key: Option<String>,
}

/// Every provider's endpoint; the `[models]` table of the server config, then environment
/// variables on top.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvidersConfig {
    #[serde(default)]
    pub anthropic: ProviderEndpoint,
    #[serde(default)]
    pub openai: ProviderEndpoint,
    /// `responses` (default) or `chat` for OpenAI's own models.
    #[serde(default)]
    pub openai_protocol: Option<OpenAiApi>,
    #[serde(default)]
    pub gemini: ProviderEndpoint,
    /// The OpenAI-compatible server `llama-…` and other open-weight names go to (vLLM, Ollama…).
    #[serde(default)]
    pub openai_compatible: ProviderEndpoint,
    #[serde(default)]
    pub groq: ProviderEndpoint,
    #[serde(default)]
    pub together: ProviderEndpoint,
    #[serde(default)]
    pub ollama: ProviderEndpoint,
}

/// Which OpenAI API OpenAI's own models are called through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAiApi {
    Responses,
    Chat,
}

/// Why a model reference cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error(
        "unknown model `{0}`: use a known family (claude-…, gpt-…, o3…, gemini-…, llama-…) or say the provider, e.g. `anthropic/{0}`, `openai/{0}`, `gemini/{0}`, `openai-compatible/{0}`"
    )]
    UnknownModel(String),
    #[error("unknown provider `{provider}` in `{model}`: known providers are {known}")]
    UnknownProvider { provider: String, model: String, known: String },
    #[error("custom models need `provider: \"custom\"`, not `{0}`")]
    NotCustom(String),
    #[error("the custom model's endpoint `{0}` is not an http(s) URL")]
    BadEndpoint(String),
    #[error("no API key for {provider}: set {env} or `[models.{config}] api_key` in runtools.toml")]
    MissingKey { provider: &'static str, env: &'static str, config: &'static str },
}

/// A provider a model resolved to, before connecting.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub settings: ProviderSettings,
    /// The model id to send (no `provider/` prefix).
    pub model: String,
}

impl Resolved {
    /// Connects the adapter, sharing `http`'s connection pool.
    pub fn connect(self, http: reqwest::Client) -> (Arc<dyn Model>, String) {
        (providers::connect(self.settings, http), self.model)
    }
}

const KNOWN_PROVIDERS: &str =
    "anthropic, openai, openai-chat, openai-responses, gemini (or google), openai-compatible, ollama, groq, together";

impl ProvidersConfig {
    /// Applies the providers' own environment variables, read through `var`, on top of this
    /// config (so `ANTHROPIC_BASE_URL` beats the config file, as users expect).
    pub fn with_env(mut self, var: impl Fn(&str) -> Option<String>) -> Self {
        let pick = |slot: &mut Option<String>, names: &[&str]| {
            if let Some(value) = names.iter().find_map(|name| var(name).filter(|value| !value.is_empty())) {
                *slot = Some(value);
            }
        };
        pick(&mut self.anthropic.api_key, &["ANTHROPIC_API_KEY"]);
        pick(&mut self.anthropic.base_url, &["ANTHROPIC_BASE_URL"]);
        pick(&mut self.openai.api_key, &["OPENAI_API_KEY"]);
        pick(&mut self.openai.base_url, &["OPENAI_BASE_URL"]);
        pick(&mut self.gemini.api_key, &["GEMINI_API_KEY", "GOOGLE_API_KEY"]);
        pick(&mut self.gemini.base_url, &["GEMINI_BASE_URL", "GOOGLE_GEMINI_BASE_URL"]);
        pick(&mut self.openai_compatible.api_key, &["OPENAI_COMPATIBLE_API_KEY"]);
        pick(&mut self.openai_compatible.base_url, &["OPENAI_COMPATIBLE_BASE_URL"]);
        pick(&mut self.groq.api_key, &["GROQ_API_KEY"]);
        pick(&mut self.groq.base_url, &["GROQ_BASE_URL"]);
        pick(&mut self.together.api_key, &["TOGETHER_API_KEY"]);
        pick(&mut self.together.base_url, &["TOGETHER_BASE_URL"]);
        pick(&mut self.ollama.base_url, &["OLLAMA_BASE_URL"]);
        if let Some(api) = var("OPENAI_API_MODE") {
            match api.as_str() {
                "chat" => self.openai_protocol = Some(OpenAiApi::Chat),
                "responses" => self.openai_protocol = Some(OpenAiApi::Responses),
                other => tracing::warn!(value = other, "OPENAI_API_MODE must be `chat` or `responses`; ignored"),
            }
        }
        self
    }

    /// The environment of this process on top of this config.
    pub fn with_process_env(self) -> Self {
        self.with_env(|name| std::env::var(name).ok())
    }

    /// The settings of provider `name` (one of the names `resolve_name` maps to): its endpoint in
    /// this config, its public base URL by default, and whether it needs a key (local servers do
    /// not).
    fn settings(&self, name: &'static str, protocol: WireProtocol) -> Result<ProviderSettings, ResolveError> {
        let (endpoint, default_base_url, key) = match name {
            "anthropic" => (&self.anthropic, "https://api.anthropic.com", Some(("ANTHROPIC_API_KEY", "anthropic"))),
            "openai" => (&self.openai, "https://api.openai.com/v1", Some(("OPENAI_API_KEY", "openai"))),
            "gemini" => (&self.gemini, "https://generativelanguage.googleapis.com", Some(("GEMINI_API_KEY", "gemini"))),
            "ollama" => (&self.ollama, "http://127.0.0.1:11434/v1", None),
            "groq" => (&self.groq, "https://api.groq.com/openai/v1", Some(("GROQ_API_KEY", "groq"))),
            "together" => (&self.together, "https://api.together.xyz/v1", Some(("TOGETHER_API_KEY", "together"))),
            _ => (&self.openai_compatible, "http://127.0.0.1:8000/v1", None),
        };
        let base_url = endpoint.base_url.clone().unwrap_or_else(|| default_base_url.to_owned());
        let mut settings = ProviderSettings::new(name, protocol, base_url);
        settings.api_key = endpoint.api_key.clone().map(ApiKey::new);
        if settings.api_key.is_none()
            && let Some((env, config)) = key
        {
            return Err(ResolveError::MissingKey { provider: name, env, config });
        }
        Ok(settings)
    }

    /// Resolves a model reference to a provider, protocol, base URL and key.
    pub fn resolve(&self, model: &ModelRef) -> Result<Resolved, ResolveError> {
        match model {
            ModelRef::Name(name) => self.resolve_name(name),
            ModelRef::Custom(custom) => resolve_custom(custom),
        }
    }

    fn resolve_name(&self, name: &str) -> Result<Resolved, ResolveError> {
        let (provider, model) = match name.split_once('/') {
            Some((provider, model)) if !provider.is_empty() && !model.is_empty() => {
                (provider.to_ascii_lowercase(), model.to_owned())
            }
            _ => (family(name).ok_or_else(|| ResolveError::UnknownModel(name.to_owned()))?.to_owned(), name.to_owned()),
        };
        let openai_protocol = match self.openai_protocol.unwrap_or(OpenAiApi::Responses) {
            OpenAiApi::Responses => WireProtocol::OpenaiResponses,
            OpenAiApi::Chat => WireProtocol::OpenaiChat,
        };
        let (name, protocol) = match provider.as_str() {
            "anthropic" => ("anthropic", WireProtocol::Anthropic),
            "openai" => ("openai", openai_protocol),
            "openai-chat" => ("openai", WireProtocol::OpenaiChat),
            "openai-responses" => ("openai", WireProtocol::OpenaiResponses),
            "gemini" | "google" => ("gemini", WireProtocol::Gemini),
            "openai-compatible" | "compatible" | "vllm" => ("openai-compatible", WireProtocol::OpenaiChat),
            "ollama" => ("ollama", WireProtocol::OpenaiChat),
            "groq" => ("groq", WireProtocol::OpenaiChat),
            "together" => ("together", WireProtocol::OpenaiChat),
            _ => {
                return Err(ResolveError::UnknownProvider {
                    provider,
                    model: name.to_owned(),
                    known: KNOWN_PROVIDERS.to_owned(),
                });
            }
        };
        let settings = self.settings(name, protocol)?;
        Ok(Resolved { settings, model })
    }
}

/// The provider a bare model name belongs to.
fn family(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    let o_series = lower.starts_with('o') && lower[1..].starts_with(|c: char| c.is_ascii_digit());
    if lower.starts_with("claude-") {
        Some("anthropic")
    } else if lower.starts_with("gpt-") || lower.starts_with("chatgpt-") || lower.starts_with("codex-") || o_series {
        Some("openai")
    } else if lower.starts_with("gemini-") {
        Some("gemini")
    } else if ["llama", "mistral", "mixtral", "qwen", "deepseek", "phi-", "gemma"].iter().any(|f| lower.starts_with(f))
    {
        Some("openai-compatible")
    } else {
        None
    }
}

fn resolve_custom(custom: &CustomModel) -> Result<Resolved, ResolveError> {
    if custom.provider != "custom" {
        return Err(ResolveError::NotCustom(custom.provider.clone()));
    }
    let endpoint = custom.endpoint.trim();
    let parsed = url::Url::parse(endpoint).map_err(|_| ResolveError::BadEndpoint(endpoint.to_owned()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(ResolveError::BadEndpoint(endpoint.to_owned()));
    }
    let protocol = custom.protocol.unwrap_or(WireProtocol::OpenaiChat);
    let model = custom.model.clone().unwrap_or_else(|| "default".to_owned());
    // An endpoint that already ends in the protocol's path is used as is; any other path is the
    // exact URL requests go to (the seed's `…/v1/chat`), unless it looks like a bare base (`…/v1`).
    let trimmed = endpoint.trim_end_matches('/');
    let suffix = match protocol {
        WireProtocol::OpenaiChat => "/chat/completions",
        WireProtocol::OpenaiResponses => "/responses",
        WireProtocol::Anthropic => "/v1/messages",
        WireProtocol::Gemini => "",
    };
    let mut settings = if let Some(base) = trimmed.strip_suffix(suffix).filter(|_| !suffix.is_empty()) {
        ProviderSettings::new("custom", protocol, base)
    } else if trimmed.ends_with("/v1") || parsed.path() == "/" || protocol == WireProtocol::Gemini {
        ProviderSettings::new("custom", protocol, trimmed)
    } else {
        let mut settings = ProviderSettings::new("custom", protocol, trimmed);
        settings.exact_url = Some(trimmed.to_owned());
        settings
    };
    settings.api_key = custom.api_key.clone().filter(|key| !key.is_empty()).map(ApiKey::new);
    Ok(Resolved { settings, model })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ProvidersConfig {
        ProvidersConfig::default().with_env(|name| match name {
            "ANTHROPIC_API_KEY" => Some("sk-ant-test".into()),
            "OPENAI_API_KEY" => Some("sk-test".into()),
            "GOOGLE_API_KEY" => Some("g-test".into()),
            "ANTHROPIC_BASE_URL" => Some("http://127.0.0.1:9/proxy".into()),
            _ => None,
        })
    }

    fn resolve(name: &str) -> Result<Resolved, ResolveError> {
        config().resolve(&ModelRef::Name(name.into()))
    }

    #[test]
    fn families_resolve_as_the_seed_shows() {
        let claude = resolve("claude-sonnet-4-20250514").unwrap();
        assert_eq!(claude.settings.protocol, WireProtocol::Anthropic);
        assert_eq!(claude.settings.base_url, "http://127.0.0.1:9/proxy", "ANTHROPIC_BASE_URL applies");
        assert_eq!(claude.model, "claude-sonnet-4-20250514");
        assert_eq!(resolve("gpt-5.2").unwrap().settings.protocol, WireProtocol::OpenaiResponses);
        assert_eq!(resolve("o3-mini").unwrap().settings.name, "openai");
        let gemini = resolve("gemini-3-pro").unwrap();
        assert_eq!(gemini.settings.protocol, WireProtocol::Gemini);
        assert_eq!(gemini.settings.api_key.as_ref().unwrap().expose(), "g-test");
        let llama = resolve("llama-4-scout").unwrap();
        assert_eq!((llama.settings.name, llama.settings.protocol), ("openai-compatible", WireProtocol::OpenaiChat));
        assert!(llama.settings.api_key.is_none());
        assert!(matches!(resolve("mystery-model"), Err(ResolveError::UnknownModel(_))));
    }

    #[test]
    fn provider_prefixes_are_always_accepted() {
        let chat = resolve("openai-chat/gpt-4.1").unwrap();
        assert_eq!((chat.settings.protocol, chat.model.as_str()), (WireProtocol::OpenaiChat, "gpt-4.1"));
        let ollama = resolve("ollama/llama3.2:3b").unwrap();
        assert_eq!(ollama.settings.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(ollama.model, "llama3.2:3b");
        assert_eq!(resolve("anthropic/my-fine-tune").unwrap().settings.protocol, WireProtocol::Anthropic);
        assert!(matches!(resolve("acme/model"), Err(ResolveError::UnknownProvider { .. })));
        let missing = ProvidersConfig::default().resolve(&ModelRef::Name("groq/llama-3.3-70b".into())).unwrap_err();
        assert!(missing.to_string().contains("GROQ_API_KEY"), "{missing}");
    }

    #[test]
    fn custom_endpoints_take_the_seed_shape() {
        let custom: ModelRef = serde_json::from_str(
            r#"{"provider":"custom","endpoint":"https://my-model.example.com/v1/chat","apiKey":"k"}"#,
        )
        .unwrap();
        let resolved = config().resolve(&custom).unwrap();
        assert_eq!(resolved.settings.exact_url.as_deref(), Some("https://my-model.example.com/v1/chat"));
        assert_eq!(resolved.settings.api_key.as_ref().unwrap().expose(), "k");
        let base: ModelRef = serde_json::from_str(
            r#"{"provider":"custom","endpoint":"http://localhost:8080/v1/chat/completions","model":"m"}"#,
        )
        .unwrap();
        let resolved = config().resolve(&base).unwrap();
        assert_eq!(resolved.settings.base_url, "http://localhost:8080/v1");
        assert!(resolved.settings.exact_url.is_none());
        let bad: ModelRef = serde_json::from_str(r#"{"provider":"custom","endpoint":"ftp://x"}"#).unwrap();
        assert!(matches!(config().resolve(&bad), Err(ResolveError::BadEndpoint(_))));
        let named: ModelRef = serde_json::from_str(r#""claude-opus-4-5""#).unwrap();
        assert_eq!(named, ModelRef::Name("claude-opus-4-5".into()));
    }
}
