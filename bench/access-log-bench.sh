#!/usr/bin/env bash
# Benchmark (issue #21): `pvetoken learn --access-log` and `pvetoken audit --user-cfg --access-log` over a
# generated pveproxy access log of LINES lines (default 1,000,000). Target: each <= 2 s; memory bounded by the
# distinct calls, not the lines (peak RSS printed by GNU time when installed).
#
# usage: bench/access-log-bench.sh [LINES] [RUNS]   (default 1000000 lines, 3 runs; hyperfine when installed)
# env:   GEN=path/to/gen_big_usercfg.py (default /work/shared/bench/gen_big_usercfg.py), OUT=dir (default a temp dir)
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
RUNS=${2:-3}
GEN=${GEN:-/work/shared/bench/gen_big_usercfg.py}
OUT=${OUT:-$(mktemp -d)}
python3 "$GEN" "$OUT" 1 >&2
python3 bench/gen-access-log.py "$OUT/access.log" "$LINES" --user-cfg "$OUT/user.cfg" >&2
cargo build --release -q -p pvetoken
BIN=target/release/pvetoken
TOKEN=$(awk 'NR == 1 { print $3 }' "$OUT/access.log")

python3 bench/best-of.py "$RUNS" 2000 "learn --access-log ($LINES lines, --token $TOKEN)" \
  -- "$BIN" --quiet learn --access-log "$OUT/access.log" --token "$TOKEN"
python3 bench/best-of.py "$RUNS" 2000 "audit --user-cfg --access-log ($LINES lines)" \
  -- "$BIN" audit --user-cfg "$OUT/user.cfg" --access-log "$OUT/access.log" --output json --fail-on none
if [ -x /usr/bin/time ]; then
  /usr/bin/time -f "learn peak RSS: %M KB" "$BIN" --quiet learn --access-log "$OUT/access.log" --token "$TOKEN" \
    > /dev/null 2> >(grep 'peak RSS' >&2)
  /usr/bin/time -f "audit --access-log peak RSS: %M KB" "$BIN" audit --user-cfg "$OUT/user.cfg" \
    --access-log "$OUT/access.log" --output json --fail-on none > /dev/null 2> >(grep 'peak RSS' >&2)
fi
