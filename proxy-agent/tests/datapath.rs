//! The real `proxy-agent` binary on a manifests directory, driven by real TCP and UDP clients
//! against echo backends started here. Every test has its own addresses: backends on
//! 127.61.N.x, ClusterIPs in 127.62.N.0/24, the node IP 127.63.N.1.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

/// Three TCP echo backends `a`, `b`, `c` on 127.61.N.1-3, as Pods of `app: echo`.
async fn three_tcp_pods(n: u8) -> [SocketAddr; 3] {
    [
        tcp_backend(&format!("127.61.{n}.1"), "a").await,
        tcp_backend(&format!("127.61.{n}.2"), "b").await,
        tcp_backend(&format!("127.61.{n}.3"), "c").await,
    ]
}

fn pods(backends: &[SocketAddr; 3], ready: [bool; 3], protocol: &str) -> String {
    let names = ["a", "b", "c"];
    (0..3)
        .map(|i| pod(names[i], "echo", backends[i], "n1", ready[i], protocol))
        .collect()
}

fn agent_args(n: u8) -> Vec<String> {
    vec![
        "--service-cidr".into(),
        format!("127.62.{n}.0/24"),
        "--node-ip".into(),
        format!("127.63.{n}.1"),
        "--node-name".into(),
        "n1".into(),
    ]
}

fn start(n: u8, files: &[(&str, String)], extra: &[&str]) -> Agent {
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, text) in files {
        write_manifest(dir.path(), name, text);
    }
    let mut args = agent_args(n);
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Agent::start(dir, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_connections_go_round_robin_over_every_ready_pod_via_cluster_ip_and_node_port() {
    let backends = three_tcp_pods(1).await;
    let services = service(
        "echo",
        "echo",
        7000,
        None,
        "TCP",
        "  clusterIP: 127.62.1.10\n",
    ) + &service(
        "echo-np",
        "echo",
        7001,
        Some(31001),
        "TCP",
        "  type: NodePort\n  clusterIP: 127.62.1.11\n",
    );
    let agent = start(
        1,
        &[
            ("svc.yaml", services),
            ("pods.yaml", pods(&backends, [true; 3], "TCP")),
        ],
        &["--admin-addr", "127.63.1.2:9901"],
    );
    let cluster_ip = addr("127.62.1.10:7000");
    let node_port = addr("127.63.1.1:31001");
    wait_serving(&agent, cluster_ip).await;
    wait_serving(&agent, node_port).await;

    for frontend in [cluster_ip, node_port, addr("127.62.1.11:7001")] {
        let mut seen = Vec::new();
        for _ in 0..6 {
            seen.push(hello(frontend).await);
        }
        assert_eq!(
            sorted(seen.clone()),
            ["a", "a", "b", "b", "c", "c"],
            "via {frontend}: {seen:?}"
        );
        assert_eq!(
            seen[..3],
            seen[3..],
            "a fixed rotation via {frontend}: {seen:?}"
        );
    }

    // The admin API lists the listeners with live counters.
    let view = http_get("127.63.1.2:9901", "/api/views/datapath").await;
    assert!(
        view.contains("\"127.63.1.1:31001\"") && view.contains("\"127.62.1.10:7000\""),
        "{view}"
    );
    assert!(view.contains("\"accepted\""), "{view}");
    let metrics = http_get("127.63.1.2:9901", "/metrics").await;
    let series = "portico_proxy_connections_total{service=\"default/echo\",port=\"\",protocol=\"tcp\",frontend=\"127.62.1.10:7000\"}";
    assert!(metrics.contains(series), "{metrics}");
    agent.stop().await;
}

async fn http_get(host: &str, path: &str) -> String {
    let mut s = tokio::net::TcpStream::connect(host)
        .await
        .expect("admin API");
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .expect("request");
    let mut out = String::new();
    s.read_to_string(&mut out).await.expect("response");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_that_turns_not_ready_leaves_rotation_within_a_second_and_open_connections_survive_its_removal()
 {
    let backends = three_tcp_pods(2).await;
    let services = service(
        "echo",
        "echo",
        7000,
        None,
        "TCP",
        "  clusterIP: 127.62.2.10\n",
    );
    let agent = start(
        2,
        &[
            ("svc.yaml", services),
            ("pods.yaml", pods(&backends, [true; 3], "TCP")),
        ],
        &[],
    );
    let frontend = addr("127.62.2.10:7000");
    wait_serving(&agent, frontend).await;

    // Hold a connection to c.
    let mut open = None;
    for _ in 0..6 {
        let (s, name) = hello_from(frontend, None).await.expect("connect");
        if name == "c" {
            open = Some(s);
            break;
        }
    }
    let mut open = open.expect("c is in rotation");

    // c turns not Ready.
    let edited = Instant::now();
    agent.write("pods.yaml", &pods(&backends, [true, true, false], "TCP"));
    let mut streak = 0;
    let left = loop {
        let name = hello(frontend).await;
        streak = if name == "c" { 0 } else { streak + 1 };
        if streak == 6 {
            break edited.elapsed();
        }
        assert!(
            edited.elapsed() < Duration::from_secs(5),
            "c still in rotation after 5 s\n{}",
            agent.log()
        );
    };
    eprintln!("c left rotation {left:?} after the edit");
    assert!(
        left < Duration::from_secs(1),
        "c left rotation only after {left:?}\n{}",
        agent.log()
    );
    let mut seen: Vec<String> = Vec::new();
    for _ in 0..4 {
        seen.push(hello(frontend).await);
    }
    assert_eq!(sorted(seen), ["a", "a", "b", "b"]);

    // c's Pod is deleted altogether: its endpoint is gone, the open connection is not.
    agent.write(
        "pods.yaml",
        &pods(&backends, [true, true, false], "TCP")
            .split("---\n")
            .filter(|d| !d.contains("name: c,"))
            .collect::<Vec<_>>()
            .join("---\n"),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    open.write_all(b"still here")
        .await
        .expect("write on the old connection");
    let mut buf = [0u8; 10];
    tokio::time::timeout(Duration::from_secs(2), open.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&buf, b"still here");

    // The Service goes away: the listener closes, the open connection still works.
    agent.remove("svc.yaml");
    let deadline = Instant::now() + Duration::from_secs(3);
    while tokio::net::TcpStream::connect(frontend).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "listener still open\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    open.write_all(b"and still").await.expect("write");
    let mut buf = [0u8; 9];
    tokio::time::timeout(Duration::from_secs(2), open.read_exact(&mut buf))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&buf, b"and still");
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn udp_round_trips_through_a_udp_service() {
    let backends = [
        udp_backend("127.61.3.1", "a").await,
        udp_backend("127.61.3.2", "b").await,
        udp_backend("127.61.3.3", "c").await,
    ];
    let services = service(
        "dns",
        "echo",
        5353,
        Some(31053),
        "UDP",
        "  type: NodePort\n  clusterIP: 127.62.3.10\n",
    );
    let agent = start(
        3,
        &[
            ("svc.yaml", services),
            ("pods.yaml", pods(&backends, [true; 3], "UDP")),
        ],
        &[],
    );
    let cluster_ip = addr("127.62.3.10:5353");
    let deadline = Instant::now() + Duration::from_secs(15);
    while udp_ask(cluster_ip, "hello").await.is_err() {
        assert!(
            Instant::now() < deadline,
            "UDP Service never answered\n{}",
            agent.log()
        );
    }
    for frontend in [cluster_ip, addr("127.63.3.1:31053")] {
        let mut names = Vec::new();
        for i in 0..3 {
            // A fresh client socket each time: a new flow, so the next backend.
            let (reply, from) = udp_ask(frontend, &format!("q{i}")).await.expect("reply");
            assert_eq!(from, frontend, "the reply comes from the address asked");
            let (name, payload) = reply.split_once(':').expect("name:payload");
            assert_eq!(payload, format!("q{i}"));
            names.push(name.to_owned());
        }
        assert_eq!(sorted(names), ["a", "b", "c"], "via {frontend}");
    }

    // One client keeps its flow (and backend) across datagrams.
    let c = tokio::net::UdpSocket::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut first = None;
    for i in 0..5 {
        c.send_to(format!("m{i}").as_bytes(), cluster_ip)
            .await
            .expect("send");
        let mut buf = [0u8; 1500];
        let (n, _) = tokio::time::timeout(Duration::from_secs(2), c.recv_from(&mut buf))
            .await
            .expect("reply")
            .expect("recv");
        let reply = String::from_utf8_lossy(&buf[..n]).into_owned();
        let name = reply.split(':').next().map(str::to_owned);
        assert_eq!(
            *first.get_or_insert(name.clone()),
            name,
            "one flow, one backend"
        );
    }
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_affinity_client_ip_keeps_each_client_on_one_backend() {
    let backends = three_tcp_pods(4).await;
    let spec = "  clusterIP: 127.62.4.10\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 60}}\n";
    let agent = start(
        4,
        &[
            ("svc.yaml", service("echo", "echo", 7000, None, "TCP", spec)),
            ("pods.yaml", pods(&backends, [true; 3], "TCP")),
        ],
        &[],
    );
    let frontend = addr("127.62.4.10:7000");
    wait_serving(&agent, frontend).await;
    let mut chosen = Vec::new();
    for client in ["127.64.4.1", "127.64.4.2", "127.64.4.3"] {
        let mut names = Vec::new();
        for _ in 0..5 {
            names.push(hello_from(frontend, Some(client)).await.expect("connect").1);
        }
        assert!(
            names.iter().all(|n| *n == names[0]),
            "client {client} moved: {names:?}"
        );
        chosen.push(names[0].clone());
    }
    // Three clients that arrived in turn were balanced over the three Pods.
    assert_eq!(sorted(chosen), ["a", "b", "c"]);
    agent.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn external_traffic_policy_local_keeps_node_port_traffic_on_this_node() {
    let backends = three_tcp_pods(5).await;
    let pods = pod("a", "echo", backends[0], "n1", true, "TCP")
        + &pod("b", "echo", backends[1], "n2", true, "TCP")
        + &pod("c", "echo", backends[2], "n2", true, "TCP");
    let spec = "  type: NodePort\n  clusterIP: 127.62.5.10\n  externalTrafficPolicy: Local\n";
    let agent = start(
        5,
        &[
            (
                "svc.yaml",
                service("echo", "echo", 7000, Some(31005), "TCP", spec),
            ),
            ("pods.yaml", pods),
        ],
        &[],
    );
    let node_port = addr("127.63.5.1:31005");
    let cluster_ip = addr("127.62.5.10:7000");
    wait_serving(&agent, cluster_ip).await;
    wait_serving(&agent, node_port).await;
    for _ in 0..4 {
        assert_eq!(
            hello(node_port).await,
            "a",
            "only n1's Pod via the node port"
        );
    }
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(hello(cluster_ip).await);
    }
    assert_eq!(
        sorted(seen),
        ["a", "b", "c"],
        "the ClusterIP (internal policy Cluster) uses every Pod"
    );

    // With no Pod on this node the node port drops connections, as kube-proxy does.
    let moved = pod("a", "echo", backends[0], "n2", true, "TCP")
        + &pod("b", "echo", backends[1], "n2", true, "TCP")
        + &pod("c", "echo", backends[2], "n2", true, "TCP");
    agent.write("pods.yaml", &moved);
    let deadline = Instant::now() + Duration::from_secs(5);
    while hello_from(node_port, None).await.is_ok() {
        assert!(
            Instant::now() < deadline,
            "node port still serving without local Pods\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    agent.stop().await;
}

#[tokio::test]
async fn without_manifests_and_without_any_api_configuration_the_agent_says_so() {
    let home = tempfile::tempdir().expect("tempdir");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_proxy-agent"))
        .env_remove("PORTICO_MANIFESTS")
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .env("KUBECONFIG", home.path().join("missing"))
        .env("HOME", home.path())
        .output()
        .await
        .expect("run proxy-agent");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no Kubernetes API configuration found") && err.contains("--manifests DIR"),
        "{err}"
    );
}

#[tokio::test]
async fn a_manifests_path_that_is_not_a_directory_is_named() {
    let file = tempfile::NamedTempFile::new().expect("temp file");
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_proxy-agent"))
        .arg("--manifests")
        .arg(file.path())
        .output()
        .await
        .expect("run proxy-agent");
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "--manifests {}: not a directory",
            file.path().display()
        )),
        "{err}"
    );
}
