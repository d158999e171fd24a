//! The gateway's LoadBalancer listeners with real TCP and UDP clients and origins on loopback.
//! EXTERNAL-IPs are taken from 127.0.0.0/8 (bindable without root), one per test.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use portico_l4::lb::{L4, L4Config, Upstream};
use portico_l4::proxy_protocol;
use portico_model::state::Object;
use portico_model::{ClusterState, Origin, Snapshot, translate};
use portico_runtime::publisher::Publisher;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

/// An EXTERNAL-IP unique to this process and test.
fn vip(n: u8) -> IpAddr {
    let pid = std::process::id();
    IpAddr::from([127, 77, (pid % 250) as u8, n])
}

/// A TCP origin that answers each connection with `name`, then what it read first; with a
/// PROXY v2 header it answers `name via <client>` instead.
async fn tcp_origin(addr: SocketAddr, name: &'static str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.expect("bind origin");
    let local = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 1024];
                let Ok(n) = s.read(&mut buf).await else {
                    return;
                };
                let reply = match proxy_protocol::parse(&buf[..n]) {
                    Some((client, dst, _)) => format!("{name} via {client} to {dst}"),
                    None => format!("{name} {}", String::from_utf8_lossy(&buf[..n])),
                };
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    local
}

async fn udp_origin(name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
    let local = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = vec![0u8; 2048];
        loop {
            let Ok((n, from)) = s.recv_from(&mut buf).await else {
                return;
            };
            let reply = format!("{name} {}", String::from_utf8_lossy(&buf[..n]));
            let _ = s.send_to(reply.as_bytes(), from).await;
        }
    });
    local
}

struct World {
    vip: IpAddr,
    affinity: bool,
    local: bool,
    proxy_protocol: bool,
    node_port: Option<u16>,
    /// (ip, port, node) of ready TCP endpoints.
    tcp: Vec<SocketAddr>,
    tcp_nodes: Vec<&'static str>,
    udp: Vec<SocketAddr>,
}

impl World {
    fn snapshot(&self, generation: u64) -> Snapshot {
        let mut state = ClusterState::default();
        let mut spec = json!({
            "type": "LoadBalancer",
            "clusterIP": "10.96.0.10",
            "ports": [
                {"name": "http", "protocol": "TCP", "port": 8080, "targetPort": 8080},
                {"name": "dns", "protocol": "UDP", "port": 5353, "targetPort": 5353},
            ],
            "externalTrafficPolicy": if self.local { "Local" } else { "Cluster" },
        });
        if let Some(np) = self.node_port {
            spec["ports"][0]["nodePort"] = json!(np);
        }
        if self.affinity {
            spec["sessionAffinity"] = json!("ClientIP");
        }
        let mut annotations = json!({});
        if self.proxy_protocol {
            annotations["portico.dev/proxy-protocol"] = json!("v2");
        }
        let svc = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "default", "annotations": annotations},
            "spec": spec,
            "status": {"loadBalancer": {"ingress": [{"ip": self.vip.to_string()}]}},
        });
        let subsets: Vec<_> = self
            .tcp
            .iter()
            .zip(self.tcp_nodes.iter().chain(std::iter::repeat(&"node-1")))
            .map(|(a, node)| {
                json!({"addresses": [{"ip": a.ip().to_string(), "nodeName": node}], "ports": [{"name": "http", "port": a.port(), "protocol": "TCP"}]})
            })
            .chain(self.udp.iter().map(|a| {
                json!({"addresses": [{"ip": a.ip().to_string()}], "ports": [{"name": "dns", "port": a.port(), "protocol": "UDP"}]})
            }))
            .collect();
        let eps = json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"}, "subsets": subsets});
        let node = |name: &str, ip: &str| {
            json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
                   "status": {"addresses": [{"type": "InternalIP", "address": ip}], "conditions": [{"type": "Ready", "status": "True"}]}})
        };
        state.insert(
            Object::Service(serde_json::from_value(svc).expect("service")),
            Origin::default(),
        );
        state.insert(
            Object::Endpoints(serde_json::from_value(eps).expect("endpoints")),
            Origin::default(),
        );
        state.insert(
            Object::Node(serde_json::from_value(node("node-1", "127.0.0.1")).expect("node")),
            Origin::default(),
        );
        state.insert(
            Object::Node(serde_json::from_value(node("node-2", "127.0.0.2")).expect("node")),
            Origin::default(),
        );
        let snap = translate(&state, generation);
        assert!(snap.errors.is_empty(), "{:?}", snap.errors);
        snap
    }
}

struct Running {
    snapshots: Arc<Publisher<Snapshot>>,
    shutdown: CancellationToken,
    views: tokio::sync::watch::Receiver<Vec<portico_l4::lb::ListenerView>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn start(world: &World, upstream: Upstream) -> Running {
    let snapshots = Publisher::new(Snapshot::default());
    snapshots.publish(world.snapshot(1));
    let shutdown = CancellationToken::new();
    let cfg = L4Config {
        upstream,
        connect_timeout: Duration::from_secs(1),
        udp_idle: Duration::from_secs(2),
        ..Default::default()
    };
    let (tx, mut views) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(L4::new(cfg, snapshots.clone(), shutdown.clone()).run(Some(tx)));
    tokio::time::timeout(Duration::from_secs(5), views.wait_for(|v| v.len() == 2))
        .await
        .expect("listeners bound")
        .expect("open");
    Running {
        snapshots,
        shutdown,
        views,
    }
}

async fn ask(addr: SocketAddr, msg: &str) -> std::io::Result<String> {
    let mut s = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr)).await??;
    s.write_all(msg.as_bytes()).await?;
    let mut out = String::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await??;
    Ok(out)
}

fn world(vip: IpAddr, tcp: Vec<SocketAddr>, udp: Vec<SocketAddr>) -> World {
    World {
        vip,
        affinity: false,
        local: false,
        proxy_protocol: false,
        node_port: None,
        tcp,
        tcp_nodes: vec![],
        udp,
    }
}

#[tokio::test]
async fn tcp_round_robins_over_ready_endpoints() {
    let a = tcp_origin("127.0.0.1:0".parse().expect("addr"), "a").await;
    let b = tcp_origin("127.0.0.1:0".parse().expect("addr"), "b").await;
    let w = world(vip(1), vec![a, b], vec![]);
    let _run = start(&w, Upstream::Endpoints).await;
    let front = SocketAddr::new(w.vip, 8080);
    let mut seen = Vec::new();
    for i in 0..4 {
        let reply = ask(front, &format!("hello {i}")).await.expect("forwarded");
        assert!(reply.ends_with(&format!("hello {i}")), "{reply}");
        seen.push(reply[..1].to_owned());
    }
    // Endpoints are ordered by address (here: by the origins' random ports).
    assert!(
        seen[0] != seen[1] && seen[0] == seen[2] && seen[1] == seen[3],
        "round robin over both endpoints: {seen:?}"
    );
}

#[tokio::test]
async fn client_ip_affinity_keeps_a_client_on_one_endpoint() {
    let a = tcp_origin("127.0.0.1:0".parse().expect("addr"), "a").await;
    let b = tcp_origin("127.0.0.1:0".parse().expect("addr"), "b").await;
    let mut w = world(vip(2), vec![a, b], vec![]);
    w.affinity = true;
    let _run = start(&w, Upstream::Endpoints).await;
    let front = SocketAddr::new(w.vip, 8080);
    let mut seen = BTreeSet::new();
    for _ in 0..6 {
        seen.insert(ask(front, "x").await.expect("forwarded")[..1].to_owned());
    }
    assert_eq!(seen.len(), 1, "one client, one endpoint: {seen:?}");
}

#[tokio::test]
async fn proxy_protocol_v2_tells_the_origin_who_the_client_is() {
    let a = tcp_origin("127.0.0.1:0".parse().expect("addr"), "a").await;
    let mut w = world(vip(3), vec![a], vec![]);
    w.proxy_protocol = true;
    let _run = start(&w, Upstream::Endpoints).await;
    let front = SocketAddr::new(w.vip, 8080);
    let mut s = TcpStream::connect(front).await.expect("connect");
    let me = s.local_addr().expect("addr");
    s.write_all(b"ping").await.expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("read");
    assert_eq!(out, format!("a via {me} to {front}"));
}

#[tokio::test]
async fn udp_flows_are_forwarded_and_answered_from_the_external_ip() {
    let u1 = udp_origin("u1").await;
    let u2 = udp_origin("u2").await;
    let w = world(vip(4), vec![], vec![u1, u2]);
    let _run = start(&w, Upstream::Endpoints).await;
    let front = SocketAddr::new(w.vip, 5353);
    let mut names = BTreeSet::new();
    for i in 0..2 {
        let c = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        c.connect(front).await.expect("connect");
        for j in 0..3 {
            c.send(format!("q{i}.{j}").as_bytes()).await.expect("send");
            let mut buf = [0u8; 256];
            let n = tokio::time::timeout(Duration::from_secs(5), c.recv(&mut buf))
                .await
                .expect("reply in time")
                .expect("recv");
            let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
            assert!(reply.ends_with(&format!("q{i}.{j}")), "{reply}");
            names.insert(reply[..2].to_owned());
        }
    }
    assert_eq!(
        names,
        BTreeSet::from(["u1".to_owned(), "u2".to_owned()]),
        "two flows, two endpoints"
    );
}

#[tokio::test]
async fn nodeport_mode_with_local_policy_only_uses_nodes_with_a_ready_endpoint() {
    // One "NodePort" per node: the same port on 127.0.0.1 (node-1) and 127.0.0.2 (node-2).
    let n1 = tcp_origin("127.0.0.1:0".parse().expect("addr"), "node-1").await;
    let n2 = tcp_origin(SocketAddr::new([127, 0, 0, 2].into(), n1.port()), "node-2").await;
    let pod = "10.244.2.7:8080".parse().expect("addr");
    let mut w = world(vip(5), vec![pod], vec![]);
    w.node_port = Some(n1.port());
    w.tcp_nodes = vec!["node-2"];
    w.local = true;
    let run = start(&w, Upstream::NodePort).await;
    let front = SocketAddr::new(w.vip, 8080);
    for _ in 0..4 {
        assert!(
            ask(front, "x")
                .await
                .expect("forwarded")
                .starts_with("node-2"),
            "only node-2 has the endpoint"
        );
    }
    // Cluster policy: both nodes take turns.
    w.local = false;
    run.snapshots.publish(w.snapshot(2));
    let mut seen = BTreeSet::new();
    for _ in 0..4 {
        seen.insert(
            ask(front, "x")
                .await
                .expect("forwarded")
                .split(' ')
                .next()
                .map(str::to_owned),
        );
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let _ = n2;
}

#[tokio::test]
async fn no_endpoint_means_reset_and_a_removed_service_closes_the_listener() {
    let w = world(vip(6), vec![], vec![]);
    let mut run = start(&w, Upstream::Endpoints).await;
    let front = SocketAddr::new(w.vip, 8080);
    match ask(front, "x").await {
        Ok(s) => assert!(s.is_empty(), "nothing may answer: {s}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
    run.snapshots.publish(Snapshot {
        generation: 2,
        ..Default::default()
    });
    tokio::time::timeout(Duration::from_secs(5), run.views.wait_for(|v| v.is_empty()))
        .await
        .expect("closed")
        .expect("open");
    let err = TcpStream::connect(front)
        .await
        .expect_err("nobody listens any more");
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn at_max_connections_a_new_connection_waits_until_one_closes() {
    let a = tcp_origin("127.0.0.1:0".parse().expect("addr"), "a").await;
    let w = world(vip(7), vec![a], vec![]);
    let snapshots = Publisher::new(Snapshot::default());
    snapshots.publish(w.snapshot(1));
    let shutdown = CancellationToken::new();
    let _stop = shutdown.clone().drop_guard();
    let limit = portico_runtime::connections::ConnectionLimit::new(1);
    let cfg = L4Config {
        connection_limit: Some(limit.clone()),
        ..Default::default()
    };
    let (tx, mut views) = tokio::sync::watch::channel(Vec::new());
    tokio::spawn(L4::new(cfg, snapshots.clone(), shutdown.clone()).run(Some(tx)));
    tokio::time::timeout(Duration::from_secs(5), views.wait_for(|v| v.len() == 2))
        .await
        .expect("listeners bound")
        .expect("open");
    let front = SocketAddr::new(w.vip, 8080);

    // The first connection stays open after its answer (until the client closes).
    let mut first = TcpStream::connect(front).await.expect("connect");
    first.write_all(b"one").await.expect("send");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut buf))
        .await
        .expect("answered in time")
        .expect("read");
    assert_eq!(&buf[..n], b"a one");

    // The second waits in the backlog: no answer while the first is open.
    let mut second = TcpStream::connect(front)
        .await
        .expect("connect (kernel backlog)");
    second.write_all(b"two").await.expect("send");
    let waited = tokio::time::timeout(Duration::from_millis(500), second.read(&mut buf)).await;
    assert!(
        waited.is_err(),
        "a second connection was served at the limit"
    );
    assert!(limit.reached() >= 1);

    drop(first);
    let n = tokio::time::timeout(Duration::from_secs(5), second.read(&mut buf))
        .await
        .expect("answered once the first closed")
        .expect("read");
    assert_eq!(&buf[..n], b"a two");
}
