//! End to end on a real L2 segment: a client namespace reaches a LoadBalancer EXTERNAL-IP that
//! no interface holds, through the announcer (ARP/NDP) and the L4 listener of an edge
//! namespace, with `curl` (IPv4 and IPv6) and `nc`.
//!
//! NEEDS ROOT and `iproute2 arping ndisc6 curl netcat-openbsd`; without them the test fails
//! under `CI=true` and elsewhere prints `SKIPPED: <test>: <why>`.

#[path = "../../tests/netns/lab.rs"]
#[macro_use]
mod lab;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lab::Lab;
use portico_announce::l2::announcer::{self, AnnouncerConfig};
use portico_announce::l2::responder::AnnounceTiming;
use portico_announce::membership::Alive;
use portico_l4::lb::{L4, L4Config};
use portico_model::state::Object;
use portico_model::{ClusterState, Origin, Snapshot, translate};
use portico_runtime::publisher::Publisher;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const VIP4: &str = "10.77.0.100";
const VIP6: &str = "fd77::100";

/// The cluster as the edge sees it: one LoadBalancer Service on both VIPs, port 80, whose
/// endpoint is `origin`, in a pool advertised on every node.
fn snapshot(origin: SocketAddr) -> Snapshot {
    let mut state = ClusterState::default();
    let docs = [
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "lab", "namespace": "portico-system"},
               "spec": {"addresses": ["10.77.0.100/32", "fd77::100/128"]}}),
        json!({"apiVersion": "metallb.io/v1beta1", "kind": "L2Advertisement", "metadata": {"name": "lab", "namespace": "portico-system"}, "spec": {}}),
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
               "spec": {"type": "LoadBalancer", "ports": [{"name": "http", "port": 80, "targetPort": origin.port()}]},
               "status": {"loadBalancer": {"ingress": [{"ip": VIP4}, {"ip": VIP6}]}}}),
        json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": "web", "namespace": "default"},
               "subsets": [{"addresses": [{"ip": origin.ip().to_string()}], "ports": [{"name": "http", "port": origin.port()}]}]}),
    ];
    for d in docs {
        let obj = match d["kind"].as_str() {
            Some("IPAddressPool") => {
                Object::IPAddressPool(serde_json::from_value(d).expect("pool"))
            }
            Some("L2Advertisement") => {
                Object::L2Advertisement(serde_json::from_value(d).expect("adv"))
            }
            Some("Service") => Object::Service(serde_json::from_value(d).expect("service")),
            _ => Object::Endpoints(serde_json::from_value(d).expect("endpoints")),
        };
        state.insert(obj, Origin::default());
    }
    let snap = translate(&state, 1);
    assert!(snap.errors.is_empty(), "{:?}", snap.errors);
    snap
}

/// An HTTP origin on loopback that says who it is and who connected.
async fn origin(name: &'static str) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.expect("bind origin");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((mut s, peer)) = l.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let body = format!("hello from {name} (peer {})\n", peer.ip());
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });
    addr
}

/// Not a test of its own: the edge process (announcer + L4 listeners + origin), started by the
/// lab inside the edge namespace when `PORTICO_TEST_CHILD` is set.
#[test]
#[ignore = "the edge process a lab starts (Lab::spawn_self), not a test of its own"]
fn zz_child_entry_point() {
    let Ok(node) = std::env::var("PORTICO_TEST_CHILD") else {
        return;
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .try_init();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let shutdown = CancellationToken::new();
        let snapshots = Publisher::new(Snapshot::default());
        snapshots.publish(snapshot(origin("edge-1").await));
        let (_alive_tx, alive) = watch::channel::<Alive>(Arc::new([node.clone()].into()));
        tokio::spawn(L4::new(L4Config::default(), snapshots.clone(), shutdown.clone()).run(None));
        let cfg = AnnouncerConfig {
            node,
            interfaces: vec!["eth0".into()],
            timing: AnnounceTiming::default(),
        };
        announcer::run(
            cfg,
            snapshots,
            alive,
            None::<watch::Sender<Arc<BTreeMap<_, _>>>>,
            shutdown,
        )
        .await
        .expect("announcer runs");
    });
}

fn text(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn curl_from_the_client_reaches_the_origin_through_the_external_ip() {
    require_lab!();
    if let Some(why) = portico_testkit::tool_missing("curl") {
        portico_testkit::skip(&why);
        return;
    }
    let mut lab = Lab::new("l");
    let edge = lab.add_edge(1);
    // The pools are local on the edge without being on a NIC (see portico_l4::lb).
    let routes: [&[&str]; 2] = [
        &["ip", "route", "add", "local", "10.77.0.100/32", "dev", "lo"],
        &[
            "ip",
            "-6",
            "route",
            "add",
            "local",
            "fd77::100/128",
            "dev",
            "lo",
        ],
    ];
    for args in routes {
        let out = lab.exec(&edge.ns, args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    lab.spawn_self(&edge.ns.clone(), "zz_child_entry_point", "edge-1");

    let client = lab.client.clone();
    let started = Instant::now();
    let body = loop {
        let out = lab.exec(
            &client,
            &["curl", "-sS", "--max-time", "2", &format!("http://{VIP4}/")],
        );
        if out.status.success() {
            break text(&out);
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "curl never got through: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(body, "hello from edge-1 (peer 127.0.0.1)\n");

    let out = lab.exec(
        &client,
        &[
            "curl",
            "-sS",
            "-g",
            "--max-time",
            "5",
            &format!("http://[{VIP6}]/"),
        ],
    );
    assert_eq!(
        text(&out),
        "hello from edge-1 (peer 127.0.0.1)\n",
        "IPv6: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let out = lab.exec(
        &client,
        &[
            "sh",
            "-c",
            &format!("printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {VIP4} 80"),
        ],
    );
    assert!(
        text(&out).contains("hello from edge-1"),
        "nc: {}",
        text(&out)
    );

    let neigh = text(&lab.exec(&client, &["ip", "neigh", "show", VIP4, "dev", "br0"]));
    assert!(
        neigh.contains(&edge.mac),
        "the client reached the VIP through the edge's MAC: {neigh}"
    );
    let addrs = text(&lab.exec(&edge.ns, &["ip", "addr", "show", "dev", "eth0"]));
    assert!(!addrs.contains(VIP4), "no address on the NIC:\n{addrs}");
}
