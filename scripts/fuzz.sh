#!/usr/bin/env bash
# Fuzz Portico's parsers: build the cargo-fuzz project in fuzz/ once, then run each target for
# SECONDS (default 60) from a scratch copy of its committed seed corpus (fuzz/corpus/<target>),
# so nothing is written into the repository. Any crash, timeout or out-of-memory fails the run;
# its input is printed (hex) and kept under the scratch directory.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Environment: FUZZ_TARGET_DIR (build directory, default fuzz/target), FUZZ_JOBS (targets run
# at a time, default: the number of cores), FUZZ_KEEP=1 (keep the scratch directory),
# FUZZ_SANITIZER (default none; `address` needs no more than a rebuild).
# The last line is `fuzz: N passed, M failed`.
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${1:-60}
shift || true
if ! [[ $seconds =~ ^[0-9]+$ ]] || ((seconds == 0)); then
  echo "usage: scripts/fuzz.sh [SECONDS] [TARGET...]" >&2
  exit 2
fi

# cargo-fuzz passes nightly-only flags (-Z, sanitizer-coverage); the stable toolchain accepts
# them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz" >&2
  cargo install cargo-fuzz --locked || {
    echo "fuzz: cargo-fuzz could not be installed"
    echo "fuzz: 0 passed, 1 failed"
    exit 1
  }
fi

target_dir=${FUZZ_TARGET_DIR:-$root/fuzz/target}
sanitizer=${FUZZ_SANITIZER:-none}
triple=$(rustc -vV | sed -n 's/^host: //p')
bin_dir=$target_dir/$triple/release

if ((${#@} == 0)); then
  mapfile -t targets < <(cargo fuzz list --fuzz-dir fuzz)
else
  targets=("$@")
fi

start=$(date +%s)
# Optimised, with debug assertions and overflow checks (cargo-fuzz's default); no sanitizer:
# the code forbids `unsafe`, so the findings are panics, overflows and failed assertions.
if ! cargo fuzz build --fuzz-dir fuzz --sanitizer "$sanitizer" --codegen-units 16 \
  --target-dir "$target_dir"; then
  echo "fuzz: the fuzz crate does not build"
  echo "fuzz: 0 passed, ${#targets[@]} failed"
  exit 1
fi
echo "fuzz: built in $(($(date +%s) - start)) s"

scratch=$(mktemp -d -t portico-fuzz.XXXXXX)
if [[ ${FUZZ_KEEP:-0} != 1 ]]; then
  trap 'rm -rf "$scratch"' EXIT
fi

# Run one target; its outcome goes to $scratch/<target>/result ("ok ..." or "FAILED ...").
run_target() {
  local t=$1 work=$scratch/$1 bin=$bin_dir/$1 dict=() rc stats cov
  mkdir -p "$work/corpus" "$work/artifacts"
  if [[ -d fuzz/corpus/$t ]]; then
    cp -r "fuzz/corpus/$t/." "$work/corpus/"
  fi
  case $t in
    http1_*) dict=(-dict=fuzz/dict/http1.dict) ;;
    *) [[ -f fuzz/dict/$t.dict ]] && dict=(-dict="fuzz/dict/$t.dict") ;;
  esac
  echo "fuzz: $t: ${seconds}s from $(find "$work/corpus" -type f | wc -l) seeds"
  # -timeout: one input taking 10 s is a hang; the outer timeout only guards libFuzzer itself.
  timeout --kill-after=30 $((seconds + 300)) "$bin" \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$work/artifacts/" "${dict[@]}" "$work/corpus" >"$work/log" 2>&1
  rc=$?
  stats=$(grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$work/log" | tr -s ' ' | tr '\n' ' ')
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$work/log" | tail -1)
  if ((rc == 0)); then
    echo "ok ($cov; $stats)" >"$work/result"
  else
    echo "FAILED (exit $rc)" >"$work/result"
  fi
}

# libFuzzer uses one core per target; run FUZZ_JOBS (default: the number of cores) at a time.
jobs_max=${FUZZ_JOBS:-$(nproc)}
runnable=()
failed=0
failures=()
for t in "${targets[@]}"; do
  if [[ -x $bin_dir/$t ]]; then
    runnable+=("$t")
  else
    echo "fuzz: $t: no such target ($bin_dir/$t)"
    failed=$((failed + 1))
    failures+=("$t")
  fi
done
for t in "${runnable[@]}"; do
  while (($(jobs -rp | wc -l) >= jobs_max)); do
    wait -n
  done
  run_target "$t" &
done
wait

passed=0
for t in "${runnable[@]}"; do
  work=$scratch/$t
  result=$(cat "$work/result" 2>/dev/null || echo "FAILED (no result)")
  echo "fuzz: $t: $result"
  if [[ $result == ok* ]]; then
    passed=$((passed + 1))
    continue
  fi
  tail -n 40 "$work/log"
  for a in "$work"/artifacts/*; do
    [[ -f $a ]] || continue
    echo "fuzz: $t: input $a:"
    od -A d -c "$a" | head -n 40
  done
  failed=$((failed + 1))
  failures+=("$t")
done

((failed > 0)) && echo "fuzz: failed: ${failures[*]} (rerun one with: scripts/fuzz.sh $seconds ${failures[0]})"
line="fuzz: $passed passed, $failed failed"
echo "$line"
((failed == 0))
