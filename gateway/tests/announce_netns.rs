//! ARP and NDP announcement in network namespaces the test creates itself: a client namespace
//! with a bridge and one or two edge namespaces running the real responder (this test binary,
//! re-executed inside the namespace through `zz_child_entry_point`).
//!
//! NEEDS ROOT (network namespaces, AF_PACKET) and `iproute2 arping ndisc6 netcat-openbsd`;
//! without them each test fails under `CI=true` and elsewhere prints `SKIPPED: <test>: <why>`.

#[path = "../../tests/netns/lab.rs"]
#[macro_use]
mod lab;

use std::time::{Duration, Instant};

use clap::Parser;
use lab::Lab;

const VIP4: &str = "10.77.0.100";
const VIP6: &str = "fd77::100";

#[derive(Parser)]
struct ChildCli {
    #[command(flatten)]
    args: portico_announce::debug::AnnounceDebugArgs,
}

/// Not a test of its own: the process the lab starts inside an edge namespace. Does nothing
/// unless `PORTICO_TEST_CHILD` holds the `announce-debug` arguments.
#[test]
#[ignore = "the responder process a lab starts (Lab::spawn_self), not a test of its own"]
fn zz_child_entry_point() {
    let Ok(spec) = std::env::var("PORTICO_TEST_CHILD") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let argv = std::iter::once("announce-debug").chain(spec.split_whitespace());
    let cli = ChildCli::parse_from(argv);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            term.recv().await;
            stop.cancel();
        });
        portico_announce::debug::run(cli.args, shutdown)
            .await
            .expect("announcer runs");
    });
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One `arping` probe from the client; the MAC that answered, if any.
fn arping_once(lab: &Lab, extra: &[&str]) -> Option<String> {
    let mut args = vec!["arping", "-c", "1", "-w", "0.15", "-i", "br0"];
    args.extend_from_slice(extra);
    args.push(VIP4);
    let out = text(&lab.exec(&lab.client, &args));
    out.lines()
        .find(|l| l.contains("bytes from"))
        .and_then(|l| l.split_whitespace().nth(3))
        .map(str::to_lowercase)
}

fn wait_for_answer(lab: &Lab, within: Duration) -> String {
    let start = Instant::now();
    loop {
        if let Some(mac) = arping_once(lab, &[]) {
            return mac;
        }
        assert!(
            start.elapsed() < within,
            "no ARP answer for {VIP4} within {within:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn announce_spec(edge: &lab::Edge, node: &str, peers: &[&lab::Edge]) -> String {
    let mut s = format!(
        "--iface eth0 --ip {VIP4} --ip {VIP6} --node {node} --gossip-listen {}:7946 --interval-ms 500 --repeats 6",
        edge.v4
    );
    for p in peers {
        s.push_str(&format!(" --peer {}:7946", p.v4));
    }
    s
}

#[test]
fn client_arping_and_ndisc6_get_the_edge_mac() {
    require_lab!();
    let mut lab = Lab::new("a");
    let edge = lab.add_edge(1);
    lab.spawn_self(
        &edge.ns.clone(),
        "zz_child_entry_point",
        &announce_spec(&edge, "edge-1", &[]),
    );
    assert_eq!(wait_for_answer(&lab, Duration::from_secs(10)), edge.mac);

    // Broadcast who-has, three times: three answers, all from the edge's MAC.
    let out = text(&lab.exec(&lab.client, &["arping", "-c", "3", "-i", "br0", VIP4]));
    let answers: Vec<&str> = out.lines().filter(|l| l.contains("bytes from")).collect();
    assert_eq!(answers.len(), 3, "arping output:\n{out}");
    assert!(
        answers.iter().all(|l| l.to_lowercase().contains(&edge.mac)),
        "arping output:\n{out}"
    );

    // A unicast request (as a neighbour cache refresh sends) is answered too.
    assert_eq!(
        arping_once(&lab, &["-t", &edge.mac]).as_deref(),
        Some(edge.mac.as_str()),
        "unicast who-has"
    );

    // IPv6: neighbour solicitation to the solicited-node group.
    let ndisc = lab.exec(
        &lab.client,
        &["ndisc6", "-1", "-r", "3", "-w", "500", VIP6, "br0"],
    );
    let out = text(&ndisc).to_lowercase();
    assert!(
        out.contains(&format!("target link-layer address: {}", edge.mac)),
        "ndisc6 output:\n{out}"
    );

    // And the kernel agrees: a connection attempt resolves the neighbour (nothing listens).
    let _ = lab.exec(&lab.client, &["nc", "-6", "-z", "-w", "1", VIP6, "9"]);
    let neigh = text(&lab.exec(
        &lab.client,
        &["ip", "-6", "neigh", "show", VIP6, "dev", "br0"],
    ));
    assert!(neigh.contains(&edge.mac), "client neighbour table: {neigh}");

    // No address was added to the edge's interface.
    let addrs = text(&lab.exec(&edge.ns, &["ip", "addr", "show", "dev", "eth0"]));
    assert!(
        !addrs.contains(VIP4) && !addrs.contains(VIP6),
        "edge addresses:\n{addrs}"
    );

    // Nothing answers for an IP that is not announced.
    let other = text(&lab.exec(
        &lab.client,
        &["arping", "-c", "1", "-w", "0.3", "-i", "br0", "10.77.0.101"],
    ));
    assert!(!other.contains("bytes from"), "unexpected answer:\n{other}");
}

#[test]
fn failover_to_the_other_edge_within_two_seconds() {
    require_lab!();
    let mut lab = Lab::new("f");
    let e1 = lab.add_edge(1);
    let e2 = lab.add_edge(2);
    let c1 = lab.spawn_self(
        &e1.ns.clone(),
        "zz_child_entry_point",
        &announce_spec(&e1, "edge-1", &[&e2]),
    );
    let c2 = lab.spawn_self(
        &e2.ns.clone(),
        "zz_child_entry_point",
        &announce_spec(&e2, "edge-2", &[&e1]),
    );
    wait_for_answer(&lab, Duration::from_secs(10));
    // Let membership converge (each side hears the other within a heartbeat or two), then the
    // owner must be stable and unique.
    std::thread::sleep(Duration::from_millis(1500));
    let owner = wait_for_answer(&lab, Duration::from_secs(5));
    let out = text(&lab.exec(
        &lab.client,
        &["arping", "-c", "4", "-W", "0.1", "-i", "br0", VIP4],
    ));
    let answers: Vec<String> = out
        .lines()
        .filter(|l| l.contains("bytes from"))
        .map(str::to_lowercase)
        .collect();
    assert_eq!(
        answers.len(),
        4,
        "exactly one answer per request (one owner):\n{out}"
    );
    assert!(
        answers.iter().all(|l| l.contains(&owner)),
        "a single, stable owner:\n{out}"
    );
    let (victim, survivor) = if owner == e1.mac {
        (c1, &e2)
    } else {
        (c2, &e1)
    };
    assert!(
        owner == e1.mac || owner == e2.mac,
        "owner {owner} is one of the edges"
    );

    // Give the client's kernel a neighbour entry pointing at the owner.
    let _ = lab.exec(&lab.client, &["nc", "-z", "-w", "1", VIP4, "9"]);

    // The client keeps asking every 20 ms; crash the owner and measure until the answers come
    // from the other MAC.
    let client = lab.client.clone();
    let answers = lab.spawn_lines(
        &client,
        &["arping", "-i", "br0", "-W", "0.02", "-c", "400", VIP4],
    );
    std::thread::sleep(Duration::from_millis(300));
    lab.kill(victim);
    let killed = Instant::now();
    let mut last_from_victim = None;
    let took = loop {
        let (at, line) = answers
            .recv_timeout(Duration::from_secs(5))
            .expect("arping keeps running");
        let line = line.to_lowercase();
        if line.contains(&owner) {
            last_from_victim = Some(at);
        }
        if line.contains(&survivor.mac) {
            break at.saturating_duration_since(killed);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(5),
            "no takeover within 5 s"
        );
    };
    println!(
        "L2 failover: {} ms from SIGKILL of the owner to the first ARP answer from the survivor",
        took.as_millis()
    );
    if let Some(at) = last_from_victim {
        assert!(
            at <= killed + Duration::from_millis(50),
            "the dead owner answered after it was killed"
        );
    }
    assert!(took < Duration::from_secs(2), "failover took {took:?}");

    // The survivor's gratuitous ARPs move the client's cached entry without the client asking.
    let start = Instant::now();
    loop {
        let neigh = text(&lab.exec(&lab.client, &["ip", "neigh", "show", VIP4, "dev", "br0"]));
        if neigh.contains(&survivor.mac) {
            println!(
                "client neighbour cache moved to the survivor {} ms after the kill",
                killed.elapsed().as_millis()
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "client cache still says: {neigh}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
