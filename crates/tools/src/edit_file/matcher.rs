//! Where `old_string` is in a file and what the file becomes: str_replace semantics with staged
//! fuzzy fallbacks. Pure text in, text out — the tool around it does the I/O.
//!
//! An exact match must be unique (or, with `replace_all`, every occurrence is replaced). When
//! there is none, these stages are tried in order; the first that finds anything decides, and it is
//! accepted only when it finds exactly one place:
//!
//! 1. [`Stage::TrailingWhitespace`]: lines compared without their trailing whitespace.
//! 2. [`Stage::Indentation`]: lines compared without their common indentation (the block's shape
//!    must be the same); `new_string` is re-indented to the matched block's indentation.
//! 3. [`Stage::TrimmedLines`]: lines compared trimmed at both ends; `new_string` is re-indented
//!    likewise.
//! 4. [`Stage::UnicodePunctuation`]: typographic punctuation (curly quotes, dashes, ellipses,
//!    non-breaking spaces) normalised to ASCII on both sides.
//!
//! Stage 2 (the block's shape must hold) is stricter than stage 3 (any indentation), so it comes
//! first: a block that only moved as a whole is re-indented from a unique match before the looser
//! comparison can find it ambiguous. The file's line endings are kept: a CRLF file is matched as
//! LF and written back as CRLF.

use std::ops::Range;

use super::candidates::{Candidate, closest_regions};

/// How `old_string` was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// `old_string` was empty and the file empty or missing: `new_string` is the whole file.
    Create,
    Exact,
    TrailingWhitespace,
    Indentation,
    TrimmedLines,
    UnicodePunctuation,
}

impl Stage {
    /// What was relaxed to find the match (for fuzzy stages).
    pub(crate) fn relaxation(self) -> &'static str {
        match self {
            Self::Create | Self::Exact => "nothing",
            Self::TrailingWhitespace => "ignoring trailing whitespace",
            Self::Indentation => "ignoring a difference in indentation",
            Self::TrimmedLines => "ignoring whitespace at the start and end of each line",
            Self::UnicodePunctuation => {
                "normalising typographic punctuation (curly quotes, dashes, ellipses, non-breaking spaces) to ASCII"
            }
        }
    }

    /// A note for the output when the match was not exact.
    pub(crate) fn note(self) -> Option<String> {
        match self {
            Self::Create | Self::Exact => None,
            Self::TrailingWhitespace | Self::UnicodePunctuation => {
                Some(format!("old_string did not match exactly; it matched after {}.", self.relaxation()))
            }
            Self::Indentation | Self::TrimmedLines => Some(format!(
                "old_string did not match exactly; it matched after {}, and new_string was re-indented to the \
                 matched block's indentation.",
                self.relaxation()
            )),
        }
    }
}

/// A successful edit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Edit {
    /// The whole new file, in the file's line endings.
    pub(crate) content: String,
    pub(crate) stage: Stage,
    /// Where the replacement text is in the new file: 1-based, inclusive line ranges.
    pub(crate) regions: Vec<(usize, usize)>,
}

/// Why an edit was refused.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum EditError {
    /// `old_string == new_string`.
    Identical,
    /// `old_string` is empty but the file has content.
    FileNotEmpty,
    /// More than one place matched (`lines`: where each starts, 1-based).
    Ambiguous { stage: Stage, lines: Vec<usize> },
    /// Nothing matched, even fuzzily.
    NotFound { candidates: Vec<Candidate>, has_line_numbers: bool },
    /// A fuzzy match was found but replacing it changes nothing.
    NoChange { stage: Stage },
}

/// The file's line-ending convention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LineEndings {
    Lf,
    Crlf,
    /// Both kinds: matched and written as they are.
    Mixed,
}

impl LineEndings {
    pub(crate) fn detect(content: &str) -> Self {
        let crlf = content.matches("\r\n").count();
        let lf = content.matches('\n').count();
        if crlf == 0 {
            Self::Lf
        } else if crlf == lf {
            Self::Crlf
        } else {
            Self::Mixed
        }
    }
}

/// Applies the edit to `content` (a file's text; empty for a file that does not exist yet),
/// keeping its line endings.
pub(crate) fn edit_text(content: &str, old: &str, new: &str, replace_all: bool) -> Result<Edit, EditError> {
    if old == new {
        return Err(EditError::Identical);
    }
    if old.is_empty() {
        if !content.is_empty() {
            return Err(EditError::FileNotEmpty);
        }
        let lines = new.split_terminator('\n').count().max(1);
        return Ok(Edit { content: new.to_owned(), stage: Stage::Create, regions: vec![(1, lines)] });
    }
    match LineEndings::detect(content) {
        LineEndings::Mixed => apply(content, old, new, replace_all),
        LineEndings::Lf => apply(content, &old.replace("\r\n", "\n"), &new.replace("\r\n", "\n"), replace_all),
        LineEndings::Crlf => {
            let lf = content.replace("\r\n", "\n");
            let mut edit = apply(&lf, &old.replace("\r\n", "\n"), &new.replace("\r\n", "\n"), replace_all)?;
            edit.content = edit.content.replace('\n', "\r\n");
            Ok(edit)
        }
    }
}

/// The matching itself, on text whose line endings already agree.
fn apply(content: &str, old: &str, new: &str, replace_all: bool) -> Result<Edit, EditError> {
    if old == new {
        return Err(EditError::Identical);
    }
    let exact: Vec<Range<usize>> =
        content.match_indices(old).map(|(start, found)| start..start + found.len()).collect();
    match exact.len() {
        0 => {}
        1 => return build(content, Stage::Exact, vec![(exact[0].clone(), new.to_owned())]),
        _ if replace_all => {
            return build(content, Stage::Exact, exact.into_iter().map(|range| (range, new.to_owned())).collect());
        }
        _ => {
            let lines = exact.iter().map(|range| line_of(content, range.start)).collect();
            return Err(EditError::Ambiguous { stage: Stage::Exact, lines });
        }
    }
    let file = FileLines::new(content);
    let wanted = OldLines::new(old);
    for stage in [Stage::TrailingWhitespace, Stage::Indentation, Stage::TrimmedLines] {
        let found = find_lines(&file, &wanted, stage);
        match found.as_slice() {
            [] => continue,
            [only] => {
                let (range, strip_newline) = file.range(only.start, wanted.lines.len(), wanted.trailing_newline);
                let mut text = reindent(new, &only.indents);
                if strip_newline && let Some(stripped) = text.strip_suffix('\n') {
                    text = stripped.to_owned();
                }
                return build(content, stage, vec![(range, text)]);
            }
            many => {
                let lines = many.iter().map(|found| found.start + 1).collect();
                return Err(EditError::Ambiguous { stage, lines });
            }
        }
    }
    let found = find_normalised(content, old);
    match found.as_slice() {
        [] => {}
        [range] => {
            let region = &content[range.clone()];
            // The model typed typographic punctuation the file does not have: its new text likely
            // has the same slip.
            let text = if normalise(old).0 != old && normalise(region).0 == region {
                normalise(new).0
            } else {
                new.to_owned()
            };
            return build(content, Stage::UnicodePunctuation, vec![(range.clone(), text)]);
        }
        many => {
            let lines = many.iter().map(|range| line_of(content, range.start)).collect();
            return Err(EditError::Ambiguous { stage: Stage::UnicodePunctuation, lines });
        }
    }
    Err(EditError::NotFound { candidates: closest_regions(content, old), has_line_numbers: has_line_numbers(old) })
}

/// Replaces each range (sorted, disjoint) with its text.
fn build(content: &str, stage: Stage, mut replacements: Vec<(Range<usize>, String)>) -> Result<Edit, EditError> {
    replacements.sort_by_key(|(range, _)| range.start);
    let mut out = String::with_capacity(content.len());
    let mut regions = Vec::with_capacity(replacements.len());
    let mut copied = 0;
    // Line breaks in `out` so far.
    let mut breaks = 0;
    for (range, text) in replacements {
        let before = &content[copied..range.start];
        breaks += before.matches('\n').count();
        out.push_str(before);
        let first = breaks + 1;
        // A replacement ending in a line break ends on the line it terminates.
        let body = text.strip_suffix('\n').unwrap_or(&text);
        let last = first + body.matches('\n').count();
        breaks += text.matches('\n').count();
        out.push_str(&text);
        regions.push((first, last));
        copied = range.end;
    }
    out.push_str(&content[copied..]);
    if out == content {
        return Err(EditError::NoChange { stage });
    }
    Ok(Edit { content: out, stage, regions })
}

/// The 1-based line of byte `offset`.
pub(crate) fn line_of(content: &str, offset: usize) -> usize {
    content[..offset].matches('\n').count() + 1
}

/// A file's lines (without their `\n`) and where each starts.
pub(crate) struct FileLines<'a> {
    pub(crate) lines: Vec<&'a str>,
    starts: Vec<usize>,
    len: usize,
}

impl<'a> FileLines<'a> {
    pub(crate) fn new(content: &'a str) -> Self {
        let mut lines = Vec::new();
        let mut starts = Vec::new();
        let mut start = 0;
        for line in content.split('\n') {
            lines.push(line);
            starts.push(start);
            start += line.len() + 1;
        }
        // The empty "line" after a final line break is not a line.
        if content.ends_with('\n') {
            lines.pop();
            starts.pop();
        }
        Self { lines, starts, len: content.len() }
    }

    /// The bytes of lines `first..first + count`, with the last one's line break when
    /// `with_newline`; and whether the replacement must lose its own final line break (the file's
    /// last line has none).
    fn range(&self, first: usize, count: usize, with_newline: bool) -> (Range<usize>, bool) {
        let last = first + count - 1;
        let start = self.starts[first];
        let end = self.starts[last] + self.lines[last].len();
        match (with_newline, end < self.len) {
            (true, true) => (start..end + 1, false),
            (true, false) => (start..end, true),
            (false, _) => (start..end, false),
        }
    }
}

/// `old_string` as lines; a final line break is a flag, not an empty last line.
pub(crate) struct OldLines<'a> {
    pub(crate) lines: Vec<&'a str>,
    trailing_newline: bool,
}

impl<'a> OldLines<'a> {
    pub(crate) fn new(old: &'a str) -> Self {
        let body = old.strip_suffix('\n');
        Self { lines: body.unwrap_or(old).split('\n').collect(), trailing_newline: body.is_some() }
    }
}

/// A line-based match: the first line (0-based) and how `old_string`'s indentations map onto the
/// file's (empty when they agree).
#[derive(Debug)]
struct LineMatch {
    start: usize,
    indents: Indents,
}

/// How `old_string`'s indentation maps onto the file's: the pair seen on each matched line (the
/// first wins), and the pair of the two sides' common indentations.
#[derive(Debug, Default)]
struct Indents {
    pairs: Vec<(String, String)>,
    common: (String, String),
}

impl Indents {
    fn between(wanted: &[&str], window: &[&str]) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for (want, have) in wanted.iter().zip(window).filter(|(want, _)| !want.trim().is_empty()) {
            let from = indent_of(want);
            if !pairs.iter().any(|(seen, _)| seen == from) {
                pairs.push((from.to_owned(), indent_of(have).to_owned()));
            }
        }
        let common = (common_indent(wanted).to_owned(), common_indent(window).to_owned());
        Self { pairs, common }
    }

    fn is_identity(&self) -> bool {
        self.common.0 == self.common.1 && self.pairs.iter().all(|(from, to)| from == to)
    }

    /// The file's indentation for `indent`: its pair; else the longest known indentation it
    /// extends, mapped, followed by the rest; else (shallower than all of `old_string`) the
    /// block's common indentation.
    fn map(&self, indent: &str) -> String {
        if let Some((_, to)) = self.pairs.iter().find(|(from, _)| from == indent) {
            return to.clone();
        }
        self.pairs
            .iter()
            .chain(std::iter::once(&self.common))
            .filter(|(from, _)| indent.starts_with(from.as_str()))
            .max_by_key(|(from, _)| from.len())
            .map_or_else(|| self.common.1.clone(), |(from, to)| format!("{to}{}", &indent[from.len()..]))
    }
}

fn find_lines(file: &FileLines<'_>, wanted: &OldLines<'_>, stage: Stage) -> Vec<LineMatch> {
    let count = wanted.lines.len();
    if count > file.lines.len() {
        return Vec::new();
    }
    let old_indent = common_indent(&wanted.lines);
    let mut found = Vec::new();
    for start in 0..=file.lines.len() - count {
        let window = &file.lines[start..start + count];
        let matches = match stage {
            Stage::TrailingWhitespace => {
                window.iter().zip(&wanted.lines).all(|(have, want)| have.trim_end() == want.trim_end())
            }
            Stage::Indentation => same_shape(window, &wanted.lines, old_indent),
            Stage::TrimmedLines => window.iter().zip(&wanted.lines).all(|(have, want)| have.trim() == want.trim()),
            _ => false,
        };
        if matches {
            let indents = match stage {
                Stage::TrailingWhitespace => Indents::default(),
                _ => Indents::between(&wanted.lines, window),
            };
            found.push(LineMatch { start, indents });
        }
    }
    found
}

/// The same lines once each side's common indentation is removed.
fn same_shape(window: &[&str], wanted: &[&str], old_indent: &str) -> bool {
    let block_indent = common_indent(window);
    window.iter().zip(wanted).all(|(have, want)| {
        if want.trim().is_empty() || have.trim().is_empty() {
            return want.trim().is_empty() && have.trim().is_empty();
        }
        let have = have.get(block_indent.len()..).unwrap_or_default();
        let want = want.get(old_indent.len()..).unwrap_or_default();
        have.trim_end() == want.trim_end()
    })
}

/// A line's leading spaces and tabs.
fn indent_of(line: &str) -> &str {
    &line[..line.len() - line.trim_start_matches([' ', '\t']).len()]
}

/// The leading whitespace every non-blank line shares.
fn common_indent<'a>(lines: &[&'a str]) -> &'a str {
    let mut common: Option<&'a str> = None;
    for line in lines.iter().filter(|line| !line.trim().is_empty()) {
        let indent = indent_of(line);
        common = Some(match common {
            None => indent,
            Some(current) => {
                let shared = current.bytes().zip(indent.bytes()).take_while(|(a, b)| a == b).count();
                &current[..shared]
            }
        });
    }
    common.unwrap_or("")
}

/// `text` with each line's indentation mapped from `old_string`'s style to the file's.
fn reindent(text: &str, indents: &Indents) -> String {
    if indents.is_identity() {
        return text.to_owned();
    }
    text.split('\n')
        .map(|line| {
            if line.trim().is_empty() {
                return line.to_owned();
            }
            let indent = indent_of(line);
            let rest = &line[indent.len()..];
            format!("{}{rest}", indents.map(indent))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The ASCII stand-in for a typographic character.
fn ascii_for(c: char) -> Option<&'static str> {
    Some(match c {
        '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}' | '\u{2032}' => "'",
        '\u{201c}' | '\u{201d}' | '\u{201e}' | '\u{201f}' | '\u{2033}' => "\"",
        '\u{2010}' | '\u{2011}' | '\u{2012}' | '\u{2013}' | '\u{2014}' | '\u{2015}' | '\u{2212}' => "-",
        '\u{2026}' => "...",
        '\u{00a0}' | '\u{2000}'..='\u{200a}' | '\u{202f}' | '\u{205f}' | '\u{3000}' => " ",
        _ => return None,
    })
}

/// `text` with typographic punctuation replaced by ASCII, and for each byte of the result the
/// offset in `text` where its character starts (`None` inside a multi-byte replacement), plus one
/// entry for the end.
fn normalise(text: &str) -> (String, Vec<Option<usize>>) {
    let mut out = String::with_capacity(text.len());
    let mut origins = Vec::with_capacity(text.len() + 1);
    for (offset, c) in text.char_indices() {
        let before = out.len();
        match ascii_for(c) {
            Some(ascii) => out.push_str(ascii),
            None => out.push(c),
        }
        origins.push(Some(offset));
        origins.extend(std::iter::repeat_n(None, out.len() - before - 1));
    }
    origins.push(Some(text.len()));
    (out, origins)
}

/// Where `old` is in `content` once both have ASCII punctuation.
fn find_normalised(content: &str, old: &str) -> Vec<Range<usize>> {
    let (haystack, origins) = normalise(content);
    let (needle, _) = normalise(old);
    if needle.is_empty() || (haystack == content && needle == old) {
        return Vec::new();
    }
    haystack
        .match_indices(&needle)
        .filter_map(|(start, found)| Some(origins[start]?..origins[start + found.len()]?))
        .collect()
}

/// Does `old` look copied from read_file's output, line numbers included?
fn has_line_numbers(old: &str) -> bool {
    let mut lines = old.lines().filter(|line| !line.trim().is_empty()).peekable();
    lines.peek().is_some()
        && lines.all(|line| {
            let rest = line.trim_start_matches(' ');
            let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            digits > 0 && rest[digits..].starts_with('\t')
        })
}
