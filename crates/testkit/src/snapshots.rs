//! Snapshots from YAML, for unit tests: the same path manifests take in standalone mode.

use portico_model::control_plane::{Allocations, ControlPlaneConfig, complete};
use portico_model::manifest::parse_file;
use portico_model::{ClusterState, Snapshot, translate};

pub fn snapshot(yaml: &str) -> Snapshot {
    let mut state = ClusterState::default();
    for (origin, parsed) in parse_file("test.yaml", yaml) {
        state.insert(parsed.expect("valid test manifest"), origin);
    }
    complete(
        &mut state,
        &ControlPlaneConfig::default(),
        &mut Allocations::default(),
    );
    let snap = translate(&state, 1);
    assert!(
        snap.errors.is_empty(),
        "test manifests are valid: {:?}",
        snap.errors
    );
    snap
}

/// A Pod labelled `app: <app>` with IP `ip`, serving port 8080, on `node`.
pub fn pod(name: &str, app: &str, ip: &str, node: &str, ready: bool) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  nodeName: {node}\n  containers: [{{name: c, image: x}}]\nstatus:\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"{}\"}}]\n",
        if ready { "True" } else { "False" }
    )
}

/// The same Pod, being deleted (terminating but still serving).
pub fn terminating_pod(name: &str, app: &str, ip: &str, node: &str) -> String {
    pod(name, app, ip, node, true).replace(
        &format!("labels: {{app: {app}}}}}"),
        &format!("labels: {{app: {app}}}, deletionTimestamp: \"2026-01-01T00:00:00Z\"}}"),
    )
}

/// A Service selecting `app: <name>`, port 80 -> 8080, with `extra` spec lines (indented by 2).
pub fn service(name: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{port: 80, targetPort: 8080}}]\n{extra}"
    )
}
