//! Who is alive among the edge nodes, for the election: a small UDP heartbeat gossip.
//!
//! Every node sends `PORTICO-HB1 <node name>` to each `--peer` every `interval` (200 ms) and
//! considers a peer dead when it has not heard from it for `dead_after` (1 s). A node that
//! stops cleanly says `PORTICO-BYE1 <node name>` so its peers take over at once. The alive set
//! always contains the local node and is published on a watch channel whenever it changes.
//!
//! In kube mode the same channel can be fed from `coordination.k8s.io` Leases (one per edge
//! node, renewed every 200 ms, expired after 1 s); that source is not written yet.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

const HEARTBEAT: &str = "PORTICO-HB1 ";
const GOODBYE: &str = "PORTICO-BYE1 ";

/// The names of the nodes currently alive, the local one included.
pub type Alive = Arc<BTreeSet<String>>;

#[derive(Clone, Debug)]
pub struct MembershipConfig {
    pub node: String,
    pub peers: Vec<SocketAddr>,
    pub interval: Duration,
    pub dead_after: Duration,
}

impl MembershipConfig {
    pub fn new(node: impl Into<String>, peers: Vec<SocketAddr>) -> Self {
        Self {
            node: node.into(),
            peers,
            interval: Duration::from_millis(200),
            dead_after: Duration::from_secs(1),
        }
    }
}

/// One gossip message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Heartbeat(String),
    Goodbye(String),
}

impl Message {
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Message::Heartbeat(n) => format!("{HEARTBEAT}{n}").into_bytes(),
            Message::Goodbye(n) => format!("{GOODBYE}{n}").into_bytes(),
        }
    }

    /// Decode a datagram; `None` for anything that is not a well-formed message with a valid
    /// node name (lowercase DNS subdomain, as Kubernetes requires).
    pub fn parse(b: &[u8]) -> Option<Message> {
        let s = std::str::from_utf8(b).ok()?;
        let (ctor, name): (fn(String) -> Message, &str) = if let Some(n) = s.strip_prefix(HEARTBEAT)
        {
            (Message::Heartbeat, n)
        } else {
            (Message::Goodbye, s.strip_prefix(GOODBYE)?)
        };
        valid_node_name(name).then(|| ctor(name.to_owned()))
    }
}

fn valid_node_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 253
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && n.bytes().next().is_some_and(|b| b.is_ascii_alphanumeric())
        && n.bytes().last().is_some_and(|b| b.is_ascii_alphanumeric())
}

/// The last time each peer was heard from. Pure: callers pass the time in.
#[derive(Debug)]
pub struct Members {
    me: String,
    dead_after: Duration,
    last_seen: BTreeMap<String, Instant>,
}

impl Members {
    pub fn new(me: impl Into<String>, dead_after: Duration) -> Self {
        Self {
            me: me.into(),
            dead_after,
            last_seen: BTreeMap::new(),
        }
    }

    pub fn observe(&mut self, msg: &Message, now: Instant) {
        match msg {
            Message::Heartbeat(n) if *n != self.me => drop(self.last_seen.insert(n.clone(), now)),
            Message::Goodbye(n) => drop(self.last_seen.remove(n)),
            Message::Heartbeat(_) => {}
        }
    }

    /// When the next peer dies if it stays silent.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.last_seen
            .values()
            .min()
            .map(|seen| *seen + self.dead_after)
    }

    /// The alive set at `now`; forgets peers that are dead.
    pub fn alive(&mut self, now: Instant) -> BTreeSet<String> {
        let dead_after = self.dead_after;
        self.last_seen
            .retain(|_, seen| now.saturating_duration_since(*seen) < dead_after);
        let mut out: BTreeSet<String> = self.last_seen.keys().cloned().collect();
        out.insert(self.me.clone());
        out
    }
}

/// Run the gossip on `socket` until `shutdown`, publishing the alive set into `alive`.
pub async fn run(
    cfg: MembershipConfig,
    socket: UdpSocket,
    alive: watch::Sender<Alive>,
    shutdown: CancellationToken,
) {
    let (_keep, discovered) = watch::channel(Arc::<[SocketAddr]>::from([]));
    run_with_discovery(cfg, discovered, socket, alive, shutdown).await;
}

/// Like [`run`], with peers beyond `cfg.peers` that may change while running (e.g. the edge
/// nodes' addresses from the snapshot's Node objects).
pub async fn run_with_discovery(
    cfg: MembershipConfig,
    discovered: watch::Receiver<Arc<[SocketAddr]>>,
    socket: UdpSocket,
    alive: watch::Sender<Alive>,
    shutdown: CancellationToken,
) {
    let mut members = Members::new(cfg.node.clone(), cfg.dead_after);
    let heartbeat = Message::Heartbeat(cfg.node.clone()).encode();
    let mut tick = tokio::time::interval(cfg.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut buf = [0u8; 512];
    let publish = |set: BTreeSet<String>| {
        alive.send_if_modified(|cur| {
            if **cur == set {
                return false;
            }
            info!(alive = ?set, "edge membership changed");
            *cur = Arc::new(set);
            true
        });
    };
    publish(members.alive(Instant::now()));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = sleep_until(members.next_expiry()) => publish(members.alive(Instant::now())),
            _ = tick.tick() => {
                let extra = discovered.borrow().clone();
                let mut peers: Vec<SocketAddr> = cfg.peers.iter().chain(extra.iter()).copied().collect();
                peers.sort();
                peers.dedup();
                for peer in &peers {
                    if let Err(e) = socket.send_to(&heartbeat, peer).await {
                        debug!(%peer, error = %e, "heartbeat not sent");
                    }
                }
                publish(members.alive(Instant::now()));
            }
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => match Message::parse(&buf[..n]) {
                    Some(msg) => {
                        members.observe(&msg, Instant::now());
                        publish(members.alive(Instant::now()));
                    }
                    None => debug!(%from, "ignoring a datagram that is not a heartbeat"),
                },
                Err(e) => {
                    warn!(error = %e, "membership socket receive failed");
                    tokio::time::sleep(cfg.interval).await;
                }
            },
        }
    }
    let bye = Message::Goodbye(cfg.node.clone()).encode();
    let extra = discovered.borrow().clone();
    for peer in cfg.peers.iter().chain(extra.iter()) {
        if let Err(e) = socket.send_to(&bye, peer).await {
            debug!(%peer, error = %e, "goodbye not sent");
        }
    }
}

/// Sleep until `at`, or forever when there is nothing to wait for.
async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(v: &[&str]) -> BTreeSet<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn messages_round_trip_and_garbage_is_refused() {
        for m in [
            Message::Heartbeat("edge-a.example".into()),
            Message::Goodbye("edge-b".into()),
        ] {
            assert_eq!(Message::parse(&m.encode()), Some(m));
        }
        for bad in [
            &b"PORTICO-HB1 "[..],
            b"PORTICO-HB1 Edge",
            b"PORTICO-HB1 -a",
            b"HELLO edge",
            b"\xff\xfe",
            b"PORTICO-HB1 a b",
        ] {
            assert_eq!(Message::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_silent_peer_is_dead_after_dead_after() {
        let mut m = Members::new("edge-a", Duration::from_secs(1));
        let t0 = Instant::now();
        assert_eq!(m.alive(t0), set(&["edge-a"]), "alone at first");
        m.observe(&Message::Heartbeat("edge-b".into()), t0);
        m.observe(&Message::Heartbeat("edge-a".into()), t0);
        assert_eq!(
            m.alive(t0 + Duration::from_millis(999)),
            set(&["edge-a", "edge-b"])
        );
        assert_eq!(
            m.alive(t0 + Duration::from_millis(1000)),
            set(&["edge-a"]),
            "dead after 1 s of silence"
        );
        m.observe(
            &Message::Heartbeat("edge-b".into()),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(
            m.alive(t0 + Duration::from_secs(2)),
            set(&["edge-a", "edge-b"]),
            "back when heard again"
        );
        m.observe(
            &Message::Goodbye("edge-b".into()),
            t0 + Duration::from_secs(2),
        );
        assert_eq!(
            m.alive(t0 + Duration::from_secs(2)),
            set(&["edge-a"]),
            "goodbye removes at once"
        );
    }

    #[tokio::test]
    async fn two_nodes_find_each_other_and_notice_a_departure() {
        let a = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let b = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let (a_addr, b_addr) = (a.local_addr().expect("addr"), b.local_addr().expect("addr"));
        let fast = |node: &str, peer| MembershipConfig {
            interval: Duration::from_millis(20),
            dead_after: Duration::from_millis(200),
            ..MembershipConfig::new(node, vec![peer])
        };
        let (a_tx, mut a_rx) = watch::channel(Alive::default());
        let (b_tx, _b_rx) = watch::channel(Alive::default());
        let stop_a = CancellationToken::new();
        let stop_b = CancellationToken::new();
        let ta = tokio::spawn(run(fast("edge-a", b_addr), a, a_tx, stop_a.clone()));
        let tb = tokio::spawn(run(fast("edge-b", a_addr), b, b_tx, stop_b.clone()));
        let both = set(&["edge-a", "edge-b"]);
        tokio::time::timeout(Duration::from_secs(5), a_rx.wait_for(|s| **s == both))
            .await
            .expect("joined")
            .expect("open");
        stop_b.cancel();
        tb.await.expect("b stops");
        let alone = set(&["edge-a"]);
        tokio::time::timeout(Duration::from_secs(5), a_rx.wait_for(|s| **s == alone))
            .await
            .expect("left")
            .expect("open");
        stop_a.cancel();
        ta.await.expect("a stops");
    }
}
