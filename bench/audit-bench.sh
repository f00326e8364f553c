#!/usr/bin/env bash
# Benchmark: `pvetoken audit` offline on the large generated configuration (2k users, ~3k tokens, 300 groups,
# 200 pools, 20k ACL entries; ../shared/bench/gen_big_usercfg.py scale 1). Target: under 1 s (issue 8).
#
# usage: bench/audit-bench.sh [RUNS]   (default 5; prints every run's wall time, the best and the median)
# env:   GEN=path/to/gen_big_usercfg.py (default /work/shared/bench/gen_big_usercfg.py), OUT=dir (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${1:-5}
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

times=()
for _ in $(seq "$RUNS"); do
  start=$(date +%s.%N)
  "$BIN" audit --user-cfg "$CFG" --output json --fail-on none > /dev/null
  end=$(date +%s.%N)
  times+=("$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.3f", b - a }')")
done
printf 'runs (s): %s\n' "${times[*]}"
printf '%s\n' "${times[@]}" | sort -n | awk '{ a[NR] = $1 } END {
  printf "best %.3f s, median %.3f s (target < 1 s)\n", a[1], a[int((NR + 1) / 2)] }'
