#!/usr/bin/env bash
# Benchmark: `pvetoken audit` offline on the large generated configuration (2k users, ~3k tokens, 300 groups,
# 200 pools, 20k ACL entries; ../shared/bench/gen_big_usercfg.py scale 1). Targets (issue #21): <= 150 ms and
# <= 1.5x the 10k `acl eval --batch` on the same file (both measured here, same way).
#
# usage: bench/audit-bench.sh [RUNS]   (default 10; best and median; hyperfine when installed)
# env:   GEN=path/to/gen_big_usercfg.py (default /work/shared/bench/gen_big_usercfg.py), OUT=dir (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-10}
GEN=${GEN:-/work/shared/bench/gen_big_usercfg.py}
OUT=${OUT:-$(mktemp -d)}
[ -f "$GEN" ] || { echo "audit-bench: generator not found: $GEN (set GEN=...)" >&2; exit 2; }

python3 "$GEN" "$OUT" 1 >&2
cargo build --release -q -p pvetoken
BIN=target/release/pvetoken
CFG=$OUT/user.cfg

# One run to warm the page cache and report the size of the result.
"$BIN" audit --user-cfg "$CFG" --output json --fail-on none > "$OUT/report.json"
python3 - "$OUT/report.json" <<'PY' >&2
import json, sys
r = json.load(open(sys.argv[1]))
print(f"report: {len(r['tokens'])} tokens, {len(r['findings'])} findings {r['counts']}, "
      f"{sum(len(t['access']) for t in r['tokens'])} access lines")
PY

batch=$(python3 bench/best-of.py "$RUNS" 50 "acl eval --batch (10k queries)" \
  -- "$BIN" acl eval --user-cfg "$CFG" --batch "$OUT/queries.jsonl" | tee /dev/stderr)
audit=$(python3 bench/best-of.py "$RUNS" 150 "audit --user-cfg (text)" \
  -- "$BIN" audit --user-cfg "$CFG" --fail-on none | tee /dev/stderr)
python3 bench/best-of.py "$RUNS" 150 "audit --user-cfg --output json" \
  -- "$BIN" audit --user-cfg "$CFG" --output json --fail-on none
best() { sed -E 's/.*best ([0-9.]+) ms.*/\1/' <<<"$1"; }
awk -v a="$(best "$audit")" -v b="$(best "$batch")" 'BEGIN {
  r = a / b; printf "audit / batch = %.2f (target <= 1.5: %s)\n", r, (r <= 1.5 ? "met" : "NOT met") }'
