//! The code that runs between `fork` and `exec`, in the two processes that become a sandbox:
//!
//! - the *intermediate* (a child of the server): starts a new session, joins the sandbox's
//!   cgroups (writing `0` to each `cgroup.procs`), enters a user namespace when the server is not
//!   root, unshares the mount, pid, ipc, uts, net and cgroup namespaces, forks the init, reports
//!   its pid and exits — so the init is not the server's child and survives the server;
//! - the *init* (PID 1 of the new pid namespace): runs the prepared mount steps (overlay root,
//!   host layers, `/proc`, `/dev`, tmpfs, volumes), sets the hostname, brings `lo` up,
//!   `pivot_root`s, points stdio at `/dev/null` and a log in `/run/envd`, resets signals, drops
//!   capabilities (bounding set included), sets `no_new_privs`, installs the seccomp filter and
//!   execs envd.
//!
//! The server is multi-threaded, so after `fork` only async-signal-safe work is allowed: no
//! allocation, no locks, no formatting. Everything is prepared in [`Plan`] before the fork and the
//! child makes raw syscalls only. A failure is reported as `(stage, errno)` on a close-on-exec
//! pipe; the pipe reaching EOF without a report means envd was exec'd.

use std::ffi::CString;
use std::os::fd::RawFd;

/// Pipe message tags.
pub(crate) const MSG_PID: u32 = 1;
pub(crate) const MSG_ERROR: u32 = 2;
pub(crate) const MSG_LEN: usize = 12;

/// Stages outside the step list (step failures report the step's index).
pub(crate) const STAGE_SETSID: u32 = 10_000;
pub(crate) const STAGE_CGROUP: u32 = 10_001; // + index of the cgroup.procs file
pub(crate) const STAGE_USERNS: u32 = 10_100;
pub(crate) const STAGE_UNSHARE: u32 = 10_101;
pub(crate) const STAGE_FORK: u32 = 10_102;
pub(crate) const STAGE_STDIO: u32 = 10_103;
pub(crate) const STAGE_CAPS: u32 = 10_104;
pub(crate) const STAGE_NO_NEW_PRIVS: u32 = 10_105;
pub(crate) const STAGE_SECCOMP: u32 = 10_106;
pub(crate) const STAGE_EXEC: u32 = 10_107;

/// One prepared operation of the init before `pivot_root`.
#[derive(Debug)]
pub(crate) enum Op {
    Mount {
        source: Option<CString>,
        target: CString,
        fstype: Option<CString>,
        flags: libc::c_ulong,
        data: Option<CString>,
    },
    /// `mkdir`; an existing directory is fine.
    Mkdir {
        path: CString,
        mode: libc::mode_t,
    },
    /// Creates an empty file (a bind-mount target); an existing one is fine.
    Touch {
        path: CString,
    },
    /// An existing link is fine.
    Symlink {
        target: CString,
        link: CString,
    },
    /// Creates or truncates a regular file (never following a symlink) and writes `content`.
    WriteFile {
        path: CString,
        content: Vec<u8>,
    },
    SetHostname {
        name: Vec<u8>,
    },
    LoopbackUp,
    /// `chdir(new_root)`, `pivot_root(".", ".")`, detach the old root, `chdir("/")`.
    PivotRoot {
        new_root: CString,
    },
}

#[derive(Debug)]
pub(crate) struct Step {
    pub op: Op,
    /// For error messages (parent side only).
    pub what: String,
    /// `ENOENT` is not a failure (masking a `/proc` file this kernel lacks, …).
    pub optional: bool,
}

/// Everything the children need, prepared before the fork.
#[derive(Debug)]
pub(crate) struct Plan {
    pub cgroup_procs: Vec<CString>,
    /// `(uid_map, gid_map)` contents when entering a user namespace.
    pub user_ns: Option<(Vec<u8>, Vec<u8>)>,
    pub steps: Vec<Step>,
    /// Paths inside the new root, opened after `pivot_root`.
    pub dev_null: CString,
    pub log_file: CString,
    pub last_cap: u32,
    /// Capabilities kept in the bounding, permitted and effective sets.
    pub keep_caps: u64,
    pub seccomp: Vec<libc::sock_filter>,
    /// envd, opened `O_PATH` on the host before the fork (exec'd with `execveat`).
    pub envd_fd: RawFd,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
}

/// Raw pointer arrays for `execveat`, built in the parent (they point into the plan's CStrings).
pub(crate) struct ExecArgs {
    pub argv: Vec<*mut libc::c_char>,
    pub envp: Vec<*mut libc::c_char>,
}

impl ExecArgs {
    pub fn new(plan: &Plan) -> ExecArgs {
        let pointers = |strings: &[CString]| {
            strings.iter().map(|s| s.as_ptr().cast_mut()).chain(std::iter::once(std::ptr::null_mut())).collect()
        };
        ExecArgs { argv: pointers(&plan.argv), envp: pointers(&plan.envp) }
    }
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO)
}

/// Writes a 12-byte message to the report pipe (atomic: below PIPE_BUF).
fn send(fd: RawFd, tag: u32, a: i32, b: i32) {
    let mut message = [0u8; MSG_LEN];
    message[0..4].copy_from_slice(&tag.to_ne_bytes());
    message[4..8].copy_from_slice(&a.to_ne_bytes());
    message[8..12].copy_from_slice(&b.to_ne_bytes());
    // SAFETY: writes a stack buffer of MSG_LEN bytes to a pipe fd we own.
    unsafe { libc::write(fd, message.as_ptr().cast(), MSG_LEN) };
}

fn fail(fd: RawFd, stage: u32, errno: i32) -> ! {
    send(fd, MSG_ERROR, stage as i32, errno);
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(127) }
}

/// Writes `content` to `path` (open, write, close).
fn write_path(path: &std::ffi::CStr, content: &[u8], flags: libc::c_int) -> Result<(), i32> {
    // SAFETY: path is a valid NUL-terminated string owned by the plan.
    let fd = unsafe { libc::open(path.as_ptr(), flags | libc::O_WRONLY | libc::O_CLOEXEC, 0o644) };
    if fd < 0 {
        return Err(errno());
    }
    // SAFETY: content is a valid slice; fd is the file we just opened.
    let written = unsafe { libc::write(fd, content.as_ptr().cast(), content.len()) };
    let result = if written < 0 { Err(errno()) } else { Ok(()) };
    // SAFETY: closes the fd opened above.
    unsafe { libc::close(fd) };
    result
}

/// The intermediate process. Never returns.
///
/// # Safety
/// Must only be called in a freshly forked child of the server; `report` is the write end of the
/// report pipe and `plan`/`args` were built before the fork.
pub(crate) unsafe fn intermediate(plan: &Plan, args: &ExecArgs, report: RawFd) -> ! {
    // SAFETY: setsid has no memory arguments.
    if unsafe { libc::setsid() } < 0 {
        fail(report, STAGE_SETSID, errno());
    }
    for (index, file) in plan.cgroup_procs.iter().enumerate() {
        if let Err(error) = write_path(file, b"0", 0) {
            fail(report, STAGE_CGROUP + index as u32, error);
        }
    }
    if let Some((uid_map, gid_map)) = &plan.user_ns {
        // SAFETY: unshare has no memory arguments.
        if unsafe { libc::unshare(libc::CLONE_NEWUSER) } < 0 {
            fail(report, STAGE_USERNS, errno());
        }
        let write = |path: &[u8], content: &[u8]| {
            // Static paths with their NUL; no allocation.
            let path = std::ffi::CStr::from_bytes_with_nul(path).map_err(|_| libc::EINVAL)?;
            write_path(path, content, 0)
        };
        for (path, content) in [
            (&b"/proc/self/setgroups\0"[..], &b"deny"[..]),
            (&b"/proc/self/uid_map\0"[..], uid_map.as_slice()),
            (&b"/proc/self/gid_map\0"[..], gid_map.as_slice()),
        ] {
            if let Err(error) = write(path, content) {
                fail(report, STAGE_USERNS, error);
            }
        }
    }
    let namespaces = libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWCGROUP;
    // SAFETY: unshare has no memory arguments.
    if unsafe { libc::unshare(namespaces) } < 0 {
        fail(report, STAGE_UNSHARE, errno());
    }
    // SAFETY: this process is single-threaded (a fork child), so forking again is safe.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        fail(report, STAGE_FORK, errno());
    }
    if pid == 0 {
        // SAFETY: we are the freshly forked init; same contract as ours.
        unsafe { init(plan, args, report) }
    }
    send(report, MSG_PID, pid, 0);
    // SAFETY: _exit is async-signal-safe and never returns.
    unsafe { libc::_exit(0) }
}

fn run(op: &Op) -> Result<(), i32> {
    let check = |result: libc::c_int| if result < 0 { Err(errno()) } else { Ok(()) };
    let ptr = |value: &Option<CString>| value.as_ref().map_or(std::ptr::null(), |v| v.as_ptr());
    match op {
        Op::Mount { source, target, fstype, flags, data } => {
            // SAFETY: every pointer is NULL or a NUL-terminated string owned by the plan.
            check(unsafe { libc::mount(ptr(source), target.as_ptr(), ptr(fstype), *flags, ptr(data).cast()) })
        }
        Op::Mkdir { path, mode } => {
            // SAFETY: path is NUL-terminated.
            match check(unsafe { libc::mkdir(path.as_ptr(), *mode) }) {
                Err(libc::EEXIST) => Ok(()),
                other => other,
            }
        }
        Op::Touch { path } => {
            // SAFETY: path is NUL-terminated.
            let fd = unsafe {
                libc::open(path.as_ptr(), libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW, 0o644)
            };
            if fd < 0 {
                return Err(errno());
            }
            // SAFETY: closes the fd just opened.
            unsafe { libc::close(fd) };
            Ok(())
        }
        Op::Symlink { target, link } => {
            // SAFETY: both are NUL-terminated.
            match check(unsafe { libc::symlink(target.as_ptr(), link.as_ptr()) }) {
                Err(libc::EEXIST) => Ok(()),
                other => other,
            }
        }
        Op::WriteFile { path, content } => write_path(path, content, libc::O_CREAT | libc::O_TRUNC | libc::O_NOFOLLOW),
        Op::SetHostname { name } => {
            // SAFETY: name is a valid slice of the given length.
            check(unsafe { libc::sethostname(name.as_ptr().cast(), name.len()) })
        }
        Op::LoopbackUp => loopback_up(),
        Op::PivotRoot { new_root } => {
            // SAFETY: new_root is NUL-terminated.
            check(unsafe { libc::chdir(new_root.as_ptr()) })?;
            let dot = c".";
            // SAFETY: pivot_root(".", ".") stacks the old root under the new one; both
            // arguments are static NUL-terminated strings.
            check(unsafe { libc::syscall(libc::SYS_pivot_root, dot.as_ptr(), dot.as_ptr()) } as libc::c_int)?;
            // SAFETY: detaches the old root (now mounted on "."); static string.
            check(unsafe { libc::umount2(dot.as_ptr(), libc::MNT_DETACH) })?;
            // SAFETY: static string.
            check(unsafe { libc::chdir(c"/".as_ptr()) })
        }
    }
}

/// `ioctl(SIOCSIFFLAGS)` on `lo`: up and running.
fn loopback_up() -> Result<(), i32> {
    #[repr(C)]
    struct IfReqFlags {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    // SAFETY: socket has no memory arguments.
    let sock = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if sock < 0 {
        return Err(errno());
    }
    let mut request = IfReqFlags { name: [0; libc::IFNAMSIZ], flags: 0, _pad: [0; 22] };
    request.name[..2].copy_from_slice(b"lo");
    request.flags = (libc::IFF_UP | libc::IFF_LOOPBACK | libc::IFF_RUNNING) as libc::c_short;
    // SAFETY: SIOCSIFFLAGS reads a struct ifreq (40 bytes, name then flags) that we own.
    let result = unsafe { libc::ioctl(sock, libc::SIOCSIFFLAGS, &request as *const IfReqFlags) };
    let result = if result < 0 { Err(errno()) } else { Ok(()) };
    // SAFETY: closes the socket opened above.
    unsafe { libc::close(sock) };
    result
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// The sandbox's init: mounts, pivot, privileges, exec. Never returns.
///
/// # Safety
/// Same contract as [`intermediate`].
unsafe fn init(plan: &Plan, args: &ExecArgs, report: RawFd) -> ! {
    // Directory modes in the plan are exact (`/tmp` is 1777).
    // SAFETY: umask has no memory arguments.
    unsafe { libc::umask(0) };
    for (index, step) in plan.steps.iter().enumerate() {
        if let Err(error) = run(&step.op)
            && !(step.optional && error == libc::ENOENT)
        {
            fail(report, index as u32, error);
        }
    }

    // stdio: /dev/null in, the log out (both inside the new root now).
    // SAFETY: NUL-terminated paths from the plan.
    let null = unsafe { libc::open(plan.dev_null.as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
    // SAFETY: as above.
    let log = unsafe {
        libc::open(
            plan.log_file.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_APPEND | libc::O_CLOEXEC | libc::O_NOFOLLOW,
            0o600,
        )
    };
    if null < 0 || log < 0 {
        fail(report, STAGE_STDIO, errno());
    }
    // SAFETY: dup2 onto the standard descriptors (which clears close-on-exec on them).
    if unsafe { libc::dup2(null, 0) < 0 || libc::dup2(log, 1) < 0 || libc::dup2(log, 2) < 0 } {
        fail(report, STAGE_STDIO, errno());
    }
    // SAFETY: umask has no memory arguments.
    unsafe { libc::umask(0o022) };
    // Nothing else of the server's may leak into the sandbox.
    // SAFETY: close_range has no memory arguments; CLOSE_RANGE_CLOEXEC only sets flags.
    unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };

    // Default signal dispositions and an empty mask (the server ignores SIGPIPE, for one).
    for signal in 1..=64 {
        if signal != libc::SIGKILL && signal != libc::SIGSTOP {
            // SAFETY: restoring SIG_DFL is async-signal-safe.
            unsafe { libc::signal(signal, libc::SIG_DFL) };
        }
    }
    // SAFETY: a zeroed sigset_t is a valid argument to sigemptyset, which initialises it.
    let mut empty: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: empty is a valid sigset_t we own.
    unsafe {
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }

    // Capabilities: shrink the bounding set, clear ambient ones.
    for cap in 0..=plan.last_cap {
        if plan.keep_caps & (1u64 << cap) == 0 {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap as libc::c_ulong, 0, 0, 0) } < 0
                && errno() != libc::EINVAL
            {
                fail(report, STAGE_CAPS, errno());
            }
        }
    }
    // SAFETY: prctl with integer arguments only.
    unsafe { libc::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0, 0, 0) };
    // SAFETY: prctl with integer arguments only.
    if unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } < 0 {
        fail(report, STAGE_NO_NEW_PRIVS, errno());
    }
    let program = libc::sock_fprog { len: plan.seccomp.len() as u16, filter: plan.seccomp.as_ptr().cast_mut() };
    // SAFETY: program points at the plan's filter, which outlives this call; the kernel copies it.
    if unsafe { libc::prctl(libc::PR_SET_SECCOMP, libc::SECCOMP_MODE_FILTER, &program as *const libc::sock_fprog) } < 0
    {
        fail(report, STAGE_SECCOMP, errno());
    }
    let low = plan.keep_caps as u32;
    let high = (plan.keep_caps >> 32) as u32;
    let mut header = CapHeader { version: 0x2008_0522, pid: 0 };
    let data = [
        CapData { effective: low, permitted: low, inheritable: 0 },
        CapData { effective: high, permitted: high, inheritable: 0 },
    ];
    // SAFETY: capset reads a v3 header and two data structs that we own.
    if unsafe { libc::syscall(libc::SYS_capset, &mut header as *mut CapHeader, data.as_ptr()) } < 0 {
        fail(report, STAGE_CAPS, errno());
    }

    // SAFETY: argv/envp are NULL-terminated arrays of pointers into the plan's CStrings; the empty
    // path with AT_EMPTY_PATH execs the file behind envd_fd.
    unsafe { libc::execveat(plan.envd_fd, c"".as_ptr(), args.argv.as_ptr(), args.envp.as_ptr(), libc::AT_EMPTY_PATH) };
    fail(report, STAGE_EXEC, errno())
}
