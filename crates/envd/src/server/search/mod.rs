//! The `grep` and `glob` streams: searching the sandbox's files in-process with ripgrep's crates
//! instead of running `rg` in it. This module owns what both share: resolving the search path
//! inside the sandbox root ([`SearchBase`]), the directory walk with its ignore rules
//! ([`walk_builder`]), and running a search on a blocking thread while its replies are streamed to
//! the client and a `Control::Cancel` (or the connection closing) stops it ([`stream_replies`]).
//! The searches themselves live in [`grep`] and [`glob`].
//!
//! Replies are split so each stays far below `MAX_FRAME_LEN` (at most [`REPLY_BATCH_BYTES`] of
//! JSON): every batch but the last has `truncated: false`; the last one is always sent (empty when
//! nothing matched) and carries the final `truncated` (and, for grep, `files_searched`). A
//! cancelled search sends no final batch: the stream just closes.

mod glob;
mod grep;

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use ignore::WalkBuilder;
use runtools_protocol::envd::{Control, EnvdError, EnvdErrorCode, GlobSpec, GrepSpec, Reply};
use rustix::fs::{Mode, OFlags};
use tokio::sync::mpsc;

use super::connection::{HandlerResult, StreamContext, StreamInput, envd_error};
use super::paths::{SandboxPath, SandboxRoot};

/// Largest batch reply (JSON bytes of its items); a frame holds 1 MiB.
const REPLY_BATCH_BYTES: usize = 512 * 1024;
/// `max_results` when the request does not say.
const DEFAULT_MAX_RESULTS: u32 = 1_000;
/// Batches the walk may run ahead of the client before it waits.
const REPLY_QUEUE: usize = 4;
/// Directories holding kernel pseudo-filesystems, skipped when a walk reaches them from above:
/// reading some of their files blocks or never ends. Searching inside them explicitly works.
const PSEUDO_FILESYSTEMS: [&str; 3] = ["proc", "sys", "dev"];

/// Serialised size of `value` plus a separating comma.
fn json_len(value: &impl serde::Serialize) -> usize {
    serde_json::to_vec(value).map_or(0, |json| json.len()) + 1
}

/// The regular files of `walk`, in walk order, skipping entries that cannot be read (logged for
/// `op`) and ending early once `cancel` is set — callers check it again after the loop.
pub(super) fn walk_files<'a>(
    walk: &WalkBuilder,
    cancel: &'a CancelFlag,
    op: &'static str,
) -> impl Iterator<Item = ignore::DirEntry> + 'a {
    walk.build()
        .take_while(move |_| !cancel.is_set())
        .filter_map(move |entry| match entry {
            Ok(entry) => Some(entry),
            Err(error) => {
                tracing::debug!(%error, "{op}: skipping an unreadable entry");
                None
            }
        })
        .filter(|entry| entry.file_type().is_some_and(|kind| kind.is_file()))
}

/// Tells a running walk to stop. Checked between files and inside long file searches.
#[derive(Debug, Clone, Default)]
pub(super) struct CancelFlag(Arc<AtomicBool>);

impl CancelFlag {
    pub(super) fn is_set(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Sets the flag when the stream's handler ends for any reason, including being aborted because
/// the connection closed.
#[derive(Debug)]
struct CancelOnDrop(CancelFlag);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.set();
    }
}

/// Hands replies from the walk's thread to the stream.
#[derive(Debug)]
pub(super) struct ReplySender(mpsc::Sender<Reply>);

impl ReplySender {
    /// Waits for room in the queue; false once the stream is gone (the walk should stop).
    pub(super) fn send(&self, reply: Reply) -> bool {
        self.0.blocking_send(reply).is_ok()
    }
}

/// Where a search starts: the path as the client named it and the directory (or file) it really
/// is in envd's namespace, every symlink on the way resolved inside the sandbox root.
#[derive(Debug, Clone)]
pub(super) struct SearchBase {
    requested: SandboxPath,
    real: PathBuf,
}

impl SearchBase {
    /// Resolves `path` (default `/`) as the file operations do: it must be absolute, may not climb
    /// out of the root, and must exist.
    pub(super) fn resolve(root: &SandboxRoot, path: Option<&str>) -> Result<Self, EnvdError> {
        let requested = SandboxPath::parse(path.unwrap_or("/"))?;
        let fd = root.open_at(&requested, OFlags::PATH, Mode::empty())?;
        let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .unwrap_or_else(|_| root.host_path().join(requested.to_string().trim_start_matches('/')));
        if !real.starts_with(root.host_path()) {
            return Err(envd_error(
                EnvdErrorCode::PathOutsideSandbox,
                format!("`{requested}` leads outside the sandbox"),
            ));
        }
        Ok(Self { requested, real })
    }

    /// The real path the walk starts from.
    pub(super) fn real(&self) -> &Path {
        &self.real
    }

    /// A directory the base is or is in: what globs over relative paths are rooted at.
    pub(super) fn real_dir(&self) -> &Path {
        if self.real.is_dir() { &self.real } else { self.real.parent().unwrap_or(&self.real) }
    }

    /// `real` (a path the walk yielded) as an absolute sandbox path under the requested path.
    pub(super) fn sandbox_path(&self, real: &Path) -> String {
        let mut path = self.requested.to_string();
        for component in real.strip_prefix(&self.real).unwrap_or(Path::new("")).components() {
            if !path.ends_with('/') {
                path.push('/');
            }
            path.push_str(&component.as_os_str().to_string_lossy());
        }
        path
    }
}

/// A walk from `base` with ripgrep's default filters: hidden files and whatever `.gitignore`,
/// `.ignore` and `.git/info/exclude` exclude are skipped (also outside git repositories), unless
/// `hidden` / `no_ignore` say otherwise; symlinks are not followed; entries come sorted by name.
/// The user's global gitignore is not read: envd's own home and environment are not the agent's.
pub(super) fn walk_builder(root: &SandboxRoot, base: &SearchBase, hidden: bool, no_ignore: bool) -> WalkBuilder {
    let mut walk = WalkBuilder::new(base.real());
    walk.hidden(!hidden)
        .ignore(!no_ignore)
        .git_ignore(!no_ignore)
        .git_exclude(!no_ignore)
        .parents(!no_ignore)
        .git_global(false)
        .require_git(false)
        .follow_links(false)
        .sort_by_file_name(|a, b| a.cmp(b));
    let pseudo: Vec<PathBuf> = PSEUDO_FILESYSTEMS.iter().map(|name| root.host_path().join(name)).collect();
    walk.filter_entry(move |entry| entry.depth() == 0 || !pseudo.iter().any(|skipped| entry.path() == skipped));
    walk
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EnvdError> + Send + 'static,
) -> Result<T, EnvdError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| envd_error(EnvdErrorCode::Io, format!("the search task failed: {error}")))?
}

/// Runs `walk` on a blocking thread, forwarding the replies it produces, until it finishes, the
/// client cancels, or the connection closes (the handler is then aborted and [`CancelOnDrop`]
/// stops the walk).
async fn stream_replies(
    context: &mut StreamContext,
    walk: impl FnOnce(&CancelFlag, &ReplySender) + Send + 'static,
) -> HandlerResult {
    let cancel = CancelFlag::default();
    let _stop_walk = CancelOnDrop(cancel.clone());
    let (sender, mut replies) = mpsc::channel(REPLY_QUEUE);
    let walk_cancel = cancel.clone();
    let worker = tokio::task::spawn_blocking(move || walk(&walk_cancel, &ReplySender(sender)));
    loop {
        tokio::select! {
            reply = replies.recv() => match reply {
                Some(reply) => context.out.reply(&reply).await?,
                None => break,
            },
            input = context.next_input() => match input {
                StreamInput::Control(Control::Cancel) => {
                    tracing::debug!("search cancelled");
                    return Ok(());
                }
                other => tracing::debug!(?other, "ignoring input on a search stream"),
            },
        }
    }
    // The walk dropped its sender: it finished, or it panicked before sending its last batch.
    worker.await.map_err(|error| envd_error(EnvdErrorCode::Io, format!("the search failed: {error}")))?;
    Ok(())
}

pub(crate) async fn grep(context: &mut StreamContext, spec: GrepSpec) -> HandlerResult {
    let root = context.state.root.clone();
    let search = blocking(move || grep::GrepSearch::prepare(root, spec)).await?;
    stream_replies(context, move |cancel, replies| search.run(cancel, replies)).await
}

pub(crate) async fn glob(context: &mut StreamContext, spec: GlobSpec) -> HandlerResult {
    let root = context.state.root.clone();
    let search = blocking(move || glob::GlobSearch::prepare(&root, spec)).await?;
    stream_replies(context, move |cancel, replies| search.run(cancel, replies)).await
}
