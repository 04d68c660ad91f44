#!/usr/bin/env bash
# Reserves 2 MiB hugepages and mounts hugetlbfs if that is not done yet. Run as root.
#   scripts/hugepages.sh [PAGES]   (default 1024 pages = 2 GiB)
# Prints the number of free hugepages. Never fails the caller: dvrd can run with `--no-huge`
# memory (config `eal.hugepages = false`) when the kernel cannot give pages.
set -u
pages=${1:-1024}
have=$(cat /proc/sys/vm/nr_hugepages 2>/dev/null || echo 0)
if [ "$have" -lt "$pages" ]; then
  echo "$pages" > /proc/sys/vm/nr_hugepages 2>/dev/null || true
fi
# /proc/mounts: device, mount point, type, ...
if ! awk '$2 == "/dev/hugepages" && $3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts; then
  mkdir -p /dev/hugepages
  mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
fi
awk '/HugePages_Free/ {print "hugepages: " $2 " free"}' /proc/meminfo
