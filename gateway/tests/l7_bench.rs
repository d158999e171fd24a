//! Throughput against nginx, same origin, same load (ignored by default; run with
//! `cargo test --release -p gateway --test l7_bench -- --ignored --nocapture`). wrk -t1 -c64,
//! keepalive, both proxies with one worker; the numbers are printed, not asserted (the machine is
//! shared), except that Portico must answer every request.

#[path = "common/l7.rs"]
mod l7common;

use std::time::Duration;

use l7common::*;

fn wrk(url: &str, host: &str, secs: u32) -> (f64, u64) {
    let out = std::process::Command::new("wrk")
        .args(["-t1", "-c64", &format!("-d{secs}s"), "-H", &format!("Host: {host}"), url])
        .output()
        .expect("wrk runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0);
    let errors = text
        .lines()
        .find(|l| l.contains("Non-2xx") || l.contains("Socket errors"))
        .map(|_| 1)
        .unwrap_or(0);
    (rps, errors)
}

#[test]
#[ignore]
fn portico_against_nginx() {
    // The origin on a thread of its own.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        rt.block_on(async {
            let o = Origin::start("o", "127.0.0.1").await;
            tx.send(o.addr).expect("send");
            std::future::pending::<()>().await;
        });
    });
    let origin = rx.recv().expect("origin");

    // nginx, one worker, keepalive upstream.
    let dir = tempfile::tempdir().expect("tempdir");
    let nginx_port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let conf = format!(
        "worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; upstream o {{ server {origin}; keepalive 64; }}\n\
         server {{ listen 127.0.0.1:{nginx_port}; location / {{ proxy_pass http://o; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n",
        d = dir.path().display()
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write conf");
    let mut nginx = std::process::Command::new("nginx")
        .args(["-c", &conf_path.to_string_lossy(), "-p", &dir.path().to_string_lossy()])
        .spawn()
        .expect("nginx starts");

    // Portico on one current-thread runtime (one core's worth).
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let gw = rt.block_on(Gateway::start(&[service("web", &[origin]), ingress("web", &[], &[("bench.example.com", "/", "Prefix", "web")])].concat()));
    let gw_url = format!("http://{}/", gw.http);
    let (portico, nginx_rps) = std::thread::scope(|s| {
        let stop = tokio_util::sync::CancellationToken::new();
        let st = stop.clone();
        let driver = s.spawn(|| rt.block_on(async move { st.cancelled().await }));
        std::thread::sleep(Duration::from_millis(300));
        let mut p = Vec::new();
        let mut n = Vec::new();
        for _ in 0..3 {
            p.push(wrk(&gw_url, "bench.example.com", 5));
            n.push(wrk(&format!("http://127.0.0.1:{nginx_port}/"), "bench.example.com", 5));
        }
        stop.cancel();
        driver.join().expect("runtime thread");
        (p, n)
    });
    let _ = nginx.kill();
    let _ = nginx.wait();
    let median = |v: &[(f64, u64)]| {
        let mut r: Vec<f64> = v.iter().map(|x| x.0).collect();
        r.sort_by(|a, b| a.total_cmp(b));
        r[r.len() / 2]
    };
    let (p, n) = (median(&portico), median(&nginx_rps));
    eprintln!("median rps: portico {p:.0}, nginx {n:.0}, ratio {:.2}", p / n);
    assert!(portico.iter().all(|x| x.1 == 0), "Portico answered every request with 2xx");
    rt.block_on(gw.shutdown());
}
