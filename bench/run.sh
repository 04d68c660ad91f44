#!/usr/bin/env bash
# The benchmark: builds everything in release mode, then measures dvrd against DPDK's l3fwd and
# testpmd (io), in interleaved rounds, with two generators: dvr-pktgen and DPDK's own testpmd
# (flowgen). See BENCHMARKS.md.
#
#   bench/run.sh [quick|full|smoke] [more dvr-bench run options, e.g. --method pdr]
#
# The figure is the maximum forwarding rate under overload: the generator at full rate, the
# median of the per-second forwarded rates of a long trial, then latency at 10/50/90% of it.
# quick (the default, about 20-25 minutes here): 64-byte frames, 1 and 1M routes, both
#   generators, 5 rounds of 10 s trials.
# full: 64 B and IMIX (dvr-pktgen only), 1 / 20k / 200k / 1M routes, 20 s trials.
# smoke (2-3 minutes): a check of the harness, 2 rounds of 2 s trials, 1 route, no icount.
# --method pdr: the NDR/PDR search of short trials instead (for dedicated cores).
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
if [ "$mode" != smoke ]; then
  bench/icount.sh || echo "bench: instruction counts above the baseline (see above)" >&2
fi

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
