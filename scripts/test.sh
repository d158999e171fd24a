#!/usr/bin/env bash
# Portico's test suite: unit tests, the kube source against the fake API server, black-box
# tests of the real binaries with real clients, network-namespace tests (as root), and a smoke
# run of the benchmark runner. Installs missing Debian packages first when run as root.
# Build cost, measured from a clean target directory: `cargo build --workspace --tests --bins`
# takes about 665 s of CPU (about 6 min on 2 quiet cores; k8s-openapi alone is 13% of it), the
# one-package-at-a-time builds of standalone-bins.sh add about 170 s of CPU, and `cargo test`
# afterwards compiles nothing more (doc tests: under 2 s).
set -euo pipefail
cd "$(dirname "$0")/.."

need=(curl wrk nghttp openssl nginx haproxy arping nft ip socat dig ndisc6 nc)
pkgs=(curl wrk nghttp2-client openssl nginx haproxy arping nftables iproute2 socat dnsutils ndisc6 netcat-openbsd)
missing=()
for t in "${need[@]}"; do command -v "$t" >/dev/null 2>&1 || missing+=("$t"); done
if ((${#missing[@]})); then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null; then
    echo "installing test tools (missing: ${missing[*]})"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
  else
    echo "warning: missing test tools: ${missing[*]} (tests that need them will fail or skip)" >&2
  fi
fi

export RUST_BACKTRACE=1
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed_steps=()
# Run one step, its output also kept in $log for the closing summary; a failing step is
# recorded and the suite goes on, so that one run shows every failure.
step() {
  echo "== $*"
  set +e
  "$@" 2>&1 | tee -a "$log"
  local status=${PIPESTATUS[0]}
  set -e
  ((status == 0)) || failed_steps+=("$*")
}

cargo build --workspace --tests --bins
# Each binary package built on its own (as `cargo install` and the Dockerfile do) and started.
step bash scripts/standalone-bins.sh
# The benchmark runner's smoke run checks that every contender starts and the table is well
# formed (not speed), so the debug binaries built above are enough.
step python3 loadtest/run.py --smoke --bin-dir "${CARGO_TARGET_DIR:-target}/debug"
step python3 -m unittest discover -s tests
step python3 helm/tests/test_chart.py
step python3 -m unittest discover -s loadtest/tests
step cargo test --workspace -- --test-threads=2

# One closing line for the whole suite: cargo prints one `test result:` line per test binary,
# unittest one `Ran N tests` and one `OK`/`FAILED (...)` line per run. A test that could not run
# its real part prints `SKIPPED: <test>: <reason>` (under CI=true it fails instead).
awk '
  /^test result:/ { p += $4; f += $6 }
  /^Ran [0-9]+ tests? in/ { ran = $2 }
  /^(OK|FAILED)( \(|$)/ && ran != "" {
    bad = 0; sk = 0
    if (match($0, /failures=[0-9]+/)) bad += substr($0, RSTART + 9, RLENGTH - 9)
    if (match($0, /errors=[0-9]+/)) bad += substr($0, RSTART + 7, RLENGTH - 7)
    if (match($0, /skipped=[0-9]+/)) sk = substr($0, RSTART + 8, RLENGTH - 8)
    p += ran - bad - sk; f += bad; ran = ""
  }
  /^SKIPPED: / { k++ }
  END { printf "total: %d passed, %d failed, %d skipped\n", p, f, k }
' "$log"
if ((${#failed_steps[@]})); then
  printf 'failed step: %s\n' "${failed_steps[@]}" >&2
  exit 1
fi
