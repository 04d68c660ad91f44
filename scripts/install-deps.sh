#!/usr/bin/env bash
# Installs what building, running and testing dvrd needs on Debian 12, and nothing that is
# already there. Idempotent; run as root. Used by the Makefile, CI and the Dockerfile.
#
#   scripts/install-deps.sh            build + runtime + test tools
#   scripts/install-deps.sh --build    build + runtime (the Dockerfile's from-source stage)
#   scripts/install-deps.sh --runtime  only what a running dvrd needs (a host running the
#                                      binaries of a build tree; the Debian package's
#                                      Depends say the same to apt)
set -euo pipefail

mode=${1:-all}
# protobuf-compiler and libprotobuf-dev (google/protobuf/*.proto): the etcd client's build
# generates its gRPC code from the etcd API's .proto files.
build_pkgs=(dpdk dpdk-dev libdpdk-dev dpdk-doc libclang-dev pkg-config libnuma-dev
  build-essential protobuf-compiler libprotobuf-dev)
runtime_pkgs=(dpdk iproute2 libnuma1 ca-certificates)
# etcd-server and etcd-client: the fleet tests run a real etcd and drive it with etcdctl. A
# host running dvrd only talks to an etcd somewhere else, so the runtime list has neither.
# traceroute: the floating IP tests trace through the NAT from both sides, as a user would.
# docker.io and debootstrap: the container test builds the image and runs dvrd in it; no
# image registry is reachable from CI, so the debian:12 base is made with debootstrap.
test_pkgs=(iproute2 iputils-ping iputils-arping tcpdump iperf3 procps psmisc socat ethtool bridge-utils make
  python3 valgrind kmod etcd-server etcd-client openssl traceroute docker.io debootstrap)

case "$mode" in
  --runtime) want=("${runtime_pkgs[@]}") ;;
  --build) want=("${build_pkgs[@]}" "${runtime_pkgs[@]}") ;;
  all|--all) want=("${build_pkgs[@]}" "${runtime_pkgs[@]}" "${test_pkgs[@]}") ;;
  *) echo "usage: $0 [--build|--runtime]" >&2; exit 2 ;;
esac

if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps: run as root (it installs Debian packages)" >&2
  exit 1
fi

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts the packaged etcd as a service on install; the tests and the demo start
  # their own on other ports, and a dvrd host only talks to the fleet's etcd elsewhere.
  if printf '%s\n' "${missing[@]}" | grep -qx etcd-server && command -v systemctl >/dev/null 2>&1; then
    systemctl disable --now etcd >/dev/null 2>&1 || true
  fi
fi

if [ "$mode" != "--runtime" ] && ! command -v cargo >/dev/null 2>&1; then
  if [ -x "$HOME/.cargo/bin/cargo" ]; then
    echo "install-deps: cargo is in $HOME/.cargo/bin; add it to PATH" >&2
  else
    echo "install-deps: no Rust toolchain; install it with rustup (https://rustup.rs)" >&2
    exit 1
  fi
fi
echo "install-deps: ok"
