#!/usr/bin/env bash
# Usage: fuzz/run.sh [SECONDS] [--dev]
# Runs every fuzz target for SECONDS each (default 60), from the seeds in
# corpus/ plus what earlier runs found (found/, not in git), FUZZ_JOBS
# targets at a time (default 1; libFuzzer uses one core each). A crash
# fails the run with its input in artifacts/; make it a regression test by
# copying it to regressions/<target>/ (cargo test runs those).
# --dev builds without optimisation: slower to run, quicker to build (CI).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
profile=(${2:-})
jobs="${FUZZ_JOBS:-1}"
targets=(routing_table dns_query control_line client_hello http_connection)
cargo +nightly fuzz build -s none "${profile[@]}"

# One target's run; its exit status goes to found/<target>.status.
run_one() {
  local target="$1" status=0
  mkdir -p "found/$target"
  cargo +nightly fuzz run -s none "${profile[@]}" "$target" "found/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"found/$target.log" 2>&1 || status=$?
  echo "$status" >"found/$target.status"
}

for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  echo "== $target, ${seconds}s"
  run_one "$target" &
done
wait

failed=0
for target in "${targets[@]}"; do
  echo "== $target"
  grep -E 'stat::number_of_executed_units|^Done' "found/$target.log" || true
  status="$(cat "found/$target.status")"
  if [ "$status" -ne 0 ]; then
    tail -40 "found/$target.log"
    failed="$status"
  fi
done
exit "$failed"
