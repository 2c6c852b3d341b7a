//! `glob`: the files under a path whose path relative to it matches any of the patterns (`globset`,
//! with `*` never crossing a `/`, so `*.toml` finds only top-level files), found with the shared
//! `ignore` walk and returned newest first (ties by path), capped at `max_results`. Only the newest
//! `max_results` are kept while walking, so memory stays bounded however many files match.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::time::UNIX_EPOCH;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::{DirEntry, WalkBuilder};
use runtools_protocol::envd::{EnvdError, EnvdErrorCode, GlobMatch, GlobSpec, Reply};

use super::{
    CancelFlag, DEFAULT_MAX_RESULTS, REPLY_BATCH_BYTES, ReplySender, SearchBase, json_len, walk_builder, walk_files,
};
use crate::server::connection::envd_error;
use crate::server::paths::SandboxRoot;

/// A glob ready to run.
#[derive(Debug)]
pub(super) struct GlobSearch {
    base: SearchBase,
    walk: WalkBuilder,
    patterns: GlobSet,
    max_results: usize,
}

impl GlobSearch {
    /// Compiles the patterns and resolves the path; a bad pattern is an `InvalidRequest` naming
    /// it, a missing path `NotFound`.
    pub(super) fn prepare(root: &SandboxRoot, spec: GlobSpec) -> Result<Self, EnvdError> {
        if spec.patterns.is_empty() {
            return Err(envd_error(EnvdErrorCode::InvalidRequest, "a glob needs at least one pattern"));
        }
        let mut set = GlobSetBuilder::new();
        for pattern in &spec.patterns {
            // `./src/*.rs` means `src/*.rs`: paths are matched relative to the search path.
            let relative = pattern.strip_prefix("./").unwrap_or(pattern);
            let glob = GlobBuilder::new(relative).literal_separator(true).build().map_err(|error| {
                envd_error(EnvdErrorCode::InvalidRequest, format!("invalid glob pattern `{pattern}`: {error}"))
            })?;
            set.add(glob);
        }
        let patterns = set
            .build()
            .map_err(|error| envd_error(EnvdErrorCode::InvalidRequest, format!("invalid glob patterns: {error}")))?;
        let base = SearchBase::resolve(root, spec.path.as_deref())?;
        let walk = walk_builder(root, &base, spec.hidden, spec.no_ignore);
        let max_results = usize::try_from(spec.max_results.unwrap_or(DEFAULT_MAX_RESULTS)).unwrap_or(usize::MAX);
        Ok(Self { base, walk, patterns, max_results })
    }

    /// Walks, keeps the newest matches, then sends them in batches.
    pub(super) fn run(self, cancel: &CancelFlag, replies: &ReplySender) {
        // A min-heap on "how wanted": its top is the match to drop first when over the cap.
        let mut newest: BinaryHeap<Reverse<Newest>> = BinaryHeap::new();
        let mut matched = 0usize;
        for entry in walk_files(&self.walk, cancel, "glob") {
            let Ok(relative) = entry.path().strip_prefix(self.base.real()) else { continue };
            if !self.patterns.is_match(relative) {
                continue;
            }
            let Some(found) = self.describe(&entry) else { continue };
            matched += 1;
            newest.push(Reverse(Newest(found)));
            if newest.len() > self.max_results {
                newest.pop();
            }
        }
        if cancel.is_set() {
            return;
        }
        // `into_sorted_vec` is ascending in `Reverse`, i.e. most wanted first.
        let matches: Vec<GlobMatch> =
            newest.into_sorted_vec().into_iter().map(|Reverse(Newest(found))| found).collect();
        send_batches(replies, matches, matched > self.max_results);
    }

    fn describe(&self, entry: &DirEntry) -> Option<GlobMatch> {
        let metadata = match entry.metadata() {
            Ok(metadata) => metadata,
            Err(error) => {
                tracing::debug!(%error, "glob: skipping a file that cannot be described");
                return None;
            }
        };
        let modified_ms = match metadata.modified().ok()?.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_millis()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_millis()).map_or(i64::MIN, |ms| -ms),
        };
        Some(GlobMatch { path: self.base.sandbox_path(entry.path()), size: metadata.len(), modified_ms })
    }
}

/// Orders matches by how wanted they are: newer first, then by path.
#[derive(Debug, PartialEq, Eq)]
struct Newest(GlobMatch);

impl Ord for Newest {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.modified_ms.cmp(&other.0.modified_ms).then_with(|| other.0.path.cmp(&self.0.path))
    }
}

impl PartialOrd for Newest {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Sends `matches` as `GlobMatches` replies of at most [`REPLY_BATCH_BYTES`]; the last (always
/// sent) carries `truncated`.
fn send_batches(replies: &ReplySender, matches: Vec<GlobMatch>, truncated: bool) {
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for found in matches {
        let size = json_len(&found);
        if !batch.is_empty() && batch_bytes + size > REPLY_BATCH_BYTES {
            if !replies.send(Reply::GlobMatches { matches: std::mem::take(&mut batch), truncated: false }) {
                return;
            }
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(found);
    }
    replies.send(Reply::GlobMatches { matches: batch, truncated });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn found(path: &str, modified_ms: i64) -> GlobMatch {
        GlobMatch { path: path.into(), size: 0, modified_ms }
    }

    #[test]
    fn newer_is_wanted_more_and_ties_go_by_path() {
        assert!(Newest(found("/b", 2)) > Newest(found("/a", 1)));
        assert!(Newest(found("/a", 1)) > Newest(found("/b", 1)));
        let mut heap: BinaryHeap<Reverse<Newest>> =
            [found("/old", 1), found("/new", 3), found("/mid", 2)].into_iter().map(|m| Reverse(Newest(m))).collect();
        heap.pop();
        let order: Vec<String> = heap.into_sorted_vec().into_iter().map(|Reverse(Newest(m))| m.path).collect();
        assert_eq!(order, ["/new", "/mid"]);
    }
}
