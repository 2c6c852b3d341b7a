//! Reaching into a running sandbox from the host without trusting anything inside it.
//!
//! envd's socket lives in the sandbox's own `/run/envd` tmpfs; the host reaches it through
//! `/proc/<init pid>/root`. The sandbox controls every path component below that root, so the
//! path is resolved with `openat2(RESOLVE_IN_ROOT)`: symlinks (`..`, absolute targets) stay inside
//! the sandbox's root instead of escaping to the host's. The resolved socket is then connected
//! through `/proc/self/fd/<fd>`, which also sidesteps `sun_path`'s 108-byte limit.

use std::io;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;

fn cstring(path: &Path) -> io::Result<std::ffi::CString> {
    std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))
}

/// Opens `path` (absolute, as the sandbox sees it) inside the root of `pid`, resolving every
/// component as if that root were `/`.
pub(crate) fn open_in_root(pid: i32, path: &str, flags: libc::c_int) -> io::Result<OwnedFd> {
    let root_path = cstring(Path::new(&format!("/proc/{pid}/root")))?;
    // SAFETY: root_path is NUL-terminated; the fd is owned right below.
    let root = unsafe { libc::open(root_path.as_ptr(), libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC) };
    if root < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: root is a fresh descriptor nobody else owns.
    let root = unsafe { OwnedFd::from_raw_fd(root) };
    let relative = cstring(Path::new(path.trim_start_matches('/')))?;
    // SAFETY: open_how is plain data; zeroed is a valid value before we set the fields.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: openat2 reads `how` (size passed) and the NUL-terminated relative path.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root.as_raw_fd(),
            relative.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as libc::c_int) })
}

/// Connects to the Unix socket at `path` inside the sandbox whose init is `pid`.
pub(crate) async fn connect_unix_in_root(pid: i32, path: &str) -> io::Result<tokio::net::UnixStream> {
    let fd = open_in_root(pid, path, libc::O_PATH)?;
    // SAFETY: a zeroed stat is a valid out buffer for fstat.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on a descriptor we own into a buffer we own.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut stat) } < 0 {
        return Err(io::Error::last_os_error());
    }
    if stat.st_mode & libc::S_IFMT != libc::S_IFSOCK {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("{path} in the sandbox is not a socket")));
    }
    // A non-blocking connect: a frozen or wedged envd with a full backlog fails fast instead of
    // hanging the caller.
    let stream = tokio::net::UnixStream::connect(format!("/proc/self/fd/{}", fd.as_raw_fd())).await;
    drop(fd);
    stream
}

/// Reads up to the last `max` bytes of a file opened with [`open_in_root`].
pub(crate) fn read_tail(fd: &OwnedFd, max: u64) -> String {
    use std::io::{Read as _, Seek as _};
    let Ok(duplicate) = fd.try_clone() else { return String::new() };
    let mut file = std::fs::File::from(duplicate);
    let length = file.metadata().map(|meta| meta.len()).unwrap_or(0);
    let _ = file.seek(io::SeekFrom::Start(length.saturating_sub(max)));
    let mut bytes = Vec::new();
    let _ = file.take(max).read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).trim().to_owned()
}

/// Unmounts (lazily) every host mount at or below `dir`, deepest first. There should be none —
/// the sandbox's mounts live in its own namespace — so this only cleans up after the unexpected.
pub(crate) fn unmount_below(dir: &Path) -> io::Result<Vec<String>> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
    let mut points: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .filter(|point| Path::new(point).starts_with(dir))
        .map(str::to_owned)
        .collect();
    points.sort_by_key(|point| std::cmp::Reverse(point.len()));
    for point in &points {
        let target = cstring(Path::new(point))?;
        // SAFETY: umount2 with a NUL-terminated path and constant flags.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
    Ok(points)
}

/// `kill(pid, SIGKILL)`.
pub(crate) fn sigkill(pid: i32) {
    // SAFETY: kill(2) has no memory arguments; the caller checked the pid is the sandbox's init.
    unsafe { libc::kill(pid, libc::SIGKILL) };
}

/// Reaps `pid` if it happens to be our child (when the server is a subreaper); harmless otherwise.
pub(crate) fn try_reap(pid: i32) {
    let mut status = 0;
    // SAFETY: waitpid with WNOHANG on a specific pid and a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
}

/// The effective uid and gid of the server.
pub(crate) fn effective_ids() -> (u32, u32) {
    // SAFETY: geteuid/getegid cannot fail and take no arguments.
    unsafe { (libc::geteuid(), libc::getegid()) }
}

/// A sealed, executable in-memory copy of `path` (`memfd_create` + copy + `F_SEAL_*`). Sandboxes
/// exec envd from it: their `/proc/1/exe` then names no host path and leads to no host file a
/// sandbox could try to write to (the runc `/proc/self/exe` class of escapes), and a rebuilt
/// binary on disk never changes a running backend's envd.
pub(crate) fn sealed_copy(path: &Path) -> io::Result<OwnedFd> {
    const MFD_EXEC: libc::c_uint = 0x0010;
    let name = c"envd";
    let flags = libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING;
    // SAFETY: memfd_create with a static name; the fd is owned below.
    let mut fd = unsafe { libc::memfd_create(name.as_ptr(), flags | MFD_EXEC) };
    if fd < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL) {
        // Kernels before 6.3 know no MFD_EXEC (and make every memfd executable).
        // SAFETY: as above.
        fd = unsafe { libc::memfd_create(name.as_ptr(), flags) };
    }
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor nobody else owns.
    let memfd = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut source = std::fs::File::open(path)?;
    let mut target = std::fs::File::from(memfd.try_clone()?);
    io::copy(&mut source, &mut target)?;
    let seals = libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
    // SAFETY: fcntl(F_ADD_SEALS) with integer arguments on our memfd.
    if unsafe { libc::fcntl(memfd.as_raw_fd(), libc::F_ADD_SEALS, seals) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(memfd)
}
