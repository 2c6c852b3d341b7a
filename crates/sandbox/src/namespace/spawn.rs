//! Turning a [`SandboxSpec`] into a [`Plan`] (validated paths, prepared C strings, the mount steps
//! in order) and running it: fork the intermediate, read its report, return the init's host pid
//! once envd has been exec'd.
//!
//! What the init mounts (all inside its own mount namespace, made `MS_PRIVATE` first, so nothing
//! appears in the host's mount table):
//!
//! | where | what |
//! | --- | --- |
//! | `<dir>/scratch` | tmpfs, `size=disk_bytes`: every writable layer lives here |
//! | `<dir>/root` → `/` | overlay: `lowerdir=rootfs`, upper/work in scratch |
//! | each host layer (`/usr`, …) | overlay: `lowerdir=<host dir>`, its own upper/work in scratch |
//! | `/proc` | a new proc; `sys`, `sysrq-trigger`, `irq`, `bus`, `fs` read-only; `kcore`, `keys`, timers masked |
//! | `/dev` | tmpfs with `null zero full random urandom tty` bound from the host, devpts (`ptmx`), `/dev/shm` |
//! | `/tmp` | tmpfs, `size=disk_bytes` |
//! | `/run/envd` | tmpfs (8 MiB) for envd's socket and log |
//! | volumes | bind mounts (read-only when asked) |
//!
//! Every mount point and written file is checked beforehand not to pass through a symlink in the
//! template or a host layer: before `pivot_root` an absolute symlink would resolve on the host.

use std::ffi::CString;
use std::os::fd::{AsRawFd as _, FromRawFd as _, OwnedFd};
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::child::{self, ExecArgs, Op, Plan, Step};
use super::paths::{check_no_symlinks, normalized_absolute, overlay_safe};
use super::seccomp;
use crate::SandboxSpec;

/// In-sandbox paths.
pub(crate) const ENVD_DIR: &str = "/run/envd";
pub(crate) const ENVD_SOCKET: &str = "/run/envd/envd.sock";
pub(crate) const ENVD_LOG: &str = "/run/envd/envd.log";

const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
const PROC_READ_ONLY: [&str; 5] = ["sys", "sysrq-trigger", "irq", "bus", "fs"];
const PROC_MASKED_FILES: [&str; 5] = ["kcore", "keys", "timer_list", "sched_debug", "latency_stats"];
const PROC_MASKED_DIRS: [&str; 3] = ["acpi", "scsi", "asound"];
/// Sandbox paths a volume may not be mounted on or under.
const RESERVED: [&str; 3] = ["/proc", "/dev", ENVD_DIR];

/// Capabilities envd keeps (it runs as root inside and must switch users, own files and signal
/// its children); everything else is gone from every set, bounding included. These only act on
/// what the sandbox can already see: `no_new_privs`, the seccomp filter and the namespaces do
/// the rest.
pub(crate) const KEPT_CAPS: [(u32, &str); 8] = [
    (0, "CAP_CHOWN"),
    (1, "CAP_DAC_OVERRIDE"),
    (3, "CAP_FOWNER"),
    (4, "CAP_FSETID"),
    (5, "CAP_KILL"),
    (6, "CAP_SETGID"),
    (7, "CAP_SETUID"),
    (10, "CAP_NET_BIND_SERVICE"),
];

/// The host-side directories of one sandbox.
#[derive(Debug, Clone)]
pub(crate) struct SandboxDirs {
    pub dir: PathBuf,
    /// Mount point of the overlay root (inside the sandbox's mount namespace only).
    pub root: PathBuf,
    /// Mount point of the writable-layer tmpfs (likewise).
    pub scratch: PathBuf,
}

impl SandboxDirs {
    pub fn new(dir: PathBuf) -> SandboxDirs {
        SandboxDirs { root: dir.join("root"), scratch: dir.join("scratch"), dir }
    }

    pub fn create(&self) -> std::io::Result<()> {
        use std::os::unix::fs::DirBuilderExt as _;
        std::fs::DirBuilder::new().mode(0o700).create(&self.dir)?;
        std::fs::DirBuilder::new().mode(0o755).create(&self.root)?;
        std::fs::DirBuilder::new().mode(0o700).create(&self.scratch)
    }
}

/// What the plan needs besides the spec.
#[derive(Debug)]
pub(crate) struct PlanInput<'a> {
    pub spec: &'a SandboxSpec,
    pub dirs: &'a SandboxDirs,
    pub cgroup_procs: Vec<PathBuf>,
    /// Enter a user namespace mapping root inside to this (uid, gid) outside.
    pub user_ns: Option<(u32, u32)>,
    /// envd, exec'd with `execveat(fd, "", AT_EMPTY_PATH)`; must stay open through the spawn.
    pub envd_fd: std::os::fd::RawFd,
}

fn cstring(bytes: impl Into<Vec<u8>>) -> Result<CString, String> {
    CString::new(bytes).map_err(|_| "a path or value contains a NUL byte".to_owned())
}

fn path_cstring(path: &Path) -> Result<CString, String> {
    cstring(path.as_os_str().as_bytes())
}

/// Validates the spec and prepares every string the children need.
pub(crate) fn build_plan(input: &PlanInput<'_>) -> Result<Plan, String> {
    let spec = input.spec;
    let rootfs = &spec.rootfs;
    if !rootfs.is_absolute() || !rootfs.is_dir() {
        return Err(format!("the template rootfs `{}` is not an existing absolute directory", rootfs.display()));
    }
    overlay_safe(rootfs, "the template rootfs")?;
    overlay_safe(&input.dirs.scratch, "the state directory")?;
    let mut layers = Vec::new();
    for layer in &spec.host_layers {
        let text = layer.to_str().ok_or_else(|| format!("host layer `{}` is not UTF-8", layer.display()))?;
        let clean = normalized_absolute(text, "host layer")?;
        if clean == Path::new("/") || !clean.is_dir() {
            return Err(format!("host layer `{text}` must be an existing directory other than `/`"));
        }
        overlay_safe(&clean, "host layer")?;
        layers.push(clean);
    }
    let hostname = &spec.hostname;
    if hostname.is_empty()
        || hostname.len() > 63
        || !hostname.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    {
        return Err(format!("hostname `{hostname}` must be 1-63 letters, digits, `-` or `.`"));
    }

    let dirs = input.dirs;
    let root = &dirs.root;
    let inside = |path: &Path| root.join(path.strip_prefix("/").unwrap_or(path));
    let disk = spec.limits.disk_bytes;
    let mut steps = Vec::new();
    let mut push = |op: Op, what: String, optional: bool| steps.push(Step { op, what, optional });
    let mkdir_p = |push: &mut dyn FnMut(Op, String, bool), path: &Path, mode: libc::mode_t| -> Result<(), String> {
        let mut prefix = PathBuf::from("/");
        for component in path.components().skip(1) {
            prefix.push(component);
            push(
                Op::Mkdir { path: path_cstring(&inside(&prefix))?, mode },
                format!("create directory {}", prefix.display()),
                false,
            );
        }
        Ok(())
    };
    let mount = |source: Option<&str>,
                 target: &Path,
                 fstype: Option<&str>,
                 flags: libc::c_ulong,
                 data: Option<String>|
     -> Result<Op, String> {
        Ok(Op::Mount {
            source: source.map(cstring).transpose()?,
            target: path_cstring(target)?,
            fstype: fstype.map(cstring).transpose()?,
            flags,
            data: data.map(cstring).transpose()?,
        })
    };
    let userxattr = if input.user_ns.is_some() { ",userxattr" } else { "" };

    push(
        mount(None, Path::new("/"), None, libc::MS_REC | libc::MS_PRIVATE, None)?,
        "make every mount private".into(),
        false,
    );
    push(
        mount(
            Some("tmpfs"),
            &dirs.scratch,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(format!("mode=0700,size={disk}")),
        )?,
        "mount the writable-layer tmpfs".into(),
        false,
    );
    for name in ["upper", "work"] {
        push(
            Op::Mkdir { path: path_cstring(&dirs.scratch.join(name))?, mode: 0o755 },
            format!("create scratch/{name}"),
            false,
        );
    }
    push(
        mount(
            Some("overlay"),
            root,
            Some("overlay"),
            0,
            Some(format!(
                "lowerdir={},upperdir={},workdir={}{userxattr}",
                rootfs.display(),
                dirs.scratch.join("upper").display(),
                dirs.scratch.join("work").display()
            )),
        )?,
        "mount the overlay root".into(),
        false,
    );
    for (index, layer) in layers.iter().enumerate() {
        check_no_symlinks(rootfs, &[], layer)?;
        let (upper, work) = (dirs.scratch.join(format!("upper{index}")), dirs.scratch.join(format!("work{index}")));
        push(
            Op::Mkdir { path: path_cstring(&upper)?, mode: 0o755 },
            format!("create the upper dir of {}", layer.display()),
            false,
        );
        push(
            Op::Mkdir { path: path_cstring(&work)?, mode: 0o755 },
            format!("create the work dir of {}", layer.display()),
            false,
        );
        mkdir_p(&mut push, layer, 0o755)?;
        let data =
            format!("lowerdir={},upperdir={},workdir={}{userxattr}", layer.display(), upper.display(), work.display());
        push(
            mount(Some("overlay"), &inside(layer), Some("overlay"), 0, Some(data))?,
            format!("mount the overlay of host {}", layer.display()),
            false,
        );
    }

    for fixed in ["/proc", "/dev", "/tmp", ENVD_DIR] {
        check_no_symlinks(rootfs, &layers, Path::new(fixed))?;
    }
    let proc_dir = inside(Path::new("/proc"));
    mkdir_p(&mut push, Path::new("/proc"), 0o555)?;
    let hardened = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    push(mount(Some("proc"), &proc_dir, Some("proc"), hardened, None)?, "mount /proc".into(), false);
    for name in PROC_READ_ONLY {
        let target = proc_dir.join(name);
        let source = target.to_str().map(str::to_owned);
        push(
            mount(source.as_deref(), &target, None, libc::MS_BIND | libc::MS_REC, None)?,
            format!("bind /proc/{name}"),
            true,
        );
        let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | hardened;
        push(mount(None, &target, None, flags, None)?, format!("make /proc/{name} read-only"), true);
    }
    for name in PROC_MASKED_FILES {
        push(
            mount(Some("/dev/null"), &proc_dir.join(name), None, libc::MS_BIND, None)?,
            format!("mask /proc/{name}"),
            true,
        );
    }
    for name in PROC_MASKED_DIRS {
        let data = Some("size=0,mode=0555".to_owned());
        push(
            mount(Some("tmpfs"), &proc_dir.join(name), Some("tmpfs"), hardened | libc::MS_RDONLY, data)?,
            format!("mask /proc/{name}"),
            true,
        );
    }

    let dev = inside(Path::new("/dev"));
    mkdir_p(&mut push, Path::new("/dev"), 0o755)?;
    push(
        mount(
            Some("tmpfs"),
            &dev,
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("mode=0755,size=65536".into()),
        )?,
        "mount /dev".into(),
        false,
    );
    for name in DEVICES {
        let target = dev.join(name);
        push(Op::Touch { path: path_cstring(&target)? }, format!("create /dev/{name}"), false);
        push(
            mount(Some(&format!("/dev/{name}")), &target, None, libc::MS_BIND, None)?,
            format!("bind /dev/{name}"),
            false,
        );
    }
    push(Op::Mkdir { path: path_cstring(&dev.join("pts"))?, mode: 0o755 }, "create /dev/pts".into(), false);
    push(
        mount(
            Some("devpts"),
            &dev.join("pts"),
            Some("devpts"),
            libc::MS_NOSUID | libc::MS_NOEXEC,
            Some("newinstance,ptmxmode=0666,mode=0620".into()),
        )?,
        "mount /dev/pts".into(),
        false,
    );
    push(Op::Mkdir { path: path_cstring(&dev.join("shm"))?, mode: 0o1777 }, "create /dev/shm".into(), false);
    push(
        mount(
            Some("tmpfs"),
            &dev.join("shm"),
            Some("tmpfs"),
            hardened,
            Some(format!("mode=1777,size={}", spec.limits.memory_bytes)),
        )?,
        "mount /dev/shm".into(),
        false,
    );
    for (link, target) in [
        ("ptmx", "pts/ptmx"),
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        push(
            Op::Symlink { target: cstring(target)?, link: path_cstring(&dev.join(link))? },
            format!("link /dev/{link}"),
            false,
        );
    }

    mkdir_p(&mut push, Path::new("/tmp"), 0o1777)?;
    push(
        mount(
            Some("tmpfs"),
            &inside(Path::new("/tmp")),
            Some("tmpfs"),
            libc::MS_NOSUID | libc::MS_NODEV,
            Some(format!("mode=1777,size={disk}")),
        )?,
        "mount /tmp".into(),
        false,
    );
    mkdir_p(&mut push, Path::new(ENVD_DIR), 0o755)?;
    push(
        mount(
            Some("tmpfs"),
            &inside(Path::new(ENVD_DIR)),
            Some("tmpfs"),
            hardened,
            Some("mode=0700,size=8388608".into()),
        )?,
        format!("mount {ENVD_DIR}"),
        false,
    );

    for volume in &spec.volumes {
        let target = normalized_absolute(&volume.sandbox_path, "volume path")?;
        if target == Path::new("/") || RESERVED.iter().any(|reserved| target.starts_with(reserved)) {
            return Err(format!("a volume cannot be mounted at `{}`", volume.sandbox_path));
        }
        let meta = std::fs::metadata(&volume.host_path)
            .map_err(|error| format!("volume source `{}`: {error}", volume.host_path.display()))?;
        check_no_symlinks(rootfs, &layers, &target)?;
        if meta.is_dir() {
            mkdir_p(&mut push, &target, 0o755)?;
        } else {
            if let Some(parent) = target.parent() {
                mkdir_p(&mut push, parent, 0o755)?;
            }
            push(Op::Touch { path: path_cstring(&inside(&target))? }, format!("create {}", target.display()), false);
        }
        let source = volume
            .host_path
            .to_str()
            .ok_or_else(|| format!("volume source `{}` is not UTF-8", volume.host_path.display()))?;
        push(
            mount(Some(source), &inside(&target), None, libc::MS_BIND | libc::MS_REC, None)?,
            format!("mount the volume at {}", target.display()),
            false,
        );
        if volume.read_only {
            let flags = libc::MS_BIND | libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV;
            push(
                mount(None, &inside(&target), None, flags, None)?,
                format!("make the volume at {} read-only", target.display()),
                false,
            );
        }
    }

    // The sandbox's own name in /etc/hostname and /etc/hosts (copied up; the template keeps its).
    let etc = rootfs.join("etc");
    if std::fs::symlink_metadata(&etc).is_ok_and(|meta| meta.is_dir()) {
        let hosts = format!(
            "127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
        );
        for (name, content) in [("hostname", format!("{hostname}\n")), ("hosts", hosts)] {
            let path = Path::new("/etc").join(name);
            if check_no_symlinks(rootfs, &layers, &path).is_ok() {
                push(
                    Op::WriteFile { path: path_cstring(&inside(&path))?, content: content.into_bytes() },
                    format!("write {}", path.display()),
                    false,
                );
            }
        }
    }
    push(Op::SetHostname { name: hostname.as_bytes().to_vec() }, "set the hostname".into(), false);
    push(Op::LoopbackUp, "bring up lo".into(), false);
    push(Op::PivotRoot { new_root: path_cstring(root)? }, "pivot_root into the sandbox".into(), false);

    // envd's own environment. What every sandbox process gets goes in as `ENVD_ENV_<KEY>` (envd
    // adds PATH, HOME, USER and LOGNAME per process): never on envd's command line, which every
    // host user can read in `ps`, while /proc/<pid>/environ is readable only by the owner.
    let mut envp = vec![
        cstring("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")?,
        cstring(format!("HOSTNAME={hostname}"))?,
    ];
    let argv = vec![cstring("envd")?, cstring("--listen")?, cstring(format!("unix:{ENVD_SOCKET}"))?];
    for (key, value) in &spec.env {
        if key.is_empty() || key.contains('=') {
            return Err(format!("environment variable name `{key}` is empty or contains `=`"));
        }
        envp.push(cstring(format!("ENVD_ENV_{key}={value}"))?);
    }
    let last_cap = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(40);
    let plan = Plan {
        cgroup_procs: input.cgroup_procs.iter().map(|path| path_cstring(path)).collect::<Result<_, _>>()?,
        user_ns: input
            .user_ns
            .map(|(uid, gid)| (format!("0 {uid} 1\n").into_bytes(), format!("0 {gid} 1\n").into_bytes())),
        steps,
        dev_null: cstring("/dev/null")?,
        log_file: cstring(ENVD_LOG)?,
        last_cap,
        keep_caps: KEPT_CAPS.iter().fold(0, |mask, (cap, _)| mask | (1u64 << cap)),
        seccomp: seccomp::filter(),
        envd_fd: input.envd_fd,
        argv,
        envp,
    };
    Ok(plan)
}

fn describe_stage(plan: &Plan, stage: u32) -> String {
    match stage {
        child::STAGE_SETSID => "start a new session".into(),
        child::STAGE_USERNS => "enter a user namespace".into(),
        child::STAGE_UNSHARE => "create the namespaces".into(),
        child::STAGE_FORK => "fork the sandbox init".into(),
        child::STAGE_STDIO => "set up stdio".into(),
        child::STAGE_CAPS => "drop capabilities".into(),
        child::STAGE_NO_NEW_PRIVS => "set no_new_privs".into(),
        child::STAGE_SECCOMP => "install the seccomp filter".into(),
        child::STAGE_EXEC => "exec envd".into(),
        stage if (child::STAGE_CGROUP..child::STAGE_CGROUP + 99).contains(&stage) => {
            let index = (stage - child::STAGE_CGROUP) as usize;
            let file = plan.cgroup_procs.get(index).map(|f| f.to_string_lossy().into_owned()).unwrap_or_default();
            format!("join cgroup {file}")
        }
        stage => plan.steps.get(stage as usize).map_or_else(|| format!("stage {stage}"), |step| step.what.clone()),
    }
}

/// Forks the intermediate and waits until envd has been exec'd as the sandbox's init (or failed).
/// Returns the init's host pid.
pub(crate) fn spawn(plan: &Plan, timeout: Duration) -> Result<i32, String> {
    let args = ExecArgs::new(plan);
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(format!("pipe2: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: both descriptors are fresh and owned by us from here on.
    let (reader, writer) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: the child only runs `child::intermediate`, which makes raw syscalls on data prepared
    // above (no allocation, no locks), as required after fork in a multi-threaded process.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return Err(format!("fork: {}", std::io::Error::last_os_error()));
    }
    if pid == 0 {
        // SAFETY: we are the fresh child; see above.
        unsafe { child::intermediate(plan, &args, writer.as_raw_fd()) }
    }
    drop(writer);
    let outcome = read_report(&reader, timeout);
    let mut status = 0;
    if outcome.is_err() {
        // SAFETY: kill(2) on our own child (the intermediate), constant signal.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    // SAFETY: reaps our own child; status is a valid out pointer.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    let (init_pid, error) = outcome?;
    if let Some((stage, errno)) = error {
        let detail = std::io::Error::from_raw_os_error(errno);
        return Err(format!("sandbox setup failed: could not {}: {detail}", describe_stage(plan, stage)));
    }
    init_pid.ok_or_else(|| format!("the sandbox's setup process died without reporting (wait status {status:#x})"))
}

type Report = (Option<i32>, Option<(u32, i32)>);

/// Reads the pipe until EOF; returns the init pid and the first error report.
fn read_report(reader: &OwnedFd, timeout: Duration) -> Result<Report, String> {
    let deadline = Instant::now() + timeout;
    let mut bytes = Vec::with_capacity(64);
    let mut buffer = [0u8; 256];
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            return Err(format!("the sandbox's setup did not finish within {timeout:?}"));
        }
        let mut poll = libc::pollfd { fd: reader.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll on one pollfd we own.
        let ready = unsafe { libc::poll(&mut poll, 1, remaining.as_millis().min(i32::MAX as u128) as i32) };
        if ready < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("poll: {error}"));
        }
        if ready == 0 {
            continue;
        }
        // SAFETY: reads into a stack buffer of the given length.
        let read = unsafe { libc::read(reader.as_raw_fd(), buffer.as_mut_ptr().cast(), buffer.len()) };
        if read < 0 {
            let error = std::io::Error::last_os_error();
            if error.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(format!("read: {error}"));
        }
        if read == 0 {
            break;
        }
        bytes.extend_from_slice(&buffer[..read as usize]);
    }
    let mut pid = None;
    let mut error = None;
    for message in bytes.chunks_exact(child::MSG_LEN) {
        let word = |at: usize| [message[at], message[at + 1], message[at + 2], message[at + 3]];
        let tag = u32::from_ne_bytes(word(0));
        let a = i32::from_ne_bytes(word(4));
        let b = i32::from_ne_bytes(word(8));
        match tag {
            child::MSG_PID => pid = Some(a),
            child::MSG_ERROR if error.is_none() => error = Some((a as u32, b)),
            _ => {}
        }
    }
    Ok((pid, error))
}
