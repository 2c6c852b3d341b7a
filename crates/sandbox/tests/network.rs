//! `network: internet`: a veth pair, an address, a default route and NAT. There is no internet
//! here, so egress is proven against a "remote host" this test makes itself: a network namespace
//! behind its own veth, whose server sees connections arrive from the host's address (NAT), not
//! the sandbox's. Also: a sandbox cannot reach the host itself or another sandbox, and delete
//! removes the veth and the iptables rules.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{Harness, can_run, traces_of};
use runtools_protocol::sandbox::NetworkMode;
use runtools_sandbox::Backend;

/// A network namespace with a TCP server, reachable from the host through a veth pair.
struct RemoteHost {
    netns: String,
    host_veth: String,
    host_addr: String,
    addr: String,
    server: Child,
}

impl RemoteHost {
    fn start() -> RemoteHost {
        let tag = format!("{:06x}", std::process::id() & 0xFF_FFFF);
        let octet = std::process::id() % 250 + 1;
        let netns = format!("rt-remote-{tag}");
        let host_veth = format!("rtxh{tag}");
        let peer = format!("rtxn{tag}");
        let host_addr = format!("10.202.{octet}.1");
        let addr = format!("10.202.{octet}.2");
        let ip = |args: &str| {
            let status = Command::new("ip").args(args.split_whitespace()).status().unwrap();
            assert!(status.success(), "ip {args}");
        };
        ip(&format!("netns add {netns}"));
        ip(&format!("link add {host_veth} type veth peer name {peer} netns {netns}"));
        ip(&format!("addr add {host_addr}/30 dev {host_veth}"));
        ip(&format!("link set {host_veth} up"));
        ip(&format!("-n {netns} addr add {addr}/30 dev {peer}"));
        ip(&format!("-n {netns} link set {peer} up"));
        ip(&format!("-n {netns} link set lo up"));
        // Answers every connection with the address it came from; gives up after 60 s.
        let script = format!(
            "import socket\ns = socket.socket()\ns.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\ns.bind(('{addr}', 8080))\ns.listen(16)\ns.settimeout(60)\nwhile True:\n    c, peer = s.accept()\n    c.sendall(peer[0].encode())\n    c.close()\n"
        );
        let server = Command::new("ip")
            .args(["netns", "exec", &netns, "python3", "-c", &script])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        RemoteHost { netns, host_veth, host_addr, addr, server }
    }
}

impl Drop for RemoteHost {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = Command::new("ip").args(["link", "del", &self.host_veth]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.netns]).status();
    }
}

fn iptables_rules_mentioning(text: &str) -> Vec<String> {
    let output = Command::new("iptables-save").stderr(Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&output.stdout).lines().filter(|line| line.contains(text)).map(str::to_owned).collect()
}

/// Prints what the server at `target:port` says first, or BLOCKED when the connection fails.
fn connect_probe(target: &str, port: u16) -> String {
    format!(
        "python3 -c \"import socket; s = socket.create_connection(('{target}', {port}), 2); print(s.recv(100).decode())\" 2>/dev/null || echo BLOCKED"
    )
}

/// Prints CONNECTED or BLOCKED.
fn connect_only(target: &str, port: u16) -> String {
    format!(
        "python3 -c \"import socket; socket.create_connection(('{target}', {port}), 2); print('CONNECTED')\" 2>/dev/null || echo BLOCKED"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn internet_mode_routes_out_through_nat_and_nowhere_else() {
    if !can_run("internet_mode_routes_out_through_nat_and_nowhere_else") {
        return;
    }
    let has =
        |tool: &str| Command::new(tool).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok();
    assert!(has("iptables-restore") && has("ip"), "network tests need iptables and iproute2: run scripts/sandbox-deps");
    let remote = RemoteHost::start();
    let harness = Harness::new();
    let a = harness.create_with(|spec| spec.network = NetworkMode::Internet).await;
    let b = harness.create_with(|spec| spec.network = NetworkMode::Internet).await;

    let addr_a = harness.ok(a, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").await.trim().to_owned();
    let addr_b = harness.ok(b, "ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1").await.trim().to_owned();
    assert!(addr_a.starts_with("10.201.") && addr_b.starts_with("10.201.") && addr_a != addr_b, "{addr_a} {addr_b}");
    let route = harness.ok(a, "ip route show default").await;
    assert!(route.starts_with("default via 10.201."), "{route}");
    let gateway = route.split_whitespace().nth(2).unwrap().to_owned();

    // Egress: the remote server sees the host's address on its link, not the sandbox's (NAT).
    let mut seen = String::new();
    for _ in 0..50 {
        seen = harness.ok(a, &connect_probe(&remote.addr, 8080)).await.trim().to_owned();
        if seen != "BLOCKED" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // the server may still be starting
    }
    assert_eq!(seen, remote.host_addr, "egress through NAT");

    // Not the host itself: a listener on all of the host's addresses is out of reach.
    let listener = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    for target in [gateway.as_str(), remote.host_addr.as_str()] {
        assert_eq!(harness.ok(a, &connect_only(target, port)).await.trim(), "BLOCKED", "the host at {target}");
    }
    // Not another sandbox.
    harness.background(b, "exec python3 -m http.server 9000", "http").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(harness.ok(b, &connect_only("127.0.0.1", 9000)).await.trim(), "CONNECTED", "b's server runs");
    assert_eq!(harness.ok(b, &connect_only(&addr_b, 9000)).await.trim(), "CONNECTED", "b's server listens on eth0");
    assert_eq!(harness.ok(a, &connect_only(&addr_b, 9000)).await.trim(), "BLOCKED", "sandbox to sandbox");

    for id in [a, b] {
        assert!(!iptables_rules_mentioning(&id.to_string()).is_empty());
        harness.backend.delete(id).await.unwrap();
        assert_eq!(traces_of(&harness, id), Vec::<String>::new());
        assert_eq!(iptables_rules_mentioning(&id.to_string()), Vec::<String>::new());
    }
    drop(listener);
}
