//! Starting a child: its own process group (and session, for PTYs and other users), optionally a
//! PTY as its controlling terminal, optionally another user — without `unsafe`: see [`spawn`].
//!
//! Children are started with `std::process::Command` and never waited for through it: envd's
//! reaper collects every child with `waitpid(-1)` (see `processes`).

use std::ffi::CString;
use std::io::Write;
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

/// The first argument that makes `envd` act as the exec helper (see [`exec_helper`]).
pub const EXEC_HELPER: &str = "__exec";

/// Starts the child described by `plan`; returns once it has exec'd (or failed to).
///
/// No code of ours runs between fork and exec. A plain process gets its own process group as a
/// spawn attribute (so the standard library can use posix_spawn). A process that needs a new
/// session, a controlling terminal or another user is started as `envd __exec …`, which sets
/// those up with ordinary syscalls in its own process and then execs the program in place.
pub(crate) fn spawn(plan: &SpawnPlan) -> std::io::Result<Spawned> {
    let pty = plan.pty.map(opened_pty).transpose()?;
    let mut command = if pty.is_none() && plan.identity.is_none() {
        let mut command = Command::new(&plan.program);
        command.args(&plan.args).process_group(0);
        command
    } else {
        let mut command = Command::new(own_executable());
        command.arg(EXEC_HELPER);
        if pty.is_some() {
            command.arg("--ctty");
        }
        if let Some(identity) = &plan.identity {
            let groups: Vec<String> = identity.groups.iter().map(u32::to_string).collect();
            command.args(["--uid", &identity.uid.to_string(), "--gid", &identity.gid.to_string()]);
            command.args(["--groups", &groups.join(",")]);
        }
        command.arg("--").arg(&plan.program).args(&plan.args);
        command
    };
    command.env_clear().envs(plan.env.iter().map(|(k, v)| (k, v)));
    // Changing directory in the child rules out posix_spawn in a static binary; skip it when the
    // child would start where envd already is.
    if std::env::current_dir().ok().as_deref() != Some(plan.cwd.as_path()) {
        command.current_dir(&plan.cwd);
    }
    match &pty {
        Some((_, slave)) => {
            command
                .stdin(Stdio::from(slave.try_clone()?))
                .stdout(Stdio::from(slave.try_clone()?))
                .stderr(Stdio::from(slave.try_clone()?));
        }
        None => {
            command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
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

/// envd's own binary, to run as the exec helper: `/proc/self/exe` (which works even when envd runs
/// from a memfd), or — in a rootfs without `/proc` — the absolute path envd was started by.
fn own_executable() -> PathBuf {
    let proc_exe = PathBuf::from("/proc/self/exe");
    if proc_exe.exists() {
        return proc_exe;
    }
    std::env::args_os().next().map(PathBuf::from).filter(|path| path.is_absolute()).unwrap_or(proc_exe)
}

/// `envd __exec [--ctty] [--uid N --gid N --groups G,…] -- PROGRAM ARGS…`: runs in the new child
/// process, still single-threaded: starts a new session, makes stdin (a PTY) the controlling
/// terminal, switches user, then execs the program in place. Returns only on failure, with the
/// exit code to use (127, as a shell does for a program it cannot run).
pub fn exec_helper(args: &[String]) -> u8 {
    match prepare_and_exec(args) {
        Ok(never) => match never {},
        Err(error) => {
            let _ = writeln!(std::io::stderr(), "envd: {error}");
            127
        }
    }
}

fn prepare_and_exec(args: &[String]) -> std::io::Result<std::convert::Infallible> {
    let separator = args.iter().position(|arg| arg == "--").ok_or_else(|| std::io::Error::other("missing `--`"))?;
    let (options, command) = (&args[..separator], &args[separator + 1..]);
    let (program, program_args) = command.split_first().ok_or_else(|| std::io::Error::other("missing program"))?;
    let value = |name: &str| options.iter().position(|arg| arg == name).and_then(|i| options.get(i + 1));
    let number = |name: &str| -> std::io::Result<Option<u32>> {
        value(name)
            .map(|text| text.parse().map_err(|_| std::io::Error::other(format!("bad {name} `{text}`"))))
            .transpose()
    };
    rustix::process::setsid()?;
    if options.iter().any(|arg| arg == "--ctty") {
        rustix::process::ioctl_tiocsctty(std::io::stdin())?;
    }
    if let (Some(uid), Some(gid)) = (number("--uid")?, number("--gid")?) {
        let groups: Vec<Gid> = value("--groups")
            .map(|text| {
                text.split(',')
                    .filter(|g| !g.is_empty())
                    .map(|g| g.parse().map(Gid::from_raw))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|_| std::io::Error::other("bad --groups"))?
            .unwrap_or_default();
        // This process has one thread, so the thread-level calls change the whole process.
        rustix::thread::set_thread_groups(&groups)?;
        rustix::thread::set_thread_gid(Gid::from_raw(gid))?;
        rustix::thread::set_thread_uid(Uid::from_raw(uid))?;
    }
    let error = Command::new(program).args(program_args).exec();
    Err(std::io::Error::new(error.kind(), format!("cannot run `{program}`: {error}")))
}
