#!/usr/bin/env bash
# Makes sure Docker has a `debian:12` image, the base of the Dockerfile. Run as root.
#
#   scripts/docker-base-image.sh [TAG]   (default debian:12)
#
# On a machine that reaches Docker Hub this is a pull. Where no image registry is reachable
# (the project's CI machines reach Debian's package mirror only) it builds the image with
# Debian's own tools instead: debootstrap's minimal bookworm from the mirror apt already uses,
# imported into Docker (about 25 s). The result is a plain Debian 12 root file system like the
# official image, without its trimming.
set -euo pipefail
tag=${1:-debian:12}

if docker image inspect "$tag" >/dev/null 2>&1; then
  exit 0
fi
# A registry that does not answer fails in well under a second; one that is slow is given a
# minute before debootstrap takes over.
if timeout 60 docker pull -q "$tag" >/dev/null 2>&1; then
  echo "docker-base-image: pulled $tag"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "docker-base-image: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }

# The URI of the Debian archive apt already uses: deb822 `URIs:` lines (sources.list.d/*.sources)
# or one-line `deb URI SUITE ...` entries, leaving the security archive aside.
mirror_of_apt() {
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    if [ -f "$f" ]; then awk '$1 == "URIs:" && $2 !~ /security/ { print $2; exit }' "$f"; fi
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    if [ -f "$f" ]; then
      awk '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { if ($i !~ /security/) print $i; break } }' "$f"
    fi
  done
}
mirror=$(mirror_of_apt | head -n1)
mirror=${mirror:-http://deb.debian.org/debian}

root=$(mktemp -d /var/tmp/dvrd-debootstrap.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "docker-base-image: no $tag to pull; debootstrap bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 || {
  tail -n 20 "$root.log" >&2; rm -f "$root.log"; exit 1
}
rm -f "$root.log"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
tar -C "$root" --numeric-owner -c . | docker import --change 'CMD ["bash"]' - "$tag" >/dev/null
echo "docker-base-image: imported $tag"
