#!/usr/bin/env bash
# Instructions per packet of the whole worker loop, drivers included: the release dvrd routes
# 64-byte frames from a net_pcap port (a pcap of 1,024 UDP flows replayed forever,
# infinite_rx=1) to a net_null port, under callgrind, for SECONDS (default 60); then the worker
# thread's instructions are divided by the packets it forwarded and split by function
# (callgrind_annotate, inclusive). bench/icount.sh counts the engine alone; this adds what is
# around it: the RX and TX calls into the drivers, building the engine's packet views, the
# verdict dispatch and TX buffers, the per-burst counters.
#
#   bench/worker-icount.sh [SECONDS]
#
# Under callgrind the program runs about 50 times slower while the TSC does not: whatever
# runs by TSC time (the histogram publication, every 100 ms) runs 50 times more often per
# packet than it does natively, so its line is printed apart and left out of the total
# "without timed work".
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
command -v valgrind >/dev/null || { echo "worker-icount: valgrind is not installed" >&2; exit 1; }
cargo build --release --quiet -p dvr-router --bin dvrd
dir=$(mktemp -d /tmp/worker-icount.XXXXXX)
# WORKER_ICOUNT_KEEP=1 keeps the directory (callgrind's files, dvrd's log) for callgrind_annotate.
if [ "${WORKER_ICOUNT_KEEP:-0}" != 1 ]; then
  trap 'rm -rf "$dir"' EXIT
fi

# 1,024 UDP flows from BLUE's instance 10.0.1.5 to 198.18.1.0/24 (routed via RED's instance),
# to the router's BLUE MAC; valid IPv4 checksums.
python3 - "$dir/in.pcap" <<'EOF'
import struct, sys
def csum(b):
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
with open(sys.argv[1], 'wb') as out:
    out.write(struct.pack('<IHHiIII', 0xa1b2c3d4, 2, 4, 0, 0, 65535, 1))
    for i in range(1024):
        payload = bytes(18)
        udp = struct.pack('!HHHH', 1024 + i, 9, 8 + len(payload), 0) + payload
        ip = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(udp), i, 0, 64, 17, 0,
                         bytes([10, 0, 1, 5]), bytes([198, 18, 1, i % 250 + 1]))
        ip = ip[:10] + struct.pack('!H', csum(ip)) + ip[12:]
        frame = bytes.fromhex('fa163e000101') + bytes.fromhex('020000000b01') + b'\x08\x00' + ip + udp
        out.write(struct.pack('<IIII', 0, i, len(frame), len(frame)) + frame)
EOF

cat > "$dir/dvrd.toml" <<EOF
[eal]
main_core = 0
hugepages = false
memory_mb = 128
file_prefix = "worker-icount"
telemetry = false
vdevs = ["net_pcap0,rx_pcap=$dir/in.pcap,infinite_rx=1", "net_null0,no-rx=1"]

[dataplane]
idle = "poll"

[[workers]]
core = 1
rx = ["in", "out"]

[[ports]]
name = "in"
device = "net_pcap0"

[[ports]]
name = "out"
device = "net_null0"

[host]
name = "bench"
dvr_mac = "fa:16:3f:00:00:0a"
vtep = "192.0.2.10"

[[networks]]
name = "blue"
vni = 1001
ports = ["in"]

[[networks]]
name = "red"
vni = 1002
ports = ["out"]

[[instance_ports]]
network = "blue"
ip = "10.0.1.5"
mac = "02:00:00:00:0b:01"
host = "bench"

[[instance_ports]]
network = "red"
ip = "10.0.2.2"
mac = "02:00:00:00:0b:02"
host = "bench"

[control]
socket = "$dir/dvrd.ctl"

[log]
level = "warn"

[[routers]]
name = "bench"

[[routers.interfaces]]
network = "blue"
address = "10.0.1.1/24"
mac = "fa:16:3e:00:01:01"

[[routers.interfaces]]
network = "red"
address = "10.0.2.1/24"
mac = "fa:16:3e:00:02:01"

[[routers.routes]]
prefix = "198.18.1.0/24"
via = "10.0.2.2"
EOF

echo "worker-icount: dvrd under callgrind for ${seconds} s" >&2
timeout -s INT "$seconds" valgrind --tool=callgrind --separate-threads=yes \
  --callgrind-out-file="$dir/cg.%p" target/release/dvrd --config "$dir/dvrd.toml" \
  >"$dir/dvrd.log" 2>&1 || true
packets=$(awk '/worker 0 \(cpu/ {for (i = 1; i <= NF; i++) if ($i == "tx") print $(i + 1)}' "$dir/dvrd.log")
# The worker is the thread that ran the most instructions (its file is not the largest).
worker=$(grep -H '^summary:' "$dir"/cg.*-* | sort -t' ' -k2 -n | tail -1 | cut -d: -f1)
if [ -z "$packets" ] || [ "$packets" -eq 0 ]; then
  echo "worker-icount: the worker forwarded nothing; dvrd's log:" >&2
  cat "$dir/dvrd.log" >&2
  exit 1
fi
callgrind_annotate --inclusive=yes "$worker" 2>/dev/null >"$dir/inclusive.txt"
total=$(awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1; exit}' "$dir/inclusive.txt")
# The inclusive count of FUNCTION: the first (largest) line whose function is FUNCTION, as
# "file:FUNCTION" or "file:FUNCTION [object]" (lines of code inlined from other files into it
# are smaller, so they come later).
ir_of() {
  awk -v f="$1" '{
    n = length(f) + 1
    if (index($0, ":" f " [") || substr($0, length($0) - n + 1) == ":" f) {
      gsub(",", "", $1); print $1; exit
    }
  }' "$dir/inclusive.txt"
}
engine=$(ir_of "router_core::engine::Engine::process_burst")
process=$(ir_of "lcore_workers::worker::Worker<_>::process")
rx=$(ir_of "rte_eth_rx_burst__extern")
tx=$(ir_of "rte_eth_tx_burst__extern")
histograms=$(ir_of "lcore_workers::histogram::try_merge")
per() { awk -v a="${1:-0}" -v p="$packets" 'BEGIN {printf "%7.1f", a / p}'; }
# A function the compiler inlined into its caller in this build has no line of its own.
for name in engine process rx tx; do
  if [ -z "${!name}" ]; then
    echo "worker-icount: no symbol of its own for '$name' in this build (inlined); its share is in its caller's" >&2
    printf -v "$name" 0
  fi
done
untimed=$((total - ${histograms:-0}))
echo "worker-icount: ${packets} packets forwarded by the worker, ${total} instructions in its thread"
echo "instructions per packet, whole worker thread:        $(per "$total")"
echo "  without timed work (histogram publication):        $(per "$untimed")"
echo "  the engine (Engine::process_burst):                $(per "$engine")"
echo "  packet views around the engine (process - engine): $(per "$((process - engine))")"
echo "  RX driver call (net_pcap replay: alloc + copy):    $(per "$rx")"
echo "  TX driver call (net_null: frees the mbufs):        $(per "$tx")"
echo "  the rest: poll, verdict dispatch, TX buffers, counters: $(per "$((untimed - process - rx - tx))")"
echo "  histogram publication (timed; inflated here):      $(per "$histograms")"
echo "the functions of the worker thread, inclusive (callgrind_annotate --inclusive=yes):"
sed -n '/^Ir/,$p' "$dir/inclusive.txt" | grep -v '^Ir\|^-' | head -40 | cut -c1-160
[ "${WORKER_ICOUNT_KEEP:-0}" = 1 ] && echo "worker-icount: files kept in $dir" >&2 || true
