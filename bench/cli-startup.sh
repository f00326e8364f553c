#!/usr/bin/env bash
# Start-up cost of the CLI: wall time of `pvetoken --version` (target < 5 ms), min and median of N runs.
# Usage: bench/cli-startup.sh [RUNS]   (PVETOKEN_BIN=path to bench a given binary; uses hyperfine when installed)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-200}"
bin="${PVETOKEN_BIN:-target/release/pvetoken}"
[ -n "${PVETOKEN_BIN:-}" ] || cargo build --release -q -p pvetoken
if command -v hyperfine >/dev/null; then
  exec hyperfine --warmup 5 --runs "$runs" -N "$bin --version"
fi
python3 - "$bin" "$runs" <<'PY'
import subprocess, sys, time
binary, runs = sys.argv[1], int(sys.argv[2])
times = []
for _ in range(runs):
    start = time.perf_counter()
    subprocess.run([binary, "--version"], stdout=subprocess.DEVNULL, check=True)
    times.append(time.perf_counter() - start)
times.sort()
print(f"{binary} --version over {runs} runs: min {times[0]*1e3:.2f} ms, median {times[runs//2]*1e3:.2f} ms "
      "(includes Python's own process spawn)")
PY
