#!/usr/bin/env bash
# The cost of a short-lived token per job (issue #17): `pvetoken exec --profile P -- true` against one lab, as an
# administrator (password) and as a minter (`create --minter`, then `exec --minter`): requests per job (from the
# lab's pveproxy-format access.log) and the wall time exec adds to the job (best and median of RUNS).
# Usage: bench/exec-bench.sh [RUNS]   (default 20; release build; PVETOKEN_BIN=path to use another binary)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-20}"
WORK="$(mktemp -d)"
LAB_PID=""
trap '[ -n "$LAB_PID" ] && kill "$LAB_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
if [ -z "${PVETOKEN_BIN:-}" ]; then cargo build --release -p pvetoken -q; PVETOKEN_BIN=target/release/pvetoken; fi
BIN="$(realpath "$PVETOKEN_BIN")"

"$BIN" lab serve --ready-file "$WORK/ready.json" --state-dir "$WORK/state" 2>"$WORK/lab.log" &
LAB_PID=$!
for _ in $(seq 1 300); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
field() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$WORK/ready.json" "$1"; }
URL="$(field pve_url)"
CA="$(field ca_file)"
PVETOKEN_PASSWORD="$(field root_password)"
export PVETOKEN_PASSWORD
requests() { wc -l < "$WORK/state/access.log"; }

# MODE RUNS ARGS...: one line of figures for `exec ARGS -- true`, RUNS times.
measure() {
  local mode="$1" runs="$2"
  shift 2
  local before after times=()
  before="$(requests)"
  for _ in $(seq 1 "$runs"); do
    local start end
    start="$(date +%s%N)"
    "$@" --url "$URL" --ca-file "$CA" --profile ansible -- true 2>/dev/null
    end="$(date +%s%N)"
    times+=($(( (end - start) / 1000 )))
  done
  after="$(requests)"
  python3 - "$mode" "$runs" "$before" "$after" "${times[@]}" <<'PY'
import statistics, sys
mode, runs, before, after, *times = sys.argv[1:]
times = sorted(int(t) / 1000 for t in times)
print(f"{mode}: {(int(after) - int(before)) / int(runs):.1f} requests per job; exec adds best {times[0]:.1f} ms, "
      f"median {statistics.median(times):.1f} ms per job ({runs} jobs of `true`)")
PY
}

# A job of `true` alone, for comparison.
start="$(date +%s%N)"; for _ in $(seq 1 "$RUNS"); do true; done; end="$(date +%s%N)"
echo "true alone: $(( (end - start) / RUNS / 1000 )) us per run"

"$BIN" exec --url "$URL" --ca-file "$CA" --profile ansible -- true   # warm: role and user exist from here on
measure "administrator (password)" "$RUNS" "$BIN" exec

"$BIN" create --minter --profiles ansible --token-file "$WORK/minter.env" --url "$URL" --ca-file "$CA" >/dev/null
PVETOKEN_PASSWORD="" PVETOKEN_ADMIN_TOKEN_FILE="$WORK/minter.env" measure "minter (token file)" "$RUNS" "$BIN" exec --minter
