//! Per-sandbox state on disk: `state_dir/<id>/state.json`, written before anything is created on
//! the host (so a crash mid-create leaves a record that names everything to clean up) and again
//! once the sandbox's init runs. Also the `/proc` reads that tell whether that init still lives and
//! is still ours (a pid plus its start time, so a reused pid is not mistaken for it).

use std::io::Write as _;
use std::path::{Path, PathBuf};

use runtools_protocol::SandboxId;
use runtools_protocol::sandbox::NetworkMode;
use serde::{Deserialize, Serialize};

use super::cgroup::CgroupPaths;

pub(crate) const STATE_FILE: &str = "state.json";

/// Where a sandbox was in its creation when the record was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Phase {
    /// The record was written before anything else; the init may or may not exist.
    Creating,
    /// The init runs and envd answered once.
    Created,
}

/// The veth pair and addresses of a sandbox with `network: internet`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct NetRecord {
    /// The host-side interface (the peer is `eth0` inside the sandbox).
    pub host_veth: String,
    /// Index of the sandbox's /30 in the address pool.
    pub slot: u32,
    /// The /30's network address, e.g. `10.201.0.4`.
    pub subnet: std::net::Ipv4Addr,
    /// The host side's address (the sandbox's default gateway).
    pub host_addr: std::net::Ipv4Addr,
    /// The sandbox side's address.
    pub sandbox_addr: std::net::Ipv4Addr,
    /// The comment that marks this sandbox's iptables rules.
    pub rule_tag: String,
}

/// Everything the backend knows about one sandbox on this host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Record {
    pub id: SandboxId,
    pub phase: Phase,
    /// The sandbox's init (envd, PID 1 inside) as seen from the host.
    pub init_pid: Option<i32>,
    /// Field 22 of `/proc/<pid>/stat` when the init started (clock ticks since boot).
    pub init_start_time: Option<u64>,
    pub cgroups: CgroupPaths,
    pub network_mode: NetworkMode,
    pub net: Option<NetRecord>,
    /// Mount points used inside the sandbox's mount namespace (never mounted on the host); the
    /// delete path checks none of them shows up in the host's mount table.
    pub mount_points: Vec<PathBuf>,
    /// Unix seconds at creation.
    pub created_at: u64,
}

impl Record {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(STATE_FILE)
    }

    /// Reads `dir/state.json`; `Ok(None)` when the file does not exist.
    pub fn load(dir: &Path) -> std::io::Result<Option<Record>> {
        let bytes = match std::fs::read(Self::path(dir)) {
            Ok(bytes) => bytes,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(error) => return Err(error),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|error| std::io::Error::new(std::io::ErrorKind::InvalidData, error))
    }

    /// Writes `dir/state.json` atomically (temp file, fsync, rename).
    pub fn store(&self, dir: &Path) -> std::io::Result<()> {
        let bytes = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        let temp = dir.join(".state.json.tmp");
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temp, Self::path(dir))
    }
}

/// Seconds since the Unix epoch.
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// The state letter (`R`, `S`, `D`, `T`, `Z`, …).
    pub state: char,
    pub start_time: u64,
}

impl ProcStat {
    /// `None` when the process does not exist (or cannot be parsed).
    pub fn read(pid: i32) -> Option<ProcStat> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Self::parse(&text)
    }

    fn parse(text: &str) -> Option<ProcStat> {
        // `pid (comm) state ppid …`: comm may contain spaces and parentheses, so split after the
        // last `)`. The start time is field 22 overall, the 20th after the comm.
        let rest = &text[text.rfind(')')? + 1..];
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?.chars().next()?;
        let start_time = fields.nth(18)?.parse().ok()?;
        Some(ProcStat { state, start_time })
    }

    /// Still running (not a zombie or dead).
    pub fn alive(&self) -> bool {
        !matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Whether the recorded init is alive and is the process we started (same start time).
pub(crate) fn init_alive(record: &Record) -> bool {
    match (record.init_pid, record.init_start_time) {
        (Some(pid), Some(start)) => ProcStat::read(pid).is_some_and(|stat| stat.alive() && stat.start_time == start),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_awkward_comm() {
        let text = "4242 (we) ird) name) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        let stat = ProcStat::parse(text).unwrap();
        assert_eq!(stat, ProcStat { state: 'S', start_time: 987654 });
    }

    #[test]
    fn reads_own_stat() {
        let stat = ProcStat::read(std::process::id() as i32).unwrap();
        assert!(stat.alive());
        assert!(stat.start_time > 0);
    }
}
