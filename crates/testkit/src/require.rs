//! Tests that cannot run their real part here (not root, a tool missing) never pass silently.
//!
//! Under `CI=true` such a test fails with the reason. Elsewhere it may skip, visibly: it
//! prints `SKIPPED: <test>: <reason>` on its own line of stderr (written past the test
//! harness's output capture, so it shows even when the test passes) and returns.
//! `scripts/test.sh` counts those lines in its closing summary.
//!
//! ```ignore
//! #[test]
//! fn curl_reaches_the_gateway() {
//!     portico_testkit::require!(portico_testkit::tool_missing("curl").is_none(), "needs curl");
//!     // ... the real part
//! }
//! ```

use std::io::Write;
use std::process::{Command, Stdio};

/// Whether this run is CI (`CI=true` or `CI=1`): there, a test that cannot run its real part
/// fails instead of skipping.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| {
        let v = v.trim();
        v.eq_ignore_ascii_case("true") || v == "1"
    })
}

/// The running test's name: the harness runs each test on a thread named after it.
fn test_name() -> String {
    std::thread::current()
        .name()
        .filter(|n| *n != "main")
        .unwrap_or("<unnamed test>")
        .to_owned()
}

/// The calling test cannot run its real part because of `reason`: panics under `CI=true`,
/// otherwise prints `SKIPPED: <test>: <reason>`. The caller returns right after (the
/// [`require!`](crate::require!) macro does both).
pub fn skip(reason: &str) {
    skip_in(in_ci(), reason);
}

fn skip_in(ci: bool, reason: &str) {
    let test = test_name();
    if ci {
        panic!("{test}: cannot run its real part under CI=true: {reason}");
    }
    // Straight to the stderr handle, not `eprintln!`: the harness captures the macros'
    // output and shows it only for failing tests.
    let _ = std::io::stderr()
        .lock()
        .write_all(skip_line(&test, reason).as_bytes());
}

/// The line `scripts/test.sh` counts, with a newline before it in case the harness is in the
/// middle of a line of its own.
fn skip_line(test: &str, reason: &str) -> String {
    format!("\nSKIPPED: {test}: {reason}\n")
}

/// `true` when `ok`; otherwise [`skip`]s with `reason` and gives `false` (the caller returns).
pub fn require(ok: bool, reason: &str) -> bool {
    if !ok {
        skip(reason);
    }
    ok
}

/// Why `tool` cannot be used here (it does not start), or `None` when it can. Runs
/// `tool --version`; the exit status does not matter, only that the program exists.
pub fn tool_missing(tool: &str) -> Option<String> {
    tool_missing_with(tool, "--version")
}

/// [`tool_missing`] for tools that want another harmless argument (`arping --help`, `ip -V`).
pub fn tool_missing_with(tool: &str, arg: &str) -> Option<String> {
    match Command::new(tool)
        .arg(arg)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(_) => None,
        Err(e) => Some(format!(
            "needs `{tool}` ({e}); scripts/test.sh installs it as root"
        )),
    }
}

/// Skip (or, under `CI=true`, fail) the calling test and return from it unless `cond` holds:
/// `require!(cond, "needs curl")` or `require!(cond, "needs {tool}", tool = t)`.
#[macro_export]
macro_rules! require {
    ($cond:expr, $($reason:tt)+) => {
        if !$crate::require::require($cond, &format!($($reason)+)) {
            return;
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_present_tool_is_not_missing_and_an_absent_one_is() {
        assert_eq!(tool_missing("true"), None);
        let why = tool_missing("portico-no-such-tool").expect("missing");
        assert!(why.contains("portico-no-such-tool"), "{why}");
    }

    #[test]
    #[should_panic(expected = "cannot run its real part under CI=true: needs a unicorn")]
    fn under_ci_a_missing_requirement_fails_the_test() {
        skip_in(true, "needs a unicorn");
    }

    #[test]
    fn the_skip_line_stands_alone_and_names_test_and_reason() {
        let line = skip_line("l4_netns::curl", "needs curl");
        assert_eq!(
            line.lines().nth(1),
            Some("SKIPPED: l4_netns::curl: needs curl")
        );
    }

    #[test]
    fn a_met_requirement_goes_on() {
        assert!(require(true, "never printed"));
    }
}
