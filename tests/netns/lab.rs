//! Network-namespace labs for Portico's L2 and L4 tests (Linux, root).
//!
//! A lab is one client namespace holding a bridge `br0` (10.77.0.1/24, fd77::1/64) and any
//! number of edge namespaces, each with an `eth0` veth whose peer is enslaved to the bridge.
//! Everything the lab creates (namespaces, processes it spawned) is removed when it drops.
//! Used with `#[path]` from `gateway/tests/*.rs`.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::Instant;

pub const CLIENT_V4: &str = "10.77.0.1";
pub const CLIENT_V6: &str = "fd77::1";

/// A name no other lab or probe of this machine uses at the same time: the process id and a
/// per-process counter (two tests of one binary run concurrently, in one process).
fn unique(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}{}x{n}", std::process::id())
}

/// Why the lab cannot run here, or `None` when it can.
pub fn unavailable() -> Option<String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if uid.as_deref() != Some("0") {
        return Some("needs root (network namespaces, AF_PACKET sockets)".into());
    }
    for (tool, arg) in [
        ("ip", "-V"),
        ("arping", "--help"),
        ("ndisc6", "-h"),
        ("nc", "-h"),
        ("sysctl", "--version"),
        ("stdbuf", "--version"),
    ] {
        if let Some(why) = portico_testkit::tool_missing_with(tool, arg) {
            return Some(format!(
                "{why} (apt-get install -y iproute2 arping ndisc6 netcat-openbsd)"
            ));
        }
    }
    probe_netns().err()
}

/// Create and delete a namespace of our own, reporting what `ip` said when it cannot.
fn probe_netns() -> Result<(), String> {
    let probe = unique("ptprobe");
    let out = Command::new("ip")
        .args(["netns", "add", &probe])
        .output()
        .map_err(|e| format!("cannot run `ip netns add`: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "`ip netns add {probe}` fails here: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let del = Command::new("ip")
        .args(["netns", "del", &probe])
        .output()
        .map_err(|e| format!("cannot run `ip netns del`: {e}"))?;
    if !del.status.success() {
        return Err(format!(
            "`ip netns del {probe}` fails here: {}",
            String::from_utf8_lossy(&del.stderr).trim()
        ));
    }
    Ok(())
}

/// Leave the calling test when the lab cannot run: it fails under `CI=true` and prints
/// `SKIPPED: <test>: <why>` elsewhere (see `portico_testkit::require`).
#[macro_export]
macro_rules! require_lab {
    () => {
        if let Some(why) = lab::unavailable() {
            portico_testkit::skip(&why);
            return;
        }
    };
}

pub struct Edge {
    pub ns: String,
    pub mac: String,
    pub v4: String,
    pub v6: String,
}

pub struct Lab {
    pub client: String,
    prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

fn run(args: &[&str]) -> Output {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Lab {
    /// A client namespace with the bridge. `tag` keeps concurrent labs apart.
    pub fn new(tag: &str) -> Lab {
        let prefix = unique(&format!("pt{tag}"));
        let client = format!("{prefix}c");
        let mut lab = Lab {
            client: client.clone(),
            prefix,
            namespaces: Vec::new(),
            children: Vec::new(),
        };
        run(&["ip", "netns", "add", &client]);
        lab.namespaces.push(client.clone());
        let c = client.as_str();
        run(&["ip", "-n", c, "link", "set", "lo", "up"]);
        run(&[
            "ip",
            "-n",
            c,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "stp_state",
            "0",
            "mcast_snooping",
            "0",
        ]);
        run(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_V4}/24"),
            "dev",
            "br0",
        ]);
        run(&[
            "ip",
            "-n",
            c,
            "addr",
            "add",
            &format!("{CLIENT_V6}/64"),
            "dev",
            "br0",
            "nodad",
        ]);
        run(&["ip", "-n", c, "link", "set", "br0", "up"]);
        lab
    }

    /// Edge number `n` (1..): namespace, veth `eth0` with MAC 02:77:00:00:00:0n, addresses
    /// 10.77.0.1n and fd77::1n.
    pub fn add_edge(&mut self, n: u8) -> Edge {
        let ns = format!("{}e{n}", self.prefix);
        run(&["ip", "netns", "add", &ns]);
        self.namespaces.push(ns.clone());
        let peer = format!("v{n}");
        run(&[
            "ip",
            "link",
            "add",
            &peer,
            "netns",
            &self.client,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            &ns,
        ]);
        let mac = format!("02:77:00:00:00:{n:02x}");
        let (v4, v6) = (
            format!("10.77.0.{}", 10 + u32::from(n)),
            format!("fd77::{}", 10 + u32::from(n)),
        );
        let e = ns.as_str();
        run(&["ip", "-n", e, "link", "set", "lo", "up"]);
        run(&["ip", "-n", e, "link", "set", "eth0", "address", &mac]);
        run(&[
            "ip",
            "-n",
            e,
            "addr",
            "add",
            &format!("{v4}/24"),
            "dev",
            "eth0",
        ]);
        run(&[
            "ip",
            "-n",
            e,
            "addr",
            "add",
            &format!("{v6}/64"),
            "dev",
            "eth0",
            "nodad",
        ]);
        run(&["ip", "-n", e, "link", "set", "eth0", "up"]);
        // Only the userspace responder may answer for LoadBalancer IPs, even those that are
        // made local for the L4 listeners (as kube-proxy's strict ARP requires).
        run(&[
            "ip",
            "netns",
            "exec",
            e,
            "sysctl",
            "-q",
            "-w",
            "net.ipv4.conf.all.arp_ignore=1",
        ]);
        run(&[
            "ip",
            "-n",
            &self.client,
            "link",
            "set",
            &peer,
            "master",
            "br0",
        ]);
        run(&["ip", "-n", &self.client, "link", "set", &peer, "up"]);
        Edge { ns, mac, v4, v6 }
    }

    /// Run a command inside `ns` and wait for it.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {args:?} in {ns}: {e}"))
    }

    /// Start this test binary again inside `ns`, running only `entry` with `PORTICO_TEST_CHILD`
    /// set to `spec`. Returns the index of the child (for [`Lab::kill`]).
    pub fn spawn_self(&mut self, ns: &str, entry: &str, spec: &str) -> usize {
        let exe = std::env::current_exe().expect("test binary path");
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(exe)
            // The entry is `#[ignore]`d so that it never counts as a passing test of its own.
            .args([
                "--exact",
                entry,
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("PORTICO_TEST_CHILD", spec)
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn child");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Start any command inside `ns`, owned by the lab.
    pub fn spawn(&mut self, ns: &str, args: &[&str]) -> usize {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Start a command inside `ns` whose stdout lines arrive, timestamped on arrival, on the
    /// returned channel (run through `stdbuf -oL` so that each line comes when printed).
    pub fn spawn_lines(&mut self, ns: &str, args: &[&str]) -> mpsc::Receiver<(Instant, String)> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "stdbuf", "-oL"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn");
        let stdout = child.stdout.take().expect("piped");
        self.children.push(child);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send((Instant::now(), line)).is_err() {
                    break;
                }
            }
        });
        rx
    }

    /// SIGKILL a child (as a crash would) and reap it.
    pub fn kill(&mut self, idx: usize) {
        let child = &mut self.children[idx];
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
