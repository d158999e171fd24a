#!/usr/bin/env bash
# Build every binary package ON ITS OWN, as `cargo install` and the container image do, and
# smoke-run what comes out. A workspace build unifies the crate features of all packages, so a
# package that only works with a feature some other package turns on (rustls's crypto provider,
# say) passes every workspace test and still breaks when built alone.
#
#   each binary: `--help` exits 0;
#   lb-controller, proxy-agent and gateway: their black-box tests against the fake Kubernetes
#   API server run again with these binaries (PORTICO_BIN_DIR, see portico_testkit::bin_under_test).
#
# Uses the dev profile and the usual target directory, so the dependencies it shares with the
# workspace build are compiled once; the binaries are copied to $TARGET/standalone.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
# Absolute: the tests that read PORTICO_BIN_DIR run in their own package's directory.
[[ $target == /* ]] || target="$PWD/$target"
out="$target/standalone"
rm -rf "$out"
mkdir -p "$out"

# package<TAB>binary, one line per binary target of the workspace.
mapfile -t bins < <(cargo metadata --no-deps --format-version 1 | python3 -c '
import json, sys
for p in json.load(sys.stdin)["packages"]:
    for t in p["targets"]:
        if "bin" in t["kind"]:
            print(p["name"] + "\t" + t["name"])
')
((${#bins[@]})) || { echo "standalone-bins: no binary targets found" >&2; exit 1; }

packages=$(printf '%s\n' "${bins[@]}" | cut -f1 | sort -u)
for pkg in $packages; do
  start=$SECONDS
  cargo build --profile dev -p "$pkg" --bins
  echo "standalone-bins: $pkg built alone in $((SECONDS - start)) s"
  for line in "${bins[@]}"; do
    [[ ${line%%$'\t'*} == "$pkg" ]] || continue
    bin=${line#*$'\t'}
    cp "$target/debug/$bin" "$out/$bin"
  done
done

for line in "${bins[@]}"; do
  bin=${line#*$'\t'}
  if ! help=$("$out/$bin" --help 2>&1) || ! grep -q "Usage" <<<"$help"; then
    echo "standalone-bins: $bin --help failed:" >&2
    echo "$help" >&2
    exit 1
  fi
  echo "standalone-bins: $bin --help ok"
done

# Start the kube-facing binaries against the fake API server: their first API calls build a
# TLS-capable client, which needs a crypto provider the binary installs itself.
PORTICO_BIN_DIR="$out" cargo test --workspace --test binary --test kube_mode -- --test-threads=2
echo "standalone-bins: every binary built alone starts"
