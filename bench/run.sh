#!/usr/bin/env bash
# The benchmark: builds everything in release mode, then measures dvrd against DPDK's l3fwd and
# testpmd (io) with dvr-pktgen, in interleaved rounds. See BENCHMARKS.md.
#
#   bench/run.sh [quick|full|smoke] [more dvr-bench run options]
#
# quick (the default, under ten minutes): 64-byte frames, 1 and 1M routes, 5 rounds.
# full (about an hour): 64 B and IMIX, 1 / 20k / 200k / 1M routes, 5 rounds, longer trials.
# Results: bench/results/<date>-<mode>.{json,md} and -throughput.png, -latency.png.
# BENCH_UPDATE_DOC=1 also replaces the results section of BENCHMARKS.md.
# Run as root (DPDK, hugepages, process priority).
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-quick}
shift || true

cargo build --release --quiet -p perf --bin dvr-pktgen --bin dvr-bench --bin engine-icount
cargo build --release --quiet -p dvr-router --bin dvrd
bench/build-l3fwd.sh

# The deterministic part first (seconds): instructions per packet, against the baseline.
bench/icount.sh || echo "bench: instruction counts above the baseline (see above)" >&2

args=(run --mode "$mode")
# Hugepages: every DPDK process of the run together needs about 1 GiB.
scripts/hugepages.sh >/dev/null || true
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -lt 512 ]; then
  echo "bench: only ${free:-0} free hugepages (512 wanted): running with --no-huge" >&2
  args+=(--no-huge)
fi
if [ "${BENCH_UPDATE_DOC:-0}" = 1 ]; then
  args+=(--update-doc BENCHMARKS.md)
fi
echo "bench: load average $(cut -d' ' -f1-3 /proc/loadavg) (compare interleaved figures only)" >&2
exec target/release/dvr-bench "${args[@]}" "$@"
