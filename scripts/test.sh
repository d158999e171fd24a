#!/usr/bin/env bash
# Portico's test suite: unit tests, the kube source against the fake API server, black-box
# tests of the real binaries with real clients, network-namespace tests (as root), and a smoke
# run of the benchmark runner. Installs missing Debian packages first when run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

need=(curl wrk nghttp openssl nginx haproxy arping nft ip socat dig ndisc6)
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
cargo build --workspace --tests --bins
# The benchmark runner's smoke run checks that every contender starts and the table is well
# formed (not speed), so the debug binaries built above are enough.
python3 loadtest/run.py --smoke --bin-dir target/debug
python3 helm/tests/test_chart.py
python3 -m unittest discover -s loadtest/tests
log=$(mktemp)
set +e
cargo test --workspace -- --test-threads=2 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
# One closing line for the whole Rust suite (cargo prints one per test binary).
awk '/^test result:/ {p += $4; f += $6} END {printf "total: %d passed, %d failed\n", p, f}' "$log"
rm -f "$log"
exit "$status"
