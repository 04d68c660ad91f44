#!/usr/bin/env bash
# Instructions per packet of the forwarding engine (Engine::process_burst, bursts of 32
# 64-byte frames: routing, DVR VXLAN encapsulation, decapsulation), counted by callgrind.
# Deterministic: the regression counterpart of the throughput runs (bench/run.sh).
#
#   bench/icount.sh                      count, compare with bench/icount-baseline.json, fail
#                                        when a scenario needs more than 2% more instructions
#   bench/icount.sh --update-baseline    count and make the result the new baseline
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p perf --bin engine-icount --bin dvr-bench
baseline=bench/icount-baseline.json
if [ "${1:-}" = --update-baseline ] || [ ! -e "$baseline" ]; then
  target/release/dvr-bench icount --out bench/results
  cp "$(ls -t bench/results/*-icount.json | head -1)" "$baseline"
  echo "icount: baseline is now $baseline"
else
  target/release/dvr-bench icount --out bench/results --baseline "$baseline" --tolerance 0.02
fi
