//! Sandbox networking.
//!
//! Every sandbox has its own network namespace. With `network: none` it holds only `lo` (brought
//! up by the init itself). With `network: internet` the backend adds a veth pair — `rtv<suffix>`
//! in the host namespace, renamed `eth0` inside — on a /30 taken from a pool (default
//! `10.201.0.0/16`: host side `.1`, sandbox `.2`, default route via the host side), turns on
//! `net.ipv4.ip_forward`, and installs iptables rules tagged with the sandbox's id:
//!
//! - `nat POSTROUTING`: MASQUERADE what leaves the sandbox's /30 through any other interface;
//! - `filter FORWARD`: replies back in; nothing to another sandbox (`rtv+`) or to link-local
//!   addresses (cloud metadata); everything else out;
//! - `filter INPUT`: nothing from the sandbox to the host itself except replies (so a sandbox
//!   cannot reach the control plane or other services on the host's addresses).
//!
//! The veth pair disappears with the sandbox's network namespace; delete still removes the host
//! side by name (for a sandbox that died half-made) and the tagged rules. All of this uses
//! iproute2's `ip` and `iptables-restore`/`iptables-save`, run as child processes (the inside
//! part from a thread that has `setns`'d into the sandbox's namespace).

use std::collections::HashSet;
use std::io::{self, Write as _};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd as _, OwnedFd};
use std::process::{Command, Stdio};

use runtools_protocol::SandboxId;

use super::state::NetRecord;

/// /30 subnets in a /16.
pub(crate) const POOL_SLOTS: u32 = 1 << 14;

/// The last 12 characters of the id's ULID (its random part) name the sandbox's interfaces.
fn suffix(id: &SandboxId) -> String {
    let text = id.ulid().to_string().to_ascii_lowercase();
    text[text.len() - 12..].to_owned()
}

pub(crate) fn host_veth(id: &SandboxId) -> String {
    format!("rtv{}", suffix(id))
}

fn peer_veth(id: &SandboxId) -> String {
    format!("rtp{}", suffix(id))
}

/// A free /30 slot: the id's hash as a starting point, then the next free one.
pub(crate) fn choose_slot(id: &SandboxId, used: &HashSet<u32>) -> Option<u32> {
    let start = (id.ulid().0 % u128::from(POOL_SLOTS)) as u32;
    (0..POOL_SLOTS).map(|offset| (start + offset) % POOL_SLOTS).find(|slot| !used.contains(slot))
}

pub(crate) fn record(id: &SandboxId, pool: Ipv4Addr, slot: u32) -> NetRecord {
    let base = u32::from(pool) & 0xFFFF_0000;
    let subnet = base + slot * 4;
    NetRecord {
        host_veth: host_veth(id),
        slot,
        subnet: Ipv4Addr::from(subnet),
        host_addr: Ipv4Addr::from(subnet + 1),
        sandbox_addr: Ipv4Addr::from(subnet + 2),
        rule_tag: format!("runtools:{id}"),
    }
}

fn run(mut command: Command, input: &str) -> io::Result<()> {
    let program = format!("{command:?}");
    command.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|error| io::Error::new(error.kind(), format!("{program}: {error}")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes())?;
    }
    let output = child.wait_with_output()?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(io::Error::other(format!("{program} failed ({}): {}", output.status, stderr.trim())));
    }
    Ok(())
}

/// Runs `work` on a fresh thread that has joined the network namespace of `pid` (child processes
/// it starts inherit that namespace). The thread ends afterwards, so the namespace switch never
/// leaks into the caller's threads.
pub(crate) fn in_netns<T: Send + 'static>(
    pid: i32,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))?;
    let thread = std::thread::Builder::new().name("sandbox-netns".into()).spawn(move || {
        let fd: OwnedFd = netns.into();
        // SAFETY: setns(2) on this thread only, with a namespace fd we own.
        if unsafe { libc::setns(fd.as_raw_fd(), libc::CLONE_NEWNET) } < 0 {
            return Err(io::Error::last_os_error());
        }
        work()
    })?;
    thread.join().map_err(|_| io::Error::other("the netns thread panicked"))?
}

/// Creates the veth pair, addresses and routes, and the NAT and filter rules.
pub(crate) fn setup(pid: i32, id: &SandboxId, net: &NetRecord) -> io::Result<()> {
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")?;
    let peer = peer_veth(id);
    let host = &net.host_veth;
    let host_cmds = format!(
        "link add {host} type veth peer name {peer} netns {pid}\naddr add {}/30 dev {host}\nlink set {host} up\n",
        net.host_addr
    );
    let mut ip = Command::new("ip");
    ip.args(["-batch", "-"]);
    run(ip, &host_cmds)?;
    let inside_cmds = format!(
        "link set {peer} name eth0\naddr add {}/30 dev eth0\nlink set eth0 up\nroute add default via {}\n",
        net.sandbox_addr, net.host_addr
    );
    in_netns(pid, move || {
        let mut ip = Command::new("ip");
        ip.args(["-batch", "-"]);
        run(ip, &inside_cmds)
    })?;
    let mut restore = Command::new("iptables-restore");
    restore.args(["--noflush", "--wait"]);
    run(restore, &rules(net))
}

/// The iptables-restore input that adds the sandbox's rules.
fn rules(net: &NetRecord) -> String {
    let (host, tag, subnet) = (&net.host_veth, &net.rule_tag, net.subnet);
    let comment = format!("-m comment --comment {tag}");
    // Final order top to bottom; inserted at position 1 in reverse so they land above whatever
    // the host has (a DROP policy or another product's rules).
    let forward = [
        format!("-o {host} -m conntrack --ctstate ESTABLISHED,RELATED {comment} -j ACCEPT"),
        format!("-i {host} -o rtv+ {comment} -j DROP"),
        format!("-i {host} -d 169.254.0.0/16 {comment} -j DROP"),
        format!("-i {host} {comment} -j ACCEPT"),
    ];
    let input = [
        format!("-i {host} -m conntrack --ctstate ESTABLISHED,RELATED {comment} -j ACCEPT"),
        format!("-i {host} {comment} -j DROP"),
    ];
    let mut text = String::from("*filter\n");
    for rule in forward.iter().rev() {
        text.push_str(&format!("-I FORWARD 1 {rule}\n"));
    }
    for rule in input.iter().rev() {
        text.push_str(&format!("-I INPUT 1 {rule}\n"));
    }
    text.push_str("COMMIT\n*nat\n");
    text.push_str(&format!("-A POSTROUTING -s {subnet}/30 ! -o {host} {comment} -j MASQUERADE\nCOMMIT\n"));
    text
}

/// Removes the host veth (if still there) and every rule tagged for the sandbox. Idempotent.
pub(crate) fn teardown(host_veth: &str, rule_tag: &str) -> io::Result<()> {
    if std::path::Path::new("/sys/class/net").join(host_veth).exists() {
        let mut ip = Command::new("ip");
        ip.args(["link", "del", host_veth]);
        if let Err(error) = run(ip, "") {
            // It may have vanished with the namespace in the meantime.
            if std::path::Path::new("/sys/class/net").join(host_veth).exists() {
                return Err(error);
            }
        }
    }
    remove_rules(rule_tag)
}

fn remove_rules(rule_tag: &str) -> io::Result<()> {
    let Ok(output) = Command::new("iptables-save").stderr(Stdio::null()).output() else {
        // No iptables on this host: there cannot be rules to remove.
        return Ok(());
    };
    let saved = String::from_utf8_lossy(&output.stdout);
    let mut input = String::new();
    let mut table = None;
    let mut deletions = Vec::new();
    let flush = |input: &mut String, table: &Option<String>, deletions: &mut Vec<String>| {
        if let Some(table) = table
            && !deletions.is_empty()
        {
            input.push_str(&format!("*{table}\n"));
            for line in deletions.drain(..) {
                input.push_str(&line);
                input.push('\n');
            }
            input.push_str("COMMIT\n");
        }
        deletions.clear();
    };
    for line in saved.lines() {
        if let Some(name) = line.strip_prefix('*') {
            flush(&mut input, &table, &mut deletions);
            table = Some(name.to_owned());
        } else if let Some(rule) = line.strip_prefix("-A ")
            && is_tagged(rule, rule_tag)
        {
            deletions.push(format!("-D {rule}"));
        }
    }
    flush(&mut input, &table, &mut deletions);
    if input.is_empty() {
        return Ok(());
    }
    let mut restore = Command::new("iptables-restore");
    restore.args(["--noflush", "--wait"]);
    run(restore, &input)
}

fn is_tagged(rule: &str, tag: &str) -> bool {
    rule.split_ascii_whitespace().any(|word| word.trim_matches('"') == tag)
}

/// Whether `iptables-restore` and `ip` are on `PATH`.
pub(crate) fn tools_available() -> bool {
    let found = |name: &str| {
        std::env::var_os("PATH")
            .map(|paths| std::env::split_paths(&paths).any(|dir| dir.join(name).is_file()))
            .unwrap_or(false)
    };
    found("ip") && found("iptables-restore") && found("iptables-save")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_unique_and_addresses_line_up() {
        let id = SandboxId::new();
        let mut used = HashSet::new();
        let first = choose_slot(&id, &used).unwrap();
        used.insert(first);
        let second = choose_slot(&id, &used).unwrap();
        assert_ne!(first, second);
        let net = record(&id, Ipv4Addr::new(10, 201, 0, 0), 3);
        assert_eq!(net.subnet, Ipv4Addr::new(10, 201, 0, 12));
        assert_eq!(net.host_addr, Ipv4Addr::new(10, 201, 0, 13));
        assert_eq!(net.sandbox_addr, Ipv4Addr::new(10, 201, 0, 14));
        assert!(net.host_veth.len() <= 15, "{}", net.host_veth);
        assert!(peer_veth(&id).len() <= 15);
    }

    #[test]
    fn rules_are_tagged_and_recognised() {
        let id = SandboxId::new();
        let net = record(&id, Ipv4Addr::new(10, 201, 0, 0), 0);
        let text = rules(&net);
        assert!(text.lines().filter(|line| line.starts_with('-')).all(|line| line.contains(&net.rule_tag)));
        let saved = format!("-A FORWARD -i {} -m comment --comment \"{}\" -j ACCEPT", net.host_veth, net.rule_tag);
        assert!(is_tagged(saved.trim_start_matches("-A "), &net.rule_tag));
        assert!(!is_tagged("FORWARD -j ACCEPT", &net.rule_tag));
    }
}
