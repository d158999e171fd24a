use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use portico_model::ObjectKey;
use proptest::prelude::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

use super::*;
use crate::{Protocol, Scope};
use portico_testkit::snapshots::snapshot;

fn t(name: &str) -> Target {
    Target {
        service: ObjectKey::new("default", name),
        port: String::new(),
        scope: Scope::Cluster,
        proxy_protocol: false,
    }
}

fn f(addr: &str) -> Frontend {
    Frontend::tcp(addr.parse().expect("addr"))
}

#[test]
fn plan_starts_new_stops_gone_retargets_changed_and_leaves_the_rest() {
    let current = BTreeMap::from([
        (f("127.0.0.1:1"), t("a")),
        (f("127.0.0.1:2"), t("b")),
        (f("127.0.0.1:3"), t("c")),
    ]);
    let desired = BTreeMap::from([
        (f("127.0.0.1:1"), t("a")),
        (f("127.0.0.1:2"), t("b2")),
        (f("127.0.0.1:4"), t("d")),
    ]);
    let p = plan(&current, &desired);
    assert_eq!(p.start, [(f("127.0.0.1:4"), t("d"))]);
    assert_eq!(p.retarget, [(f("127.0.0.1:2"), t("b2"))]);
    assert_eq!(p.stop, [f("127.0.0.1:3")]);
    assert!(
        plan(&desired, &desired).is_empty(),
        "nothing to do when nothing changed"
    );
    let mut replay = current.clone();
    p.apply(&mut replay);
    assert_eq!(replay, desired);
}

fn arb_map() -> impl Strategy<Value = BTreeMap<Frontend, Target>> {
    let frontend = (1u16..8, any::<bool>()).prop_map(|(port, udp)| Frontend {
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
        protocol: if udp { Protocol::Udp } else { Protocol::Tcp },
    });
    let target = (0u8..3).prop_map(|i| t(&format!("s{i}")));
    proptest::collection::btree_map(frontend, target, 0..10)
}

proptest! {
    #[test]
    fn replaying_the_plan_reaches_the_desired_set(current in arb_map(), desired in arb_map()) {
        let p = plan(&current, &desired);
        let mut replay = current.clone();
        p.apply(&mut replay);
        prop_assert_eq!(&replay, &desired);
        // Nothing that stays the same is touched.
        for (fr, tg) in &current {
            if desired.get(fr) == Some(tg) {
                prop_assert!(!p.stop.contains(fr) && !p.start.iter().chain(&p.retarget).any(|(x, _)| x == fr));
            }
        }
    }
}

/// A TCP backend that writes its name, then echoes.
async fn tcp_backend(addr: &str, name: &'static str) -> SocketAddr {
    let l = TcpListener::bind(addr).await.expect("bind backend");
    let local = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                s.write_all(format!("{name}\n").as_bytes()).await.ok();
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    local
}

/// A selector-less Service `web` whose Endpoints point at `backend`.
fn snapshot_for(backend: SocketAddr, protocol: &str) -> Snapshot {
    let (ip, port) = (backend.ip(), backend.port());
    snapshot(&format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80, targetPort: {port}, protocol: {protocol}}}]}}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: web}}\nsubsets:\n- addresses: [{{ip: \"{ip}\"}}]\n  ports: [{{port: {port}, protocol: {protocol}}}]\n"
    ))
}

async fn hello(addr: SocketAddr) -> std::io::Result<(TcpStream, String)> {
    let mut s = TcpStream::connect(addr).await?;
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    while s.read(&mut b).await? == 1 && b[0] != b'\n' {
        line.push(b[0]);
    }
    Ok((s, String::from_utf8_lossy(&line).into_owned()))
}

#[tokio::test]
async fn listeners_follow_the_desired_set_and_stopping_one_keeps_its_connections() {
    let backend = tcp_backend("127.88.1.10:0", "one").await;
    let snapshots = Publisher::new(snapshot_for(backend, "TCP"));
    let shutdown = CancellationToken::new();
    let mut r = Reconciler::new(snapshots.clone(), Settings::default(), shutdown.clone());
    let front = f("127.88.1.1:8080");
    let desired = BTreeMap::from([(front, t("web"))]);
    assert!(r.reconcile(&desired).is_empty());

    let (mut open, name) = hello(front.addr).await.expect("through the frontend");
    assert_eq!(name, "one");
    // Reconciling the same set again leaves the listener (and its counters) alone.
    assert!(r.reconcile(&desired).is_empty());
    assert_eq!(r.status()[0].counters.values().accepted, 1);
    assert_eq!(r.status()[0].counters.values().active, 1);

    // The frontend goes away: no new connections, the open one still works.
    assert!(r.reconcile(&BTreeMap::new()).is_empty());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        TcpStream::connect(front.addr).await.is_err(),
        "the listener is closed"
    );
    open.write_all(b"still there").await.expect("write");
    let mut buf = [0u8; 11];
    open.read_exact(&mut buf)
        .await
        .expect("echo after the listener stopped");
    assert_eq!(&buf, b"still there");

    // And it can come back on the same address at once.
    assert!(r.reconcile(&desired).is_empty());
    assert_eq!(hello(front.addr).await.expect("rebound").1, "one");

    shutdown.cancel();
    r.stop_all().await;
    let mut rest = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(2), open.read_to_end(&mut rest)).await;
    assert!(
        matches!(n, Ok(Ok(0)) | Ok(Err(_))),
        "shutdown ends connections: {n:?}"
    );
}

#[tokio::test]
async fn a_frontend_that_cannot_bind_is_reported_and_retried_without_harming_others() {
    let backend = tcp_backend("127.88.2.10:0", "one").await;
    let snapshots = Publisher::new(snapshot_for(backend, "TCP"));
    let mut r = Reconciler::new(snapshots, Settings::default(), CancellationToken::new());
    // Someone else holds this one.
    let squatter = std::net::TcpListener::bind("127.88.2.1:8080").expect("squat");
    let taken = f("127.88.2.1:8080");
    let free = f("127.88.2.2:8080");
    let desired = BTreeMap::from([(taken, t("web")), (free, t("web"))]);
    let errors = r.reconcile(&desired);
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].frontend, taken);
    assert_eq!(
        errors[0].to_string(),
        "cannot bind tcp/127.88.2.1:8080 for default/web (Cluster)"
    );
    assert_eq!(errors[0].source.kind(), std::io::ErrorKind::AddrInUse);
    assert_eq!(
        hello(free.addr).await.expect("the other one serves").1,
        "one"
    );
    // Still taken: reported again. Freed: bound at the next reconcile.
    assert_eq!(r.reconcile(&desired).len(), 1);
    drop(squatter);
    assert!(r.reconcile(&desired).is_empty());
    assert_eq!(hello(taken.addr).await.expect("bound on retry").1, "one");
    r.stop_all().await;
}

#[tokio::test]
async fn a_new_connection_with_no_endpoint_is_refused() {
    let snapshots = Publisher::new(snapshot(
        "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n",
    ));
    let mut r = Reconciler::new(snapshots, Settings::default(), CancellationToken::new());
    let front = f("127.88.3.1:8080");
    assert!(r.reconcile(&BTreeMap::from([(front, t("web"))])).is_empty());
    let mut s = TcpStream::connect(front.addr)
        .await
        .expect("accepted, then reset");
    let mut buf = [0u8; 1];
    let read = s.read(&mut buf).await;
    assert!(
        matches!(&read, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{read:?}"
    );
    assert_eq!(r.status()[0].counters.values().no_backend, 1);
    r.stop_all().await;
}

#[tokio::test]
async fn a_dead_endpoint_is_skipped_for_the_next_one() {
    let live = tcp_backend("127.88.4.11:0", "live").await;
    // A port nobody listens on, on a lower address so round-robin tries it first.
    let dead: SocketAddr = format!("127.88.4.10:{}", live.port())
        .parse()
        .expect("addr");
    let yaml = format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: web}}\nsubsets:\n- addresses: [{{ip: \"{}\"}}, {{ip: \"{}\"}}]\n  ports: [{{port: {}}}]\n",
        dead.ip(),
        live.ip(),
        live.port()
    );
    let mut r = Reconciler::new(
        Publisher::new(snapshot(&yaml)),
        Settings::default(),
        CancellationToken::new(),
    );
    let front = f("127.88.4.1:8080");
    assert!(r.reconcile(&BTreeMap::from([(front, t("web"))])).is_empty());
    for _ in 0..4 {
        assert_eq!(hello(front.addr).await.expect("connected").1, "live");
    }
    assert_eq!(
        r.status()[0].counters.values().connect_failures,
        2,
        "every other connection tried the dead one first"
    );
    r.stop_all().await;
}

#[tokio::test]
async fn udp_round_trips_and_idle_flows_expire() {
    let backend = UdpSocket::bind("127.88.5.10:0").await.expect("bind");
    let backend_addr = backend.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = backend.recv_from(&mut buf).await {
            let mut reply = b"pong:".to_vec();
            reply.extend_from_slice(&buf[..n]);
            backend.send_to(&reply, from).await.ok();
        }
    });
    let settings = Settings {
        udp_idle: Duration::from_millis(300),
        ..Settings::default()
    };
    let mut r = Reconciler::new(
        Publisher::new(snapshot_for(backend_addr, "UDP")),
        settings,
        CancellationToken::new(),
    );
    let front = Frontend::udp("127.88.5.1:5353".parse().expect("addr"));
    assert!(r.reconcile(&BTreeMap::from([(front, t("web"))])).is_empty());

    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    let mut buf = [0u8; 1500];
    for i in 0..3 {
        client
            .send_to(format!("ping{i}").as_bytes(), front.addr)
            .await
            .expect("send");
        let (n, from) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("reply")
            .expect("recv");
        assert_eq!(&buf[..n], format!("pong:ping{i}").as_bytes());
        assert_eq!(from, front.addr, "replies come from the frontend address");
    }
    let st = r.status()[0].counters.values();
    assert_eq!((st.accepted, st.active), (1, 1), "one flow for one client");
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(
        r.status()[0].counters.values().active,
        0,
        "the idle flow expired"
    );
    client.send_to(b"again", front.addr).await.expect("send");
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
        .await
        .expect("reply")
        .expect("recv");
    assert_eq!(&buf[..n], b"pong:again");
    assert_eq!(
        r.status()[0].counters.values().accepted,
        2,
        "a new flow after expiry"
    );
    r.stop_all().await;
}

/// A UDP backend answering `name:payload`.
async fn udp_backend(addr: &str, name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind(addr).await.expect("bind");
    let local = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            s.send_to(&reply, from).await.ok();
        }
    });
    local
}

fn udp_snapshot(backends: &[SocketAddr]) -> Snapshot {
    let port = backends[0].port();
    let ips: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ip: \"{}\"}}", b.ip()))
        .collect();
    snapshot(&format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: web}}\nspec: {{ports: [{{port: 53, targetPort: {port}, protocol: UDP}}]}}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: web}}\nsubsets:\n- addresses: [{}]\n  ports: [{{port: {port}, protocol: UDP}}]\n",
        ips.join(", ")
    ))
}

#[tokio::test]
async fn a_udp_flow_whose_endpoint_left_is_moved_to_a_remaining_one() {
    let one = udp_backend("127.88.6.10:0", "one").await;
    let two = udp_backend(&format!("127.88.6.11:{}", one.port()), "two").await;
    let snapshots = Publisher::new(udp_snapshot(&[one, two]));
    let mut r = Reconciler::new(
        snapshots.clone(),
        Settings::default(),
        CancellationToken::new(),
    );
    let front = Frontend::udp("127.88.6.1:5353".parse().expect("addr"));
    assert!(r.reconcile(&BTreeMap::from([(front, t("web"))])).is_empty());
    let client = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    let mut buf = [0u8; 1500];
    let mut ask = async |payload: &str| {
        client
            .send_to(payload.as_bytes(), front.addr)
            .await
            .expect("send");
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), client.recv_from(&mut buf))
            .await
            .expect("reply")
            .expect("recv");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    assert_eq!(ask("a").await, "one:a");
    assert_eq!(ask("b").await, "one:b", "the flow sticks to its backend");
    // `one` leaves the endpoints: the flow's next datagram goes to `two`.
    snapshots.publish(udp_snapshot(&[two]));
    assert_eq!(ask("c").await, "two:c");
    assert_eq!(ask("d").await, "two:d");
    r.stop_all().await;
}

#[tokio::test]
async fn a_changed_target_is_swapped_in_place_without_rebinding() {
    let one = tcp_backend("127.88.8.10:0", "one").await;
    let two = tcp_backend("127.88.8.11:0", "two").await;
    let yaml = |name: &str, b: SocketAddr| {
        format!(
            "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec: {{ports: [{{port: 80}}]}}\n---\napiVersion: v1\nkind: Endpoints\nmetadata: {{name: {name}}}\nsubsets:\n- addresses: [{{ip: \"{}\"}}]\n  ports: [{{port: {}}}]\n",
            b.ip(),
            b.port()
        )
    };
    let snapshots = Publisher::new(snapshot(&(yaml("web", one) + &yaml("api", two))));
    let mut r = Reconciler::new(snapshots, Settings::default(), CancellationToken::new());
    let front = f("127.88.8.1:8080");
    assert!(r.reconcile(&BTreeMap::from([(front, t("web"))])).is_empty());
    let (mut open, name) = hello(front.addr).await.expect("web");
    assert_eq!(name, "one");
    // The frontend now belongs to another Service: same socket, new connections go there.
    assert!(r.reconcile(&BTreeMap::from([(front, t("api"))])).is_empty());
    assert_eq!(hello(front.addr).await.expect("api").1, "two");
    let st = r.status();
    assert_eq!(st[0].target, t("api"));
    assert_eq!(
        st[0].counters.values().accepted,
        2,
        "the same listener, counters kept"
    );
    open.write_all(b"x").await.expect("write");
    let mut b = [0u8; 1];
    open.read_exact(&mut b)
        .await
        .expect("the first connection still goes to one");
    r.stop_all().await;
}

#[tokio::test]
async fn the_udp_flow_table_is_bounded() {
    let one = udp_backend("127.88.9.10:0", "one").await;
    let settings = Settings {
        udp_max_flows: 1,
        ..Settings::default()
    };
    let mut r = Reconciler::new(
        Publisher::new(udp_snapshot(&[one])),
        settings,
        CancellationToken::new(),
    );
    let front = Frontend::udp("127.88.9.1:5353".parse().expect("addr"));
    assert!(r.reconcile(&BTreeMap::from([(front, t("web"))])).is_empty());
    let mut buf = [0u8; 1500];
    let first = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    first.send_to(b"a", front.addr).await.expect("send");
    let got = tokio::time::timeout(Duration::from_secs(2), first.recv_from(&mut buf)).await;
    assert!(
        matches!(got, Ok(Ok((5, _)))),
        "first client served: {got:?}"
    );
    let second = UdpSocket::bind("127.0.0.1:0").await.expect("client");
    second.send_to(b"b", front.addr).await.expect("send");
    let got = tokio::time::timeout(Duration::from_millis(300), second.recv_from(&mut buf)).await;
    assert!(got.is_err(), "a second flow does not fit: {got:?}");
    let v = r.status()[0].counters.values();
    assert_eq!((v.accepted, v.dropped_datagrams), (1, 1));
    r.stop_all().await;
}
