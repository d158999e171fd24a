//! Finding workspace binaries for black-box tests, and children that die with the test.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::process::{Child, Command};

/// The path of the workspace binary `name`.
///
/// Looks, in order, at `CARGO_BIN_EXE_{name}` (set for a package's own integration tests; pass
/// `env!("CARGO_BIN_EXE_x")` directly when you have it), the directory the running test
/// executable was built into (`target/{profile}/deps/..`), and `$CARGO_TARGET_DIR` (or the
/// workspace's `target/`) under `debug` and `release`. Panics, listing the places it looked,
/// when the binary is not built (run `cargo build -p {package}` first).
pub fn cargo_bin(name: &str) -> PathBuf {
    let mut tried = Vec::new();
    if let Some(p) = std::env::var_os(format!("CARGO_BIN_EXE_{name}")).map(PathBuf::from) {
        if p.is_file() {
            return p;
        }
        tried.push(p);
    }
    let exe = format!("{name}{}", std::env::consts::EXE_SUFFIX);
    let mut dirs = Vec::new();
    if let Ok(current) = std::env::current_exe()
        && let Some(dir) = current.parent()
    {
        // target/debug/deps/foo-1234 -> target/debug
        dirs.push(if dir.ends_with("deps") {
            dir.parent().unwrap_or(dir).to_path_buf()
        } else {
            dir.to_path_buf()
        });
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    dirs.push(target.join("debug"));
    dirs.push(target.join("release"));
    for dir in dirs {
        let p = dir.join(&exe);
        if p.is_file() {
            return p;
        }
        tried.push(p);
    }
    panic!("binary {name:?} is not built; looked at {tried:?} (run cargo build first)");
}

/// The binary a black-box test starts: `$PORTICO_BIN_DIR/{name}` when that variable is set,
/// else `built` (pass `env!("CARGO_BIN_EXE_{name}")`). `scripts/standalone-bins.sh` points it at
/// binaries built one package at a time, as `cargo install` and the container image build
/// them, whose features the rest of the workspace does not fill in.
pub fn bin_under_test(name: &str, built: &str) -> PathBuf {
    match std::env::var_os("PORTICO_BIN_DIR") {
        Some(dir) => {
            let p = PathBuf::from(dir).join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
            assert!(p.is_file(), "PORTICO_BIN_DIR has no {name}: {p:?}");
            p
        }
        None => PathBuf::from(built),
    }
}

/// The workspace root: this crate lives at `crates/testkit`.
fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent()
        .and_then(Path::parent)
        .unwrap_or(here)
        .to_path_buf()
}

/// A spawned child that is killed when dropped (a failing test leaves nothing behind).
pub struct ChildGuard {
    child: Child,
}

impl ChildGuard {
    /// Spawn `cmd` with stdin closed; stdout and stderr as the command says.
    pub fn spawn(cmd: &mut Command) -> std::io::Result<Self> {
        let child = cmd.stdin(Stdio::null()).kill_on_drop(true).spawn()?;
        Ok(Self { child })
    }

    /// The process id (`None` once it has been reaped).
    pub fn id(&self) -> Option<u32> {
        self.child.id()
    }

    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Whether it has exited (reaping it if so).
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Ask it to stop with SIGTERM, wait up to `grace`, then SIGKILL. Returns how it exited.
    pub async fn terminate(&mut self, grace: Duration) -> std::io::Result<ExitStatus> {
        if let Some(pid) = self.child.id() {
            let sent = Command::new("kill")
                .arg("-TERM")
                .arg(pid.to_string())
                .status()
                .await?;
            if sent.success()
                && let Ok(status) = tokio::time::timeout(grace, self.child.wait()).await
            {
                return status;
            }
        }
        self.kill().await
    }

    /// SIGKILL and reap.
    pub async fn kill(&mut self) -> std::io::Result<ExitStatus> {
        self.child.kill().await?;
        self.child.wait().await
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        // Tokio reaps the killed child in the background.
        let _ = self.child.start_kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_where_it_looked() {
        let err = std::panic::catch_unwind(|| cargo_bin("no-such-portico-binary"))
            .expect_err("not built");
        let msg = err.downcast_ref::<String>().cloned().unwrap_or_default();
        assert!(
            msg.contains("no-such-portico-binary") && msg.contains("debug"),
            "{msg}"
        );
    }

    #[tokio::test]
    async fn children_stop_on_terminate_and_die_on_drop() {
        let mut sleeper = ChildGuard::spawn(Command::new("sleep").arg("30")).expect("spawn sleep");
        let status = sleeper
            .terminate(Duration::from_secs(5))
            .await
            .expect("terminated");
        assert!(!status.success());

        let guard = ChildGuard::spawn(Command::new("sleep").arg("30")).expect("spawn sleep");
        let pid = guard.id().expect("running");
        drop(guard);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        // Gone once /proc/{pid} disappears or shows a zombie being reaped.
        loop {
            let stat = tokio::fs::read_to_string(format!("/proc/{pid}/stat"))
                .await
                .unwrap_or_default();
            if stat.is_empty() || stat.contains(") Z") {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the child outlived its guard"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
