//! The `edit_file` tool: str_replace edits of a text file in the sandbox. The file is read whole
//! through envd, the edit computed by [`matcher`] (exact match, then staged fuzzy fallbacks; the
//! closest regions by [`candidates`] when nothing matches) and written back through envd, which
//! replaces the file atomically and keeps its mode and owner. When commands run as a user, a new
//! file (and the directories created for it) is given to that user, so their own commands can
//! change it. Symlinks are followed to the file they name.
//! The answer shows the edited region with line numbers; `ToolOutput.diff` has a unified diff.

mod candidates;
mod matcher;
#[cfg(test)]
mod tests;

use runtools_agent::ToolOutput;
use runtools_envd::WriteOptions;
use runtools_protocol::agent::ToolSpec;
use runtools_protocol::envd::{EnvdErrorCode, FileEntry, FileType};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::context::{ToolContext, describe_error, is_envd_error};
use crate::output::{numbered_lines, thousands};
use crate::read_file::{Content, SNIFF_BYTES, classify};
use matcher::{Edit, EditError, Stage, edit_text};

pub(crate) const NAME: &str = "edit_file";

/// Largest file edit_file reads.
const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;
/// Lines of context around an edited region in the answer.
const SNIPPET_CONTEXT: usize = 3;
/// Most lines of one region shown.
const SNIPPET_MAX_LINES: usize = 40;
/// Regions shown in full; the rest are listed by line.
const SNIPPET_MAX_REGIONS: usize = 3;
/// Symlinks followed before giving up.
const MAX_SYMLINKS: usize = 16;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct EditFileInput {
    /// The file to edit: absolute, or relative to the working directory.
    #[serde(alias = "file_path")]
    path: String,
    /// The exact text to replace, as the file has it (without read_file's line-number prefixes).
    /// Empty to create a new file.
    old_string: String,
    /// The text to put in its place (must differ from old_string).
    new_string: String,
    /// Replace every occurrence of old_string instead of requiring exactly one (default false).
    #[serde(default)]
    replace_all: bool,
}

pub(crate) fn spec() -> ToolSpec {
    ToolSpec {
        name: NAME.to_owned(),
        description: "Edits a text file in the sandbox by replacing `old_string` with `new_string`. `old_string` \
            must be the file's exact text, including indentation, and must occur exactly once: include enough \
            surrounding lines to make it unique, or set `replace_all` to replace every occurrence (useful for \
            renames). Copy it from read_file's output without the line-number prefix (the number and the tab \
            before each line). If the exact text is not found, small differences in whitespace, indentation \
            and typographic punctuation are tolerated when they still identify one place; if nothing matches, \
            the answer shows the most similar regions with their line numbers. To create a new file (parent \
            directories are created), pass an empty `old_string` and the whole content as `new_string`. The \
            file's line endings and permissions are kept. Read the file before editing it, and re-read after \
            other changes so `old_string` reflects its current content. The answer shows the edited lines."
            .to_owned(),
        input_schema: crate::schema::input_schema::<EditFileInput>(),
    }
}

pub(crate) async fn call(context: &ToolContext, input: &serde_json::Value) -> ToolOutput {
    let input: EditFileInput = match crate::parse_input(NAME, input) {
        Ok(input) => input,
        Err(output) => return output,
    };
    if input.old_string == input.new_string {
        return refusal(&EditError::Identical, "", "");
    }
    let path = match context.resolve(&input.path).await {
        Ok(path) => path,
        Err(message) => return ToolOutput::error(message),
    };
    match edit(context, &path, &input).await {
        Ok(output) | Err(output) => output,
    }
}

async fn edit(context: &ToolContext, requested: &str, input: &EditFileInput) -> Result<ToolOutput, ToolOutput> {
    let envd = context.envd();
    let (path, entry) = follow_symlinks(context, requested).await?;
    let display = context.display_path(&path).await.to_owned();
    let original = match &entry {
        None if input.old_string.is_empty() => String::new(),
        None => {
            return Err(ToolOutput::error(format!(
                "file not found: {path}. To create a new file, call edit_file with an empty old_string and the \
                 whole content as new_string."
            )));
        }
        Some(entry) if entry.file_type == FileType::Directory => {
            return Err(ToolOutput::error(format!("{path} is a directory; edit_file edits files")));
        }
        Some(entry) if entry.file_type != FileType::File => {
            return Err(ToolOutput::error(format!("{path} is not a regular file")));
        }
        Some(entry) => read_text(context, &path, entry).await?,
    };
    let edit = edit_text(&original, &input.old_string, &input.new_string, input.replace_all)
        .map_err(|error| refusal(&error, &display, &original))?;
    let options = WriteOptions { create_parents: entry.is_none(), ..WriteOptions::default() };
    envd.write_as(&path, options, context.user(), edit.content.as_bytes())
        .await
        .map_err(|error| ToolOutput::error(format!("writing failed: {}", describe_error(&error, &path))))?;
    tracing::debug!(path = %path, stage = ?edit.stage, regions = edit.regions.len(), "edited a file");
    let before = original.replace("\r\n", "\n");
    let after = edit.content.replace("\r\n", "\n");
    let diff = similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&display, &display)
        .to_string();
    Ok(ToolOutput::ok(summary(&display, &edit, &after)).with_diff(Some(diff)))
}

/// The path to edit (symlinks followed) and what is there, if anything.
async fn follow_symlinks(context: &ToolContext, requested: &str) -> Result<(String, Option<FileEntry>), ToolOutput> {
    let mut path = requested.to_owned();
    for _ in 0..MAX_SYMLINKS {
        match context.envd().stat(&path).await {
            Ok(entry) if entry.file_type == FileType::Symlink => {
                let target = entry.symlink_target.unwrap_or_default();
                path = if target.starts_with('/') {
                    target
                } else {
                    let parent = path.rsplit_once('/').map_or("", |(parent, _)| parent);
                    format!("{parent}/{target}")
                };
            }
            Ok(entry) => return Ok((path, Some(entry))),
            Err(error) if is_envd_error(&error, EnvdErrorCode::NotFound) => return Ok((path, None)),
            Err(error) => return Err(ToolOutput::error(describe_error(&error, &path))),
        }
    }
    Err(ToolOutput::error(format!("{requested}: too many levels of symbolic links")))
}

/// The whole file as UTF-8 text, refusing binary and oversized files.
async fn read_text(context: &ToolContext, path: &str, entry: &FileEntry) -> Result<String, ToolOutput> {
    if entry.size > MAX_FILE_BYTES {
        return Err(ToolOutput::error(format!(
            "{path} is {} bytes; edit_file edits files up to {} bytes. Use bash (e.g. sed) for this one.",
            thousands(entry.size),
            thousands(MAX_FILE_BYTES)
        )));
    }
    let failed = |error| ToolOutput::error(format!("reading {path} failed: {}", describe_error(&error, path)));
    let (_, mut reader) = context.envd().read(path, None, Some(MAX_FILE_BYTES + 1)).await.map_err(failed)?;
    let bytes = reader.read_to_end().await.map_err(failed)?;
    if let Content::Binary(kind) = classify(&bytes[..bytes.len().min(SNIFF_BYTES)], bytes.len() <= SNIFF_BYTES) {
        return Err(ToolOutput::error(format!("{path} is a binary file ({kind}); edit_file only edits text")));
    }
    String::from_utf8(bytes).map_err(|error| {
        ToolOutput::error(format!(
            "{path} is not valid UTF-8 (at byte {}); edit_file only edits UTF-8 text. Use bash for this file.",
            error.utf8_error().valid_up_to()
        ))
    })
}

/// What the model is told after a successful edit.
fn summary(display: &str, edit: &Edit, after: &str) -> String {
    let total_lines = after.split_terminator('\n').count().max(1);
    if edit.stage == Stage::Create {
        let plural = if total_lines == 1 { "" } else { "s" };
        return format!("Created {display} ({} line{plural}).", thousands(total_lines as u64));
    }
    let count = edit.regions.len();
    let mut text = format!(
        "Edited {display}: replaced {} occurrence{}.",
        thousands(count as u64),
        if count == 1 { "" } else { "s" }
    );
    if let Some(note) = edit.stage.note() {
        text.push(' ');
        text.push_str(&note);
    }
    text.push('\n');
    for &(first, last) in edit.regions.iter().take(SNIPPET_MAX_REGIONS) {
        let from = first.saturating_sub(SNIPPET_CONTEXT).max(1);
        let to = (last + SNIPPET_CONTEXT).min(total_lines);
        text.push('\n');
        if to + 1 - from > SNIPPET_MAX_LINES {
            text.push_str(&numbered_lines(after, from, from + SNIPPET_MAX_LINES - 1, 200));
            text.push_str(&format!("[… through line {to}]\n"));
        } else {
            text.push_str(&numbered_lines(after, from, to, 200));
        }
    }
    if count > SNIPPET_MAX_REGIONS {
        let rest: Vec<String> =
            edit.regions[SNIPPET_MAX_REGIONS..].iter().map(|(first, _)| first.to_string()).collect();
        text.push_str(&format!("\n… and {} more at lines {}.\n", count - SNIPPET_MAX_REGIONS, line_list(&rest)));
    }
    text
}

/// A refused edit, explained.
fn refusal(error: &EditError, display: &str, original: &str) -> ToolOutput {
    let message = match error {
        EditError::Identical => "old_string and new_string are identical; there is nothing to change.".to_owned(),
        EditError::FileNotEmpty => format!(
            "{display} already exists and is not empty, so it cannot be created with an empty old_string. To \
             change it, read it and pass the exact text to replace as old_string."
        ),
        EditError::Ambiguous { stage: Stage::Exact, lines } => format!(
            "old_string matches {} places in {display} (lines {}), so nothing was changed. Add surrounding lines \
             to old_string so it matches exactly one place, or set replace_all to true to replace every \
             occurrence.",
            lines.len(),
            line_list(&lines.iter().map(usize::to_string).collect::<Vec<_>>())
        ),
        EditError::Ambiguous { stage, lines } => format!(
            "old_string is not in {display} exactly. After {} it matches {} places (lines {}), which is \
             ambiguous, so nothing was changed. Copy the exact text from read_file, with enough surrounding lines \
             to match one place.",
            stage.relaxation(),
            lines.len(),
            line_list(&lines.iter().map(usize::to_string).collect::<Vec<_>>())
        ),
        EditError::NoChange { stage } => format!(
            "old_string matched {display} after {}, but replacing it leaves the file unchanged; nothing was \
             written.",
            stage.relaxation()
        ),
        EditError::NotFound { candidates, has_line_numbers } => {
            let mut text = format!("old_string was not found in {display}, so nothing was changed.");
            if *has_line_numbers {
                text.push_str(
                    " It seems to include read_file's line-number prefixes (the number and tab before each line); \
                     those are not part of the file, so leave them out.",
                );
            }
            let content = original.replace("\r\n", "\n");
            if candidates.is_empty() {
                text.push_str(" No region of the file resembles it; read the file again to see what it contains.");
            } else {
                text.push_str(" The most similar regions of the file are:\n");
                for candidate in candidates {
                    let lines = if candidate.first_line == candidate.last_line {
                        format!("Line {}", candidate.first_line)
                    } else {
                        format!("Lines {}-{}", candidate.first_line, candidate.last_line)
                    };
                    text.push_str(&format!("\n{lines} ({:.0}% similar):\n", candidate.similarity * 100.0));
                    let last = candidate.last_line.min(candidate.first_line + 14);
                    text.push_str(&numbered_lines(&content, candidate.first_line, last, 200));
                    if last < candidate.last_line {
                        text.push_str(&format!("[… through line {}]\n", candidate.last_line));
                    }
                }
                text.push_str("\nCopy the text to replace exactly from the file (re-read it if it may have changed).");
            }
            text
        }
    };
    ToolOutput::error(message)
}

/// `1, 2, 3` — at most ten, then `…`.
fn line_list(lines: &[String]) -> String {
    let mut list = lines.iter().take(10).cloned().collect::<Vec<_>>().join(", ");
    if lines.len() > 10 {
        list.push_str(", …");
    }
    list
}
