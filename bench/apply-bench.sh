#!/usr/bin/env bash
# plan/apply across a fleet, with wall time and request counts (from each lab's pveproxy-format access.log):
#   A. 100 declared tokens on one lab: plan, apply, plan again (no changes);
#   B. 3 tokens on each of 20 labs (--parallel 20) against 3 tokens on 1 lab: the fleet plan should cost at most
#      2x the single-lab plan (issue #21's target), and every token the same requests as on one lab.
# Usage: bench/apply-bench.sh   (release build; PVETOKEN_BIN=path to use another binary; LABS=20 TOKENS=100)
set -euo pipefail
cd "$(dirname "$0")/.."
LABS="${LABS:-20}"
TOKENS="${TOKENS:-100}"
WORK="$(mktemp -d)"
PIDS=()
trap 'kill "${PIDS[@]}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
if [ -z "${PVETOKEN_BIN:-}" ]; then cargo build --release -p pvetoken -q; PVETOKEN_BIN=target/release/pvetoken; fi
BIN="$(realpath "$PVETOKEN_BIN")"

start_lab() { # NAME
  mkdir -p "$WORK/$1"
  "$BIN" lab serve --ready-file "$WORK/$1/ready.json" --state-dir "$WORK/$1/state" 2>"$WORK/$1/lab.log" &
  PIDS+=($!)
}
wait_ready() { for _ in $(seq 1 300); do [ -s "$WORK/$1/ready.json" ] && return; sleep 0.1; done; echo "lab $1 did not start" >&2; exit 1; }
requests() { if [ -f "$WORK/$1/state/access.log" ]; then wc -l < "$WORK/$1/state/access.log"; else echo 0; fi; }
ms() { echo $(( ($2 - $1) / 1000000 )); }

# declaration.py NAME... > toml: one cluster per lab, COUNT tokens per cluster (profiles cycled).
declare_fleet() { # COUNT NAME...
  python3 - "$WORK" "$@" <<'PY'
import json, os, sys
work, count, names = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
profiles = ["packer", "ansible", "terraform", "readonly"]
out = []
for name in names:
    ready = json.load(open(f"{work}/{name}/ready.json"))
    pw = f"{work}/{name}/root.pass"
    if not os.path.exists(pw):
        fd = os.open(pw, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, ready["root_password"].encode()); os.close(fd)
    out.append(f'[clusters.{name}]\nurl = "{ready["pve_url"]}"\nca_file = "{ready["ca_file"]}"\npassword_file = "{pw}"\n')
    for i in range(count):
        p = profiles[i % len(profiles)]
        out.append(f'[[tokens]]\ncluster = "{name}"\nid = "automation@pve!{p}-{i:03d}"\nprofile = "{p}"\n'
                   f'token_file = "{work}/{name}/tokens/{p}-{i:03d}.env"\nexpire = "90d"\n')
print("\n".join(out))
PY
}
timed() { # LABEL COMMAND...
  local start end; start=$(date +%s%N); "${@:2}" >"$WORK/out.txt" 2>&1 || { cat "$WORK/out.txt" >&2; }; end=$(date +%s%N)
  printf '%-48s %6d ms\n' "$1" "$(ms "$start" "$end")"
}

echo "== A. $TOKENS tokens on one lab"
start_lab one; wait_ready one
declare_fleet "$TOKENS" one > "$WORK/one.toml"
before=$(requests one)
timed "plan (nothing exists yet)" "$BIN" plan -f "$WORK/one.toml"
plan_requests=$(( $(requests one) - before )); before=$(requests one)
timed "apply --auto-approve" "$BIN" apply -f "$WORK/one.toml" --auto-approve
apply_requests=$(( $(requests one) - before )); before=$(requests one)
timed "plan again (no changes)" "$BIN" plan -f "$WORK/one.toml" --detailed-exitcode
again_requests=$(( $(requests one) - before ))
grep -q "0 to add, 0 to change, 0 to destroy" "$WORK/out.txt" || { echo "plan after apply is not empty:" >&2; cat "$WORK/out.txt" >&2; exit 1; }
echo "requests: plan $plan_requests, apply $apply_requests ($(( apply_requests / TOKENS )) per token), plan again $again_requests ($(( again_requests / TOKENS )) per token)"

echo "== B. 3 tokens on each of $LABS labs, against 3 tokens on one lab"
names=()
for i in $(seq 1 "$LABS"); do start_lab "lab$i"; names+=("lab$i"); done
for name in "${names[@]}"; do wait_ready "$name"; done
declare_fleet 3 lab1 > "$WORK/single.toml"
declare_fleet 3 "${names[@]}" > "$WORK/fleet.toml"
s0=$(date +%s%N); "$BIN" plan -f "$WORK/single.toml" >/dev/null; s1=$(date +%s%N)
f0=$(date +%s%N); "$BIN" plan -f "$WORK/fleet.toml" --parallel "$LABS" >/dev/null; f1=$(date +%s%N)
single=$(ms "$s0" "$s1"); fleet=$(ms "$f0" "$f1")
echo "plan, 1 lab x 3 tokens: $single ms; $LABS labs x 3 tokens: $fleet ms; ratio $(python3 -c "print(round($fleet/$single, 2))") (target <= 2)"
before=0; for name in "${names[@]}"; do before=$(( before + $(requests "$name") )); done
timed "apply, $LABS labs x 3 tokens (--parallel $LABS)" "$BIN" apply -f "$WORK/fleet.toml" --auto-approve --parallel "$LABS"
after=0; for name in "${names[@]}"; do after=$(( after + $(requests "$name") )); done
echo "requests: apply $(( after - before )) ($(( (after - before) / (3 * LABS) )) per token)"
timed "plan again, $LABS labs (no changes)" "$BIN" plan -f "$WORK/fleet.toml" --parallel "$LABS" --detailed-exitcode
grep -q "0 to add, 0 to change, 0 to destroy" "$WORK/out.txt" || { echo "fleet plan after apply is not empty" >&2; cat "$WORK/out.txt" >&2; exit 1; }
