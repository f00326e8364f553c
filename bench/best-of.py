#!/usr/bin/env python3
"""Wall time of a command, process start to exit: best and median of N runs, printed next to a target.

usage: bench/best-of.py RUNS TARGET_MS LABEL -- COMMAND [ARGS...]   (its stdout and stderr go to /dev/null)
Uses hyperfine when installed (its figures, then the same one-line summary); otherwise time.perf_counter around
subprocess.run, which adds Python's own fork/exec (about 1 ms) to every run.
"""
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time


def main() -> int:
    runs, target, label = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
    command = sys.argv[sys.argv.index("--") + 1:]
    if shutil.which("hyperfine"):
        with tempfile.NamedTemporaryFile(suffix=".json") as export:
            subprocess.run(["hyperfine", "-N", "--warmup", "2", "--runs", str(runs), "--export-json", export.name,
                            "--output", "null", subprocess.list2cmdline(command)], check=True)
            times = json.load(open(export.name))["results"][0]["times"]
    else:
        subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)  # warm-up: page cache, binary
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
            times.append(time.perf_counter() - start)
    best, median = min(times) * 1e3, statistics.median(times) * 1e3
    verdict = "met" if best <= target else "NOT met"
    print(f"{label}: best {best:.1f} ms, median {median:.1f} ms over {len(times)} runs "
          f"(target {target:g} ms: {verdict})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
