//! Starting a child: its own process group (and session, for PTYs and other users), optionally a
//! PTY as its controlling terminal, optionally another user. The one place in envd with `unsafe` (`Command::pre_exec`).
//!
//! Children are started with `std::process::Command` and never waited for through it: envd's
//! reaper collects every child with `waitpid(-1)` (see `processes`).

use std::ffi::CString;
use std::os::fd::OwnedFd;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use runtools_protocol::envd::PtySize;
use rustix::fs::{Mode, OFlags};
use rustix::process::{Gid, Uid};
use rustix::pty::OpenptFlags;

/// Who a child runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// Supplementary groups.
    pub(crate) groups: Vec<u32>,
}

/// Everything needed to start a child.
#[derive(Debug, Clone)]
pub(crate) struct SpawnPlan {
    pub(crate) program: String,
    pub(crate) args: Vec<String>,
    /// The complete environment.
    pub(crate) env: Vec<(String, String)>,
    pub(crate) cwd: PathBuf,
    pub(crate) identity: Option<Identity>,
    pub(crate) pty: Option<PtySize>,
}

/// A started child's end of its stdio.
#[derive(Debug)]
pub(crate) struct Spawned {
    pub(crate) pid: u32,
    /// Write end of stdin (a copy of the PTY master for PTY processes).
    pub(crate) stdin: OwnedFd,
    /// Read end of stdout (the PTY master for PTY processes).
    pub(crate) stdout: OwnedFd,
    /// Read end of stderr; `None` on a PTY.
    pub(crate) stderr: Option<OwnedFd>,
    /// The PTY master, for resizing.
    pub(crate) pty_master: Option<OwnedFd>,
}

fn opened_pty(size: PtySize) -> std::io::Result<(OwnedFd, OwnedFd)> {
    let master = rustix::pty::openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    rustix::pty::grantpt(&master)?;
    rustix::pty::unlockpt(&master)?;
    let name: CString = rustix::pty::ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(name.as_c_str(), OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC, Mode::empty())?;
    let winsize = rustix::termios::Winsize { ws_row: size.rows, ws_col: size.cols, ws_xpixel: 0, ws_ypixel: 0 };
    rustix::termios::tcsetwinsize(&master, winsize)?;
    Ok((master, slave))
}

/// Starts the child described by `plan`; returns once it has exec'd (or failed to).
pub(crate) fn spawn(plan: &SpawnPlan) -> std::io::Result<Spawned> {
    let mut command = Command::new(&plan.program);
    command.args(&plan.args).env_clear().envs(plan.env.iter().map(|(k, v)| (k, v)));
    // Changing directory in the child rules out posix_spawn in a static binary; skip it when the
    // child would start where envd already is.
    if std::env::current_dir().ok().as_deref() != Some(plan.cwd.as_path()) {
        command.current_dir(&plan.cwd);
    }

    let pty = plan.pty.map(opened_pty).transpose()?;
    let terminal = match &pty {
        Some((_, slave)) => {
            command
                .stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave.try_clone()?));
            Some(slave.try_clone()?)
        }
        None => {
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            None
        }
    };
    let identity = plan.identity.as_ref().map(|identity| {
        let groups: Vec<Gid> = identity.groups.iter().map(|&gid| Gid::from_raw(gid)).collect();
        (Uid::from_raw(identity.uid), Gid::from_raw(identity.gid), groups)
    });

    if terminal.is_none() && identity.is_none() {
        // The common case needs nothing run between fork and exec: a process group of its own
        // (for group-wide signals and timeouts) is a spawn attribute, so the standard library can
        // use posix_spawn (vfork-like, no copy of envd's page tables) instead of fork.
        command.process_group(0);
    } else {
        // Runs in the forked child before exec: only raw syscalls, no allocation, no locks.
        let prepare_child = move || -> std::io::Result<()> {
            rustix::process::setsid()?;
            if let Some(terminal) = &terminal {
                rustix::process::ioctl_tiocsctty(terminal)?;
            }
            if let Some((uid, gid, groups)) = &identity {
                // The thread-level calls are process-wide here: the forked child has one thread.
                rustix::thread::set_thread_groups(groups)?;
                rustix::thread::set_thread_gid(*gid)?;
                rustix::thread::set_thread_uid(*uid)?;
            }
            Ok(())
        };
        #[allow(unsafe_code)]
        // SAFETY: `pre_exec` requires the closure to be async-signal-safe, since it runs between
        // fork and exec in a copy of a multithreaded process. `prepare_child` only issues raw
        // syscalls through rustix (setsid, ioctl(TIOCSCTTY), setgroups, setgid, setuid) on values
        // prepared before the fork; it allocates nothing and takes no locks.
        unsafe {
            command.pre_exec(prepare_child);
        }
    }

    let mut child = command.spawn()?;
    let pid = child.id();
    match pty {
        Some((master, _slave)) => {
            // `_slave` and the command's copies close here, so the master sees EOF (EIO) once the
            // child and its descendants are done with the terminal.
            drop(command);
            let stdin = master.try_clone()?;
            let stdout = master.try_clone()?;
            Ok(Spawned { pid, stdin, stdout, stderr: None, pty_master: Some(master) })
        }
        None => {
            let (Some(stdin), Some(stdout), Some(stderr)) =
                (child.stdin.take(), child.stdout.take(), child.stderr.take())
            else {
                return Err(std::io::Error::other("the child's pipes are missing"));
            };
            Ok(Spawned {
                pid,
                stdin: stdin.into(),
                stdout: stdout.into(),
                stderr: Some(stderr.into()),
                pty_master: None,
            })
        }
    }
}
