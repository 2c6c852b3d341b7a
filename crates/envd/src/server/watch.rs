//! The `watch` stream: inotify (through `notify`) on a directory inside the sandbox, optionally
//! recursive, reporting changes as `WatchEvent` replies with sandbox paths until the client
//! cancels or the directory itself goes away.

use std::path::{Path, PathBuf};

use notify::event::{ModifyKind, RenameMode};
use notify::{EventKind, RecursiveMode, Watcher};
use runtools_protocol::envd::{Control, EnvdErrorCode, Reply, WatchEvent, WatchEventKind};
use rustix::fs::{Mode, OFlags};
use tokio::sync::mpsc;

use super::connection::{HandlerResult, StreamContext, StreamInput, envd_error};
use super::paths::SandboxPath;

/// inotify events queued before the watcher thread waits for the client.
const EVENT_QUEUE: usize = 256;

fn event_kind(kind: &EventKind) -> Option<WatchEventKind> {
    match kind {
        EventKind::Create(_) => Some(WatchEventKind::Create),
        // `Both` repeats a `From` and a `To` already reported.
        EventKind::Modify(ModifyKind::Name(RenameMode::Both)) => None,
        EventKind::Modify(ModifyKind::Name(_)) => Some(WatchEventKind::Rename),
        EventKind::Modify(_) => Some(WatchEventKind::Modify),
        EventKind::Remove(_) => Some(WatchEventKind::Remove),
        EventKind::Access(_) | EventKind::Any | EventKind::Other => None,
    }
}

/// `real` (a path in envd's namespace under `real_base`) as a sandbox path under `base`.
fn sandbox_path(base: &SandboxPath, real_base: &Path, real: &Path) -> Option<String> {
    let rest = real.strip_prefix(real_base).ok()?;
    let mut path = base.clone();
    for component in rest.components() {
        path = path.join(component.as_os_str().to_str()?);
    }
    Some(path.to_string())
}

pub(crate) async fn watch(context: &mut StreamContext, path: String, recursive: bool) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let root = context.state.root.clone();
    // Resolve inside the root, then watch the directory the fd really is.
    let fd = root.open_at(&path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
    let real: PathBuf = std::fs::read_link(format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd)))
        .unwrap_or_else(|_| root.host_path().join(path.to_string().trim_start_matches('/')));
    drop(fd);

    let (events_tx, mut events) = mpsc::channel(EVENT_QUEUE);
    let config = notify::Config::default().with_follow_symlinks(false);
    let mut watcher = notify::INotifyWatcher::new(
        move |event: notify::Result<notify::Event>| {
            // Runs on notify's thread; an error means the stream is gone.
            let _ = events_tx.blocking_send(event);
        },
        config,
    )
    .map_err(|error| envd_error(EnvdErrorCode::Io, format!("cannot start watching: {error}")))?;
    let mode = if recursive { RecursiveMode::Recursive } else { RecursiveMode::NonRecursive };
    watcher
        .watch(&real, mode)
        .map_err(|error| envd_error(EnvdErrorCode::Io, format!("cannot watch {path}: {error}")))?;
    context.out.reply(&Reply::Watching).await?;

    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Ok(()) };
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        tracing::debug!(%error, "watch error");
                        continue;
                    }
                };
                let Some(kind) = event_kind(&event.kind) else { continue };
                for changed in &event.paths {
                    let Some(sandbox) = sandbox_path(&path, &real, changed) else { continue };
                    let watched_gone = kind == WatchEventKind::Remove && changed == &real;
                    let reply = Reply::WatchEvent { event: WatchEvent { path: sandbox, kind } };
                    context.out.reply(&reply).await?;
                    if watched_gone {
                        return Ok(());
                    }
                }
            }
            input = context.next_input() => match input {
                StreamInput::Control(Control::Cancel) => return Ok(()),
                other => tracing::debug!(?other, "ignoring input on a watch stream"),
            },
        }
    }
}
