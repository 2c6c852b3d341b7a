//! `grep`: a regex search over the files under a path, with `grep-regex` matching, `grep-searcher`
//! reading (line numbers, context, binary files skipped at the first NUL byte) and the shared
//! `ignore` walk narrowed by `--glob`-style overrides and ripgrep file types. Results are grouped
//! by file, in walk order (sorted by name), and batched into `GrepMatches` replies.
//!
//! A file whose lines do not fit one batch is sent as consecutive `GrepFile`s with the same path:
//! the first carries the file's `matches`, the continuations 0 (the client merges them).

use std::io;
use std::path::Path;
use std::sync::Arc;

use grep_regex::{RegexMatcher, RegexMatcherBuilder};
use grep_searcher::{BinaryDetection, LineIter, Searcher, SearcherBuilder, Sink, SinkContext, SinkMatch};
use ignore::WalkBuilder;
use ignore::overrides::OverrideBuilder;
use ignore::types::TypesBuilder;
use runtools_protocol::envd::{EnvdError, EnvdErrorCode, GrepFile, GrepLine, GrepOutput, GrepSpec, Reply};
use rustix::fs::OFlags;

use super::{
    CancelFlag, DEFAULT_MAX_RESULTS, REPLY_BATCH_BYTES, ReplySender, SearchBase, json_len, walk_builder, walk_files,
};
use crate::server::connection::envd_error;
use crate::server::paths::{SandboxRoot, os_error};

/// Longest line text reported, in characters; longer lines are cut and marked.
const MAX_LINE_CHARS: usize = 2_000;
/// Most memory one file's search may take (a single huge line, or a whole file in multiline
/// mode); a file needing more is skipped rather than swelling PID 1.
const SEARCH_HEAP_LIMIT: usize = 256 * 1024 * 1024;
/// JSON bytes of a `GrepFile` besides its path and lines.
const FILE_OVERHEAD: usize = 64;

/// A grep ready to run: everything the request could get wrong has been checked.
#[derive(Debug)]
pub(super) struct GrepSearch {
    root: Arc<SandboxRoot>,
    base: SearchBase,
    walk: WalkBuilder,
    matcher: RegexMatcher,
    searcher: Searcher,
    output: GrepOutput,
    max_results: u64,
}

fn invalid(message: String) -> EnvdError {
    envd_error(EnvdErrorCode::InvalidRequest, message)
}

impl GrepSearch {
    /// Builds the matcher, searcher and walk; an invalid regex, glob or unknown file type is an
    /// `InvalidRequest`, a missing path `NotFound`.
    pub(super) fn prepare(root: Arc<SandboxRoot>, spec: GrepSpec) -> Result<Self, EnvdError> {
        let matcher = build_matcher(&spec)?;
        let base = SearchBase::resolve(&root, spec.path.as_deref())?;
        let content = spec.output == GrepOutput::Content;
        let searcher = SearcherBuilder::new()
            .line_number(true)
            .multi_line(spec.multiline)
            .before_context(if content { spec.before_context as usize } else { 0 })
            .after_context(if content { spec.after_context as usize } else { 0 })
            .binary_detection(BinaryDetection::quit(b'\0'))
            .heap_limit(Some(SEARCH_HEAP_LIMIT))
            .build();

        let mut walk = walk_builder(&root, &base, spec.hidden, spec.no_ignore);
        if !spec.globs.is_empty() {
            let mut overrides = OverrideBuilder::new(base.real_dir());
            for glob in &spec.globs {
                overrides.add(glob).map_err(|error| invalid(format!("invalid glob `{glob}`: {error}")))?;
            }
            walk.overrides(overrides.build().map_err(|error| invalid(format!("invalid globs: {error}")))?);
        }
        if !spec.file_types.is_empty() {
            let mut types = TypesBuilder::new();
            types.add_defaults();
            for name in &spec.file_types {
                types.select(name);
            }
            // The error names the first unknown type.
            walk.types(types.build().map_err(|error| invalid(error.to_string()))?);
        }
        let max_results = u64::from(spec.max_results.unwrap_or(DEFAULT_MAX_RESULTS));
        Ok(Self { root, base, walk, matcher, searcher, output: spec.output, max_results })
    }

    /// Walks and searches, sending batches, until done, cancelled, or the stream is gone.
    pub(super) fn run(mut self, cancel: &CancelFlag, replies: &ReplySender) {
        let mut batcher = GrepBatcher { replies, files: Vec::new(), bytes: 0 };
        let mut files_searched = 0u64;
        let mut remaining = self.max_results;
        let mut truncated = false;
        let walk = self.walk.clone();
        for entry in walk_files(&walk, cancel, "grep") {
            let found = match self.search_file(entry.path(), remaining, cancel) {
                Ok(found) => found,
                Err(error) => {
                    tracing::debug!(%error, "grep: skipping a file");
                    continue;
                }
            };
            files_searched += 1;
            if cancel.is_set() {
                return;
            }
            if found.binary || found.matches == 0 {
                continue;
            }
            if remaining == 0 {
                truncated = true;
                break;
            }
            let reported = match self.output {
                GrepOutput::Content => found.lines.len() as u64,
                GrepOutput::FilesWithMatches | GrepOutput::Count => 1,
            };
            remaining = remaining.saturating_sub(reported);
            let file =
                GrepFile { path: self.base.sandbox_path(entry.path()), matches: found.matches, lines: found.lines };
            if !batcher.push(file, files_searched) {
                return;
            }
            if found.lines_cut {
                truncated = true;
                break;
            }
        }
        if cancel.is_set() {
            return;
        }
        batcher.flush(truncated, files_searched);
    }

    fn search_file(&mut self, real: &Path, line_budget: u64, cancel: &CancelFlag) -> Result<FileResults, EnvdError> {
        // NONBLOCK: should the file have been swapped for a FIFO, opening it must not hang.
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
        let file = std::fs::File::from(self.root.open_host_path(real, flags)?);
        let reader = CancellableReader { file, cancel };
        let mut collector = FileCollector {
            content: self.output == GrepOutput::Content,
            line_budget,
            cancel,
            results: FileResults::default(),
        };
        self.searcher
            .search_reader(&self.matcher, reader, &mut collector)
            .map_err(|error| os_error(error, self.base.sandbox_path(real)))?;
        Ok(collector.results)
    }
}

/// A file whose reads fail once the search is cancelled, so a long file (which may never call
/// the sink: no matches) is abandoned within one buffer's read.
#[derive(Debug)]
struct CancellableReader<'a> {
    file: std::fs::File,
    cancel: &'a CancelFlag,
}

impl io::Read for CancellableReader<'_> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        if self.cancel.is_set() {
            return Err(io::Error::other("the search was cancelled"));
        }
        self.file.read(buffer)
    }
}

fn build_matcher(spec: &GrepSpec) -> Result<RegexMatcher, EnvdError> {
    let mut builder = RegexMatcherBuilder::new();
    // As ripgrep: `^` and `$` match at line boundaries; a NUL can never match (binary detection
    // stops at it).
    builder
        .multi_line(true)
        .case_insensitive(spec.case_insensitive)
        .fixed_strings(spec.fixed_strings)
        .ban_byte(Some(b'\0'));
    if spec.multiline {
        builder.dot_matches_new_line(true);
    } else {
        // Line by line: a pattern that could only match across lines is refused.
        builder.line_terminator(Some(b'\n'));
    }
    builder.build(&spec.pattern).map_err(|error| invalid(format!("invalid regex: {error}")))
}

/// What searching one file found.
#[derive(Debug, Default)]
struct FileResults {
    /// Matching lines, all of them.
    matches: u64,
    /// Content mode: matching and context lines, up to the line budget.
    lines: Vec<GrepLine>,
    /// A line was left out for want of budget.
    lines_cut: bool,
    /// A NUL byte showed the file is binary; its results are discarded.
    binary: bool,
}

/// Receives one file's matches and context lines from the searcher.
#[derive(Debug)]
struct FileCollector<'a> {
    content: bool,
    line_budget: u64,
    cancel: &'a CancelFlag,
    results: FileResults,
}

impl FileCollector<'_> {
    fn keep(&mut self, line_number: u64, bytes: &[u8], context: bool) {
        if !self.content {
            return;
        }
        if self.results.lines.len() as u64 >= self.line_budget {
            self.results.lines_cut = true;
            return;
        }
        self.results.lines.push(GrepLine { line_number, text: line_text(bytes), context });
    }
}

impl Sink for FileCollector<'_> {
    type Error = io::Error;

    fn matched(&mut self, _: &Searcher, found: &SinkMatch<'_>) -> Result<bool, io::Error> {
        let first = found.line_number().unwrap_or(1);
        // Several lines at once in multiline mode; each counts as a matching line.
        for (offset, line) in (0u64..).zip(found.lines()) {
            self.results.matches += 1;
            self.keep(first + offset, line, false);
        }
        Ok(!self.cancel.is_set())
    }

    fn context(&mut self, _: &Searcher, context: &SinkContext<'_>) -> Result<bool, io::Error> {
        let first = context.line_number().unwrap_or(1);
        for (offset, line) in (0u64..).zip(LineIter::new(b'\n', context.bytes())) {
            self.keep(first + offset, line, true);
        }
        Ok(!self.cancel.is_set())
    }

    fn binary_data(&mut self, _: &Searcher, _binary_byte_offset: u64) -> Result<bool, io::Error> {
        self.results.binary = true;
        Ok(false)
    }
}

/// A line as reported: without its terminator, lossy UTF-8, cut after [`MAX_LINE_CHARS`]
/// characters with a marker saying how long it was.
fn line_text(bytes: &[u8]) -> String {
    let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    // No character is longer than 4 bytes, so this keeps at least MAX_LINE_CHARS of them.
    let head = &bytes[..bytes.len().min(MAX_LINE_CHARS * 4)];
    let text = String::from_utf8_lossy(head);
    match text.char_indices().nth(MAX_LINE_CHARS) {
        None if head.len() == bytes.len() => text.into_owned(),
        None => format!("{text} [… line cut; {} bytes in all]", bytes.len()),
        Some((cut, _)) => format!("{} [… line cut; {} bytes in all]", &text[..cut], bytes.len()),
    }
}

/// Groups files into `GrepMatches` replies of at most [`REPLY_BATCH_BYTES`].
#[derive(Debug)]
struct GrepBatcher<'a> {
    replies: &'a ReplySender,
    files: Vec<GrepFile>,
    bytes: usize,
}

impl GrepBatcher<'_> {
    /// Adds a file, sending full batches on the way; false once the stream is gone.
    fn push(&mut self, file: GrepFile, files_searched: u64) -> bool {
        let GrepFile { path, matches, lines } = file;
        let header = json_len(&path) + FILE_OVERHEAD;
        let mut piece = GrepFile { path, matches, lines: Vec::new() };
        let mut piece_bytes = header;
        for line in lines {
            let size = json_len(&line);
            let has_content = !self.files.is_empty() || !piece.lines.is_empty();
            if has_content && self.bytes + piece_bytes + size > REPLY_BATCH_BYTES {
                if !piece.lines.is_empty() {
                    let continuation = GrepFile { path: piece.path.clone(), matches: 0, lines: Vec::new() };
                    self.files.push(std::mem::replace(&mut piece, continuation));
                }
                if !self.flush(false, files_searched) {
                    return false;
                }
                piece_bytes = header;
            }
            piece_bytes += size;
            piece.lines.push(line);
        }
        if !self.files.is_empty() && self.bytes + piece_bytes > REPLY_BATCH_BYTES && !self.flush(false, files_searched)
        {
            return false;
        }
        self.bytes += piece_bytes;
        self.files.push(piece);
        true
    }

    /// Sends what is batched (possibly nothing); false once the stream is gone.
    fn flush(&mut self, truncated: bool, files_searched: u64) -> bool {
        self.bytes = 0;
        let files = std::mem::take(&mut self.files);
        self.replies.send(Reply::GrepMatches { files, truncated, files_searched })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio::sync::mpsc;

    use super::*;

    #[test]
    fn lines_lose_their_terminator_and_long_ones_are_cut() {
        assert_eq!(line_text(b"plain\r\n"), "plain");
        assert_eq!(line_text(b"no newline"), "no newline");
        assert_eq!(line_text(b"bad \xff byte\n"), "bad \u{fffd} byte");
        let long = "é".repeat(MAX_LINE_CHARS + 10);
        let text = line_text(long.as_bytes());
        assert!(text.starts_with(&"é".repeat(MAX_LINE_CHARS)));
        assert!(text.ends_with(&format!("[… line cut; {} bytes in all]", long.len())), "{text}");
        let exact = "x".repeat(MAX_LINE_CHARS);
        assert_eq!(line_text(exact.as_bytes()), exact);
    }

    #[test]
    fn a_file_too_big_for_one_batch_is_split_into_pieces() {
        let (sender, mut receiver) = mpsc::channel(64);
        let replies = ReplySender(sender);
        let lines: Vec<GrepLine> =
            (1..=1_000).map(|line_number| GrepLine { line_number, text: "y".repeat(1_500), context: false }).collect();
        let pushed = std::thread::spawn(move || {
            let mut batcher = GrepBatcher { replies: &replies, files: Vec::new(), bytes: 0 };
            let small = GrepFile { path: "/a".into(), matches: 1, lines: lines[..1].to_vec() };
            assert!(batcher.push(small, 1));
            assert!(batcher.push(GrepFile { path: "/b".into(), matches: 1_000, lines }, 2));
            assert!(batcher.flush(true, 2));
        });
        pushed.join().unwrap();
        let mut batches = Vec::new();
        while let Ok(reply) = receiver.try_recv() {
            batches.push(reply);
        }
        assert!(batches.len() >= 3, "{} batches", batches.len());
        let mut pieces = Vec::new();
        for (index, reply) in batches.iter().enumerate() {
            let Reply::GrepMatches { files, truncated, files_searched } = reply else { panic!("{reply:?}") };
            assert!(serde_json::to_vec(reply).unwrap().len() < REPLY_BATCH_BYTES + 4096);
            assert_eq!(*truncated, index == batches.len() - 1);
            assert!(*files_searched >= 1);
            pieces.extend(files.iter().cloned());
        }
        assert_eq!(pieces[0].path, "/a");
        assert!(pieces[1..].iter().all(|piece| piece.path == "/b"));
        assert_eq!(pieces[1].matches, 1_000);
        assert!(pieces[2..].iter().all(|piece| piece.matches == 0));
        let numbers: Vec<u64> =
            pieces[1..].iter().flat_map(|piece| piece.lines.iter().map(|l| l.line_number)).collect();
        assert_eq!(numbers, (1..=1_000).collect::<Vec<_>>());
    }
}
