//! The real `proxy-agent` binary against the Kubernetes API (the in-process fake API server,
//! reached through an ordinary kubeconfig): Services and EndpointSlices from the API, changes
//! followed from watches. Addresses: backends 127.61.9.x, ClusterIP 127.62.9.10, node IP
//! 127.63.9.1.

mod support;

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use portico_testkit::FakeApiServer;
use serde_json::{Value, json};
use support::*;

fn slice(backends: &[SocketAddr]) -> Value {
    let endpoints: Vec<Value> = backends
        .iter()
        .map(|b| json!({"addresses": [b.ip().to_string()], "conditions": {"ready": true}, "nodeName": "n1"}))
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "echo-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "echo"}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "", "port": backends[0].port(), "protocol": "TCP"}]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_and_endpoint_slices_from_the_api_are_served_and_followed() {
    let a = tcp_backend("127.61.9.1", "a").await;
    // Both backends on one port, as the Pods of one Deployment would be.
    let b = tcp_backend_on("127.61.9.2", a.port(), "b").await;
    let api = FakeApiServer::start().await;
    api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo", "namespace": "default"},
        "spec": {"type": "NodePort", "clusterIP": "127.62.9.10", "clusterIPs": ["127.62.9.10"],
                 "ports": [{"port": 7000, "targetPort": a.port(), "nodePort": 31009}]}}));
    api.apply(slice(&[a, b]));

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
    let log = dir.path().join("agent.log");
    let bin = portico_testkit::bin_under_test("proxy-agent", env!("CARGO_BIN_EXE_proxy-agent"));
    let mut child = tokio::process::Command::new(bin)
        .args(["--node-name", "n1", "--node-ip", "127.63.9.1"])
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("PORTICO_MANIFESTS")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .kill_on_drop(true)
        .spawn()
        .expect("start proxy-agent");
    let show = || std::fs::read_to_string(&log).unwrap_or_default();

    let cluster_ip: SocketAddr = "127.62.9.10:7000".parse().expect("addr");
    let node_port: SocketAddr = "127.63.9.1:31009".parse().expect("addr");
    for frontend in [cluster_ip, node_port] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while hello_from(frontend, None).await.is_err() {
            assert!(
                Instant::now() < deadline,
                "{frontend} never served\n{}",
                show()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut seen = Vec::new();
        for _ in 0..4 {
            seen.push(hello(frontend).await);
        }
        assert_eq!(sorted(seen), ["a", "a", "b", "b"], "via {frontend}");
    }

    // b leaves the EndpointSlice: it gets no new connections soon after.
    api.apply(slice(&[a]));
    let edited = Instant::now();
    let mut streak = 0;
    while streak < 4 {
        streak = if hello(cluster_ip).await == "b" {
            0
        } else {
            streak + 1
        };
        assert!(
            edited.elapsed() < Duration::from_secs(5),
            "b still in rotation\n{}",
            show()
        );
    }

    if let Some(pid) = child.id() {
        let _ = std::process::Command::new("kill")
            .arg(pid.to_string())
            .status();
    }
    let exited = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    assert!(
        matches!(exited, Ok(Ok(s)) if s.success()),
        "clean exit: {exited:?}\n{}",
        show()
    );
}
