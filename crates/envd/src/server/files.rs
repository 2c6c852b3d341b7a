//! File streams: stat, list, read (streamed), write (streamed into a temp file renamed into place),
//! mkdir, move and remove. Every path goes through [`SandboxRoot`], and the blocking syscalls run on
//! tokio's blocking pool.
//!
//! Ownership: a replaced file keeps its owner and mode (the temp file is given both before the
//! rename); what a write or mkdir creates is owned by the request's `user` when it names one, else
//! by envd's own user.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::BytesMut;
use runtools_protocol::envd::{Control, EnvdError, EnvdErrorCode, FileEntry, FileType, MAX_DATA_CHUNK, Reply};
use rustix::fs::{AtFlags, Dir, FileType as RawFileType, Mode, OFlags, Stat};
use rustix::process::{Gid, Uid};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::connection::{HandlerResult, StreamContext, StreamInput, envd_error};
use super::paths::{SandboxPath, SandboxRoot, os_error};
use super::users;

/// Largest listing reply (JSON bytes); bigger listings are split over several `Entries` replies.
const ENTRIES_BATCH_BYTES: usize = 512 * 1024;
/// Deepest listing (a runaway `depth` is clamped to this).
const MAX_LIST_DEPTH: u32 = 64;

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EnvdError> + Send + 'static,
) -> Result<T, EnvdError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| envd_error(EnvdErrorCode::Io, format!("the file task failed: {error}")))?
}

fn entry_from_stat(path: &SandboxPath, stat: &Stat, symlink_target: Option<String>) -> FileEntry {
    let file_type = match RawFileType::from_raw_mode(stat.st_mode) {
        RawFileType::RegularFile => FileType::File,
        RawFileType::Directory => FileType::Directory,
        RawFileType::Symlink => FileType::Symlink,
        _ => FileType::Other,
    };
    FileEntry {
        path: path.to_string(),
        name: path.name().to_owned(),
        file_type,
        size: u64::try_from(stat.st_size).unwrap_or_default(),
        mode: stat.st_mode & 0o7777,
        modified_ms: stat.st_mtime.saturating_mul(1000).saturating_add(stat.st_mtime_nsec as i64 / 1_000_000),
        symlink_target,
    }
}

/// Describes `name` in `dir` without following a final symlink.
fn entry_at(dir: impl AsFd, name: &str, path: &SandboxPath) -> Result<FileEntry, EnvdError> {
    let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|error| os_error(error, path))?;
    let target = if RawFileType::from_raw_mode(stat.st_mode) == RawFileType::Symlink {
        rustix::fs::readlinkat(&dir, name, Vec::new()).ok().map(|target| target.to_string_lossy().into_owned())
    } else {
        None
    };
    Ok(entry_from_stat(path, &stat, target))
}

fn stat_path(root: &SandboxRoot, path: &SandboxPath) -> Result<FileEntry, EnvdError> {
    if path.is_root() {
        let fd = root.open_at(path, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(|error| os_error(error, path))?;
        return Ok(entry_from_stat(path, &stat, None));
    }
    let (parent, name) = root.open_parent(path)?;
    entry_at(&parent, &name, path)
}

pub(crate) async fn stat(context: &StreamContext, path: String) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let root = context.state.root.clone();
    let entry = blocking(move || stat_path(&root, &path)).await?;
    context.out.reply(&Reply::Stat { entry }).await
}

fn list_into(dir: OwnedFd, path: &SandboxPath, depth: u32, entries: &mut Vec<FileEntry>) -> Result<(), EnvdError> {
    let mut names = Vec::new();
    for item in Dir::read_from(&dir).map_err(|error| os_error(error, path))? {
        let item = item.map_err(|error| os_error(error, path))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name != "." && name != ".." {
            names.push(name);
        }
    }
    names.sort();
    for name in names {
        let child = path.join(&name);
        let entry = match entry_at(&dir, &name, &child) {
            Ok(entry) => entry,
            // Removed while listing.
            Err(error) if error.code == EnvdErrorCode::NotFound => continue,
            Err(error) => return Err(error),
        };
        let descend = depth > 1 && entry.file_type == FileType::Directory;
        entries.push(entry);
        if descend {
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            match rustix::fs::openat(&dir, name.as_str(), flags, Mode::empty()) {
                Ok(subdir) => list_into(subdir, &child, depth - 1, entries)?,
                Err(error) => tracing::debug!(path = %child, %error, "not descending into a directory"),
            }
        }
    }
    Ok(())
}

pub(crate) async fn list(context: &StreamContext, path: String, depth: Option<u32>) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let depth = depth.unwrap_or(1).clamp(1, MAX_LIST_DEPTH);
    let root = context.state.root.clone();
    let entries = blocking(move || {
        let dir = root.open_at(&path, OFlags::RDONLY | OFlags::DIRECTORY, Mode::empty())?;
        let mut entries = Vec::new();
        list_into(dir, &path, depth, &mut entries)?;
        Ok(entries)
    })
    .await?;
    let mut batch = Vec::new();
    let mut batch_bytes = 0;
    for entry in entries {
        let size = serde_json::to_vec(&entry).map_or(0, |json| json.len() + 1);
        if !batch.is_empty() && batch_bytes + size > ENTRIES_BATCH_BYTES {
            context.out.reply(&Reply::Entries { entries: std::mem::take(&mut batch) }).await?;
            batch_bytes = 0;
        }
        batch_bytes += size;
        batch.push(entry);
    }
    context.out.reply(&Reply::Entries { entries: batch }).await
}

pub(crate) async fn read(
    context: &mut StreamContext,
    path: String,
    offset: Option<u64>,
    length: Option<u64>,
) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let root = context.state.root.clone();
    let display = path.to_string();
    let (fd, entry) = blocking(move || {
        let fd = root.open_at(&path, OFlags::RDONLY, Mode::empty())?;
        let stat = rustix::fs::fstat(&fd).map_err(|error| os_error(error, &path))?;
        let entry = entry_from_stat(&path, &stat, None);
        if entry.file_type == FileType::Directory {
            return Err(envd_error(EnvdErrorCode::IsADirectory, format!("{path}: Is a directory")));
        }
        Ok((fd, entry))
    })
    .await?;
    context.out.reply(&Reply::Stat { entry }).await?;

    let mut file = tokio::fs::File::from_std(std::fs::File::from(fd));
    if let Some(offset) = offset.filter(|&offset| offset > 0) {
        file.seek(std::io::SeekFrom::Start(offset)).await.map_err(|error| os_error(error, &display))?;
    }
    let mut remaining = length.unwrap_or(u64::MAX);
    let mut buffer = BytesMut::with_capacity(MAX_DATA_CHUNK);
    while remaining > 0 {
        if let Ok(StreamInput::Control(Control::Cancel)) = context.input.try_recv() {
            return Ok(());
        }
        let want = usize::try_from(remaining.min(MAX_DATA_CHUNK as u64)).unwrap_or(MAX_DATA_CHUNK);
        buffer.reserve(want);
        let read =
            (&mut file).take(want as u64).read_buf(&mut buffer).await.map_err(|error| os_error(error, &display))?;
        if read == 0 {
            break;
        }
        remaining -= read as u64;
        context.out.stdout(buffer.split().freeze()).await?;
    }
    Ok(())
}

/// Options of a write.
#[derive(Debug, Clone)]
pub(crate) struct WriteRequest {
    pub(crate) mode: Option<u32>,
    pub(crate) create_parents: bool,
    pub(crate) append: bool,
    /// Who owns what the write creates (a name or uid in the sandbox's `/etc/passwd`).
    pub(crate) user: Option<String>,
}

/// A file's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Owner {
    uid: u32,
    gid: u32,
}

impl Owner {
    fn of(stat: &Stat) -> Self {
        Self { uid: stat.st_uid, gid: stat.st_gid }
    }
}

/// The owner of what a request creates: `user` (with its login group) looked up in the sandbox's
/// `/etc/passwd`, or `None` to leave it to envd's user.
fn requested_owner(root: &SandboxRoot, user: Option<&str>) -> Result<Option<Owner>, EnvdError> {
    let Some(spec) = user else { return Ok(None) };
    let user = users::resolve(root, spec)?;
    Ok(Some(Owner { uid: user.identity.uid, gid: user.identity.gid }))
}

/// Gives the open file or directory `fd` to `owner` (nothing to do when it already has it).
fn give(fd: impl AsFd, owner: Owner, path: &SandboxPath) -> Result<(), EnvdError> {
    let stat = rustix::fs::fstat(&fd).map_err(|error| os_error(error, path))?;
    if Owner::of(&stat) == owner {
        return Ok(());
    }
    rustix::fs::fchown(&fd, Some(Uid::from_raw(owner.uid)), Some(Gid::from_raw(owner.gid)))
        .map_err(|error| os_error(error, path))
}

/// Gives the temp file replacing a file the replaced file's owner. Only root may give a file away,
/// so an unprivileged envd (as in some tests) replaces the file anyway, owned by itself.
fn keep_owner(fd: impl AsFd, owner: Owner, path: &SandboxPath) -> Result<(), EnvdError> {
    match give(fd, owner, path) {
        Err(error) if error.code == EnvdErrorCode::PermissionDenied && !rustix::process::geteuid().is_root() => {
            tracing::debug!(%path, %error, "not keeping the owner of a replaced file: envd is not root");
            Ok(())
        }
        other => other,
    }
}

/// A temp file that is removed unless it was renamed into place.
#[derive(Debug)]
struct TempFile {
    dir: Arc<OwnedFd>,
    name: String,
    armed: bool,
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = rustix::fs::unlinkat(&*self.dir, self.name.as_str(), AtFlags::empty());
        }
    }
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where a write goes: the file to write to, and the temp file to rename into place at the end.
fn open_for_write(
    root: &SandboxRoot,
    path: &SandboxPath,
    request: &WriteRequest,
) -> Result<(OwnedFd, Option<TempFile>), EnvdError> {
    let owner = requested_owner(root, request.user.as_deref())?;
    if request.create_parents {
        make_dirs(root, &path.parent(), None, owner)?;
    }
    let mode = Mode::from_raw_mode(request.mode.unwrap_or(0o644) & 0o7777);
    if request.append {
        let fd = open_append(root, path, mode, owner)?;
        if rustix::fs::fstat(&fd).is_ok_and(|stat| RawFileType::from_raw_mode(stat.st_mode) == RawFileType::Directory) {
            return Err(envd_error(EnvdErrorCode::IsADirectory, format!("{path}: Is a directory")));
        }
        return Ok((fd, None));
    }
    let (dir, name) = root.open_parent(path)?;
    // Keep the mode of a file being replaced, unless the request sets one, and its owner.
    let mut final_mode = request.mode.map(|mode| mode & 0o7777);
    let mut replaced_owner = None;
    match rustix::fs::statat(&dir, name.as_str(), AtFlags::SYMLINK_NOFOLLOW) {
        Ok(stat) if RawFileType::from_raw_mode(stat.st_mode) == RawFileType::Directory => {
            return Err(envd_error(EnvdErrorCode::IsADirectory, format!("{path}: Is a directory")));
        }
        Ok(stat) => {
            final_mode = final_mode.or(Some(stat.st_mode & 0o7777));
            replaced_owner = Some(Owner::of(&stat));
        }
        Err(_) => {}
    }
    let temp_name = format!(".{name}.envd-{}-{}.tmp", std::process::id(), TEMP_COUNTER.fetch_add(1, Ordering::Relaxed));
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(&dir, temp_name.as_str(), flags, mode).map_err(|error| os_error(error, path))?;
    let temp = TempFile { dir: Arc::new(dir), name: temp_name, armed: true };
    // Owner before mode: a chown clears the set-user/group-ID bits.
    match (replaced_owner, owner) {
        (Some(replaced), _) => keep_owner(&fd, replaced, path)?,
        (None, Some(owner)) => give(&fd, owner, path)?,
        (None, None) => {}
    }
    if let Some(mode) = final_mode {
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(|error| os_error(error, path))?;
    }
    Ok((fd, Some(temp)))
}

/// Opens `path` for appending, creating it when missing; a file created here goes to `owner`.
fn open_append(root: &SandboxRoot, path: &SandboxPath, mode: Mode, owner: Option<Owner>) -> Result<OwnedFd, EnvdError> {
    let flags = OFlags::WRONLY | OFlags::APPEND;
    let Some(owner) = owner else { return root.open_at(path, flags | OFlags::CREATE, mode) };
    // An existing file is appended to as it is; only a file created here (exclusively, to know
    // it is ours) changes owner. Another writer may create it in between: then open it again. (A
    // dangling symlink fails with `AlreadyExists` here, where a plain create would follow it.)
    let mut attempts = 0;
    loop {
        match root.open_at(path, flags, Mode::empty()) {
            Err(error) if error.code == EnvdErrorCode::NotFound => {}
            other => return other,
        }
        match root.open_at(path, flags | OFlags::CREATE | OFlags::EXCL, mode) {
            Ok(fd) => {
                give(&fd, owner, path)?;
                return Ok(fd);
            }
            Err(error) if error.code == EnvdErrorCode::AlreadyExists && attempts < 3 => attempts += 1,
            Err(error) => return Err(error),
        }
    }
}

pub(crate) async fn write(context: &mut StreamContext, path: String, request: WriteRequest) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let root = context.state.root.clone();
    let target = path.clone();
    let (fd, mut temp) = blocking(move || open_for_write(&root, &target, &request)).await?;
    let mut file = tokio::fs::File::from_std(std::fs::File::from(fd));
    let mut written: u64 = 0;
    loop {
        match context.next_input().await {
            StreamInput::Data(bytes) => {
                file.write_all(&bytes).await.map_err(|error| os_error(error, &path))?;
                written += bytes.len() as u64;
            }
            StreamInput::Eof => break,
            // The temp file goes with `temp`.
            StreamInput::Control(Control::Cancel) => return Ok(()),
            StreamInput::Control(other) => tracing::debug!(?other, "ignoring a control on a write stream"),
        }
    }
    file.flush().await.map_err(|error| os_error(error, &path))?;
    drop(file);
    if let Some(temp) = temp.as_mut() {
        let dir = temp.dir.clone();
        let from = temp.name.clone();
        let to = path.name().to_owned();
        let display = path.to_string();
        blocking(move || {
            rustix::fs::renameat(&*dir, from.as_str(), &*dir, to.as_str()).map_err(|error| os_error(error, display))
        })
        .await?;
        temp.armed = false;
    }
    context.out.reply(&Reply::Written { bytes: written }).await
}

/// Creates `path` and its missing ancestors (given to `owner`); existing directories are fine and
/// left alone.
fn make_dirs(root: &SandboxRoot, path: &SandboxPath, mode: Option<u32>, owner: Option<Owner>) -> Result<(), EnvdError> {
    for prefix in path.prefixes() {
        match root.open_at(&prefix, OFlags::PATH | OFlags::DIRECTORY, Mode::empty()) {
            Ok(_) => continue,
            Err(error) if error.code == EnvdErrorCode::NotFound => {}
            Err(error) => return Err(error),
        }
        match make_dir(root, &prefix, mode, owner) {
            Ok(()) => {}
            // Created concurrently.
            Err(error) if error.code == EnvdErrorCode::AlreadyExists => {
                root.open_at(&prefix, OFlags::PATH | OFlags::DIRECTORY, Mode::empty())?;
            }
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Creates the directory `path`, given to `owner`.
fn make_dir(root: &SandboxRoot, path: &SandboxPath, mode: Option<u32>, owner: Option<Owner>) -> Result<(), EnvdError> {
    let (parent, name) = root.open_parent(path)?;
    let mode = Mode::from_raw_mode(mode.unwrap_or(0o755) & 0o7777);
    rustix::fs::mkdirat(&parent, name.as_str(), mode).map_err(|error| os_error(error, path))?;
    if let Some(owner) = owner {
        // Through a descriptor: whatever might replace the name meanwhile is not chowned.
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let dir =
            rustix::fs::openat(&parent, name.as_str(), flags, Mode::empty()).map_err(|error| os_error(error, path))?;
        give(&dir, owner, path)?;
    }
    Ok(())
}

pub(crate) async fn mkdir(
    context: &StreamContext,
    path: String,
    parents: bool,
    mode: Option<u32>,
    user: Option<String>,
) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let root = context.state.root.clone();
    blocking(move || {
        let owner = requested_owner(&root, user.as_deref())?;
        if parents { make_dirs(&root, &path, mode, owner) } else { make_dir(&root, &path, mode, owner) }
    })
    .await?;
    context.out.reply(&Reply::Ok).await
}

pub(crate) async fn rename(context: &StreamContext, from: String, to: String) -> HandlerResult {
    let from = SandboxPath::parse(&from)?;
    let to = SandboxPath::parse(&to)?;
    let root = context.state.root.clone();
    blocking(move || {
        let (from_dir, from_name) = root.open_parent(&from)?;
        let (to_dir, to_name) = root.open_parent(&to)?;
        match rustix::fs::renameat(&from_dir, from_name.as_str(), &to_dir, to_name.as_str()) {
            // Across filesystems (e.g. into the tmpfs /tmp) a rename cannot work: copy, then
            // remove the source, as `mv` does.
            Err(rustix::io::Errno::XDEV) => {
                copy_tree(&from_dir, from_name.as_str(), &to_dir, to_name.as_str(), &from)?;
                remove_tree(&from_dir, from_name.as_str(), &from)
            }
            other => other.map_err(|error| os_error(error, format!("{from} -> {to}"))),
        }
    })
    .await?;
    context.out.reply(&Reply::Ok).await
}

/// Copies `name` in `from_dir` to `to_name` in `to_dir`: files with their mode, directories
/// recursively, symlinks as symlinks (never followed).
fn copy_tree(
    from_dir: impl AsFd,
    name: &str,
    to_dir: impl AsFd,
    to_name: &str,
    path: &SandboxPath,
) -> Result<(), EnvdError> {
    let stat = rustix::fs::statat(&from_dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|error| os_error(error, path))?;
    let mode = Mode::from_raw_mode(stat.st_mode & 0o7777);
    match RawFileType::from_raw_mode(stat.st_mode) {
        RawFileType::Directory => {
            rustix::fs::mkdirat(&to_dir, to_name, mode).map_err(|error| os_error(error, path))?;
            let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
            let source =
                rustix::fs::openat(&from_dir, name, flags, Mode::empty()).map_err(|error| os_error(error, path))?;
            let target =
                rustix::fs::openat(&to_dir, to_name, flags, Mode::empty()).map_err(|error| os_error(error, path))?;
            let mut names = Vec::new();
            for entry in Dir::read_from(&source).map_err(|error| os_error(error, path))? {
                let entry = entry.map_err(|error| os_error(error, path))?;
                let entry_name = entry.file_name().to_string_lossy().into_owned();
                if entry_name != "." && entry_name != ".." {
                    names.push(entry_name);
                }
            }
            for entry_name in names {
                copy_tree(&source, &entry_name, &target, &entry_name, path)?;
            }
            Ok(())
        }
        RawFileType::Symlink => {
            let target = rustix::fs::readlinkat(&from_dir, name, Vec::new()).map_err(|error| os_error(error, path))?;
            rustix::fs::symlinkat(target.as_c_str(), &to_dir, to_name).map_err(|error| os_error(error, path))
        }
        _ => {
            let source =
                rustix::fs::openat(&from_dir, name, OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC, Mode::empty())
                    .map_err(|error| os_error(error, path))?;
            let target = rustix::fs::openat(
                &to_dir,
                to_name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                mode,
            )
            .map_err(|error| os_error(error, path))?;
            let mut reader = std::fs::File::from(source);
            let mut writer = std::fs::File::from(target);
            std::io::copy(&mut reader, &mut writer).map_err(|error| os_error(error, path))?;
            Ok(())
        }
    }
}

/// Removes `name` in `dir` and, if it is a directory, everything in it (never following symlinks).
fn remove_tree(dir: impl AsFd, name: &str, path: &SandboxPath) -> Result<(), EnvdError> {
    let stat = rustix::fs::statat(&dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|error| os_error(error, path))?;
    if RawFileType::from_raw_mode(stat.st_mode) != RawFileType::Directory {
        return rustix::fs::unlinkat(&dir, name, AtFlags::empty()).map_err(|error| os_error(error, path));
    }
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let inner = rustix::fs::openat(&dir, name, flags, Mode::empty()).map_err(|error| os_error(error, path))?;
    let mut names = Vec::new();
    for item in Dir::read_from(&inner).map_err(|error| os_error(error, path))? {
        let item = item.map_err(|error| os_error(error, path))?;
        let child = item.file_name().to_string_lossy().into_owned();
        if child != "." && child != ".." {
            names.push(child);
        }
    }
    for child in names {
        match remove_tree(&inner, &child, &path.join(&child)) {
            Err(error) if error.code != EnvdErrorCode::NotFound => return Err(error),
            _ => {}
        }
    }
    rustix::fs::unlinkat(&dir, name, AtFlags::REMOVEDIR).map_err(|error| os_error(error, path))
}

pub(crate) async fn remove(context: &StreamContext, path: String, recursive: bool) -> HandlerResult {
    let path = SandboxPath::parse(&path)?;
    let root = context.state.root.clone();
    blocking(move || {
        let (parent, name) = root.open_parent(&path)?;
        if recursive {
            return remove_tree(&parent, &name, &path);
        }
        let stat = rustix::fs::statat(&parent, name.as_str(), AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|error| os_error(error, &path))?;
        let flags = if RawFileType::from_raw_mode(stat.st_mode) == RawFileType::Directory {
            AtFlags::REMOVEDIR
        } else {
            AtFlags::empty()
        };
        rustix::fs::unlinkat(&parent, name.as_str(), flags).map_err(|error| os_error(error, &path))
    })
    .await?;
    context.out.reply(&Reply::Ok).await
}
