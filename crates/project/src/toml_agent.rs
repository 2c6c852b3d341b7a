//! TOML agents (`agents/<name>.toml`): the same fields as `defineAgent`, spelled in
//! snake_case (`system_prompt`, `max_turns`, `mcp_servers`, `budget.max_cost_usd`,
//! `model.api_key`). camelCase keys are rejected with the snake_case spelling to use, so each
//! file format has one way to say a thing. Keys inside `env` and `mcp_servers` are kept as
//! written.
//!
//! Positions: syntax errors point at the exact character; problems with a value point at the
//! line of the top-level key (or table header) that holds it.

use std::path::Path;

use crate::agent::{AGENT_KEYS, camel_to_snake};
use crate::error::{Loc, Problem};
use crate::value::{Kind, Node, Property};

/// Snake-case keys of nested tables that map to camelCase fields.
const NESTED_KEYS: [(&str, &str); 3] =
    [("api_key", "apiKey"), ("max_tokens", "maxTokens"), ("max_cost_usd", "maxCostUsd")];

/// Parses a TOML agent into the same shape `defineAgent({...})` evaluates to.
pub(crate) fn toml_to_node(display: &Path, source: &str, out: &mut Vec<Problem>) -> Option<Node> {
    let table = match source.parse::<toml::Table>() {
        Ok(table) => table,
        Err(error) => {
            let offset = error.span().map_or(0, |span| span.start);
            let offset = u32::try_from(offset).unwrap_or(u32::MAX);
            out.push(Problem::new(
                Loc::at(display, source, offset),
                format!("TOML syntax error: {}", error.message().trim()),
            ));
            return None;
        }
    };
    let mut properties = Vec::new();
    for (key, value) in &table {
        let key_loc = key_location(display, source, key);
        if let Some(camel) = AGENT_KEYS.iter().find(|camel| **camel == key.as_str() && camel_to_snake(camel) != **camel)
        {
            out.push(Problem::new(
                key_loc,
                format!("TOML agents use snake_case keys: write `{}` instead of `{camel}`", camel_to_snake(camel)),
            ));
            continue;
        }
        let field = AGENT_KEYS
            .iter()
            .find(|camel| camel_to_snake(camel) == *key)
            .map_or_else(|| key.clone(), |camel| (*camel).to_owned());
        let rename_nested = matches!(field.as_str(), "model" | "budget");
        let value = convert(value, &key_loc, rename_nested, out);
        properties.push(Property { key: field, key_loc, value });
    }
    Some(Node { loc: Loc::start_of(display), kind: Kind::Object(properties) })
}

fn convert(value: &toml::Value, loc: &Loc, rename: bool, out: &mut Vec<Problem>) -> Node {
    let kind = match value {
        toml::Value::String(text) => Kind::Str(text.clone()),
        // Exact for the integers agent files hold (well inside ±2^53).
        #[allow(clippy::cast_precision_loss)]
        toml::Value::Integer(number) => Kind::Num(*number as f64),
        toml::Value::Float(number) => Kind::Num(*number),
        toml::Value::Boolean(flag) => Kind::Bool(*flag),
        toml::Value::Datetime(datetime) => Kind::Str(datetime.to_string()),
        toml::Value::Array(items) => Kind::Array(items.iter().map(|item| convert(item, loc, false, out)).collect()),
        toml::Value::Table(table) => Kind::Object(
            table
                .iter()
                .filter_map(|(key, value)| {
                    let mut key = key.clone();
                    if rename {
                        if let Some((_, camel)) = NESTED_KEYS.iter().find(|(_, camel)| *camel == key) {
                            out.push(Problem::new(
                                loc.clone(),
                                format!(
                                    "TOML agents use snake_case keys: write `{}` instead of `{camel}`",
                                    camel_to_snake(camel)
                                ),
                            ));
                            return None;
                        }
                        if let Some((_, camel)) = NESTED_KEYS.iter().find(|(snake, _)| *snake == key) {
                            key = (*camel).to_owned();
                        }
                    }
                    let value = convert(value, loc, false, out);
                    Some(Property { key, key_loc: loc.clone(), value })
                })
                .collect(),
        ),
    };
    Node { loc: loc.clone(), kind }
}

/// The line of `key = …` or `[key]` at the top level of the file, else the file start.
fn key_location(display: &Path, source: &str, key: &str) -> Loc {
    let mut offset = 0;
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim_start();
        let indent = line.len() - trimmed.len();
        let header = trimmed.strip_prefix("[[").or_else(|| trimmed.strip_prefix('['));
        let (rest, shift) = match header {
            Some(rest) => (rest.trim_start(), line.len() - rest.trim_start().len()),
            None => (trimmed, indent),
        };
        for candidate in [key.to_owned(), format!("\"{key}\"")] {
            if let Some(after) = rest.strip_prefix(&candidate) {
                let after = after.trim_start();
                let matches = if header.is_some() {
                    after.starts_with(']') || after.starts_with('.')
                } else {
                    after.starts_with('=') || after.starts_with('.')
                };
                if matches {
                    let at = u32::try_from(offset + shift).unwrap_or(u32::MAX);
                    return Loc::at(display, source, at);
                }
            }
        }
        offset += line.len();
    }
    Loc::start_of(display)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_on_their_lines() {
        let source = "slug = 'a'\n  system_prompt = \"x\"\n[budget]\nmax_tokens = 3\n";
        let path = Path::new("a.toml");
        assert_eq!(key_location(path, source, "system_prompt").to_string(), "a.toml:2:3");
        assert_eq!(key_location(path, source, "budget").to_string(), "a.toml:3:2");
        assert_eq!(key_location(path, source, "missing").to_string(), "a.toml:1:1");
    }

    #[test]
    fn snake_case_keys_become_fields_and_camel_case_is_rejected() {
        let source = "slug = 'a'\nsystemPrompt = 'x'\nmax_turns = 4\n[model]\nprovider = 'custom'\napiKey = 'k'\n";
        let mut out = Vec::new();
        let node = toml_to_node(Path::new("a.toml"), source, &mut out).unwrap();
        let mut messages: Vec<String> = out.iter().map(ToString::to_string).collect();
        messages.sort();
        assert_eq!(
            messages,
            [
                "a.toml:2:1: TOML agents use snake_case keys: write `system_prompt` instead of `systemPrompt`",
                "a.toml:4:2: TOML agents use snake_case keys: write `api_key` instead of `apiKey`",
            ]
        );
        let json = node.to_json();
        assert_eq!(json["maxTurns"], 4);
        assert_eq!(json["model"], serde_json::json!({"provider": "custom"}));
    }

    #[test]
    fn syntax_errors_have_positions() {
        let mut out = Vec::new();
        assert!(toml_to_node(Path::new("a.toml"), "slug = 'a'\nname = \n", &mut out).is_none());
        assert_eq!(out.len(), 1);
        assert!(out[0].to_string().starts_with("a.toml:2:"), "{}", out[0]);
    }
}
