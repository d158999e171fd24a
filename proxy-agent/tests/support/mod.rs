//! Helpers for the black-box tests: the real binary on a temp manifests directory, echo
//! backends that answer their own name, and manifests for them.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream, UdpSocket};
use tokio::process::{Child, Command};

/// The `proxy-agent` binary running on its own manifests directory. Killed on drop.
pub struct Agent {
    pub dir: tempfile::TempDir,
    child: Child,
    /// Outside the manifests directory: writes there would wake the directory watcher.
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Agent {
    /// Start the agent on `dir` (already holding manifests) with extra arguments.
    pub fn start(dir: tempfile::TempDir, args: &[&str]) -> Self {
        let log_dir = tempfile::tempdir().expect("tempdir");
        let log = log_dir.path().join("agent.log");
        let file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_proxy-agent"))
            .arg("--manifests")
            .arg(dir.path())
            .args(args)
            .env("RUST_LOG", "info,proxy_agent=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .kill_on_drop(true)
            .spawn()
            .expect("start proxy-agent");
        Self {
            dir,
            child,
            log,
            _log_dir: log_dir,
        }
    }

    /// Replace a manifest file atomically (write a hidden file, then rename it).
    pub fn write(&self, name: &str, text: &str) {
        write_manifest(self.dir.path(), name, text);
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.dir.path().join(name)).expect("remove manifest");
    }

    /// The agent's log so far, to explain a failure.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            // SIGTERM: the agent shuts down cleanly.
            let _ = std::process::Command::new("kill")
                .arg(pid.to_string())
                .status();
        }
        let exited = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
        assert!(
            matches!(exited, Ok(Ok(s)) if s.success()),
            "clean exit on SIGTERM: {exited:?}\n{}",
            self.log()
        );
    }
}

pub fn write_manifest(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).expect("write manifest");
    std::fs::rename(&tmp, dir.join(name)).expect("rename manifest");
}

/// A TCP backend on `ip` (port chosen by the kernel) that writes `name\n`, then echoes.
pub async fn tcp_backend(ip: &str, name: &'static str) -> SocketAddr {
    tcp_backend_on(ip, 0, name).await
}

/// The same on a given port.
pub async fn tcp_backend_on(ip: &str, port: u16, name: &'static str) -> SocketAddr {
    let l = TcpListener::bind((ip, port)).await.expect("bind backend");
    let addr = l.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                if s.write_all(format!("{name}\n").as_bytes()).await.is_err() {
                    return;
                }
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

/// A UDP backend on `ip` that answers every datagram with `name:payload`.
pub async fn udp_backend(ip: &str, name: &'static str) -> SocketAddr {
    let s = UdpSocket::bind((ip, 0)).await.expect("bind backend");
    let addr = s.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = s.recv_from(&mut buf).await {
            let mut reply = format!("{name}:").into_bytes();
            reply.extend_from_slice(&buf[..n]);
            if s.send_to(&reply, from).await.is_err() {
                break;
            }
        }
    });
    addr
}

/// A Pod `name` labelled `app: <app>` whose container port `echo` is `addr`'s port.
pub fn pod(
    name: &str,
    app: &str,
    addr: SocketAddr,
    node: &str,
    ready: bool,
    protocol: &str,
) -> String {
    format!(
        "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: {name}, labels: {{app: {app}}}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: c\n    image: echo\n    ports: [{{name: echo, containerPort: {port}, protocol: {protocol}}}]\nstatus:\n  podIP: {ip}\n  conditions: [{{type: Ready, status: \"{ready}\"}}]\n",
        port = addr.port(),
        ip = addr.ip(),
        ready = if ready { "True" } else { "False" },
    )
}

/// A Service selecting `app: <app>`, port `port` (and `node_port`) -> the Pods' `echo` port;
/// `spec` adds fields (indented by two spaces).
pub fn service(
    name: &str,
    app: &str,
    port: u16,
    node_port: Option<u16>,
    protocol: &str,
    spec: &str,
) -> String {
    format!(
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {app}}}\n  ports: [{{port: {port}, targetPort: echo, protocol: {protocol}{node_port}}}]\n{spec}",
        node_port = node_port
            .map(|n| format!(", nodePort: {n}"))
            .unwrap_or_default()
    )
}

/// Connect to `addr` (from `client` when given) and read the backend's name.
pub async fn hello_from(
    addr: SocketAddr,
    client: Option<&str>,
) -> std::io::Result<(TcpStream, String)> {
    let mut s = match client {
        Some(ip) => {
            let socket = if addr.is_ipv4() {
                TcpSocket::new_v4()?
            } else {
                TcpSocket::new_v6()?
            };
            socket.bind(SocketAddr::new(ip.parse().expect("client ip"), 0))?;
            socket.connect(addr).await?
        }
        None => TcpStream::connect(addr).await?,
    };
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .map_err(|_| std::io::ErrorKind::TimedOut)??;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        if b[0] == b'\n' {
            break;
        }
        line.push(b[0]);
    }
    Ok((s, String::from_utf8_lossy(&line).into_owned()))
}

pub async fn hello(addr: SocketAddr) -> String {
    hello_from(addr, None).await.expect("a backend answers").1
}

/// Wait until `addr` answers with a backend's name (the agent is up and has the Service).
pub async fn wait_serving(agent: &Agent, addr: SocketAddr) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if hello_from(addr, None).await.is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{addr} never served\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One UDP request/reply from a fresh client socket; the reply and the address it came from.
pub async fn udp_ask(addr: SocketAddr, payload: &str) -> std::io::Result<(String, SocketAddr)> {
    let c = UdpSocket::bind("127.0.0.1:0").await?;
    c.send_to(payload.as_bytes(), addr).await?;
    let mut buf = [0u8; 1500];
    let (n, from) = tokio::time::timeout(Duration::from_millis(500), c.recv_from(&mut buf))
        .await
        .map_err(|_| std::io::ErrorKind::TimedOut)??;
    Ok((String::from_utf8_lossy(&buf[..n]).into_owned(), from))
}

pub fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}
