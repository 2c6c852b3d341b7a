//! Tool input schemas: a plain JSON Schema object generated from each tool's input struct, without
//! the generator's noise (`$schema`, `title`, `null` alternatives for optional fields, Rust integer
//! `format`s) that some model providers reject or that only costs tokens.

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde_json::Value;

/// The input schema of a tool whose input deserialises into `T`.
pub(crate) fn input_schema<T: JsonSchema>() -> Value {
    let settings = SchemaSettings::draft07().with(|settings| {
        settings.meta_schema = None;
        settings.inline_subschemas = true;
    });
    let mut schema = settings.into_generator().into_root_schema_for::<T>().to_value();
    if let Value::Object(root) = &mut schema {
        root.remove("$schema");
        root.remove("title");
        root.remove("description");
    }
    clean(&mut schema);
    schema
}

/// Integer formats schemars adds for Rust types; not part of JSON Schema's vocabulary.
const RUST_FORMATS: [&str; 10] =
    ["uint", "uint8", "uint16", "uint32", "uint64", "int", "int8", "int16", "int32", "int64"];

fn clean(value: &mut Value) {
    match value {
        Value::Object(object) => {
            // `"type": ["integer", "null"]` → `"type": "integer"` (absent already means none).
            if let Some(Value::Array(types)) = object.get_mut("type") {
                types.retain(|kind| kind != "null");
                if types.len() == 1 {
                    let only = types.remove(0);
                    object.insert("type".into(), only);
                }
            }
            // `anyOf: [{…}, {"type": "null"}]` → the one real alternative, inlined.
            for key in ["anyOf", "oneOf"] {
                let Some(Value::Array(options)) = object.get_mut(key) else { continue };
                options.retain(|option| option.get("type").is_none_or(|kind| kind != "null"));
                if options.len() == 1
                    && let Value::Object(only) = options.remove(0)
                {
                    object.remove(key);
                    for (name, field) in only {
                        object.entry(name).or_insert(field);
                    }
                }
            }
            // `oneOf: [{"const": "a", "type": "string"}, …]` (documented enum variants) → `enum`.
            for key in ["oneOf", "anyOf"] {
                if let Some(values) = object.get(key).and_then(constants) {
                    object.remove(key);
                    object.insert("type".into(), Value::String("string".into()));
                    object.insert("enum".into(), Value::Array(values));
                }
            }
            if let Some(Value::Array(values)) = object.get_mut("enum") {
                values.retain(|value| !value.is_null());
            }
            // Doc comments arrive hard-wrapped; a description reads better unwrapped.
            if let Some(Value::String(description)) = object.get_mut("description") {
                *description = unwrap_lines(description);
            }
            if object.get("format").and_then(Value::as_str).is_some_and(|format| RUST_FORMATS.contains(&format)) {
                object.remove("format");
            }
            if object.get("default").is_some_and(Value::is_null) {
                object.remove("default");
            }
            for field in object.values_mut() {
                clean(field);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(clean),
        _ => {}
    }
}

/// The values of a list of string-constant alternatives, if that is what `options` is.
fn constants(options: &Value) -> Option<Vec<Value>> {
    let options = options.as_array()?;
    let values: Vec<Value> = options
        .iter()
        .filter(|option| option.get("type").is_none_or(|kind| kind != "null"))
        .map(|option| option.get("const").filter(|value| value.is_string()).cloned())
        .collect::<Option<_>>()?;
    (!values.is_empty()).then_some(values)
}

/// Joins hard-wrapped lines; blank lines (paragraph breaks) stay.
fn unwrap_lines(text: &str) -> String {
    text.split("\n\n")
        .map(|paragraph| paragraph.split('\n').map(str::trim).collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join("\n\n")
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    /// Picks a colour.
    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct Input {
        /// The name.
        name: String,
        /// How many.
        #[serde(default)]
        count: Option<u32>,
        #[serde(default)]
        colour: Option<Colour>,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Colour {
        Red,
        DarkBlue,
    }

    /// The input of a tool
    /// with a wrapped doc comment.
    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    struct Documented {
        /// How to say it: a long description
        /// wrapped over two lines.
        mode: Mode,
    }

    #[allow(dead_code)]
    #[derive(Deserialize, JsonSchema)]
    #[serde(rename_all = "snake_case")]
    enum Mode {
        /// Loudly.
        Loud,
        /// Quietly.
        Quiet,
    }

    #[test]
    fn documented_enums_become_plain_enums_and_descriptions_are_unwrapped() {
        let schema = input_schema::<Documented>();
        assert_eq!(
            schema["properties"]["mode"],
            serde_json::json!({
                "type": "string",
                "enum": ["loud", "quiet"],
                "description": "How to say it: a long description wrapped over two lines.",
            })
        );
    }

    #[test]
    fn schemas_are_plain_objects() {
        let schema = input_schema::<Input>();
        assert_eq!(
            schema,
            serde_json::json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "The name."},
                    "count": {"type": "integer", "description": "How many.", "minimum": 0},
                    "colour": {"type": "string", "enum": ["red", "dark_blue"]},
                },
                "required": ["name"],
                "additionalProperties": false,
            })
        );
    }
}
