#!/usr/bin/env bash
# Usage: fuzz/run.sh [SECONDS] [--dev]
# Runs every fuzz target for SECONDS each (default 60), from the seeds in
# corpus/ plus what earlier runs found (found/, not in git). A crash fails
# the run with its input in artifacts/; make it a regression test by
# copying it to regressions/<target>/ (cargo test runs those).
# --dev builds without optimisation: slower to run, quicker to build (CI).
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
seconds="${1:-60}"
profile=(${2:-})
cargo +nightly fuzz build -s none "${profile[@]}"
for target in routing_table dns_query control_line client_hello http_connection; do
  mkdir -p "found/$target"
  echo "== $target, ${seconds}s"
  log="found/$target.log"
  status=0
  cargo +nightly fuzz run -s none "${profile[@]}" "$target" "found/$target" "corpus/$target" -- \
    -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1 || status=$?
  grep -E 'stat::number_of_executed_units|^Done' "$log" || true
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    exit "$status"
  fi
done
