#!/usr/bin/env bash
# Permission-engine benchmark (issue #21): in-process parse / engine build / queries per second (bench binary),
# then the wall time of `pvetoken acl eval --batch` over the 10k queries of shared/bench/gen_big_usercfg.py OUT 1.
# Targets: parse <= 10 ms, engine build <= 5 ms (printed by the bench binary); whole batch <= 50 ms.
# Usage: bench/acl-bench.sh [OUT_DIR] [RUNS]   (needs python3; uses hyperfine when installed, else best of RUNS)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
runs="${2:-20}"
gen="${PVETOKEN_BENCH_GEN:-../shared/bench/gen_big_usercfg.py}"
python3 "$gen" "$out" 1
PVETOKEN_BENCH_DIR="$out" cargo bench -q -p pvetoken-acl --bench eval
cargo build --release -q -p pvetoken
bin=target/release/pvetoken
python3 bench/best-of.py "$runs" 50 "acl eval --batch of $(wc -l < "$out/queries.jsonl") queries (process start to exit)" \
  -- "$bin" acl eval --user-cfg "$out/user.cfg" --batch "$out/queries.jsonl"
