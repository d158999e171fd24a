//! Shared by the black-box tests that run the real `gateway` binary: a child that is killed on
//! drop, free ports, curl, polling.

#![allow(dead_code)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The gateway process; killed and reaped when the test ends, pass or fail.
pub struct Gateway(pub Child);

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Gateway {
    /// Start `gateway ARGS` with fresh loopback ports for the listeners the caller did not set,
    /// and wait until its admin API reports ready.
    pub fn start(args: &[&str], admin: &str, env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gateway"));
        cmd.args(args)
            .args(["--admin-addr", admin])
            .stdout(Stdio::null());
        if !args.contains(&"--http-addr") {
            cmd.args(["--http-addr", &format!("127.0.0.1:{}", free_port())]);
        }
        if !args.contains(&"--https-addr") {
            cmd.args(["--https-addr", &format!("127.0.0.1:{}", free_port())]);
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        let gw = Gateway(cmd.spawn().expect("start gateway"));
        wait_until("/readyz", Duration::from_secs(30), || {
            curl(&format!("http://{admin}/readyz")).is_some()
        });
        gw
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// `curl -s --max-time 2 URL`: the body on success.
pub fn curl(url: &str) -> Option<String> {
    curl_args(&[url])
}

/// `curl -s --max-time 2 ARGS`: the body on success.
pub fn curl_args(args: &[&str]) -> Option<String> {
    let out = Command::new("curl")
        .args(["-s", "--max-time", "2"])
        .args(args)
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The pod names in `n` responses of hellok8s backends behind `url`.
pub fn pod_names(url: &str, n: usize) -> std::collections::BTreeSet<String> {
    (0..n)
        .filter_map(|_| curl(url))
        .filter_map(|b| b.rsplit_once("From host: ").map(|(_, h)| h.to_owned()))
        .collect()
}

/// `gateway get WHAT` against a running instance.
pub fn get(admin: &str, what: &str) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_gateway"))
        .args(["get", what, "--admin-addr", admin])
        .output()
        .expect("gateway get");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Poll `f` every 20 ms; panic naming `what` after `timeout`. Returns how long it took.
pub fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if f() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("timed out after {timeout:?} waiting for {what}");
}
