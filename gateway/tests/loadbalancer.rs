//! Black-box: LoadBalancer Services standalone. An EXTERNAL-IP from a MetalLB IPAddressPool, the
//! L4 listener on it, and allocations that survive a restart.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[path = "common/process.rs"]
mod process;
use process::*;

const POOL: &str = "apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: edge, namespace: metallb-system}\nspec:\n  addresses: [127.241.0.8/29]\n";

fn lb(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n{extra}spec:\n  type: LoadBalancer\n  selector: {{app: web}}\n  ports: [{{port: 3000}}]\n"
    )
}

const POD: &str = "---\napiVersion: v1\nkind: Pod\nmetadata: {name: web-1, labels: {app: web}}\nspec: {containers: [{name: c, image: x}]}\nstatus:\n  podIP: 127.0.63.1\n  conditions: [{type: Ready, status: \"True\"}]\n";

fn start(dir: &Path, state: &Path, admin: &str) -> Gateway {
    let (dir, state) = (dir.display().to_string(), state.display().to_string());
    let args = [
        "--manifests",
        &dir,
        "--node-ip",
        "127.0.63.100",
        "--service-cidr",
        "127.98.63.0/24",
        "--state-dir",
        &state,
    ];
    Gateway::start(&args, admin, &[])
}

/// name -> EXTERNAL-IP column.
fn external_ips(admin: &str) -> BTreeMap<String, String> {
    let json = curl(&format!("http://{admin}/api/services")).expect("services");
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json).expect("json");
    rows.iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap_or_default().to_owned(),
                r["externalIp"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn external_ips_come_from_the_pool_serve_traffic_and_survive_restarts() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    let addr: SocketAddr = "127.0.63.1:3000".parse().expect("addr");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(addr))
        .expect("bind backend");
    rt.spawn(hellok8s::serve(listener, "web-1".into(), stop.clone()));

    let dir = tempfile::tempdir().expect("tempdir");
    let state = tempfile::tempdir().expect("state");
    std::fs::write(dir.path().join("pool.yaml"), POOL).expect("write");
    let requested = "  annotations: {metallb.io/loadBalancerIPs: 127.241.0.12}\n";
    let services = format!(
        "{POD}{}{}{}",
        lb("alpha", ""),
        lb("beta", ""),
        lb("wants-12", requested)
    );
    std::fs::write(dir.path().join("svc.yaml"), &services).expect("write");
    let admin = format!("127.0.0.1:{}", free_port());

    let first = {
        let _gw = start(dir.path(), state.path(), &admin);
        wait_until("allocations", Duration::from_secs(5), || {
            external_ips(&admin)
                .values()
                .all(|ip| ip.starts_with("127.241.0."))
        });
        let ips = external_ips(&admin);
        assert_eq!(
            ips["wants-12"], "127.241.0.12",
            "a requested address is honoured"
        );
        assert_ne!(ips["alpha"], ips["beta"], "never one IP for two Services");
        // Traffic reaches the pod through the listener on the EXTERNAL-IP.
        let url = format!("http://{}:3000/", ips["alpha"]);
        wait_until("the LoadBalancer listener", Duration::from_secs(10), || {
            curl(&url).is_some_and(|b| b.ends_with("web-1"))
        });
        let table = String::from_utf8_lossy(
            &Command::new(env!("CARGO_BIN_EXE_gateway"))
                .args(["get", "services", "--admin-addr", &admin])
                .output()
                .expect("get")
                .stdout,
        )
        .into_owned();
        assert!(
            table.lines().any(|l| l.starts_with("alpha ")
                && l.contains("LoadBalancer")
                && l.contains(&ips["alpha"])),
            "{table}"
        );
        ips
    };

    // Restart with the Services written in the opposite order and a newcomer listed first: every
    // address stays where it was; the newcomer gets a free one.
    let reordered = format!(
        "{POD}{}{}{}{}",
        lb("newcomer", ""),
        lb("wants-12", requested),
        lb("beta", ""),
        lb("alpha", "")
    );
    std::fs::write(dir.path().join("svc.yaml"), reordered).expect("write");
    let _gw = start(dir.path(), state.path(), &admin);
    wait_until("allocations after restart", Duration::from_secs(5), || {
        external_ips(&admin)
            .values()
            .all(|ip| ip.starts_with("127.241.0."))
    });
    let after = external_ips(&admin);
    for name in ["alpha", "beta", "wants-12"] {
        assert_eq!(
            after[name], first[name],
            "{name} kept its address across the restart"
        );
    }
    assert!(!first.values().any(|ip| ip == &after["newcomer"]));
    stop.cancel();
}
