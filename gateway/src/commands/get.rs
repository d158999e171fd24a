//! `gateway get ...`: kubectl-style tables from a running instance's admin API.

use std::net::SocketAddr;

use std::io::Write;

use anyhow::{Context, bail};
use portico_runtime::views::{EndpointsRow, PodRow, ServiceRow, age};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::cli::{GetArgs, GetOutput, GetWhat};

/// GET `path` from the admin API and parse the JSON body.
pub async fn fetch_json(admin: SocketAddr, path: &str) -> anyhow::Result<Value> {
    let mut stream = TcpStream::connect(admin)
        .await
        .with_context(|| format!("cannot reach the admin API at {admin}: is Portico running?"))?;
    let req = format!("GET {path} HTTP/1.0\r\nHost: {admin}\r\nAccept: application/json\r\n\r\n");
    stream.write_all(req.as_bytes()).await?;
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    let text = String::from_utf8_lossy(&buf);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .context("malformed HTTP response from the admin API")?;
    let status = head.split_whitespace().nth(1).unwrap_or("");
    if status != "200" {
        bail!("admin API answered {status} for {path}: {}", body.trim());
    }
    serde_json::from_str(body).context("admin API returned invalid JSON")
}

/// Render rows as a left-aligned table with three spaces between columns, as kubectl does.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let n = cells.len();
        for (i, c) in cells.into_iter().enumerate() {
            out.push_str(c);
            if i + 1 < n {
                out.push_str(&" ".repeat(widths[i] - c.len() + 3));
            }
        }
        out.push('\n');
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
    out
}

fn name(ns: &str, name: &str, all_default: bool) -> String {
    if all_default {
        name.to_owned()
    } else {
        format!("{ns}/{name}")
    }
}

/// Write to standard output; a reader that went away (`gateway get ep -o json | head`) ends
/// the command quietly, as it does for kubectl.
fn emit(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

pub async fn run(args: GetArgs) -> anyhow::Result<()> {
    let now = jiff::Timestamp::now();
    let path = match args.what {
        GetWhat::Services => "/api/services",
        GetWhat::Endpoints => "/api/endpoints",
        GetWhat::Ingresses => "/api/views/ingresses",
        GetWhat::Pools => "/api/views/pools",
        GetWhat::Pods => "/api/views/pods",
        GetWhat::Errors => "/api/errors",
    };
    let json = fetch_json(args.admin_addr, path).await.map_err(|e| {
        if args.what == GetWhat::Pods && e.to_string().contains("answered 404") {
            anyhow::anyhow!(
                "this Portico serves no pods view: `gateway get pods` lists the Pods of a manifests directory (standalone); against a cluster use kubectl"
            )
        } else {
            e
        }
    })?;
    let wide = match args.output {
        Some(GetOutput::Json) => return emit(&(serde_json::to_string_pretty(&json)? + "\n")),
        Some(GetOutput::Yaml) => return emit(&serde_norway::to_string(&json)?),
        Some(GetOutput::Wide) => true,
        None => false,
    };
    let out = match args.what {
        GetWhat::Services => services_table(serde_json::from_value(json)?, wide, now),
        GetWhat::Pods => pods_table(serde_json::from_value(json)?, wide, now),
        GetWhat::Endpoints => endpoints_table(serde_json::from_value(json)?, now),
        GetWhat::Errors => errors_table(&json),
        GetWhat::Ingresses => ingresses_table(&json),
        GetWhat::Pools => pools_table(&json),
    };
    emit(&out)
}

/// `kubectl get services` columns; `-o wide` adds SELECTOR.
fn services_table(rows: Vec<ServiceRow>, wide: bool, now: jiff::Timestamp) -> String {
    let single_ns = rows.iter().all(|r| r.namespace == "default");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                name(&r.namespace, &r.name, single_ns),
                r.type_.clone(),
                r.cluster_ip.clone(),
                r.external_ip.clone(),
                r.ports.clone(),
                age(r.created.as_deref(), now),
            ];
            if wide {
                row.push(r.selector.clone());
            }
            row
        })
        .collect();
    let mut header = vec![
        "NAME",
        "TYPE",
        "CLUSTER-IP",
        "EXTERNAL-IP",
        "PORT(S)",
        "AGE",
    ];
    if wide {
        header.push("SELECTOR");
    }
    table(&header, &cells)
}

/// `kubectl get endpoints` columns.
fn endpoints_table(rows: Vec<EndpointsRow>, now: jiff::Timestamp) -> String {
    let single_ns = rows.iter().all(|r| r.namespace == "default");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                name(&r.namespace, &r.name, single_ns),
                r.endpoints.clone(),
                age(r.created.as_deref(), now),
            ]
        })
        .collect();
    table(&["NAME", "ENDPOINTS", "AGE"], &cells)
}

/// The configuration errors: kind, object, the manifest it came from, field and message.
fn errors_table(json: &Value) -> String {
    let rows = json.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "No configuration errors.\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|e| {
            let s = |k: &str| e.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let obj = e.get("object").filter(|o| !o.is_null()).map(|o| {
                let ns = o.get("namespace").and_then(Value::as_str).unwrap_or("");
                let n = o.get("name").and_then(Value::as_str).unwrap_or("");
                if ns.is_empty() {
                    n.to_owned()
                } else {
                    format!("{ns}/{n}")
                }
            });
            let origin = e.get("origin").map(|o| {
                let f = o.get("file").and_then(Value::as_str).unwrap_or("");
                match o.get("document").and_then(Value::as_u64) {
                    Some(d) if !f.is_empty() => format!("{f}#{d}"),
                    _ => f.to_owned(),
                }
            });
            vec![
                s("kind"),
                obj.unwrap_or_default(),
                origin.unwrap_or_default(),
                s("field"),
                s("message"),
            ]
        })
        .collect();
    table(&["KIND", "OBJECT", "SOURCE", "FIELD", "ERROR"], &cells)
}

/// `kubectl get ingresses` columns.
fn ingresses_table(json: &Value) -> String {
    let rows = json.as_array().cloned().unwrap_or_default();
    let single_ns = rows
        .iter()
        .all(|r| r.get("namespace").and_then(Value::as_str) == Some("default"));
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let hosts: Vec<String> = r
                .get("hosts")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|h| h.as_str().map(str::to_owned))
                .collect();
            let class = r
                .get("class")
                .and_then(Value::as_str)
                .unwrap_or("<none>")
                .to_owned();
            let address = r
                .get("address")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            vec![
                name(&s("namespace"), &s("name"), single_ns),
                class,
                hosts.join(","),
                address,
                s("ports"),
            ]
        })
        .collect();
    table(&["NAME", "CLASS", "HOSTS", "ADDRESS", "PORTS"], &cells)
}

/// `kubectl get pods` columns; `-o wide` adds IP and NODE.
fn pods_table(rows: Vec<PodRow>, wide: bool, now: jiff::Timestamp) -> String {
    if rows.is_empty() {
        return "No resources found.\n".to_owned();
    }
    let single_ns = rows.iter().all(|r| r.namespace == "default");
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let mut row = vec![
                name(&r.namespace, &r.name, single_ns),
                r.ready.clone(),
                r.status.clone(),
                r.restarts.to_string(),
                age(r.created.as_deref(), now),
            ];
            if wide {
                row.extend([r.ip.clone(), r.node.clone()]);
            }
            row
        })
        .collect();
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if wide {
        header.extend(["IP", "NODE"]);
    }
    table(&header, &cells)
}

/// `kubectl get ipaddresspools` columns, with the pool's counters.
fn pools_table(json: &Value) -> String {
    let rows = json.as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        return "No resources found.\n".to_owned();
    }
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let n = |k: &str| r.get(k).and_then(Value::as_i64).unwrap_or(0);
            let addresses: Vec<&str> = r
                .get("addresses")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect();
            vec![
                r.get("name")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                r.get("autoAssign")
                    .and_then(Value::as_bool)
                    .unwrap_or(true)
                    .to_string(),
                addresses.join(","),
                format!("{}/{}", n("assignedIPv4"), n("assignedIPv6")),
                format!("{}/{}", n("availableIPv4"), n("availableIPv6")),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "AUTO ASSIGN",
            "ADDRESSES",
            "ASSIGNED (V4/V6)",
            "AVAILABLE (V4/V6)",
        ],
        &cells,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_read_like_kubectl_get_ipaddresspools() {
        let json = serde_json::json!([{"name": "edge", "autoAssign": true, "addresses": ["127.240.0.10-127.240.0.50"],
            "assignedIPv4": 1, "assignedIPv6": 0, "availableIPv4": 40, "availableIPv6": 0}]);
        assert_eq!(
            pools_table(&json),
            "NAME   AUTO ASSIGN   ADDRESSES                   ASSIGNED (V4/V6)   AVAILABLE (V4/V6)\nedge   true          127.240.0.10-127.240.0.50   1/0                40/0\n"
        );
        assert_eq!(pools_table(&serde_json::json!([])), "No resources found.\n");
    }

    #[test]
    fn pods_read_like_kubectl_get_pods() {
        let now: jiff::Timestamp = "2026-01-02T00:00:00Z".parse().expect("ts");
        let row = PodRow {
            namespace: "default".into(),
            name: "hellok8s-a".into(),
            ready: "1/1".into(),
            status: "Running".into(),
            restarts: 0,
            ip: "127.0.10.1".into(),
            node: "portico-node".into(),
            created: Some("2026-01-01T23:59:00Z".into()),
        };
        assert_eq!(
            pods_table(vec![row.clone()], false, now),
            "NAME         READY   STATUS    RESTARTS   AGE\nhellok8s-a   1/1     Running   0          60s\n"
        );
        assert_eq!(
            pods_table(vec![row], true, now),
            "NAME         READY   STATUS    RESTARTS   AGE   IP           NODE\nhellok8s-a   1/1     Running   0          60s   127.0.10.1   portico-node\n"
        );
        assert_eq!(pods_table(vec![], true, now), "No resources found.\n");
    }

    #[test]
    fn tables_align_like_kubectl() {
        let t = table(
            &["NAME", "TYPE"],
            &[vec![
                "service-hellok8s-clusterip".into(),
                "ClusterIP".into(),
            ]],
        );
        assert_eq!(
            t,
            "NAME                         TYPE\nservice-hellok8s-clusterip   ClusterIP\n"
        );
    }
}
