#!/usr/bin/env bash
# Removes what an interrupted test or demo left behind: namespaces and links whose names start
# with the prefixes the tests (dvt) and the demo (dvd) use, their dvrd processes, and their DPDK
# runtime files. Other dvrd processes on the machine are left alone.
set -u
for pid in $(pgrep -x dvrd 2>/dev/null); do
  if tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qE '(/dvt|/dvd|dvrd-e2e|dvr-demo)'; then
    kill -TERM "$pid" 2>/dev/null
  fi
done
sleep 1
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(dvt|dvd)' ); do
  ip netns del "$ns" 2>/dev/null
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(dvt|dvd)'); do
  ip link del "$link" 2>/dev/null
done
rm -rf /var/run/dpdk/dvt* /var/run/dpdk/dvd* 2>/dev/null
rm -f /dev/hugepages/dvt* /dev/hugepages/dvd* 2>/dev/null
rm -f /run/dvrd-e2e/sockets/dvt* 2>/dev/null
exit 0
