#!/usr/bin/env bash
# Builds DPDK's l3fwd example for the benchmark, from the sources of the installed DPDK
# (dpdk-doc: /usr/share/dpdk/examples), into bench/build/l3fwd/build/l3fwd.
#
# bench/l3fwd.patch is applied first:
#  - the requested RX offloads (checksum) are masked with the device's capabilities, the two
#    lines that let l3fwd start on virtual devices (memif has no offloads);
#  - the IPv4 LPM table holds 2M rules and 65536 tbl8 groups instead of 1024 and 256, so that
#    the benchmark's 1M-route table fits (routes come from a file: --rule_ipv4).
# It is run with --parse-ptype (software packet types), as virtual devices set none.
#   bench/build-l3fwd.sh [OUT_DIR]     (default: bench/build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${DPDK_EXAMPLES:-/usr/share/dpdk/examples}
out=${1:-$here/build}
[ -d "$src/l3fwd" ] || { echo "build-l3fwd: no $src/l3fwd (apt-get install dpdk-doc)" >&2; exit 1; }
stamp="$out/l3fwd/.source"
want="$(pkg-config --modversion libdpdk) $(sha256sum "$here/l3fwd.patch" | cut -c1-16)"
if [ -x "$out/l3fwd/build/l3fwd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
  echo "build-l3fwd: $out/l3fwd/build/l3fwd is up to date"
  exit 0
fi
rm -rf "$out/l3fwd" "$out/common"
mkdir -p "$out"
cp -r "$src/l3fwd" "$src/common" "$out/"
(cd "$out/l3fwd" && patch -p1 --quiet < "$here/l3fwd.patch")
# The example's Makefile builds with pkg-config and -I../common.
make -C "$out/l3fwd" --quiet >/dev/null
echo "$want" > "$stamp"
echo "build-l3fwd: built $out/l3fwd/build/l3fwd"
