//! Black-box: the real `gateway` binary against the Kubernetes API (a faithful fake API server,
//! reached through an ordinary kubeconfig): Ingress routing from API objects, endpoint changes
//! followed from watches, and the Ingress status written through the status subresource.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use portico_testkit::fake_api::FakeApiServer;
use serde_json::json;
use tokio_util::sync::CancellationToken;

#[path = "common/process.rs"]
mod process;
use process::*;

fn slice(ip: &str) -> serde_json::Value {
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": "web-abc", "namespace": "default", "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "endpoints": [{"addresses": [ip], "conditions": {"ready": true}}],
        "ports": [{"name": "http", "port": 3000, "protocol": "TCP"}]
    })
}

#[test]
fn ingress_from_the_api_routes_follows_endpoints_and_publishes_status() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    for i in 1..=2 {
        let addr: SocketAddr = format!("127.0.64.{i}:3000").parse().expect("addr");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind backend");
        rt.spawn(hellok8s::serve(listener, format!("web-{i}"), stop.clone()));
    }
    let api = rt.block_on(FakeApiServer::start());
    api.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": "portico"}, "spec": {"controller": "portico.dev/ingress-controller"}}));
    api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"clusterIP": "10.96.0.20", "selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": 3000}]}}));
    api.apply(slice("127.0.64.1"));
    api.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "web", "namespace": "default"},
        "spec": {"ingressClassName": "portico", "rules": [{"host": "web.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"name": "http"}}}}]}}]}}));
    // An Ingress of another controller: never served, its status never touched.
    api.apply(json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": "other", "namespace": "default"},
        "spec": {"ingressClassName": "nginx", "rules": [{"host": "other.example.com", "http": {"paths": [
            {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "web", "port": {"number": 80}}}}]}}]}}));

    // A LoadBalancer Service and a MetalLB pool: `--allocate` assigns it an EXTERNAL-IP.
    api.apply(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "edge", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.0.2.100-192.0.2.110"]}}));
    api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web-lb", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.21", "selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 3000, "nodePort": 31080}]}}));

    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
    let http = format!("127.0.0.1:{}", free_port());
    let admin = format!("127.0.0.1:{}", free_port());
    let bin = portico_testkit::bin_under_test("gateway", env!("CARGO_BIN_EXE_gateway"));
    let child = Command::new(bin)
        .env("KUBECONFIG", &kubeconfig)
        .args([
            "--http-addr",
            &http,
            "--https-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--admin-addr",
            &admin,
        ])
        .args([
            "--no-service-proxy",
            "--publish-address",
            "192.0.2.10",
            "--allocate",
            "--lease-namespace",
            "default",
        ])
        .stdout(Stdio::null())
        .spawn()
        .expect("start gateway");
    let _gw = Gateway(child);
    wait_until("/readyz", Duration::from_secs(30), || {
        curl_args(&[&format!("http://{admin}/readyz")]).is_some()
    });

    let url = format!("http://{http}/");
    let host = ["-H", "Host: web.example.com"];
    let body = || curl_args(&[host[0], host[1], &url]).unwrap_or_default();
    wait_until("routing from API objects", Duration::from_secs(10), || {
        body().ends_with("web-1")
    });

    // The EndpointSlice changes: traffic follows the watch.
    api.apply(slice("127.0.64.2"));
    wait_until("the new endpoint", Duration::from_secs(5), || {
        body().ends_with("web-2")
    });

    // The served Ingress gets the address in its status; the other one is untouched.
    wait_until("Ingress status", Duration::from_secs(10), || {
        api.get("networking.k8s.io/v1", "Ingress", "default", "web")
            .and_then(|i| {
                i.pointer("/status/loadBalancer/ingress/0/ip")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .as_deref()
            == Some("192.0.2.10")
    });
    let other = api
        .get("networking.k8s.io/v1", "Ingress", "default", "other")
        .expect("other");
    assert!(
        other.pointer("/status/loadBalancer/ingress/0").is_none(),
        "{other}"
    );
    let miss = curl_args(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "-H",
        "Host: other.example.com",
        &url,
    ])
    .unwrap_or_default();
    assert_eq!(miss, "404", "another controller's Ingress is not served");

    // The allocation, written through the status subresource with MetalLB's annotation.
    wait_until("LoadBalancer status", Duration::from_secs(20), || {
        api.get("v1", "Service", "default", "web-lb")
            .and_then(|s| {
                s.pointer("/status/loadBalancer/ingress/0/ip")
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            })
            .is_some_and(|ip| ip.starts_with("192.0.2.1"))
    });
    let svc = api
        .get("v1", "Service", "default", "web-lb")
        .expect("service");
    assert_eq!(
        svc.pointer("/metadata/annotations/metallb.io~1ip-allocated-from-pool")
            .and_then(|v| v.as_str()),
        Some("edge"),
        "{svc}"
    );
    // `gateway get pools` shows the allocator's pools (the leader's view).
    wait_until(
        "the allocated pool in `get pools`",
        Duration::from_secs(10),
        || {
            get(&admin, "pools").lines().any(|l| {
                l.starts_with("edge ")
                    && l.contains("192.0.2.100-192.0.2.110")
                    && l.contains(" 1/0 ")
                    && l.contains(" 10/0")
            })
        },
    );
    stop.cancel();
}

/// Without `--allocate` the gateway still shows the cluster's pools: assigned = addresses in the
/// Services' status (written by another allocator), not 404.
#[test]
fn get_pools_without_allocate_counts_the_services_status() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let api = rt.block_on(FakeApiServer::start());
    api.apply(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "edge", "namespace": "metallb-system"},
        "spec": {"addresses": ["192.0.2.100-192.0.2.109"], "autoAssign": false}}));
    api.apply(json!({"apiVersion": "metallb.io/v1beta1", "kind": "IPAddressPool", "metadata": {"name": "spare", "namespace": "metallb-system"},
        "spec": {"addresses": ["198.51.100.0/30"]}}));
    for (name, ip) in [("a", "192.0.2.100"), ("b", "192.0.2.101")] {
        api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": "default"},
            "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.30", "ports": [{"port": 80, "nodePort": 31081}]},
            "status": {"loadBalancer": {"ingress": [{"ip": ip}]}}}));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(&kubeconfig, api.kubeconfig()).expect("kubeconfig");
    let admin = format!("127.0.0.1:{}", free_port());
    let kc = kubeconfig.to_string_lossy().into_owned();
    let _gw = Gateway::start(&["--no-service-proxy"], &admin, &[("KUBECONFIG", &kc)]);

    let want = "NAME    AUTO ASSIGN   ADDRESSES                 ASSIGNED (V4/V6)   AVAILABLE (V4/V6)\n\
                edge    false         192.0.2.100-192.0.2.109   2/0                8/0\n\
                spare   true          198.51.100.0/30           0/0                4/0\n";
    let mut last = String::new();
    let found = std::time::Instant::now();
    while last != want && found.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
        last = get(&admin, "pools");
    }
    assert_eq!(
        last,
        want,
        "{:?}",
        curl(&format!("http://{admin}/api/views/pools"))
    );

    // A Service gets an address from the spare pool: the counters follow the watch.
    api.apply(json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "c", "namespace": "default"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.31", "ports": [{"port": 80, "nodePort": 31082}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "198.51.100.2"}]}}}));
    wait_until(
        "the spare pool counts the new Service",
        Duration::from_secs(10),
        || {
            get(&admin, "pools")
                .lines()
                .any(|l| l.starts_with("spare ") && l.contains(" 1/0 ") && l.contains(" 3/0"))
        },
    );
}
