#!/usr/bin/env bash
# Runs every fuzz target of router-core for SECONDS seconds each (default 10).
# cargo-fuzz needs nightly features; RUSTC_BOOTSTRAP=1 enables them on the stable toolchain.
set -euo pipefail
cd "$(dirname "$0")/../router-core/fuzz"
seconds=${1:-10}
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install --locked cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz
fi
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O >/dev/null
for target in $(cargo fuzz list); do
  corpus="corpus/$target"
  mkdir -p "$corpus"
  seeds=()
  [ -d "seeds/$target" ] && seeds=("seeds/$target")
  echo "fuzz: $target for ${seconds}s"
  cargo fuzz run -O "$target" "$corpus" "${seeds[@]}" -- -max_total_time="$seconds" -print_final_stats=0 2>&1 | tail -1
done
