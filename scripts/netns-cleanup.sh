#!/usr/bin/env bash
# Removes what an interrupted test or demo left behind: dvrd processes, namespaces and links
# whose names start with the prefixes the tests and the demo use, and DPDK runtime files.
set -u
pkill -TERM -x dvrd 2>/dev/null && sleep 1
pkill -KILL -x dvrd 2>/dev/null
for ns in $(ip netns list 2>/dev/null | awk '{print $1}' | grep -E '^(dvt|dvd)' ); do
  ip netns del "$ns" 2>/dev/null
done
for link in $(ip -o link show 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | grep -E '^(dvt|dvd)'); do
  ip link del "$link" 2>/dev/null
done
rm -rf /var/run/dpdk/dvt* /var/run/dpdk/dvd* 2>/dev/null
rm -f /dev/hugepages/dvt* /dev/hugepages/dvd* 2>/dev/null
exit 0
