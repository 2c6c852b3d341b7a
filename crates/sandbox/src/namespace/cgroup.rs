//! cgroups, v1 and v2: one cgroup per sandbox under a parent (default `runtools`) in every
//! hierarchy that matters — `cpu`, `cpuacct`, `memory`, `pids` and `freezer` on v1
//! (`/sys/fs/cgroup/<controller>/runtools/<id>`), one directory on v2
//! (`/sys/fs/cgroup/runtools/<id>`). The layout is detected once: v2 when
//! `/sys/fs/cgroup/cgroup.controllers` exists, otherwise the v1 hierarchies found in
//! `/proc/self/mountinfo` (a hybrid host's `/sys/fs/cgroup/unified` carries no controllers and is
//! not used).
//!
//! Everything here is blocking file I/O on cgroupfs (fast, but it may sleep while polling the
//! freezer); the backend calls it from `spawn_blocking`.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ResolvedLimits;

const CFS_PERIOD_US: u64 = 100_000;
const V2_ROOT: &str = "/sys/fs/cgroup";
const V2_CONTROLLERS: &str = "+cpu +memory +pids";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum CgroupVersion {
    V1,
    V2,
}

/// The cgroup hierarchies of this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Mount points of the v1 hierarchies carrying each controller (co-mounted controllers share
    /// one). `cpuacct` is optional: without it CPU usage reads as 0.
    V1 {
        cpu: PathBuf,
        cpuacct: Option<PathBuf>,
        memory: PathBuf,
        pids: PathBuf,
        freezer: PathBuf,
    },
    V2 {
        root: PathBuf,
    },
}

/// One sandbox's cgroup directories (all the same directory on v2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CgroupPaths {
    pub version: CgroupVersion,
    pub cpu: PathBuf,
    pub cpuacct: Option<PathBuf>,
    pub memory: PathBuf,
    pub pids: PathBuf,
    pub freezer: PathBuf,
}

impl Layout {
    pub fn detect() -> io::Result<Layout> {
        if Path::new(V2_ROOT).join("cgroup.controllers").exists() {
            return Ok(Layout::V2 { root: PathBuf::from(V2_ROOT) });
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        Self::from_mountinfo(&mountinfo)
    }

    fn from_mountinfo(mountinfo: &str) -> io::Result<Layout> {
        // `id parent major:minor root mount_point options [optional…] - fstype source super_options`
        let mut hierarchies: Vec<(PathBuf, Vec<String>)> = Vec::new();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mut right = right.split(' ');
            if right.next() != Some("cgroup") {
                continue;
            }
            let super_options = right.nth(1).unwrap_or("");
            let Some(mount_point) = left.split(' ').nth(4) else { continue };
            let controllers = super_options.split(',').map(str::to_owned).collect();
            hierarchies.push((PathBuf::from(unescape_mountinfo(mount_point)), controllers));
        }
        let find = |name: &str| {
            hierarchies
                .iter()
                .find(|(_, controllers)| controllers.iter().any(|c| c == name))
                .map(|(path, _)| path.clone())
        };
        let require = |name: &str| {
            find(name).ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no cgroup v1 hierarchy with the `{name}` controller is mounted (and cgroup v2 is not mounted at {V2_ROOT})"),
                )
            })
        };
        Ok(Layout::V1 {
            cpu: require("cpu")?,
            cpuacct: find("cpuacct"),
            memory: require("memory")?,
            pids: require("pids")?,
            freezer: require("freezer")?,
        })
    }

    /// The directories holding every sandbox's cgroup (`…/<parent>` in each hierarchy).
    pub fn parent_dirs(&self, parent: &str) -> Vec<PathBuf> {
        match self {
            Layout::V1 { cpu, cpuacct, memory, pids, freezer } => {
                let mut dirs: Vec<PathBuf> = [Some(cpu), cpuacct.as_ref(), Some(memory), Some(pids), Some(freezer)]
                    .into_iter()
                    .flatten()
                    .map(|mount| mount.join(parent))
                    .collect();
                dirs.sort();
                dirs.dedup();
                dirs
            }
            Layout::V2 { root } => vec![root.join(parent)],
        }
    }

    pub fn paths(&self, parent: &str, name: &str) -> CgroupPaths {
        match self {
            Layout::V1 { cpu, cpuacct, memory, pids, freezer } => CgroupPaths {
                version: CgroupVersion::V1,
                cpu: cpu.join(parent).join(name),
                cpuacct: cpuacct.as_ref().map(|path| path.join(parent).join(name)),
                memory: memory.join(parent).join(name),
                pids: pids.join(parent).join(name),
                freezer: freezer.join(parent).join(name),
            },
            Layout::V2 { root } => {
                let dir = root.join(parent).join(name);
                CgroupPaths {
                    version: CgroupVersion::V2,
                    cpu: dir.clone(),
                    cpuacct: Some(dir.clone()),
                    memory: dir.clone(),
                    pids: dir.clone(),
                    freezer: dir,
                }
            }
        }
    }

    /// Makes sure the parent cgroups exist (and on v2 pass the controllers down to them).
    pub fn prepare_parent(&self, parent: &str) -> io::Result<()> {
        for dir in self.parent_dirs(parent) {
            mkdir(&dir)?;
        }
        if let Layout::V2 { root } = self {
            // Every level from the root down to the parent passes the controllers on (the upper
            // levels of a delegated subtree usually already do, and are not ours to write).
            let mut dir = root.clone();
            enable_controllers(&dir.join("cgroup.subtree_control"), V2_CONTROLLERS)?;
            for part in parent.split('/') {
                dir.push(part);
                enable_controllers(&dir.join("cgroup.subtree_control"), V2_CONTROLLERS)?;
            }
        }
        Ok(())
    }
}

fn enable_controllers(subtree_control: &Path, wanted: &str) -> io::Result<()> {
    let current = std::fs::read_to_string(subtree_control).unwrap_or_default();
    let missing: Vec<&str> =
        wanted.split(' ').filter(|entry| !current.split_ascii_whitespace().any(|have| have == &entry[1..])).collect();
    if missing.is_empty() {
        return Ok(());
    }
    write(subtree_control, &missing.join(" "))
}

/// `\040` and friends in mountinfo paths.
fn unescape_mountinfo(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl CgroupPaths {
    /// Every distinct directory, in a fixed order.
    pub fn dirs(&self) -> Vec<&Path> {
        let mut dirs: Vec<&Path> = Vec::new();
        for dir in [Some(&self.cpu), self.cpuacct.as_ref(), Some(&self.memory), Some(&self.pids), Some(&self.freezer)]
            .into_iter()
            .flatten()
        {
            if !dirs.contains(&dir.as_path()) {
                dirs.push(dir);
            }
        }
        dirs
    }

    /// The `cgroup.procs` files a process writes itself into to join the sandbox's cgroups.
    pub fn procs_files(&self) -> Vec<PathBuf> {
        self.dirs().into_iter().map(|dir| dir.join("cgroup.procs")).collect()
    }

    /// Creates the directories and applies the limits.
    pub fn create(&self, limits: &ResolvedLimits) -> io::Result<()> {
        for dir in self.dirs() {
            mkdir(dir)?;
        }
        let quota = ((limits.cpu * CFS_PERIOD_US as f64).round() as u64).max(1000);
        match self.version {
            CgroupVersion::V1 => {
                write(&self.memory.join("memory.limit_in_bytes"), &limits.memory_bytes.to_string())?;
                // No swapping past the limit either (only when swap accounting is on).
                let memsw = self.memory.join("memory.memsw.limit_in_bytes");
                if memsw.exists() {
                    write(&memsw, &limits.memory_bytes.to_string())?;
                }
                write(&self.pids.join("pids.max"), &limits.pids.to_string())?;
                write(&self.cpu.join("cpu.cfs_period_us"), &CFS_PERIOD_US.to_string())?;
                write(&self.cpu.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
            CgroupVersion::V2 => {
                write(&self.memory.join("memory.max"), &limits.memory_bytes.to_string())?;
                let swap = self.memory.join("memory.swap.max");
                if swap.exists() {
                    write(&swap, "0")?;
                }
                write(&self.pids.join("pids.max"), &limits.pids.to_string())?;
                write(&self.cpu.join("cpu.max"), &format!("{quota} {CFS_PERIOD_US}"))?;
            }
        }
        Ok(())
    }

    /// Whether any of the directories exists.
    pub fn exists(&self) -> bool {
        self.dirs().iter().any(|dir| dir.exists())
    }

    /// Host pids of every process in the sandbox's cgroup.
    pub fn procs(&self) -> io::Result<Vec<i32>> {
        match std::fs::read_to_string(self.pids.join("cgroup.procs")) {
            Ok(text) => Ok(text.lines().filter_map(|line| line.trim().parse().ok()).collect()),
            Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(error) => Err(error),
        }
    }

    /// Whether the freezer holds the sandbox frozen (or is freezing it).
    pub fn frozen(&self) -> io::Result<bool> {
        match self.version {
            CgroupVersion::V1 => Ok(read(&self.freezer.join("freezer.state"))?.trim() != "THAWED"),
            CgroupVersion::V2 => Ok(read(&self.freezer.join("cgroup.freeze"))?.trim() == "1"),
        }
    }

    /// Freezes every process and waits until the kernel says all are frozen.
    pub fn freeze(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(100);
        match self.version {
            CgroupVersion::V1 => {
                let state = self.freezer.join("freezer.state");
                loop {
                    // Writing FROZEN again retries tasks that could not be frozen yet.
                    write(&state, "FROZEN")?;
                    if read(&state)?.trim() == "FROZEN" {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "the freezer did not reach FROZEN"));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
            }
            CgroupVersion::V2 => {
                write(&self.freezer.join("cgroup.freeze"), "1")?;
                let events = self.freezer.join("cgroup.events");
                loop {
                    if read(&events)?.lines().any(|line| line.trim() == "frozen 1") {
                        return Ok(());
                    }
                    if Instant::now() >= deadline {
                        return Err(io::Error::new(io::ErrorKind::TimedOut, "cgroup.events never said `frozen 1`"));
                    }
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(10));
                }
            }
        }
    }

    pub fn thaw(&self) -> io::Result<()> {
        match self.version {
            CgroupVersion::V1 => write(&self.freezer.join("freezer.state"), "THAWED"),
            CgroupVersion::V2 => write(&self.freezer.join("cgroup.freeze"), "0"),
        }
    }

    /// SIGKILLs every process in the cgroup and waits until it is empty. Missing cgroups are
    /// fine (nothing to kill).
    pub fn kill_all(&self, timeout: Duration) -> io::Result<()> {
        if !self.pids.exists() {
            return Ok(());
        }
        let deadline = Instant::now() + timeout;
        let kill_file = self.pids.join("cgroup.kill");
        let use_kill_file = self.version == CgroupVersion::V2 && kill_file.exists();
        loop {
            let procs = self.procs()?;
            if procs.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("{} process(es) still in {} after SIGKILL", procs.len(), self.pids.display()),
                ));
            }
            if use_kill_file {
                write(&kill_file, "1")?;
            } else {
                // Freeze first so nothing can fork between reading the list and the kills; the
                // kills take effect at thaw. A freezer that will not settle is no reason to
                // stop: kill what we see and go round again.
                let frozen = self.freezer.exists() && self.freeze(Duration::from_millis(200)).is_ok();
                for pid in self.procs()? {
                    // SAFETY: kill(2) with a pid read from our own cgroup and a constant signal;
                    // no memory is shared with the kernel.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
                if frozen || self.freezer.exists() {
                    let _ = self.thaw();
                }
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Removes the directories (they must be empty of processes). Missing ones are fine.
    pub fn remove(&self, timeout: Duration) -> io::Result<()> {
        let deadline = Instant::now() + timeout;
        for dir in self.dirs() {
            loop {
                match std::fs::remove_dir(dir) {
                    Ok(()) => break,
                    Err(error) if error.kind() == io::ErrorKind::NotFound => break,
                    // EBUSY while the last processes finish exiting.
                    Err(error) if Instant::now() < deadline => {
                        tracing::trace!(dir = %dir.display(), %error, "cgroup not removable yet");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                    Err(error) => return Err(with_path(error, dir)),
                }
            }
        }
        Ok(())
    }

    /// Memory in use (bytes), CPU time used (ns) and the number of tasks.
    pub fn usage(&self) -> io::Result<(u64, u64, u32)> {
        let number = |path: PathBuf| -> io::Result<u64> {
            read(&path)?
                .trim()
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, format!("{} is not a number", path.display())))
        };
        match self.version {
            CgroupVersion::V1 => {
                let memory = number(self.memory.join("memory.usage_in_bytes"))?;
                let cpu = match &self.cpuacct {
                    Some(dir) => number(dir.join("cpuacct.usage"))?,
                    None => 0,
                };
                let pids = number(self.pids.join("pids.current"))?;
                Ok((memory, cpu, pids as u32))
            }
            CgroupVersion::V2 => {
                let memory = number(self.memory.join("memory.current"))?;
                let stat = read(&self.cpu.join("cpu.stat"))?;
                let usec = stat
                    .lines()
                    .find_map(|line| line.strip_prefix("usage_usec "))
                    .and_then(|value| value.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                let pids = number(self.pids.join("pids.current"))?;
                Ok((memory, usec.saturating_mul(1000), pids as u32))
            }
        }
    }
}

fn mkdir(dir: &Path) -> io::Result<()> {
    match std::fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = dir.parent() {
                mkdir(parent)?;
            }
            std::fs::create_dir(dir).or_else(|error| {
                if error.kind() == io::ErrorKind::AlreadyExists { Ok(()) } else { Err(with_path(error, dir)) }
            })
        }
        Err(error) => Err(with_path(error, dir)),
    }
}

fn write(path: &Path, value: &str) -> io::Result<()> {
    std::fs::write(path, value).map_err(|error| with_path(error, path))
}

fn read(path: &Path) -> io::Result<String> {
    std::fs::read_to_string(path).map_err(|error| with_path(error, path))
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
25 1 0:22 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
26 25 0:23 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
27 25 0:24 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
30 25 0:27 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
31 25 0:28 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    #[test]
    fn finds_v1_hierarchies_in_mountinfo() {
        let layout = Layout::from_mountinfo(HYBRID).unwrap();
        let Layout::V1 { cpu, cpuacct, memory, pids, freezer } = &layout else { panic!("{layout:?}") };
        assert_eq!(cpu, Path::new("/sys/fs/cgroup/cpu"));
        assert_eq!(cpuacct.as_deref(), Some(Path::new("/sys/fs/cgroup/cpuacct")));
        assert_eq!(memory, Path::new("/sys/fs/cgroup/memory"));
        assert_eq!(pids, Path::new("/sys/fs/cgroup/pids"));
        assert_eq!(freezer, Path::new("/sys/fs/cgroup/freezer"));
        let paths = layout.paths("runtools", "sbx_x");
        assert_eq!(paths.dirs().len(), 5);
        assert_eq!(paths.memory, Path::new("/sys/fs/cgroup/memory/runtools/sbx_x"));
    }

    #[test]
    fn co_mounted_controllers_share_a_directory() {
        let mountinfo = "\
26 25 0:23 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
28 25 0:25 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
29 25 0:26 / /sys/fs/cgroup/freezer rw - cgroup cgroup rw,freezer
30 25 0:27 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
        let layout = Layout::from_mountinfo(mountinfo).unwrap();
        assert_eq!(layout.paths("runtools", "a").dirs().len(), 4);
        assert_eq!(layout.parent_dirs("runtools").len(), 4);
    }

    #[test]
    fn a_missing_controller_is_named() {
        let error = Layout::from_mountinfo("26 25 0:23 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n").unwrap_err();
        assert!(error.to_string().contains("memory"), "{error}");
    }

    /// The v2 freezer and kill, on whatever v2 hierarchy this host mounts (on a hybrid host the
    /// controller-less `/sys/fs/cgroup/unified`, which still has `cgroup.freeze` and
    /// `cgroup.kill`). Needs root.
    #[test]
    fn v2_freeze_thaw_and_kill() {
        // SAFETY: geteuid cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return;
        }
        let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
            .into_iter()
            .map(Path::new)
            .find(|dir| dir.join("cgroup.controllers").exists());
        let Some(root) = root else { return };
        let layout = Layout::V2 { root: root.to_owned() };
        let paths = layout.paths(&format!("runtools-unit-{}", std::process::id()), "sbx");
        mkdir(&paths.pids).unwrap();
        let mut child = std::process::Command::new("sleep").arg("100").spawn().unwrap();
        write(&paths.pids.join("cgroup.procs"), &child.id().to_string()).unwrap();
        assert_eq!(paths.procs().unwrap(), vec![child.id() as i32]);
        assert!(!paths.frozen().unwrap());
        paths.freeze(Duration::from_secs(5)).unwrap();
        assert!(paths.frozen().unwrap());
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", child.id())).unwrap();
        assert!(stat.contains(") S ") || stat.contains(") D "), "{stat}");
        paths.thaw().unwrap();
        assert!(!paths.frozen().unwrap());
        paths.kill_all(Duration::from_secs(5)).unwrap();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(libc::SIGKILL));
        paths.remove(Duration::from_secs(5)).unwrap();
        std::fs::remove_dir(paths.pids.parent().unwrap()).unwrap();
    }

    #[test]
    fn unescapes_mountinfo_paths() {
        assert_eq!(unescape_mountinfo(r"/a\040b"), "/a b");
    }
}
