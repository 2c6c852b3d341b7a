//! The `grep` tool: a regex search over the sandbox's files, run in-process by envd (ripgrep's
//! crates, through `EnvdClient::grep`) rather than as a command. Input names mirror ripgrep and
//! Claude Code's Grep tool (`-i`, `-n`, `-A`/`-B`/`-C`, `glob`, `type`, `output_mode`,
//! `head_limit`); results are formatted like ripgrep's (`path:line:text`, `path-line-text` for
//! context lines), with paths relative to the working directory.

use runtools_agent::ToolOutput;
use runtools_envd::GrepResults;
use runtools_protocol::agent::ToolSpec;
use runtools_protocol::envd::{EnvdErrorCode, GrepFile, GrepOutput, GrepSpec};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::{ToolContext, describe_error, envd_message, is_envd_error, relative_to};
use crate::output::{cut_middle, thousands};

pub(crate) const NAME: &str = "grep";

/// What the search reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
enum OutputMode {
    /// Matching lines, as `path:line:text`.
    Content,
    /// Only the paths of files with a match.
    #[default]
    FilesWithMatches,
    /// The number of matching lines per file.
    Count,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct GrepInput {
    /// The regular expression to search for (Rust regex syntax, as ripgrep: escape literal braces,
    /// e.g. `interface\{\}`).
    pattern: String,
    /// The file or directory to search (absolute, or relative to the working directory; default: the
    /// working directory).
    #[serde(default)]
    path: Option<String>,
    /// Only search files whose path matches this glob, e.g. `*.rs`, `*.{ts,tsx}`, `src/**/*.py`;
    /// `!glob` excludes.
    #[serde(default)]
    glob: Option<String>,
    /// Only search files of this ripgrep type, e.g. `rust`, `py`, `js`, `go`, `java`.
    #[serde(default, rename = "type")]
    file_type: Option<String>,
    /// `files_with_matches` (default: paths only), `content` (matching lines) or `count` (matches per
    /// file).
    #[serde(default)]
    output_mode: OutputMode,
    /// Case-insensitive search.
    #[serde(default, rename = "-i")]
    case_insensitive: bool,
    /// Show line numbers (content mode; default true).
    #[serde(default, rename = "-n")]
    line_numbers: Option<bool>,
    /// Lines of context after each match (content mode).
    #[serde(default, rename = "-A")]
    after: Option<u32>,
    /// Lines of context before each match (content mode).
    #[serde(default, rename = "-B")]
    before: Option<u32>,
    /// Lines of context before and after each match (content mode).
    #[serde(default, rename = "-C")]
    context: Option<u32>,
    /// Let the pattern span lines (`.` also matches line breaks).
    #[serde(default)]
    multiline: bool,
    /// Report at most this many lines (content mode) or files (other modes); default 1000.
    #[serde(default)]
    head_limit: Option<u32>,
}

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: "Searches file contents in the sandbox with a regular expression (ripgrep). Use it instead \
            of running grep or rg in bash. `pattern` uses Rust regex syntax; `path` is the file or directory to \
            search (default: the working directory); narrow with `glob` (e.g. `*.rs`, `*.{ts,tsx}`) or `type` \
            (e.g. `py`, `rust`, `js`). `output_mode` is `files_with_matches` (default: just the paths), `content` \
            (the matching lines as `path:line:text`; context lines from `-A`/`-B`/`-C` appear as \
            `path-line-text`) or `count` (matches per file). `-i` ignores case, `-n` false drops line numbers, \
            `multiline` lets a pattern span lines. Hidden files and files ignored by .gitignore are skipped, \
            as are binary files. Results stop at `head_limit` (default 1000) and the output says when more exist. \
            Paths are shown relative to the working directory."
            .to_owned(),
        input_schema: crate::schema::input_schema::<GrepInput>(),
    }
}

pub(crate) async fn call(context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
    let input: GrepInput = match crate::parse_input(NAME, input) {
        Ok(input) => input,
        Err(output) => return output,
    };
    if input.pattern.is_empty() {
        return ToolOutput::error("`pattern` is empty; give a regular expression to search for");
    }
    if input.head_limit == Some(0) {
        return ToolOutput::error("`head_limit` must be at least 1");
    }
    let path = match &input.path {
        Some(path) => match context.resolve(path).await {
            Ok(path) => path,
            Err(message) => return ToolOutput::error(message),
        },
        None => context.working_dir().await.to_owned(),
    };
    let spec = GrepSpec {
        pattern: input.pattern.clone(),
        path: Some(path.clone()),
        globs: input.glob.iter().filter(|glob| !glob.trim().is_empty()).cloned().collect(),
        file_types: input.file_type.iter().filter(|kind| !kind.trim().is_empty()).cloned().collect(),
        case_insensitive: input.case_insensitive,
        multiline: input.multiline,
        before_context: input.before.or(input.context).unwrap_or(0),
        after_context: input.after.or(input.context).unwrap_or(0),
        output: match input.output_mode {
            OutputMode::Content => GrepOutput::Content,
            OutputMode::FilesWithMatches => GrepOutput::FilesWithMatches,
            OutputMode::Count => GrepOutput::Count,
        },
        max_results: input.head_limit,
        ..GrepSpec::default()
    };
    let results = match context.envd().grep(spec).await {
        Ok(results) => results,
        Err(error) if is_envd_error(&error, EnvdErrorCode::InvalidRequest) => {
            return ToolOutput::error(format!("grep: {}", envd_message(&error)));
        }
        Err(error) if is_envd_error(&error, EnvdErrorCode::NotFound) => {
            return ToolOutput::error(format!("{path} does not exist"));
        }
        Err(error) => return ToolOutput::error(format!("grep failed: {}", describe_error(&error, &path))),
    };
    let working_dir = context.working_dir().await;
    let text = format_results(&input, &results, &path, working_dir);
    ToolOutput::ok(cut_middle(&text, context.output_limits()))
}

/// The results as the model reads them.
fn format_results(input: &GrepInput, results: &GrepResults, path: &str, working_dir: &str) -> String {
    let shown_path = relative_to(working_dir, path);
    if results.files.is_empty() {
        let mut text = format!(
            "No matches for `{}` in {shown_path} ({} files searched).",
            input.pattern,
            thousands(results.files_searched)
        );
        if results.files_searched == 0 {
            text.push_str(
                " No file was searched at all: the path, glob or type excluded everything (hidden, .gitignored and \
                 binary files are skipped).",
            );
        }
        return text;
    }
    let display = |file: &GrepFile| relative_to(working_dir, &file.path).to_owned();
    let mut text = String::new();
    let unit = match input.output_mode {
        OutputMode::Content => {
            let numbers = input.line_numbers.unwrap_or(true);
            for file in &results.files {
                let name = display(file);
                let mut previous: Option<u64> = None;
                for line in &file.lines {
                    // ripgrep's separator between groups of lines that are not adjacent.
                    if previous.is_some_and(|last| line.line_number > last + 1) {
                        text.push_str("--\n");
                    }
                    previous = Some(line.line_number);
                    let separator = if line.context { '-' } else { ':' };
                    if numbers {
                        text.push_str(&format!("{name}{separator}{}{separator}{}\n", line.line_number, line.text));
                    } else {
                        text.push_str(&format!("{name}{separator}{}\n", line.text));
                    }
                }
            }
            "lines"
        }
        OutputMode::FilesWithMatches => {
            text.push_str(&format!("{} files with matches:\n", thousands(results.files.len() as u64)));
            for file in &results.files {
                text.push_str(&display(file));
                text.push('\n');
            }
            "files"
        }
        OutputMode::Count => {
            let total: u64 = results.files.iter().map(|file| file.matches).sum();
            text.push_str(&format!(
                "{} matching lines in {} files:\n",
                thousands(total),
                thousands(results.files.len() as u64)
            ));
            for file in &results.files {
                text.push_str(&format!("{}:{}\n", display(file), file.matches));
            }
            "files"
        }
    };
    if results.truncated {
        let limit = input.head_limit.map_or_else(|| "1,000".to_owned(), |limit| thousands(u64::from(limit)));
        text.push_str(&format!(
            "[Results stop at {limit} {unit}; more matches exist. Narrow the search with path, glob or type, or raise \
             head_limit.]\n"
        ));
    }
    text
}

#[cfg(test)]
mod tests {
    use runtools_protocol::envd::GrepLine;

    use super::*;

    fn input(json: serde_json::Value) -> GrepInput {
        serde_json::from_value(json).unwrap()
    }

    fn line(line_number: u64, text: &str, context: bool) -> GrepLine {
        GrepLine { line_number, text: text.to_owned(), context }
    }

    fn results() -> GrepResults {
        GrepResults {
            files: vec![
                GrepFile {
                    path: "/home/user/src/a.rs".into(),
                    matches: 2,
                    lines: vec![
                        line(1, "fn main() {", false),
                        line(2, "    body", true),
                        line(9, "fn main2() {", false),
                    ],
                },
                GrepFile { path: "/etc/b.conf".into(), matches: 1, lines: vec![line(3, "main = 1", false)] },
            ],
            truncated: false,
            files_searched: 10,
        }
    }

    #[test]
    fn the_input_uses_ripgrep_flag_names() {
        let parsed = input(
            serde_json::json!({"pattern": "x", "-i": true, "-C": 2, "-A": 5, "type": "rust", "output_mode": "count"}),
        );
        assert!(parsed.case_insensitive);
        assert_eq!((parsed.context, parsed.after, parsed.before), (Some(2), Some(5), None));
        assert_eq!(parsed.file_type.as_deref(), Some("rust"));
        assert_eq!(parsed.output_mode, OutputMode::Count);
        let schema = spec().input_schema;
        assert_eq!(
            schema["properties"]["output_mode"]["enum"],
            serde_json::json!(["content", "files_with_matches", "count"]),
            "{schema:#}"
        );
        assert_eq!(schema["properties"]["-i"]["type"], "boolean");
        assert_eq!(schema["required"], serde_json::json!(["pattern"]));
    }

    #[test]
    fn content_mode_reads_like_ripgrep() {
        let input = input(serde_json::json!({"pattern": "main", "output_mode": "content"}));
        let text = format_results(&input, &results(), "/home/user", "/home/user");
        assert_eq!(
            text,
            "src/a.rs:1:fn main() {\nsrc/a.rs-2-    body\n--\nsrc/a.rs:9:fn main2() {\n/etc/b.conf:3:main = 1\n"
        );
        let input = super::tests::input(serde_json::json!({"pattern": "main", "output_mode": "content", "-n": false}));
        assert!(format_results(&input, &results(), "/", "/home/user").starts_with("src/a.rs:fn main() {\n"));
    }

    #[test]
    fn files_and_counts_are_listed() {
        let text = format_results(&input(serde_json::json!({"pattern": "main"})), &results(), "/", "/home/user");
        assert_eq!(text, "2 files with matches:\nsrc/a.rs\n/etc/b.conf\n");
        let count = input(serde_json::json!({"pattern": "main", "output_mode": "count"}));
        assert_eq!(
            format_results(&count, &results(), "/", "/home/user"),
            "3 matching lines in 2 files:\nsrc/a.rs:2\n/etc/b.conf:1\n"
        );
    }

    #[test]
    fn truncation_and_no_matches_are_said() {
        let mut cut = results();
        cut.truncated = true;
        let text = format_results(&input(serde_json::json!({"pattern": "main", "head_limit": 2})), &cut, "/", "/");
        assert!(text.ends_with("[Results stop at 2 files; more matches exist. Narrow the search with path, glob or type, or raise head_limit.]\n"), "{text}");
        let none = GrepResults { files: vec![], truncated: false, files_searched: 0 };
        let text = format_results(&input(serde_json::json!({"pattern": "zzz"})), &none, "/home/user/src", "/home/user");
        assert!(
            text.starts_with("No matches for `zzz` in src (0 files searched). No file was searched at all"),
            "{text}"
        );
    }
}
