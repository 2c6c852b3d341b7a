//! The `glob` tool: files whose path matches a glob pattern, newest first, found in-process by envd
//! (`EnvdClient::glob`, ripgrep's walker) rather than with `find`. An absolute pattern is split
//! into the directory to search and the pattern below it.

use runtools_agent::ToolOutput;
use runtools_envd::GlobResults;
use runtools_protocol::agent::ToolSpec;
use runtools_protocol::envd::{EnvdErrorCode, GlobSpec};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::{ToolContext, describe_error, envd_message, is_envd_error, relative_to};
use crate::output::{cut_middle, thousands};

pub(crate) const NAME: &str = "glob";

/// Paths returned at most.
const MAX_RESULTS: u32 = 1_000;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GlobInput {
    /// The glob to match file paths against, relative to `path`: e.g. `**/*.rs`, `src/**/*.{ts,tsx}`,
    /// `*.md`.
    pattern: String,
    /// The directory to search (absolute, or relative to the working directory; default: the working
    /// directory).
    #[serde(default)]
    path: Option<String>,
}

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: format!(
            "Finds files in the sandbox by name with a glob pattern, such as `**/*.rs`, `src/**/*.{{ts,tsx}}` or \
            `*.md`, matched against paths relative to `path` (default: the working directory). Use it instead of \
            find or ls in bash to locate files. `*` stays within one directory and `**` crosses directories, so \
            `*.py` only matches at the top of `path` and `**/*.py` matches at any depth. Returns matching file \
            paths, newest first, one per line (relative to the working directory); at most {} are listed and the \
            output says when more matched. Hidden files and files ignored by .gitignore are skipped.",
            thousands(u64::from(MAX_RESULTS))
        ),
        input_schema: crate::schema::input_schema::<GlobInput>(),
    }
}

pub(crate) async fn call(context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
    let input: GlobInput = match crate::parse_input(NAME, input) {
        Ok(input) => input,
        Err(output) => return output,
    };
    let pattern = input.pattern.trim();
    if pattern.is_empty() {
        return ToolOutput::error("`pattern` is empty; give a glob such as `**/*.rs`");
    }
    let base = match &input.path {
        Some(path) => match context.resolve(path).await {
            Ok(path) => path,
            Err(message) => return ToolOutput::error(message),
        },
        None => context.working_dir().await.to_owned(),
    };
    let (path, pattern) = split_absolute(&base, pattern);
    let spec = GlobSpec {
        patterns: vec![pattern.clone()],
        path: Some(path.clone()),
        max_results: Some(MAX_RESULTS),
        ..GlobSpec::default()
    };
    let results = match context.envd().glob(spec).await {
        Ok(results) => results,
        Err(error) if is_envd_error(&error, EnvdErrorCode::InvalidRequest) => {
            return ToolOutput::error(format!("glob: {}", envd_message(&error)));
        }
        Err(error) if is_envd_error(&error, EnvdErrorCode::NotFound) => {
            return ToolOutput::error(format!("{path} does not exist"));
        }
        Err(error) if is_envd_error(&error, EnvdErrorCode::NotADirectory) => {
            return ToolOutput::error(format!("{path} is not a directory; give the directory to search as path"));
        }
        Err(error) => return ToolOutput::error(format!("glob failed: {}", describe_error(&error, &path))),
    };
    let working_dir = context.working_dir().await;
    ToolOutput::ok(cut_middle(&format_results(&results, &pattern, &path, working_dir), context.output_limits()))
}

/// An absolute `pattern` (`/etc/**/*.conf`) as the directory before its first wildcard and the
/// pattern after it; a relative one is kept, under `base`.
fn split_absolute(base: &str, pattern: &str) -> (String, String) {
    if !pattern.starts_with('/') {
        return (base.to_owned(), pattern.to_owned());
    }
    let components: Vec<&str> = pattern.split('/').filter(|component| !component.is_empty()).collect();
    let literal = components
        .iter()
        .take_while(|component| !component.contains(['*', '?', '[', '{']))
        .count()
        // The last component is what is matched, even without wildcards.
        .min(components.len().saturating_sub(1));
    let dir = format!("/{}", components[..literal].join("/"));
    (dir, components[literal..].join("/"))
}

fn format_results(results: &GlobResults, pattern: &str, path: &str, working_dir: &str) -> String {
    let shown = relative_to(working_dir, path);
    if results.matches.is_empty() {
        return format!(
            "No files match `{pattern}` in {shown}. (`*` does not cross directories: use `**/{pattern}` to search \
             at any depth. Hidden and .gitignored files are skipped.)"
        );
    }
    let mut text = String::new();
    for found in &results.matches {
        text.push_str(relative_to(working_dir, &found.path));
        text.push('\n');
    }
    if results.truncated {
        text.push_str(&format!(
            "[Only the {} newest matches are listed; more files match. Use a more specific pattern or path.]\n",
            thousands(results.matches.len() as u64)
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use runtools_protocol::envd::GlobMatch;

    use super::*;

    #[test]
    fn absolute_patterns_are_split_at_the_first_wildcard() {
        assert_eq!(split_absolute("/home/user", "**/*.rs"), ("/home/user".into(), "**/*.rs".into()));
        assert_eq!(split_absolute("/home/user", "/etc/**/*.conf"), ("/etc".into(), "**/*.conf".into()));
        assert_eq!(split_absolute("/home/user", "/etc/hosts"), ("/etc".into(), "hosts".into()));
        assert_eq!(split_absolute("/x", "/*.txt"), ("/".into(), "*.txt".into()));
    }

    #[test]
    fn paths_are_listed_and_truncation_said() {
        let found = |path: &str| GlobMatch { path: path.into(), size: 1, modified_ms: 0 };
        let results = GlobResults { matches: vec![found("/home/user/b.rs"), found("/opt/a.rs")], truncated: true };
        assert_eq!(
            format_results(&results, "**/*.rs", "/", "/home/user"),
            "b.rs\n/opt/a.rs\n[Only the 2 newest matches are listed; more files match. Use a more specific pattern or path.]\n"
        );
        let none = GlobResults { matches: vec![], truncated: false };
        assert!(
            format_results(&none, "*.py", "/home/user/src", "/home/user").starts_with("No files match `*.py` in src.")
        );
    }
}
