//! What an agent file defines ([`AgentDefinition`]) and its conversion from a statically
//! evaluated `defineAgent({...})` argument (or a TOML table), with a positioned problem for
//! every wrong, missing or unknown key.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use runtools_agent::{CustomModel, ModelRef, ProvidersConfig, ResolveError};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::error::{Loc, Problem};
use crate::value::{Kind, Node};

/// The tools every sandbox provides.
pub const BUILTIN_TOOLS: [&str; 6] = ["bash", "read_file", "edit_file", "grep", "glob", "web_search"];

/// The template agents run in unless they (or `runtools.config.ts`'s `defaultTemplate`) say otherwise.
pub const DEFAULT_TEMPLATE: &str = "base";

/// The keys `defineAgent({...})` accepts, as written in TypeScript (TOML uses snake_case).
pub(crate) const AGENT_KEYS: [&str; 11] = [
    "slug",
    "name",
    "model",
    "systemPrompt",
    "tools",
    "template",
    "maxTurns",
    "timeout",
    "budget",
    "env",
    "mcpServers",
];

/// One agent as its file defines it, defaults applied. camelCase on the wire.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AgentDefinition {
    /// `^[a-z0-9][a-z0-9-]{0,62}$`; the agent's URL name (`POST /v1/run/{slug}`).
    pub slug: String,
    /// Display name; defaults to the slug.
    pub name: String,
    pub model: ModelRef,
    /// Defaults to empty.
    pub system_prompt: String,
    /// Built-in tool names and MCP tools (`<server>` or `<server>__<tool>`); defaults to
    /// [`BUILTIN_TOOLS`].
    pub tools: Vec<String>,
    /// Sandbox template; defaults to the project's `defaultTemplate`, else [`DEFAULT_TEMPLATE`].
    pub template: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_turns: Option<u32>,
    /// Seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub budget: Option<Budget>,
    /// Environment variables for the sandbox.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, EnvValue>,
    /// MCP server configurations, kept as written for now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mcp_servers: Vec<serde_json::Value>,
    /// The file the agent came from, relative to the project directory.
    pub source: PathBuf,
}

/// Limits on one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Budget {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

/// An environment variable's value: literal text, or `{ secret: 'NAME' }`, a reference to a
/// secret stored on the server and filled in at run time (never in the file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum EnvValue {
    Value(String),
    #[serde(rename_all = "camelCase")]
    Secret {
        secret: String,
    },
}

impl AgentDefinition {
    /// The MCP server names `mcpServers` lists: each entry's `name` (or the entry itself when
    /// it is a string).
    pub fn mcp_server_names(&self) -> Vec<&str> {
        self.mcp_servers
            .iter()
            .filter_map(|server| server.as_str().or_else(|| server.get("name").and_then(serde_json::Value::as_str)))
            .collect()
    }
}

/// Where an agent's checked fields were written, for [`crate::Project::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AgentSpans {
    /// The `defineAgent` argument (or the TOML file start).
    pub agent: Loc,
    pub slug: Loc,
    pub model: Loc,
    pub template: Option<Loc>,
    pub tools: Vec<Loc>,
}

/// How keys are spelled in the source, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyStyle {
    Camel,
    Snake,
}

impl KeyStyle {
    pub fn spell(self, camel: &str) -> String {
        match self {
            KeyStyle::Camel => camel.to_owned(),
            KeyStyle::Snake => camel_to_snake(camel),
        }
    }
}

/// `systemPrompt` → `system_prompt`.
pub(crate) fn camel_to_snake(camel: &str) -> String {
    let mut snake = String::new();
    for character in camel.chars() {
        if character.is_ascii_uppercase() {
            snake.push('_');
            snake.push(character.to_ascii_lowercase());
        } else {
            snake.push(character);
        }
    }
    snake
}

/// Whether `slug` matches `^[a-z0-9][a-z0-9-]{0,62}$`.
pub fn is_valid_slug(slug: &str) -> bool {
    let mut characters = slug.chars();
    characters.next().is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && slug.len() <= 63
        && characters.all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '-')
}

/// Builds the agent from `node`, the evaluated definition object. Every problem goes to `out`;
/// `None` when there was any (including ones already reported inside `node`).
pub(crate) fn agent_from_node(
    node: &Node,
    source: &Path,
    style: KeyStyle,
    default_template: &str,
    out: &mut Vec<Problem>,
) -> Option<(AgentDefinition, AgentSpans)> {
    let properties = match &node.kind {
        Kind::Object(properties) => properties,
        Kind::Invalid => return None,
        other => {
            out.push(Problem::new(node.loc.clone(), format!("the agent must be an object, not {}", other.describe())));
            return None;
        }
    };
    let before = out.len();
    let mut seen = HashSet::new();
    let (mut slug, mut name, mut model, mut system_prompt, mut tools, mut template) =
        (None, None, None, None, None, None);
    let mut agent = AgentDefinition {
        slug: String::new(),
        name: String::new(),
        model: ModelRef::Name(String::new()),
        system_prompt: String::new(),
        tools: Vec::new(),
        template: String::new(),
        max_turns: None,
        timeout: None,
        budget: None,
        env: BTreeMap::new(),
        mcp_servers: Vec::new(),
        source: source.to_path_buf(),
    };
    let mut spans = AgentSpans {
        agent: node.loc.clone(),
        slug: node.loc.clone(),
        model: node.loc.clone(),
        template: None,
        tools: Vec::new(),
    };
    for property in properties {
        let key = property.key.as_str();
        let value = &property.value;
        let spelled = style.spell(key);
        if !AGENT_KEYS.contains(&key) {
            let supported: Vec<String> = AGENT_KEYS.iter().map(|key| style.spell(key)).collect();
            out.push(Problem::new(
                property.key_loc.clone(),
                format!("unknown key `{}` in the agent; supported keys: {}", property.key, supported.join(", ")),
            ));
            continue;
        }
        seen.insert(key);
        if value.has_invalid() {
            continue;
        }
        match key {
            "slug" => {
                if let Some(text) = string(value, &spelled, out) {
                    if is_valid_slug(&text) {
                        spans.slug = value.loc.clone();
                        slug = Some(text);
                    } else {
                        out.push(Problem::new(
                            value.loc.clone(),
                            format!(
                                "invalid slug `{text}`: use 1-63 lowercase letters, digits and `-`, starting with a letter or digit"
                            ),
                        ));
                    }
                }
            }
            "name" => name = string(value, &spelled, out),
            "model" => {
                spans.model = value.loc.clone();
                model = model_ref(value, out);
            }
            "systemPrompt" => system_prompt = string(value, &spelled, out),
            "tools" => {
                if let Kind::Array(items) = &value.kind {
                    spans.tools = items.iter().map(|item| item.loc.clone()).collect();
                }
                tools = deserialize::<Vec<String>>(value, &spelled, "an array of tool names", out);
            }
            "template" => {
                spans.template = Some(value.loc.clone());
                template = string(value, &spelled, out);
            }
            "maxTurns" => agent.max_turns = positive(value, &spelled, out),
            "timeout" => agent.timeout = positive(value, &spelled, out),
            "budget" => {
                let expected =
                    format!("an object with `{}` and/or `{}`", style.spell("maxTokens"), style.spell("maxCostUsd"));
                agent.budget = deserialize(value, &spelled, &expected, out);
            }
            "env" => {
                let expected = "an object of NAME: 'value' or NAME: { secret: 'SECRET_NAME' }";
                if let Some(env) = deserialize::<BTreeMap<String, EnvValue>>(value, &spelled, expected, out) {
                    for name in env.keys().filter(|name| !is_env_name(name)) {
                        out.push(Problem::new(
                            value.loc.clone(),
                            format!("invalid environment variable name `{name}`: use letters, digits and `_`"),
                        ));
                    }
                    agent.env = env;
                }
            }
            "mcpServers" => {
                if let Some(servers) = deserialize::<Vec<serde_json::Value>>(value, &spelled, "an array", out) {
                    agent.mcp_servers = servers;
                }
            }
            _ => {}
        }
    }
    for required in ["slug", "model"] {
        if !seen.contains(required) {
            out.push(Problem::new(node.loc.clone(), format!("missing required key `{}`", style.spell(required))));
        }
    }
    // Check the fields that did convert even when others did not, so one pass finds everything.
    let converted = out.len() == before;
    let servers = agent.mcp_server_names();
    let template_or_default = template.as_deref().unwrap_or(default_template);
    check_fields(model.as_ref(), tools.as_deref(), &servers, template_or_default, &spans, out);
    if !converted {
        return None;
    }
    agent.slug = slug?;
    agent.model = model?;
    agent.name = name.unwrap_or_else(|| agent.slug.clone());
    agent.system_prompt = system_prompt.unwrap_or_default();
    agent.tools = tools.unwrap_or_else(|| BUILTIN_TOOLS.iter().map(|tool| (*tool).to_owned()).collect());
    agent.template = template.unwrap_or_else(|| default_template.to_owned());
    Some((agent, spans))
}

/// Checks one agent's tools, model and template. A missing API key is not a problem: keys are
/// the server's business; only an unknown model or provider (or a bad custom model) is.
pub(crate) fn check_fields(
    model: Option<&ModelRef>,
    tools: Option<&[String]>,
    servers: &[&str],
    template: &str,
    spans: &AgentSpans,
    out: &mut Vec<Problem>,
) {
    for (index, tool) in tools.unwrap_or_default().iter().enumerate() {
        let from_mcp = servers
            .iter()
            .any(|server| tool == server || tool.strip_prefix(server).is_some_and(|rest| rest.starts_with("__")));
        if !BUILTIN_TOOLS.contains(&tool.as_str()) && !from_mcp {
            let listed = if servers.is_empty() { "none listed".to_owned() } else { servers.join(", ") };
            out.push(Problem::new(
                spans.tools.get(index).unwrap_or(&spans.agent).clone(),
                format!(
                    "unknown tool `{tool}`: built-in tools are {}; MCP tools are `<server>` or `<server>__<tool>` \
                     for a server in `mcpServers` ({listed})",
                    BUILTIN_TOOLS.join(", ")
                ),
            ));
        }
    }
    if let Some(model) = model {
        match ProvidersConfig::default().resolve(model) {
            Ok(_) | Err(ResolveError::MissingKey { .. }) => {}
            Err(error) => out.push(Problem::new(spans.model.clone(), error.to_string())),
        }
    }
    if !is_valid_template(template) {
        out.push(Problem::new(spans.template.as_ref().unwrap_or(&spans.agent).clone(), invalid_template(template)));
    }
}

/// Whether `name` is a template name: `^[a-z0-9][a-z0-9._-]{0,62}$`.
pub(crate) fn is_valid_template(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.len() <= 63
        && characters.all(|character| {
            character.is_ascii_lowercase() || character.is_ascii_digit() || matches!(character, '-' | '.' | '_')
        })
}

pub(crate) fn invalid_template(template: &str) -> String {
    format!(
        "invalid template name `{template}`: use 1-63 lowercase letters, digits, `-`, `.` and `_`, starting with a letter or digit"
    )
}

fn is_env_name(name: &str) -> bool {
    let mut characters = name.chars();
    characters.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && characters.all(|character| character.is_ascii_alphanumeric() || character == '_')
}

fn string(value: &Node, key: &str, out: &mut Vec<Problem>) -> Option<String> {
    match &value.kind {
        Kind::Str(text) => Some(text.clone()),
        other => {
            out.push(Problem::new(value.loc.clone(), format!("`{key}` must be a string, not {}", other.describe())));
            None
        }
    }
}

fn positive<T: DeserializeOwned + PartialOrd + Default>(value: &Node, key: &str, out: &mut Vec<Problem>) -> Option<T> {
    let number = deserialize::<T>(value, key, "a positive whole number", out)?;
    if number > T::default() {
        Some(number)
    } else {
        out.push(Problem::new(value.loc.clone(), format!("`{key}` must be a positive whole number")));
        None
    }
}

fn deserialize<T: DeserializeOwned>(value: &Node, key: &str, expected: &str, out: &mut Vec<Problem>) -> Option<T> {
    match serde_json::from_value(value.to_json()) {
        Ok(parsed) => Some(parsed),
        Err(error) => {
            out.push(Problem::new(value.loc.clone(), format!("`{key}` must be {expected}: {error}")));
            None
        }
    }
}

/// `model: 'name'` or `model: {provider: 'custom', endpoint, apiKey?, model?, protocol?}`.
fn model_ref(value: &Node, out: &mut Vec<Problem>) -> Option<ModelRef> {
    match &value.kind {
        Kind::Str(name) => Some(ModelRef::Name(name.clone())),
        Kind::Object(_) => deserialize::<CustomModel>(
            value,
            "model",
            "{ provider: 'custom', endpoint, apiKey?, model?, protocol? }",
            out,
        )
        .map(ModelRef::Custom),
        other => {
            out.push(Problem::new(
                value.loc.clone(),
                format!(
                    "`model` must be a model name like 'claude-sonnet-4-20250514' or a custom model object, not {}",
                    other.describe()
                ),
            ));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_follow_the_url_rule() {
        assert!(is_valid_slug("code-assistant"));
        assert!(is_valid_slug("9lives"));
        assert!(is_valid_slug(&"a".repeat(63)));
        assert!(!is_valid_slug(&"a".repeat(64)));
        assert!(!is_valid_slug("-x"));
        assert!(!is_valid_slug("Code"));
        assert!(!is_valid_slug(""));
        assert!(!is_valid_slug("a_b"));
    }

    #[test]
    fn template_names() {
        assert!(is_valid_template("nodejs-20"));
        assert!(is_valid_template("python3.12_ml"));
        assert!(!is_valid_template("Node"));
        assert!(!is_valid_template("-x"));
        assert!(!is_valid_template("a/b"));
        assert!(!is_valid_template(""));
    }

    #[test]
    fn keys_spell_in_snake_case_for_toml() {
        assert_eq!(KeyStyle::Snake.spell("systemPrompt"), "system_prompt");
        assert_eq!(KeyStyle::Snake.spell("maxCostUsd"), "max_cost_usd");
        assert_eq!(KeyStyle::Camel.spell("maxTurns"), "maxTurns");
    }

    #[test]
    fn definitions_serialise_camel_case() {
        let agent = AgentDefinition {
            slug: "a".into(),
            name: "A".into(),
            model: ModelRef::Name("gpt-4.1".into()),
            system_prompt: "hi".into(),
            tools: vec!["bash".into()],
            template: "base".into(),
            max_turns: Some(3),
            timeout: None,
            budget: Some(Budget { max_tokens: Some(10), max_cost_usd: None }),
            env: BTreeMap::from([("K".into(), EnvValue::Secret { secret: "S".into() })]),
            mcp_servers: Vec::new(),
            source: "agents/a.ts".into(),
        };
        let json = serde_json::to_value(&agent).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "slug": "a", "name": "A", "model": "gpt-4.1", "systemPrompt": "hi", "tools": ["bash"],
                "template": "base", "maxTurns": 3, "budget": {"maxTokens": 10}, "env": {"K": {"secret": "S"}},
                "source": "agents/a.ts"
            })
        );
        assert_eq!(serde_json::from_value::<AgentDefinition>(json).unwrap(), agent);
    }
}
