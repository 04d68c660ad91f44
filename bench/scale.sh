#!/usr/bin/env bash
# How dvrd's forwarding rate grows with its workers: dvrd with 1, 2, 4 and 8 workers against
# DPDK's testpmd (--forward-mode=flowgen) as the outside generator and sink, and a table of
# the rate forwarded, each worker's share and the scaling efficiency. For a bare-metal
# machine with cores to spare; see docs/operations.md ("Several workers") for the output.
#
#   bench/scale.sh                       # 1 2 4 8 workers, 10 s trials, on net_memif pairs
#   SCALE_WORKERS="1 2" SCALE_TRIAL_S=3 bench/scale.sh
#
# Topology: generator port 0 (memif client) -> dvrd "in" (memif server, network BLUE);
# dvrd "out" (memif server, network RED) -> generator port 1, which counts what dvrd
# forwarded. With W workers each dvrd port has W RX and W TX queues, testpmd has W queues
# per port and W forwarding cores, so every worker gets its own queue of generated flows.
# flowgen (DPDK 22.11) sends 64-byte UDP frames from 10.254.0.0 to 10.253.0.0 + flow, always
# to 00:01:02:03:04:01 whatever --eth-peer says: that is BLUE's gateway MAC here.
#
# CPUs: dvrd's control thread and testpmd's main lcore on the first CPU of SCALE_CPUS, dvrd's
# workers on the next W, testpmd's forwarding cores on the W after them: 1 + 2W CPUs. A count
# above the CPUs there are is skipped (and said so); a count that fits only by sharing CPUs
# runs marked "shared" (its figures then measure the sharing, not dvrd: on a small machine
# this only checks that everything works).
#
# Real NICs instead of memif: SCALE_DUT_PCI="0000:3b:00.0 0000:3b:00.1" (dvrd's in and out)
# and SCALE_GEN_PCI="0000:5e:00.0 0000:5e:00.1" (the generator's, cabled to them); the NICs
# spread flows over the queues by RSS. Other settings: SCALE_TRIAL_S (10), SCALE_WARMUP_S (2),
# SCALE_FLOWS (1024), SCALE_IDLE (poll), SCALE_HUGEPAGES (1 if free hugepages, else 0),
# SCALE_DIR (/run/dvr-scale), DVRD, DVRCTL, TESTPMD (the programs). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

workers_list=${SCALE_WORKERS:-1 2 4 8}
trial_s=${SCALE_TRIAL_S:-10}
warmup_s=${SCALE_WARMUP_S:-2}
flows=${SCALE_FLOWS:-1024}
idle=${SCALE_IDLE:-poll}
dir=${SCALE_DIR:-/run/dvr-scale}
dvrd=${DVRD:-target/release/dvrd}
dvrctl=${DVRCTL:-target/release/dvrctl}
testpmd=${TESTPMD:-dpdk-testpmd}
read -r -a dut_pci <<<"${SCALE_DUT_PCI:-}"
read -r -a gen_pci <<<"${SCALE_GEN_PCI:-}"

# The gateway MAC flowgen sends to, and the generator's port 1 (where the routes lead).
flowgen_dst_mac=00:01:02:03:04:01
gen_rx_mac=02:00:00:00:0b:02

# The CPUs this script may use: SCALE_CPUS, or the ones it is allowed to run on.
expand_cpus() {
  local part a b out=()
  for part in ${1//,/ }; do
    if [[ $part == *-* ]]; then
      a=${part%-*} b=${part#*-}
      for ((c = a; c <= b; c++)); do out+=("$c"); done
    else
      out+=("$part")
    fi
  done
  echo "${out[@]}"
}
read -r -a cpus <<<"$(expand_cpus "${SCALE_CPUS:-$(taskset -pc $$ | awk -F': ' '{print $2}')}")"
ncpus=${#cpus[@]}
# CPU number k of the list, wrapping around when the machine has too few.
cpu() { echo "${cpus[$(($1 % ncpus))]}"; }

if [ -z "${SCALE_HUGEPAGES:-}" ]; then
  free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
  SCALE_HUGEPAGES=$([ "${free:-0}" -ge 1024 ] && echo 1 || echo 0)
fi
hugepages=$([ "$SCALE_HUGEPAGES" = 1 ] && echo true || echo false)
if [ ${#dut_pci[@]} -ne 0 ] && { [ ${#dut_pci[@]} -ne 2 ] || [ ${#gen_pci[@]} -ne 2 ]; }; then
  echo "scale: SCALE_DUT_PCI and SCALE_GEN_PCI name two devices each" >&2
  exit 2
fi
for p in "$dvrd" "$dvrctl"; do
  [ -x "$p" ] || { echo "scale: $p missing: cargo build --release --workspace --bins" >&2; exit 2; }
done
command -v "$testpmd" >/dev/null || { echo "scale: $testpmd not found (DPDK's testpmd)" >&2; exit 2; }
mkdir -p "$dir"

# dvrd's configuration for $1 workers, worker i on cpu(1 + i).
dvrd_config() {
  local w=$1 i vdevs pci=false extra=() ports=(in out)
  if [ ${#dut_pci[@]} -eq 0 ]; then
    vdevs="\"net_memif0,role=server,socket=$dir/in.sock,id=0\", \"net_memif1,role=server,socket=$dir/out.sock,id=0\""
    devices=(net_memif0 net_memif1)
  else
    vdevs="" pci=true devices=("${dut_pci[@]}")
    extra=("\"-a\"" "\"${dut_pci[0]}\"" "\"-a\"" "\"${dut_pci[1]}\"")
  fi
  cat <<EOF
# Written by bench/scale.sh: dvrd with $w workers.
[eal]
main_core = $(cpu 0)
hugepages = $hugepages
memory_mb = $((256 + 64 * w))
file_prefix = "scale-dvrd"
pci = $pci
vdevs = [$vdevs]
extra_args = [$(IFS=,; echo "${extra[*]}")]

[dataplane]
idle = "$idle"

[control]
socket = "$dir/dvrd.ctl"

[log]
level = "warn"
EOF
  for ((i = 0; i < w; i++)); do
    printf '\n[[workers]]\ncore = %s\nrx = ["in", "out"]\n' "$(cpu $((1 + i)))"
  done
  for i in 0 1; do
    printf '\n[[ports]]\nname = "%s"\ndevice = "%s"\n' "${ports[$i]}" "${devices[$i]}"
  done
  cat <<EOF

[host]
name = "scale"
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

[[routers]]
name = "scale"

[[routers.interfaces]]
network = "blue"
address = "10.0.1.1/24"
mac = "$flowgen_dst_mac"

[[routers.interfaces]]
network = "red"
address = "10.0.2.1/24"
mac = "fa:16:3e:00:02:01"

[[routers.routes]]
prefix = "10.253.0.0/16"
via = "10.0.2.2"

[[instance_ports]]
network = "red"
ip = "10.0.2.2"
mac = "$gen_rx_mac"
host = "scale"
EOF
}

# testpmd's arguments for $1 workers: main lcore on cpu(0), forwarding lcores on
# cpu(1 + W + j), W queues per port.
testpmd_args() {
  local w=$1 j lcores="0@$(cpu 0)"
  for ((j = 0; j < w; j++)); do lcores+=",$((j + 1))@$(cpu $((1 + w + j)))"; done
  echo "--lcores=$lcores --main-lcore=0 --file-prefix=scale-gen"
  if [ ${#gen_pci[@]} -eq 0 ]; then
    echo "--no-pci"
    echo "--vdev=net_memif0,role=client,socket=$dir/in.sock,id=0,mac=02:00:00:00:0b:01"
    echo "--vdev=net_memif1,role=client,socket=$dir/out.sock,id=0,mac=$gen_rx_mac"
  else
    echo "-a ${gen_pci[0]} -a ${gen_pci[1]}"
  fi
  [ "$hugepages" = true ] || echo "--no-huge -m 1024"
  echo "--log-level=lib.eal:warning -- -i --disable-device-start --forward-mode=flowgen"
  echo "--nb-cores=$w --rxq=$w --txq=$w --burst=32 --rxd=1024 --txd=1024"
  echo "--total-num-mbufs=$((16384 * w)) --flowgen-flows=$flows --txpkts=64"
}

# testpmd's port-1 RX-packets in the last `show port stats all` answer of log $1.
forwarded_count() {
  awk '/NIC statistics for port/ {port = $6} port == 1 && /RX-packets:/ {n = $2} END {print n + 0}' "$1"
}

# Per-worker TX packets of dvrd now, space-separated.
worker_tx() {
  "$dvrctl" --socket "$dir/dvrd.ctl" --json stats |
    python3 -c 'import json,sys; print(" ".join(str(w["tx_packets"]) for w in json.load(sys.stdin)["snapshot"]["workers"]))'
}

# One trial with $1 workers: prints "workers shared forwarded_mpps share,share,..." (share of
# each worker in what dvrd sent).
trial() {
  local w=$1 log="$dir/testpmd-$1.log" dvrd_pid tp_pid before after fwd0 fwd1 q
  dvrd_config "$w" >"$dir/dvrd-$w.toml"
  rm -f "$dir/ready"
  "$dvrd" --config "$dir/dvrd-$w.toml" --ready-file "$dir/ready" >"$dir/dvrd-$w.log" 2>&1 &
  dvrd_pid=$!
  for _ in $(seq 100); do [ -e "$dir/ready" ] && break; sleep 0.2; done
  [ -e "$dir/ready" ] || { echo "scale: dvrd did not start, see $dir/dvrd-$w.log" >&2; kill "$dvrd_pid"; return 1; }
  # The arguments are words on purpose; line-buffered, so that the statistics asked for
  # mid-run reach the log at once.
  exec 3> >(exec stdbuf -oL "$testpmd" $(testpmd_args "$w") >"$log" 2>&1)
  tp_pid=$!
  {
    # flowgen makes a stream per port and queue; the streams that would send into dvrd's
    # "out" port are switched off by deferring port 0's RX and port 1's TX queues.
    for ((q = 0; q < w; q++)); do
      echo "port 0 rxq $q deferred_start on"
      echo "port 1 txq $q deferred_start on"
    done
    echo "port start all"
  } >&3
  sleep 3
  echo "start" >&3
  sleep "$warmup_s"
  echo "show port stats all" >&3
  sleep 0.5
  before=$(worker_tx)
  fwd0=$(forwarded_count "$log")
  sleep "$trial_s"
  echo "show port stats all" >&3
  sleep 0.5
  after=$(worker_tx)
  fwd1=$(forwarded_count "$log")
  echo "stop" >&3
  echo "quit" >&3
  exec 3>&-
  wait "$tp_pid" 2>/dev/null || true
  kill -INT "$dvrd_pid"
  wait "$dvrd_pid" || true
  python3 - "$w" "$((1 + 2 * w > ncpus))" "$fwd0" "$fwd1" "$trial_s" "$before" "$after" <<'EOF'
import sys
w, shared, f0, f1, secs = int(sys.argv[1]), sys.argv[2] == "1", int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
before, after = [int(x) for x in sys.argv[6].split()], [int(x) for x in sys.argv[7].split()]
sent = [a - b for a, b in zip(after, before)]
total = sum(sent) or 1
shares = ",".join(f"{s / total:.3f}" for s in sent)
print(w, int(shared), f"{(f1 - f0) / secs / 1e6:.3f}", shares)
EOF
}

# The table, from "workers shared mpps shares" lines.
report() {
  python3 -c '
import sys
rows = [l.split() for l in sys.stdin if l.strip()]
print("| workers | forwarded, Mpps | per-worker share | Mpps per worker | scaling efficiency |")
print("|---|---|---|---|---|")
base = None
for w, shared, mpps, shares in rows:
    w, mpps = int(w), float(mpps)
    base = base or mpps / w
    eff = mpps / (w * base) if base else 0.0
    note = " (shared CPUs)" if shared == "1" else ""
    spread = " / ".join(shares.split(","))
    print(f"| {w}{note} | {mpps:.2f} | {spread} | {mpps / w:.2f} | {eff:.2f} |")
'
}

rows=""
for w in $workers_list; do
  if [ "$w" -gt "$ncpus" ]; then
    echo "scale: $w workers skipped: $ncpus CPUs here (SCALE_CPUS=${SCALE_CPUS:-unset})" >&2
    continue
  fi
  if [ $((1 + 2 * w)) -gt "$ncpus" ]; then
    echo "scale: $w workers share CPUs with the generator ($((1 + 2 * w)) wanted, $ncpus here): its figures mean nothing" >&2
  fi
  row=$(trial "$w") || continue
  echo "scale: $row" >&2
  rows+="$row"$'\n'
done
[ -n "$rows" ] || { echo "scale: no worker count could run" >&2; exit 1; }
echo "dvrd scaling: testpmd flowgen, $flows flows, 64 B, ${trial_s} s trials, idle = $idle, hugepages = $hugepages"
printf '%s' "$rows" | report
