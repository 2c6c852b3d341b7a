//! The names tools are exposed under: `<prefix>__<tool>`, sanitised to what model providers
//! accept (`^[a-zA-Z0-9_-]{1,64}$`). Any other character becomes `_`; a name longer than 64 is
//! cut and ends with `_` and eight hex digits of a hash of the unsanitised name, so two long
//! names that share a beginning still differ.

/// The longest tool name providers accept.
pub const MAX_TOOL_NAME_LEN: usize = 64;

/// Separates the prefix from the server's tool name.
pub const PREFIX_SEPARATOR: &str = "__";

fn allowed(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn replace_disallowed(name: &str) -> String {
    name.chars().map(|c| if allowed(c) { c } else { '_' }).collect()
}

/// The prefix with disallowed characters replaced; not shortened (the full name is).
pub(crate) fn sanitize_prefix(prefix: &str) -> String {
    replace_disallowed(prefix)
}

/// The name a server's tool is exposed under. `prefix` is already sanitised; empty for none.
pub fn exposed_name(prefix: &str, tool: &str) -> String {
    let full = if prefix.is_empty() { tool.to_owned() } else { format!("{prefix}{PREFIX_SEPARATOR}{tool}") };
    let mut name = replace_disallowed(&full);
    if name.is_empty() {
        name.push('_');
    }
    if name.len() > MAX_TOOL_NAME_LEN {
        // Only ASCII remains, so byte indices are char boundaries.
        let hash = format!("_{:08x}", fnv1a(full.as_bytes()));
        name.truncate(MAX_TOOL_NAME_LEN - hash.len());
        name.push_str(&hash);
    }
    name
}

/// Whether `name` is acceptable to model providers as it is.
pub fn is_valid_tool_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= MAX_TOOL_NAME_LEN && name.chars().all(allowed)
}

/// 32-bit FNV-1a: small, stable across builds and platforms (unlike `DefaultHasher`).
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5_u32, |hash, &byte| (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_and_keeps_valid_names() {
        assert_eq!(exposed_name("github", "create_issue"), "github__create_issue");
        assert_eq!(exposed_name("", "create_issue"), "create_issue");
        assert_eq!(exposed_name("a-b", "c-d"), "a-b__c-d");
    }

    #[test]
    fn replaces_disallowed_characters() {
        assert_eq!(exposed_name("fs", "read.file"), "fs__read_file");
        assert_eq!(exposed_name("fs", "über/tool name"), "fs___ber_tool_name");
        assert_eq!(exposed_name("", ""), "_");
        assert!(is_valid_tool_name(&exposed_name("x", "a:b:c")));
    }

    #[test]
    fn long_names_are_cut_with_a_distinguishing_hash() {
        let a = exposed_name("server", &"a".repeat(80));
        let b = exposed_name("server", &format!("{}b", "a".repeat(79)));
        assert_eq!(a.len(), MAX_TOOL_NAME_LEN);
        assert_eq!(b.len(), MAX_TOOL_NAME_LEN);
        assert_ne!(a, b);
        assert!(a.starts_with("server__aaaa"));
        assert!(is_valid_tool_name(&a) && is_valid_tool_name(&b));
        // Stable: the same input gives the same name every time.
        assert_eq!(a, exposed_name("server", &"a".repeat(80)));
        // Exactly 64 is left alone.
        let exact = "x".repeat(MAX_TOOL_NAME_LEN);
        assert_eq!(exposed_name("", &exact), exact);
    }

    #[test]
    fn validity() {
        assert!(is_valid_tool_name("bash"));
        assert!(!is_valid_tool_name(""));
        assert!(!is_valid_tool_name("a b"));
        assert!(!is_valid_tool_name(&"a".repeat(65)));
    }
}
