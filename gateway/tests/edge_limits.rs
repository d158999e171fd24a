//! Black-box: the real `gateway` binary's process limits: the open-file limit it raises at
//! start, the listen backlog of its Ingress listeners, `--max-connections`, and the admin API's
//! `Host` check.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::Duration;

#[path = "common/process.rs"]
mod process;
use process::*;

/// Common flags: standalone on an empty manifests directory, nothing but the Ingress router
/// and the admin API.
fn base_args(dir: &std::path::Path, http: u16, https: u16) -> Vec<String> {
    [
        "--manifests",
        &dir.display().to_string(),
        "--state-dir",
        &dir.join(".state").display().to_string(),
        "--no-service-proxy",
        "--http-addr",
        &format!("127.0.0.1:{http}"),
        "--https-addr",
        &format!("127.0.0.1:{https}"),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn wait_ready(admin: &str) {
    wait_until("/readyz", Duration::from_secs(30), || {
        curl(&format!("http://{admin}/readyz")).is_some()
    });
}

/// A program the test needs: under CI its absence fails the test; elsewhere the test is skipped.
fn have(tool: &str, args: &[&str]) -> bool {
    let ok = Command::new(tool)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "`{tool}` is needed by this test and is not installed"
        );
        println!("SKIPPED: `{tool}` is not installed");
    }
    ok
}

/// The soft and hard "Max open files" of a process.
fn open_files_limit(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("read limits");
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("a Max open files line");
    let mut cols = line["Max open files".len()..].split_whitespace();
    (
        cols.next().expect("soft").to_owned(),
        cols.next().expect("hard").to_owned(),
    )
}

#[test]
fn the_soft_open_file_limit_is_raised_to_the_hard_limit() {
    if !have("sh", &["-c", "ulimit -Sn 256"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_port());
    // Started as systemd and container runtimes start servers: a low soft limit under a high
    // hard one.
    let gw = Gateway(
        Command::new("sh")
            .args(["-c", "ulimit -Sn 256 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_gateway"))
            .args(base_args(dir.path(), free_port(), free_port()))
            .args(["--admin-addr", &admin])
            .stdout(Stdio::null())
            .spawn()
            .expect("start gateway"),
    );
    wait_ready(&admin);
    let (soft, hard) = open_files_limit(gw.0.id());
    assert_eq!(soft, hard, "soft RLIMIT_NOFILE raised to the hard limit");
    assert_ne!(soft, "256");
}

/// The system's `net.core.somaxconn` (4096 when it cannot be read).
fn somaxconn() -> u32 {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(4096)
}

/// The backlog of the listening socket on `port` (`ss -ltn`: Send-Q of a listener).
fn listen_backlog(port: u16) -> Option<u32> {
    let out = Command::new("ss")
        .args(["-Hltn", &format!("sport = :{port}")])
        .output()
        .expect("ss runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?;
    // State Recv-Q Send-Q Local-Address:Port Peer-Address:Port
    line.split_whitespace().nth(2)?.parse().ok()
}

#[test]
fn ingress_listeners_use_the_system_listen_backlog() {
    if !have("ss", &["-V"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = format!("127.0.0.1:{}", free_port());
    let (http, https) = (free_port(), free_port());
    let _gw = Gateway(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(base_args(dir.path(), http, https))
            .args(["--admin-addr", &admin])
            .stdout(Stdio::null())
            .spawn()
            .expect("start gateway"),
    );
    wait_ready(&admin);
    let want = somaxconn();
    assert_eq!(listen_backlog(http), Some(want), "HTTP listener backlog");
    assert_eq!(listen_backlog(https), Some(want), "HTTPS listener backlog");
}

/// `GET path` on `addr` with this `Host` header, over a raw TCP connection: the status code.
fn status_with_host(addr: &str, path: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {out:?}"))
}

#[test]
fn the_admin_api_answers_only_for_allowed_hosts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let admin_port = free_port();
    let admin = format!("127.0.0.1:{admin_port}");
    let _gw = Gateway(
        Command::new(env!("CARGO_BIN_EXE_gateway"))
            .args(base_args(dir.path(), free_port(), free_port()))
            .args(["--admin-addr", &admin])
            .args(["--admin-allowed-host", "portico.example.com"])
            .stdout(Stdio::null())
            .spawn()
            .expect("start gateway"),
    );
    wait_ready(&admin);
    // A page on evil.test whose name now resolves to 127.0.0.1 (DNS rebinding).
    assert_eq!(status_with_host(&admin, "/api/config", "evil.test"), 421);
    assert_eq!(
        status_with_host(&admin, "/api/config", &format!("evil.test:{admin_port}")),
        421
    );
    assert_eq!(status_with_host(&admin, "/metrics", "evil.test"), 421);
    // Loopback, the listen address and the allowed name.
    assert_eq!(status_with_host(&admin, "/api/config", &admin), 200);
    assert_eq!(
        status_with_host(&admin, "/api/config", &format!("localhost:{admin_port}")),
        200
    );
    assert_eq!(
        status_with_host(&admin, "/api/config", "Portico.Example.com"),
        200
    );
    // curl, as a user would, with the rebinding name forced to loopback.
    let resolve = format!("evil.test:{admin_port}:127.0.0.1");
    let url = format!("http://evil.test:{admin_port}/api/config");
    let out = Command::new("curl")
        .args([
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--resolve",
            &resolve,
            &url,
        ])
        .output()
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "421");
}

#[test]
fn a_bad_admin_allowed_host_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["--admin-allowed-host", "http://evil.test/"])
        .output()
        .expect("run gateway");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--admin-allowed-host"), "{err}");
}

/// One metric's value from `/metrics`.
fn metric(admin: &str, name: &str) -> Option<f64> {
    let text = curl(&format!("http://{admin}/metrics"))?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Send a request on `s` and read the status code; `None` when nothing comes within `wait`.
fn request(s: &mut TcpStream, wait: Duration) -> Option<u16> {
    s.set_read_timeout(Some(wait)).expect("timeout");
    s.write_all(b"GET / HTTP/1.1\r\nHost: nothing.example\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 512];
    let n = s.read(&mut buf).ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn at_max_connections_new_connections_wait_until_one_closes() {
    for engine in ["portico", "hyper"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let admin = format!("127.0.0.1:{}", free_port());
        let http = free_port();
        let _gw = Gateway(
            Command::new(env!("CARGO_BIN_EXE_gateway"))
                .args(base_args(dir.path(), http, free_port()))
                .args(["--admin-addr", &admin, "--max-connections", "2"])
                .args(["--http1-engine", engine])
                .stdout(Stdio::null())
                .spawn()
                .expect("start gateway"),
        );
        wait_ready(&admin);
        assert_eq!(metric(&admin, "portico_connections_limit"), Some(2.0));
        let addr = format!("127.0.0.1:{http}");

        let mut first = TcpStream::connect(&addr).expect("connect");
        let mut second = TcpStream::connect(&addr).expect("connect");
        assert_eq!(
            request(&mut first, Duration::from_secs(5)),
            Some(404),
            "{engine}"
        );
        assert_eq!(
            request(&mut second, Duration::from_secs(5)),
            Some(404),
            "{engine}"
        );

        // The third is completed by the kernel (backlog) but not accepted: no answer.
        let mut third = TcpStream::connect(&addr).expect("connect (kernel backlog)");
        assert_eq!(
            request(&mut third, Duration::from_millis(700)),
            None,
            "{engine}: a third connection is served while two are open"
        );
        assert!(
            metric(&admin, "portico_connections_limit_reached_total").unwrap_or(0.0) >= 1.0,
            "{engine}"
        );

        // One closes: the third is accepted and its waiting request answered.
        drop(first);
        third
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = [0u8; 512];
        let n = third.read(&mut buf).expect("answer after a slot is freed");
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 404"),
            "{engine}"
        );
        drop(second);
    }
}
