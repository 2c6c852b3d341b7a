//! Typed, prefixed resource ids (`key_01j…`). Each id is a ULID — 48 bits of milliseconds plus 80
//! random bits — so ids minted on different server nodes never collide and sort by creation time,
//! which is what cursor pagination relies on.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdParseError {
    #[error("`{value}` is not a valid {kind} id: it must start with `{prefix}`")]
    WrongPrefix { kind: &'static str, prefix: &'static str, value: String },
    #[error("`{value}` is not a valid {kind} id: expected `{prefix}` followed by 26 base32 characters")]
    Malformed { kind: &'static str, prefix: &'static str, value: String },
}

/// The next ULID of this process. Within one millisecond a plain ULID's random part would put ids
/// in random order; the monotonic generator increments it instead, so ids minted by one node sort
/// in the order they were minted (across nodes they still sort by millisecond).
fn next_ulid() -> ulid::Ulid {
    static GENERATOR: std::sync::Mutex<ulid::Generator> = std::sync::Mutex::new(ulid::Generator::new());
    let mut generator = GENERATOR.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    // Overflow needs 2^80 ids in one millisecond; a fresh random ULID is still unique then.
    generator.generate().unwrap_or_else(|_| ulid::Ulid::new())
}

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident, $prefix:literal, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(ulid::Ulid);

        impl $name {
            /// The textual prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Mints a fresh id (time-ordered, globally unique).
            pub fn new() -> Self {
                Self(next_ulid())
            }

            /// The underlying ULID.
            pub fn ulid(&self) -> ulid::Ulid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}{}", $prefix, self.0.to_string().to_ascii_lowercase())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(self, f)
            }
        }

        impl FromStr for $name {
            type Err = IdParseError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                let Some(rest) = value.strip_prefix($prefix) else {
                    return Err(IdParseError::WrongPrefix { kind: $kind, prefix: $prefix, value: value.to_owned() });
                };
                let malformed = || IdParseError::Malformed { kind: $kind, prefix: $prefix, value: value.to_owned() };
                if rest.len() != 26 {
                    return Err(malformed());
                }
                let ulid = ulid::Ulid::from_string(rest).map_err(|_| malformed())?;
                // Only the canonical spelling is an id: this refuses values beyond 128 bits (which
                // the decoder would wrap) and alternative spellings of the same bits.
                if !ulid.to_string().eq_ignore_ascii_case(rest) {
                    return Err(malformed());
                }
                Ok(Self(ulid))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = Cow::<str>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(concat!("^", $prefix, "[0-9a-hjkmnp-tv-z]{26}$")))
                    .examples([concat!($prefix, "01jd6w2k3m4n5p6q7r8s9t0v1w")])
                    .description(Some(concat!("A ", $kind, " id.")))
                    .into()
            }
        }

        impl utoipa::ToSchema for $name {}

        impl schemars::JsonSchema for $name {
            fn schema_name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }

            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": concat!("^", $prefix, "[0-9a-hjkmnp-tv-z]{26}$"),
                    "description": concat!("A ", $kind, " id."),
                })
            }
        }
    };
}

define_id!(
    /// Identifies the workspace (one per installation today; the unit of tenancy later).
    WorkspaceId, "ws_", "workspace"
);
define_id!(
    /// Identifies an environment (`development` or `production`) of a workspace.
    EnvironmentId, "env_", "environment"
);
define_id!(
    /// Identifies an API key. Never the key's secret.
    KeyId, "key_", "API key"
);
define_id!(
    /// Identifies a stored secret.
    SecretId, "sec_", "secret"
);
define_id!(
    /// Identifies a sandbox.
    SandboxId, "sbx_", "sandbox"
);
define_id!(
    /// Identifies a persistent volume.
    VolumeId, "vol_", "volume"
);
define_id!(
    /// Identifies one HTTP request; it is returned in `x-request-id` and in every error body, and is
    /// attached to every log line the request produces.
    RequestId, "req_", "request"
);
define_id!(
    /// Identifies an agent run.
    RunId, "run_", "run"
);
define_id!(
    /// Identifies one event of a run.
    EventId, "evt_", "event"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn display_is_prefixed_lowercase_and_round_trips() {
        let id = KeyId::new();
        let text = id.to_string();
        assert!(text.starts_with("key_"));
        assert_eq!(text.len(), 4 + 26);
        assert_eq!(text, text.to_ascii_lowercase());
        assert_eq!(text.parse::<KeyId>(), Ok(id));
    }

    #[test]
    fn wrong_prefix_names_the_expected_prefix() {
        let env = EnvironmentId::new().to_string();
        let err = env.parse::<KeyId>().unwrap_err();
        assert!(err.to_string().contains("must start with `key_`"), "{err}");
    }

    #[test]
    fn ids_sort_by_creation_time_even_within_a_millisecond() {
        let ids: Vec<KeyId> = (0..1000).map(|_| KeyId::new()).collect();
        for pair in ids.windows(2) {
            assert!(pair[0] < pair[1]);
            assert!(pair[0].to_string() < pair[1].to_string());
        }
    }

    #[test]
    fn values_beyond_128_bits_and_alias_spellings_are_refused() {
        assert!("key_80000000000000000000000000".parse::<KeyId>().is_err(), "would wrap to key_0…");
        assert!("key_0000000000000000000000000i".parse::<KeyId>().is_err(), "`i` is an alias of `1`");
        assert!("key_7zzzzzzzzzzzzzzzzzzzzzzzzz".parse::<KeyId>().is_ok(), "the largest ULID");
    }

    #[test]
    fn serde_uses_the_string_form() {
        let id = RunId::new();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{id}\""));
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RunId>("\"run_nope\"").is_err());
    }

    proptest! {
        #[test]
        fn parsing_arbitrary_text_never_panics(text in ".*") {
            let _ = text.parse::<KeyId>();
        }

        #[test]
        fn arbitrary_suffixes_are_rejected_or_round_trip(suffix in "[0-9a-zA-Z]{0,30}") {
            let text = format!("key_{suffix}");
            if let Ok(id) = text.parse::<KeyId>() {
                prop_assert_eq!(id.to_string(), text.to_ascii_lowercase());
            }
        }
    }
}
