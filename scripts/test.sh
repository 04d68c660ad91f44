#!/usr/bin/env bash
# Every test: formatting and lints, unit and property tests of every crate, DPDK tests of the
# bindings and the workers, a packet-generator smoke run through dvrd (a perf test), end-to-end
# tests of the real binaries in network namespaces and a short fuzzing run. Run as root
# (namespaces, DPDK). Tests that would skip themselves for a missing prerequisite fail here.
# Stages print their duration; the first failure stops the run.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "test: run as root (network namespaces, DPDK)" >&2
  exit 1
fi

stage() {
  local name=$1; shift
  local start=$SECONDS
  echo "==> $name"
  "$@"
  echo "<== $name: $((SECONDS - start)) s"
}

# Leftovers of an interrupted run must not break this one.
scripts/netns-cleanup.sh >/dev/null 2>&1 || true

# Tests that need root, DPDK or a kernel tool skip themselves elsewhere; here they must run.
export DVRD_TEST_STRICT=1

stage "format" cargo fmt --all -- --check
stage "clippy" cargo clippy --workspace --all-targets -- -D warnings
stage "build release binaries" cargo build --release --workspace --bins
stage "unit and property tests" cargo test --workspace --exclude dvr-router
stage "daemon unit tests" cargo test -p dvr-router --lib --bins
e2e=$(ls tests/e2e_*.rs 2>/dev/null | xargs -n1 basename | sed 's/\.rs$//' | sed 's/^/--test /' | tr '\n' ' ')
if [ -n "$e2e" ]; then
  # shellcheck disable=SC2086
  stage "end-to-end tests" cargo test --release -p dvr-router $e2e -- --test-threads=1
fi
stage "fuzzing (short)" scripts/fuzz.sh 10
echo "all tests passed"
