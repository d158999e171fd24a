//! Black-box: every Service behaviour of the seed tutorials, from `examples/seeds/`, served by the
//! real `gateway` binary to the real `curl`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[path = "common/process.rs"]
mod process;
use process::*;

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn the_seed_tutorials_services_behave_as_documented() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    for i in 1..=3 {
        let addr: SocketAddr = format!("127.0.62.{i}:8080").parse().expect("addr");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind backend");
        rt.spawn(hellok8s::serve(
            listener,
            format!("kubia-{i}"),
            stop.clone(),
        ));
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/seeds");
    let state = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_port());
    let _gw = Gateway::start(
        &[
            "--manifests",
            &dir.display().to_string(),
            "--node-ip",
            "127.0.62.100",
            "--service-cidr",
            "127.98.62.0/24",
            "--state-dir",
            &state.path().display().to_string(),
        ],
        &admin,
        &[],
    );
    let errors = curl(&format!("http://{admin}/api/errors")).expect("errors");
    assert_eq!(errors, "[]", "the seed manifests are all valid");

    // Selector-less Service + hand-written Endpoints: only the two listed Pods answer.
    wait_until("kubia-svc", Duration::from_secs(10), || {
        curl("http://127.98.62.10:80/").is_some()
    });
    assert_eq!(
        pod_names("http://127.98.62.10:80/", 12),
        set(&["kubia-1", "kubia-2"])
    );
    let eps = get(&admin, "endpoints");
    assert!(
        eps.contains("kubia-svc") && eps.contains("127.0.62.1:8080,127.0.62.2:8080"),
        "{eps}"
    );

    // targetPort by name + ClientIP affinity: one client, one Pod, many times.
    wait_until("kubia", Duration::from_secs(10), || {
        curl("http://127.98.62.11:80/").is_some()
    });
    let sticky = pod_names("http://127.98.62.11:80/", 10);
    assert_eq!(
        sticky.len(),
        1,
        "ClientIP affinity keeps one backend: {sticky:?}"
    );

    // externalTrafficPolicy Local on the node port: only this node's Pods (kubia-3 is elsewhere).
    wait_until("node port", Duration::from_secs(10), || {
        curl("http://127.0.62.100:30123/").is_some()
    });
    assert_eq!(
        pod_names("http://127.0.62.100:30123/", 12),
        set(&["kubia-1", "kubia-2"])
    );
    // ... while the same Service's ClusterIP (internal policy Cluster) reaches all three.
    assert_eq!(
        pod_names("http://127.98.62.12:80/", 12),
        set(&["kubia-1", "kubia-2", "kubia-3"])
    );

    // Headless and ExternalName: listed as kubectl lists them, not proxied.
    let svcs = get(&admin, "services");
    let line = |name: &str| {
        svcs.lines()
            .find(|l| l.starts_with(&format!("{name} ")))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        line("kubia-headless").contains("ClusterIP      None"),
        "{svcs}"
    );
    assert!(
        line("external-service").contains("ExternalName")
            && line("external-service").contains("api.somecompany.com"),
        "{svcs}"
    );
    assert!(
        line("kubia-nodeport-local").contains("80:30123/TCP"),
        "{svcs}"
    );
    assert!(
        eps.lines()
            .any(|l| l.starts_with("kubia-headless") && l.contains("127.0.62.3:8080")),
        "{eps}"
    );
    let datapath = curl(&format!("http://{admin}/api/views/datapath")).expect("datapath view");
    assert!(
        !datapath.contains("kubia-headless") && !datapath.contains("external-service"),
        "neither is proxied: {datapath}"
    );
    stop.cancel();
}
