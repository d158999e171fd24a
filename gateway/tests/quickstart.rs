//! Black-box: `gateway quickstart` checks its addresses before starting anything, and keeps its
//! state per user.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[path = "common/process.rs"]
mod process;
use process::*;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: qs-pod\n  labels: {app: qs}\nspec:\n  containers:\n  - name: c\n    image: hellok8s:v3\n    ports: [{containerPort: 3000}]\nstatus:\n  podIP: 127.0.62.1\n  conditions: [{type: Ready, status: \"True\"}]\n";

fn quickstart(dir: &std::path::Path, admin: &str, state_home: &std::path::Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_gateway"));
    c.args(["quickstart", "--dir", &dir.display().to_string()])
        .args(["--admin-addr", admin])
        .args(["--http-addr", &format!("127.0.0.1:{}", free_port())])
        .args(["--https-addr", &format!("127.0.0.1:{}", free_port())])
        .env("XDG_STATE_HOME", state_home)
        .stdin(Stdio::null());
    c
}

#[test]
fn a_taken_address_is_named_before_anything_starts() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("pods.yaml"), POD).expect("write");
    let admin = TcpListener::bind("127.0.0.1:0").expect("bind");
    let admin_addr = admin.local_addr().expect("addr").to_string();
    let pod = TcpListener::bind("127.0.62.1:3000").expect("bind the pod's address");
    let out = quickstart(dir.path(), &admin_addr, dir.path())
        .output()
        .expect("run quickstart");
    drop(pod);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(!out.status.success(), "{stdout}{stderr}");
    assert!(
        !stdout.contains("started pod"),
        "nothing starts when an address is taken: {stdout}"
    );
    assert!(
        stderr.contains(&format!("{admin_addr} (admin API"))
            && stderr.contains("127.0.62.1:3000 (pod qs-pod)"),
        "{stderr}"
    );
}

#[test]
fn state_lives_under_the_users_state_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("pods.yaml"),
        POD.replace("127.0.62.1", "127.0.62.2"),
    )
    .expect("write");
    let home = tempfile::tempdir().expect("state home");
    let admin = format!("127.0.0.1:{}", free_port());
    let child = quickstart(dir.path(), &admin, home.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn quickstart");
    let mut gw = Gateway(child);
    let want = home.path().join("portico").join("quickstart");
    let stdout = gw.0.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let said = format!("kept in {}", want.display());
    let start = Instant::now();
    loop {
        let left = Duration::from_secs(20).saturating_sub(start.elapsed());
        let line = rx
            .recv_timeout(left)
            .expect("the quickstart says where its state is");
        if line.contains(&said) {
            break;
        }
    }
    // SIGTERM, so the quickstart stops its pod processes itself (a SIGKILL would orphan them).
    let pid = gw.0.id().to_string();
    let _ = Command::new("kill").args(["-TERM", &pid]).status();
    let _ = gw.0.wait();
}
