//! Black-box tests of the `lb-controller` binary.

use std::time::Duration;

use portico_testkit::fake_api::FakeApiServer;
use serde_json::{Value, json};

/// The binary under test (`PORTICO_BIN_DIR` overrides it, see `portico_testkit::bin_under_test`).
fn bin() -> std::path::PathBuf {
    portico_testkit::bin_under_test("lb-controller", env!("CARGO_BIN_EXE_lb-controller"))
}
/// An address in 127.0.0.0/8 that nothing else in the workspace uses.
const ADMIN: &str = "127.61.44.7:18044";

/// GET over plain HTTP/1.1 (retrying while the server starts); the body.
async fn get(addr: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut s) = tokio::net::TcpStream::connect(addr).await {
            let req = format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n");
            s.write_all(req.as_bytes()).await.expect("write");
            let mut out = String::new();
            s.read_to_string(&mut out).await.expect("read");
            return out
                .split_once("\r\n\r\n")
                .map(|(_, b)| b.to_owned())
                .unwrap_or_default();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "admin API on {addr} never answered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[test]
fn crds_prints_what_helm_ships() {
    let out = std::process::Command::new(bin())
        .arg("crds")
        .output()
        .expect("binary runs");
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).expect("utf-8");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../helm/portico/crds");
    for file in [
        "metallb.io_ipaddresspools.yaml",
        "metallb.io_l2advertisements.yaml",
    ] {
        let shipped = std::fs::read_to_string(dir.join(file)).expect("committed CRD");
        assert!(
            printed.contains(&shipped),
            "{file} differs from `lb-controller crds`"
        );
    }
}

#[tokio::test]
async fn allocates_against_the_api_server_and_stops_on_sigterm() {
    let api = FakeApiServer::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    let config = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\nusers:\n- name: u\n  user: {{}}\n\
         contexts:\n- name: c\n  context:\n    cluster: fake\n    user: u\n    namespace: default\ncurrent-context: c\n",
        api.url()
    );
    std::fs::write(&kubeconfig, config).expect("write kubeconfig");
    api.apply(json!({
        "apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool",
        "metadata": {"name": "default", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.168.70.0/30"]}
    }));
    api.apply(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "web"}, "ports": [{"port": 80, "protocol": "TCP"}]}
    }));

    let mut child = tokio::process::Command::new(bin())
        .args([
            "--admin-addr",
            ADMIN,
            // The requests below say `Host: admin`: a name the admin API answers only when allowed.
            "--admin-allowed-host",
            "admin",
            "--identity",
            "binary-test",
            "--lease-namespace",
            "portico-system",
            "--lease-seconds",
            "3",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "warn")
        .kill_on_drop(true)
        .spawn()
        .expect("binary starts");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let ip = loop {
        let svc = api.get("v1", "Service", "default", "web").expect("exists");
        if let Some(ip) = svc
            .pointer("/status/loadBalancer/ingress/0/ip")
            .and_then(Value::as_str)
        {
            break ip.to_owned();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no address within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ip, "192.168.70.0");

    // The admin API shows the allocation and exports the pool gauges.
    // (The view is published when the pass ends, just after the status write the loop above saw.)
    let mut view = get(ADMIN, "/api/views/allocations").await;
    while !view.contains("192.168.70.0") && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        view = get(ADMIN, "/api/views/allocations").await;
    }
    assert!(
        view.contains("\"leader\":true") && view.contains("192.168.70.0"),
        "{view}"
    );
    let metrics = get(ADMIN, "/metrics").await;
    assert!(metrics.contains("portico_lb_leader 1"), "{metrics}");
    assert!(
        metrics.contains(
            "portico_lb_pool_addresses{pool=\"default\",family=\"IPv4\",state=\"assigned\"} 1"
        ),
        "{metrics}"
    );

    // SIGTERM: the controller releases its lease and exits cleanly.
    let pid = child.id().expect("running");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("kill runs");
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("exits")
        .expect("waitable");
    assert!(exit.success(), "{exit:?}");
    let lease = api
        .get(
            "coordination.k8s.io/v1",
            "Lease",
            "portico-system",
            "portico-lb-controller",
        )
        .expect("lease");
    assert_eq!(
        lease
            .pointer("/spec/holderIdentity")
            .cloned()
            .unwrap_or(Value::Null),
        Value::Null,
        "lease released"
    );
}
