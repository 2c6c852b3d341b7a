//! Tool parameter schemas in Gemini's dialect: Gemini takes an OpenAPI 3.0 subset, not JSON Schema,
//! so a schema as `schemars` (or a hand-written tool) emits it is rewritten: `$ref`s are inlined
//! from `$defs`/`definitions` (a recursive reference becomes a plain `object`), `"type": [T, "null"]`
//! and `anyOf: [.., {"type": "null"}]` become `nullable: true`, `oneOf` becomes `anyOf`, `allOf` is
//! merged, `const` becomes a one-value `enum`, and every keyword Gemini rejects (`$schema`,
//! `additionalProperties`, `default`, `examples`, unsupported `format`s…) is dropped.

use serde_json::{Map, Value, json};

/// Keywords Gemini's `Schema` accepts that are copied unchanged.
const KEPT: &[&str] = &[
    "description",
    "title",
    "nullable",
    "minItems",
    "maxItems",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minProperties",
    "maxProperties",
    "propertyOrdering",
    "example",
];

/// The `format`s Gemini understands (`float`/`double` numbers, `int32`/`int64` integers, `enum` and
/// `date-time` strings); schemars' `uint32`, `uint`, `email`… are dropped.
const FORMATS: &[&str] = &["float", "double", "int32", "int64", "enum", "date-time"];

/// How deep `$ref`s are inlined before giving up on a (mutually) recursive schema.
const MAX_REF_DEPTH: usize = 16;

/// `schema` rewritten for a Gemini `functionDeclarations[].parameters`.
pub(crate) fn clean_schema(schema: &Value) -> Value {
    clean(schema, schema, &mut Vec::new())
}

/// True when a cleaned schema is an object without any properties, which Gemini rejects as
/// `parameters` (a tool without parameters simply has none).
pub(crate) fn is_empty_object(schema: &Value) -> bool {
    let no_properties = schema.get("properties").and_then(Value::as_object).is_none_or(Map::is_empty);
    no_properties && schema.get("anyOf").is_none() && schema.get("type").is_none_or(|kind| kind == "object")
}

fn clean(schema: &Value, root: &Value, refs: &mut Vec<String>) -> Value {
    let Value::Object(map) = schema else {
        // `true` (anything) and other non-object schemas carry no constraints Gemini can use.
        return json!({});
    };
    if let Some(reference) = map.get("$ref").and_then(Value::as_str) {
        let mut target = if refs.iter().any(|seen| seen == reference) || refs.len() >= MAX_REF_DEPTH {
            json!({"type": "object"})
        } else {
            match resolve(root, reference) {
                Some(target) => {
                    refs.push(reference.to_owned());
                    let inlined = clean(target, root, refs);
                    refs.pop();
                    inlined
                }
                None => json!({"type": "object"}),
            }
        };
        let mut siblings = map.clone();
        siblings.remove("$ref");
        // Keys beside the `$ref` (a field's description…) override the definition's.
        if let (Value::Object(target), Value::Object(siblings)) =
            (&mut target, clean(&Value::Object(siblings), root, refs))
        {
            for (key, value) in siblings {
                target.insert(key, value);
            }
        }
        return target;
    }

    let mut out = Map::new();
    for (key, value) in map {
        match key.as_str() {
            "type" => clean_type(value, &mut out),
            "properties" => {
                if let Value::Object(properties) = value {
                    let properties =
                        properties.iter().map(|(name, schema)| (name.clone(), clean(schema, root, refs))).collect();
                    out.insert("properties".into(), Value::Object(properties));
                }
            }
            "items" => {
                // A tuple (`items: [..]`) has no Gemini form; its first member is the best fit.
                let items = match value {
                    Value::Array(items) => items.first().cloned().unwrap_or_else(|| json!({})),
                    other => other.clone(),
                };
                out.insert("items".into(), clean(&items, root, refs));
            }
            "required" => {
                if let Value::Array(names) = value {
                    out.insert(
                        "required".into(),
                        Value::Array(names.iter().filter(|name| name.is_string()).cloned().collect()),
                    );
                }
            }
            "enum" => clean_enum(value, &mut out),
            "const" if value.is_string() => {
                out.insert("enum".into(), json!([value]));
            }
            "format" if value.as_str().is_some_and(|format| FORMATS.contains(&format)) => {
                out.insert("format".into(), value.clone());
            }
            kept if KEPT.contains(&kept) => {
                out.insert(key.clone(), value.clone());
            }
            // `anyOf`/`oneOf`/`allOf` are folded in below, once the schema's own keys are set.
            _ => {}
        }
    }
    for combinator in ["anyOf", "oneOf"] {
        if let Some(Value::Array(variants)) = map.get(combinator) {
            fold_any_of(variants, root, refs, &mut out);
        }
    }
    if let Some(Value::Array(parts)) = map.get("allOf") {
        for part in parts {
            if let Value::Object(part) = clean(part, root, refs) {
                merge(&mut out, part);
            }
        }
    }
    // Gemini rejects a `required` name that is not among the properties.
    if let (Some(Value::Object(properties)), Some(Value::Array(required))) =
        (out.get("properties"), out.get("required"))
    {
        let required: Vec<Value> = required
            .iter()
            .filter(|name| name.as_str().is_some_and(|name| properties.contains_key(name)))
            .cloned()
            .collect();
        out.insert("required".into(), Value::Array(required));
    }
    if out.get("required").and_then(Value::as_array).is_some_and(Vec::is_empty) {
        out.remove("required");
    }
    Value::Object(out)
}

/// `"type": "string"` as is; `"type": ["string", "null"]` as `string` + `nullable`; several
/// non-null types as an `anyOf`.
fn clean_type(value: &Value, out: &mut Map<String, Value>) {
    match value {
        Value::String(kind) if kind == "null" => {
            out.insert("nullable".into(), json!(true));
        }
        Value::String(_) => {
            out.insert("type".into(), value.clone());
        }
        Value::Array(kinds) => {
            let concrete: Vec<&Value> =
                kinds.iter().filter(|kind| kind.as_str().is_some_and(|kind| kind != "null")).collect();
            if concrete.len() < kinds.len() {
                out.insert("nullable".into(), json!(true));
            }
            match concrete.as_slice() {
                [] => {}
                [only] => {
                    out.insert("type".into(), (*only).clone());
                }
                several => {
                    out.insert(
                        "anyOf".into(),
                        Value::Array(several.iter().map(|kind| json!({"type": kind})).collect()),
                    );
                }
            }
        }
        _ => {}
    }
}

/// Gemini enums are string enums; a `null` member means `nullable`, other values end the enum.
fn clean_enum(value: &Value, out: &mut Map<String, Value>) {
    let Value::Array(values) = value else {
        return;
    };
    if values.iter().any(Value::is_null) {
        out.insert("nullable".into(), json!(true));
    }
    let values: Vec<Value> = values.iter().filter(|value| !value.is_null()).cloned().collect();
    if !values.is_empty() && values.iter().all(Value::is_string) {
        out.insert("enum".into(), Value::Array(values));
    }
}

/// `anyOf`/`oneOf` without their `{"type": "null"}` member (which becomes `nullable`); a single
/// remaining variant is inlined.
fn fold_any_of(variants: &[Value], root: &Value, refs: &mut Vec<String>, out: &mut Map<String, Value>) {
    let mut kept = Vec::new();
    for variant in variants {
        if variant.get("type").and_then(Value::as_str) == Some("null")
            && variant.as_object().is_some_and(|v| v.len() == 1)
        {
            out.insert("nullable".into(), json!(true));
            continue;
        }
        kept.push(clean(variant, root, refs));
    }
    match kept.len() {
        0 => {}
        1 => {
            if let Some(Value::Object(only)) = kept.pop() {
                merge(out, only);
            }
        }
        _ => {
            out.insert("anyOf".into(), Value::Array(kept));
        }
    }
}

/// Adds `from`'s keys to `into` without overriding it, merging `properties` and `required`.
fn merge(into: &mut Map<String, Value>, from: Map<String, Value>) {
    for (key, value) in from {
        match (key.as_str(), into.get_mut(&key), value) {
            ("properties", Some(Value::Object(existing)), Value::Object(more)) => {
                for (name, schema) in more {
                    existing.entry(name).or_insert(schema);
                }
            }
            ("required", Some(Value::Array(existing)), Value::Array(more)) => {
                for name in more {
                    if !existing.contains(&name) {
                        existing.push(name);
                    }
                }
            }
            (_, Some(_), _) => {}
            (_, None, value) => {
                into.insert(key, value);
            }
        }
    }
}

/// A local reference (`#/$defs/Name`, `#/definitions/Name`, any JSON pointer into the root).
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    if pointer.is_empty() {
        return Some(root);
    }
    root.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What schemars 1 emits for an edit tool's input: `$defs` references, `Option`s as type
    /// arrays and `anyOf` with `null`, unsigned formats, defaults and `additionalProperties`.
    fn schemars_style() -> Value {
        json!({
            "$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": "EditInput",
            "description": "Edit a file.",
            "type": "object",
            "properties": {
                "path": {"type": "string", "description": "File to edit."},
                "mode": {"$ref": "#/$defs/Mode", "description": "How to apply the edit."},
                "range": {"anyOf": [{"$ref": "#/$defs/Range"}, {"type": "null"}], "default": null},
                "max_lines": {"type": ["integer", "null"], "format": "uint32", "minimum": 0, "default": 100},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true, "default": []},
                "kind": {"const": "edit"},
                "tree": {"$ref": "#/$defs/Tree"},
                "when": {"type": "string", "format": "date-time", "examples": ["2025-01-01T00:00:00Z"]},
            },
            "required": ["path", "mode", "ghost"],
            "additionalProperties": false,
            "$defs": {
                "Mode": {"type": "string", "enum": ["replace", "append"]},
                "Range": {
                    "type": "object",
                    "properties": {
                        "start": {"type": "integer", "format": "uint64", "minimum": 0},
                        "end": {"type": "integer", "format": "int64"},
                    },
                    "required": ["start", "end"],
                    "additionalProperties": false,
                },
                "Tree": {
                    "type": "object",
                    "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Tree"}}},
                    "additionalProperties": false,
                },
            },
        })
    }

    #[test]
    fn a_schemars_schema_becomes_gemini_openapi() {
        assert_eq!(
            clean_schema(&schemars_style()),
            json!({
                "title": "EditInput",
                "description": "Edit a file.",
                "type": "object",
                "properties": {
                    "path": {"type": "string", "description": "File to edit."},
                    "mode": {"type": "string", "enum": ["replace", "append"], "description": "How to apply the edit."},
                    "range": {
                        "nullable": true,
                        "type": "object",
                        "properties": {
                            "start": {"type": "integer", "minimum": 0},
                            "end": {"type": "integer", "format": "int64"},
                        },
                        "required": ["start", "end"],
                    },
                    "max_lines": {"type": "integer", "nullable": true, "minimum": 0},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "kind": {"enum": ["edit"]},
                    "tree": {
                        "type": "object",
                        "properties": {"children": {"type": "array", "items": {"type": "object"}}},
                    },
                    "when": {"type": "string", "format": "date-time"},
                },
                "required": ["path", "mode"],
            })
        );
    }

    #[test]
    fn unions_all_of_and_definitions_are_folded() {
        let schema = json!({
            "definitions": {"Base": {"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]}},
            "allOf": [{"$ref": "#/definitions/Base"}, {"properties": {"n": {"type": "number", "format": "double"}}}],
            "properties": {
                "either": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                "multi": {"type": ["string", "number"]},
                "numbers": {"enum": [1, 2, 3]},
                "maybe": {"enum": ["a", null]},
            },
        });
        assert_eq!(
            clean_schema(&schema),
            json!({
                "type": "object",
                "properties": {
                    "id": {"type": "string"},
                    "n": {"type": "number", "format": "double"},
                    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
                    "multi": {"anyOf": [{"type": "string"}, {"type": "number"}]},
                    "numbers": {},
                    "maybe": {"enum": ["a"], "nullable": true},
                },
                "required": ["id"],
            })
        );
    }

    #[test]
    fn objects_without_properties_are_recognised() {
        assert!(is_empty_object(&clean_schema(&json!({"type": "object", "additionalProperties": false}))));
        assert!(is_empty_object(&json!({"type": "object", "properties": {}})));
        assert!(!is_empty_object(&json!({"type": "object", "properties": {"a": {"type": "string"}}})));
        assert!(!is_empty_object(&json!({"type": "string"})));
    }
}
