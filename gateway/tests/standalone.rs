//! Black-box: the real `gateway` binary in standalone mode, the seed tutorial's ClusterIP and
//! NodePort Services, real hellok8s backends, and the real `curl`.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

#[path = "common/process.rs"]
mod process;
use process::*;

/// Addresses private to this test file, so it can run beside other tests.
const POD_IPS: [&str; 3] = ["127.0.61.1", "127.0.61.2", "127.0.61.3"];
const CLUSTER_IP: &str = "127.98.61.10";
const NODE_IP: &str = "127.0.61.100";
const NODE_PORT: u16 = 30061;

fn pod(name: &str, ip: &str, ready: bool) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  labels: {{app: hellok8s}}\nspec:\n  containers:\n  - name: c\n    image: hellok8s:v3\n    ports: [{{name: http, containerPort: 3000}}]\nstatus:\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"{}\"}}]\n",
        if ready { "True" } else { "False" }
    )
}

fn pods(ready: [bool; 3]) -> String {
    (0..3)
        .map(|i| pod(&format!("hellok8s-{i}"), POD_IPS[i], ready[i]))
        .collect()
}

const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: service-hellok8s-clusterip\nspec:\n  type: ClusterIP\n  clusterIP: 127.98.61.10\n  selector: {app: hellok8s}\n  ports:\n  - port: 3000\n    targetPort: http\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: service-hellok8s-nodeport\nspec:\n  type: NodePort\n  selector: {app: hellok8s}\n  ports:\n  - port: 3000\n    nodePort: 30061\n";

fn write(dir: &Path, file: &str, text: &str) {
    // Write then rename, as editors and `kubectl`-style tools do, so the watcher never sees half a file.
    let tmp = dir.join(format!(".{file}.tmp"));
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, dir.join(file)).expect("rename");
}

#[test]
fn seed_clusterip_and_nodeport_round_robin_follow_readiness_and_survive_bad_input() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stop = CancellationToken::new();
    for (i, ip) in POD_IPS.iter().enumerate() {
        let addr: SocketAddr = format!("{ip}:3000").parse().expect("addr");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind(addr))
            .expect("bind backend");
        rt.spawn(hellok8s::serve(
            listener,
            format!("hellok8s-{i}"),
            stop.clone(),
        ));
    }

    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "pods.yaml", &pods([true, true, true]));
    write(dir.path(), "services.yaml", SERVICES);
    let admin = format!("127.0.0.1:{}", free_port());
    let _gw = Gateway::start(
        &[
            "--manifests",
            &dir.path().display().to_string(),
            "--node-ip",
            NODE_IP,
            "--service-cidr",
            "127.98.61.0/24",
            "--state-dir",
            &dir.path().join(".state").display().to_string(),
        ],
        &admin,
        &[],
    );

    let cluster = format!("http://{CLUSTER_IP}:3000/");
    let node = format!("http://{NODE_IP}:{NODE_PORT}/");
    let all: BTreeSet<String> = (0..3).map(|i| format!("hellok8s-{i}")).collect();
    wait_until("the ClusterIP listener", Duration::from_secs(10), || {
        curl(&cluster).is_some()
    });
    assert_eq!(
        pod_names(&cluster, 9),
        all,
        "round-robin over the three ready pods on the ClusterIP"
    );
    wait_until("the NodePort listener", Duration::from_secs(10), || {
        curl(&node).is_some()
    });
    assert_eq!(pod_names(&node, 9), all, "round-robin on the NodePort");
    let body = curl(&cluster).expect("response");
    assert!(
        body.starts_with("[v3] Hello, Kubernetes!, From host: hellok8s-"),
        "{body}"
    );

    // `gateway get services` shows kubectl's columns.
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["get", "services", "--admin-addr", &admin])
        .output()
        .expect("get");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(table.starts_with("NAME"), "{table}");
    for col in ["TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"] {
        assert!(
            table.lines().next().is_some_and(|h| h.contains(col)),
            "{table}"
        );
    }
    assert!(
        table.contains("service-hellok8s-clusterip   ClusterIP   127.98.61.10"),
        "{table}"
    );
    assert!(table.contains("3000:30061/TCP"), "{table}");

    // A Pod turns not Ready: out of rotation within a second, no restart.
    write(dir.path(), "pods.yaml", &pods([true, false, true]));
    let two: BTreeSet<String> = ["hellok8s-0".to_owned(), "hellok8s-2".to_owned()].into();
    let took = wait_until(
        "the not-ready pod to leave rotation",
        Duration::from_secs(5),
        || pod_names(&cluster, 6) == two,
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(pod_names(&node, 6), two);

    // `gateway get pods` shows the manifests' Pods as kubectl does; `-o wide` adds IP and NODE.
    let get = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .arg("get")
            .args(args)
            .args(["--admin-addr", &admin])
            .output()
            .expect("gateway get")
    };
    let out = get(&["pods", "-o", "wide"]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.starts_with("NAME")
            && table
                .lines()
                .next()
                .is_some_and(|h| h.ends_with("IP           NODE")),
        "{table}"
    );
    let row = |name: &str| {
        table
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or("")
            .to_owned()
    };
    assert!(
        row("hellok8s-1 ").contains("0/1") && row("hellok8s-1 ").contains(POD_IPS[1]),
        "{table}"
    );
    assert!(row("hellok8s-0 ").contains("1/1"), "{table}");
    let out = get(&["svc", "-o", "wide"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("app=hellok8s"));
    let out = get(&["svc", "-o", "yaml"]);
    let yaml = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && yaml.contains("clusterIp: 127.98.61.10"),
        "{yaml}"
    );
    // kubectl refuses formats it does not know; so does this.
    let out = get(&["svc", "-o", "bogus"]);
    assert!(!out.status.success(), "an unknown output format is refused");
    // A reader that goes away ends the command quietly, without a panic.
    let mut child = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["get", "ep", "-o", "json", "--admin-addr", &admin])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn gateway get");
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !stderr.contains("panicked"),
        "{stderr}"
    );

    // A broken file: reported with file, document and field; serving continues unchanged.
    write(
        dir.path(),
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec:\n  ports:\n  - port: 80\n    nodePortt: 30062\n",
    );
    wait_until("the error to be reported", Duration::from_secs(5), || {
        curl(&format!("http://{admin}/api/errors"))
            .is_some_and(|e| e.contains("broken.yaml") && e.contains("spec.ports[0].nodePortt"))
    });
    assert_eq!(pod_names(&cluster, 6), two, "serving is undisturbed");
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["get", "errors", "--admin-addr", &admin])
        .output()
        .expect("get errors");
    let errors = String::from_utf8_lossy(&out.stdout);
    assert!(
        errors.contains("default/broken")
            && errors.contains("broken.yaml#1")
            && errors.contains("unknown field"),
        "{errors}"
    );

    // Readiness restored: back to three.
    write(dir.path(), "pods.yaml", &pods([true, true, true]));
    wait_until("all three pods back", Duration::from_secs(5), || {
        pod_names(&cluster, 9) == all
    });

    // A YAML syntax error in document 2 of pods.yaml: reported with its file, document and
    // Pod; document 2 keeps its last good version and document 3 is untouched.
    let broken = pods([true, true, true]).replacen(
        "name: hellok8s-1\n",
        "name: hellok8s-1\n  annotations: {note: [unclosed}\n",
        1,
    );
    write(dir.path(), "pods.yaml", &broken);
    wait_until(
        "the syntax error to be reported",
        Duration::from_secs(5),
        || {
            curl(&format!("http://{admin}/api/errors"))
                .is_some_and(|e| e.contains("pods.yaml") && e.contains("invalid YAML"))
        },
    );
    assert_eq!(pod_names(&cluster, 9), all, "every Pod keeps serving");
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["get", "errors", "--admin-addr", &admin])
        .output()
        .expect("get errors");
    let errors = String::from_utf8_lossy(&out.stdout);
    assert!(
        errors.contains("default/hellok8s-1") && errors.contains("pods.yaml#2"),
        "{errors}"
    );
    stop.cancel();
}
