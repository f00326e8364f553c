#!/usr/bin/env bash
# Permission-engine benchmark: parse time and in-process queries/s (bench binary), then the wall time of
# `pvetoken acl eval --batch` over the 10k queries of shared/bench/gen_big_usercfg.py OUT 1.
# Usage: bench/acl-bench.sh [OUT_DIR]   (needs python3; uses hyperfine when installed)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-$(mktemp -d)}"
gen="${PVETOKEN_BENCH_GEN:-../shared/bench/gen_big_usercfg.py}"
python3 "$gen" "$out" 1
PVETOKEN_BENCH_DIR="$out" cargo bench -p pvetoken-acl --bench eval
cargo build --release -p pvetoken
bin=target/release/pvetoken
if command -v hyperfine >/dev/null; then
  hyperfine --warmup 2 "$bin acl eval --user-cfg $out/user.cfg --batch $out/queries.jsonl > /dev/null"
else
  best=""
  for _ in 1 2 3 4 5; do
    start=$(date +%s%N)
    "$bin" acl eval --user-cfg "$out/user.cfg" --batch "$out/queries.jsonl" > /dev/null
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best=$ms; fi
  done
  echo "CLI --batch over $(wc -l < "$out/queries.jsonl") queries: best of 5 = ${best} ms"
fi
