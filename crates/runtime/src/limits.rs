//! Process limits every binary that serves connections sets at start: the open-file limit
//! (`RLIMIT_NOFILE`) and the listen backlog of its listening sockets.
//!
//! - The soft `RLIMIT_NOFILE` is raised to the hard limit, as nginx's `worker_rlimit_nofile`
//!   and most servers do: systemd and container runtimes hand processes a soft limit of 1024
//!   (or a few thousand) under a hard limit of hundreds of thousands, and a proxy holds two
//!   descriptors per proxied connection.
//! - Listening sockets get the system's `net.core.somaxconn` as their backlog (the kernel caps
//!   any larger value to it anyway), so a burst of connects waits in the kernel instead of being
//!   dropped and retried by the client after a second.

use std::sync::OnceLock;

use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
use tracing::{info, warn};

/// The backlog used when `/proc/sys/net/core/somaxconn` cannot be read (Linux's default since 5.4).
pub const DEFAULT_BACKLOG: u32 = 4096;

/// Where Linux keeps the largest value `RLIMIT_NOFILE` may take when the hard limit is infinite.
const NR_OPEN: &str = "/proc/sys/fs/nr_open";
const SOMAXCONN: &str = "/proc/sys/net/core/somaxconn";

/// The open-file limits before and after [`raise_nofile_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimits {
    /// The soft limit the process started with (`None`: unlimited).
    pub before: Option<u64>,
    /// The soft limit now in force.
    pub after: Option<u64>,
    /// The hard limit (`None`: unlimited).
    pub hard: Option<u64>,
}

/// The soft limit to ask for: the hard limit, or `nr_open` when the hard limit is infinite
/// (Linux refuses an infinite `RLIMIT_NOFILE`). Never lower than the current soft limit.
fn target(current: Option<u64>, hard: Option<u64>, nr_open: Option<u64>) -> Option<u64> {
    let want = match (hard, nr_open) {
        (Some(h), _) => Some(h),
        (None, Some(n)) => Some(n),
        (None, None) => None,
    }?;
    match current {
        None => None,
        Some(c) if c >= want => None,
        Some(_) => Some(want),
    }
}

/// Raise the soft `RLIMIT_NOFILE` to the hard limit and log the values before and after (info).
/// A refusal is logged (warn) and the process goes on with the limit it has.
pub fn raise_nofile_limit() -> NofileLimits {
    let Rlimit { current, maximum } = getrlimit(Resource::Nofile);
    let nr_open = std::fs::read_to_string(NR_OPEN)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok());
    let mut after = current;
    if let Some(want) = target(current, maximum, nr_open) {
        let new = Rlimit {
            current: Some(want),
            maximum,
        };
        match setrlimit(Resource::Nofile, new) {
            Ok(()) => after = getrlimit(Resource::Nofile).current,
            Err(e) => warn!(
                soft = ?current, hard = ?maximum, wanted = want, error = %e,
                "cannot raise the open-file limit (RLIMIT_NOFILE)"
            ),
        }
    }
    let limits = NofileLimits {
        before: current,
        after,
        hard: maximum,
    };
    info!(
        before = %show(limits.before),
        after = %show(limits.after),
        hard = %show(limits.hard),
        "open-file limit (RLIMIT_NOFILE)"
    );
    limits
}

/// The soft `RLIMIT_NOFILE` in force (`None`: unlimited).
pub fn nofile_limit() -> Option<u64> {
    getrlimit(Resource::Nofile).current
}

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_owned(), |v| v.to_string())
}

/// `net.core.somaxconn` as a backlog: a positive number, else `None`.
pub fn parse_somaxconn(s: &str) -> Option<u32> {
    s.trim()
        .parse::<u64>()
        .ok()
        .filter(|&n| n > 0)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

/// The listen backlog for every listening TCP socket: the system's `net.core.somaxconn`, or
/// [`DEFAULT_BACKLOG`] when it cannot be read. Read once per process (a `/proc` file, no disk).
pub fn listen_backlog() -> u32 {
    static BACKLOG: OnceLock<u32> = OnceLock::new();
    *BACKLOG.get_or_init(|| {
        std::fs::read_to_string(SOMAXCONN)
            .ok()
            .and_then(|s| parse_somaxconn(&s))
            .unwrap_or(DEFAULT_BACKLOG)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_soft_limit_goes_up_to_the_hard_one_and_never_down() {
        assert_eq!(target(Some(1024), Some(524_288), None), Some(524_288));
        assert_eq!(target(Some(1024), None, Some(1_048_576)), Some(1_048_576));
        assert_eq!(target(Some(4096), Some(4096), None), None, "already there");
        assert_eq!(
            target(None, None, Some(1_048_576)),
            None,
            "already unlimited"
        );
        assert_eq!(
            target(Some(1024), None, None),
            None,
            "nothing known to ask for"
        );
    }

    #[test]
    fn somaxconn_is_a_positive_number_or_nothing() {
        assert_eq!(parse_somaxconn("4096\n"), Some(4096));
        assert_eq!(parse_somaxconn("65535"), Some(65535));
        assert_eq!(parse_somaxconn("0"), None);
        assert_eq!(parse_somaxconn("lots"), None);
        assert_eq!(parse_somaxconn("99999999999"), Some(u32::MAX));
    }

    #[test]
    fn raising_leaves_the_soft_limit_at_the_hard_limit() {
        let limits = raise_nofile_limit();
        let now = getrlimit(Resource::Nofile);
        assert_eq!(limits.after, now.current);
        if limits.hard.is_some() {
            assert_eq!(now.current, now.maximum, "{limits:?}");
        }
    }
}
