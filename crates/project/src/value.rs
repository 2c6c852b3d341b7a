//! The statically evaluated value of an expression (or a TOML item), each part remembering
//! where it was written so later checks can point at it.

use crate::error::Loc;

/// A value with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub loc: Loc,
    pub kind: Kind,
}

/// The JSON-like shapes static evaluation produces.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A value that failed to evaluate; its problem is already reported.
    Invalid,
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    Array(Vec<Node>),
    /// Properties in source order; a later duplicate key replaces an earlier one.
    Object(Vec<Property>),
}

/// One `key: value` of an object.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Property {
    pub key: String,
    pub key_loc: Loc,
    pub value: Node,
}

impl Kind {
    /// What the value is, for messages: `a string`, `an array`…
    pub fn describe(&self) -> &'static str {
        match self {
            Kind::Invalid => "an invalid value",
            Kind::Null => "null",
            Kind::Bool(_) => "a boolean",
            Kind::Num(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Array(_) => "an array",
            Kind::Object(_) => "an object",
        }
    }
}

/// Sets `key` in `properties`, replacing an earlier value as JavaScript does.
pub(crate) fn set_property(properties: &mut Vec<Property>, property: Property) {
    if let Some(existing) = properties.iter_mut().find(|existing| existing.key == property.key) {
        *existing = property;
    } else {
        properties.push(property);
    }
}

/// Formats a number as JavaScript's `String(n)` does for the common cases.
pub(crate) fn number_to_string(value: f64) -> String {
    if value.is_finite() && value.fract() == 0.0 && value.abs() < 1e15 {
        format!("{value:.0}")
    } else {
        value.to_string()
    }
}

impl Node {
    /// Whether any part failed to evaluate (and was reported).
    pub fn has_invalid(&self) -> bool {
        match &self.kind {
            Kind::Invalid => true,
            Kind::Array(items) => items.iter().any(Node::has_invalid),
            Kind::Object(properties) => properties.iter().any(|property| property.value.has_invalid()),
            _ => false,
        }
    }

    /// The value as JSON, positions dropped.
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            Kind::Invalid | Kind::Null => serde_json::Value::Null,
            Kind::Bool(value) => serde_json::Value::Bool(*value),
            Kind::Num(value) => {
                if value.fract() == 0.0 && value.abs() < 9.0e15 {
                    // Exact: the value is an integer well inside i64's range.
                    #[allow(clippy::cast_possible_truncation)]
                    serde_json::Value::from(*value as i64)
                } else {
                    serde_json::Number::from_f64(*value).map_or(serde_json::Value::Null, serde_json::Value::Number)
                }
            }
            Kind::Str(value) => serde_json::Value::String(value.clone()),
            Kind::Array(items) => serde_json::Value::Array(items.iter().map(Node::to_json).collect()),
            Kind::Object(properties) => serde_json::Value::Object(
                properties.iter().map(|property| (property.key.clone(), property.value.to_json())).collect(),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(kind: Kind) -> Node {
        Node { loc: Loc::start_of("a.ts".as_ref()), kind }
    }

    #[test]
    fn numbers_format_like_javascript() {
        assert_eq!(number_to_string(3.0), "3");
        assert_eq!(number_to_string(-2.0), "-2");
        assert_eq!(number_to_string(0.5), "0.5");
    }

    #[test]
    fn json_keeps_integers_integral() {
        let value = node(Kind::Array(vec![node(Kind::Num(3.0)), node(Kind::Num(0.25)), node(Kind::Null)]));
        assert_eq!(value.to_json(), serde_json::json!([3, 0.25, null]));
    }

    #[test]
    fn later_keys_replace_earlier_ones() {
        let mut properties = Vec::new();
        for (key, value) in [("a", 1.0), ("b", 2.0), ("a", 3.0)] {
            let key_loc = Loc::start_of("a.ts".as_ref());
            set_property(&mut properties, Property { key: key.into(), key_loc, value: node(Kind::Num(value)) });
        }
        assert_eq!(node(Kind::Object(properties)).to_json(), serde_json::json!({"a": 3, "b": 2}));
    }
}
