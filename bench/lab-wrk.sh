#!/usr/bin/env bash
# Requests/s of token-authenticated GET /api2/json/access/permissions?path=/vms with wrk (2 threads, 64
# connections, 10 s) against `pvetoken lab serve` (release build) and against fakepve (PyPI) for comparison.
# Needs: wrk (apt-get install -y wrk), python3-venv. Usage: bench/lab-wrk.sh [DURATION]
# PVETOKEN_BIN=path uses that pvetoken binary instead of building target/release/pvetoken.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-10s}"
WORK="$(mktemp -d)"
trap 'kill "${LAB_PID:-}" "${FAKE_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
command -v wrk >/dev/null || { echo "wrk missing: apt-get install -y wrk" >&2; exit 2; }

if [ -n "${PVETOKEN_BIN:-}" ]; then
  "$PVETOKEN_BIN" lab serve --ready-file "$WORK/ready.json" --state-dir "$WORK/state" 2>"$WORK/lab.log" &
elif cargo build --release -p pvetoken -q 2>"$WORK/build.log"; then
  ./target/release/pvetoken lab serve --ready-file "$WORK/ready.json" --state-dir "$WORK/state" 2>"$WORK/lab.log" &
else
  echo "(pvetoken does not build right now; using the pvetoken-lab serve example, same server code)" >&2
  cargo build --release -p pvetoken-lab --example serve -q
  ./target/release/examples/serve "$WORK/ready.json" "$WORK/state" 2>"$WORK/lab.log" &
fi
LAB_PID=$!
for _ in $(seq 1 300); do [ -s "$WORK/ready.json" ] && break; sleep 0.1; done
URL=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["pve_url"])' "$WORK/ready.json")
PW=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["root_password"])' "$WORK/ready.json")
CA=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["ca_file"])' "$WORK/ready.json")
LOGIN=$(curl -sS --cacert "$CA" --data-urlencode username=root@pam --data-urlencode "password=$PW" "$URL/api2/json/access/ticket")
TICKET=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["data"]["ticket"])' "$LOGIN")
CSRF=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["data"]["CSRFPreventionToken"])' "$LOGIN")
api() { curl -sS --cacert "$CA" -b "PVEAuthCookie=$TICKET" -H "CSRFPreventionToken: $CSRF" "$@"; }
api -X POST --data userid=bench@pve "$URL/api2/json/access/users" >/dev/null
api -X PUT --data path=/vms --data roles=PVEVMAdmin --data users=bench@pve "$URL/api2/json/access/acl" >/dev/null
TOKEN=$(api -X POST --data privsep=1 "$URL/api2/json/access/users/bench@pve/token/wrk")
SECRET=$(python3 -c 'import json,sys;print(json.loads(sys.argv[1])["data"]["value"])' "$TOKEN")
api -X PUT --data path=/vms --data roles=PVEAuditor --data tokens='bench@pve!wrk' "$URL/api2/json/access/acl" >/dev/null
HEADER="Authorization: PVEAPIToken=bench@pve!wrk=$SECRET"
curl -sS --cacert "$CA" -H "$HEADER" "$URL/api2/json/access/permissions?path=/vms"; echo
echo "== pvetoken lab ($URL)"
wrk -t2 -c64 -d"$DURATION" -H "$HEADER" "$URL/api2/json/access/permissions?path=/vms" | tee "$WORK/lab.txt"
kill "$LAB_PID"; wait "$LAB_PID" 2>/dev/null || true; LAB_PID=

VENV="${FAKEPVE_VENV:-$PWD/.venv-fakepve}"
[ -x "$VENV/bin/python" ] || { python3 -m venv "$VENV" && "$VENV/bin/pip" install -q 'fakepve[crypto]'; }
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
cat > "$WORK/fake.py" <<'PY'
# fakepve with one API token (its CLI cannot create tokens, only its Python API can).
import asyncio, sys
from fakepve import FakePve

async def main(port, cert, key):
    pve = FakePve(user="root@pam", password="secret", host="127.0.0.1", port=port)
    pve.time_scale = 0
    pve.apitokens["packer@pve!ci"] = "11111111-2222-3333-4444-555555555555"
    pve.grant("packer@pve!ci", "/vms", "VM.Audit")
    await pve.start(cert, key)
    await asyncio.Event().wait()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
PY
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/fk.pem" -out "$WORK/fc.pem" -days 2 -subj /CN=127.0.0.1 \
  -addext "subjectAltName=IP:127.0.0.1" 2>/dev/null
"$VENV/bin/python" "$WORK/fake.py" "$PORT" "$WORK/fc.pem" "$WORK/fk.pem" >"$WORK/fake.log" 2>&1 &
FAKE_PID=$!
for _ in $(seq 1 100); do curl -sk "https://127.0.0.1:$PORT/api2/json/version" >/dev/null 2>&1 && break; sleep 0.2; done
FHEADER="Authorization: PVEAPIToken=${FAKEPVE_TOKEN:-packer@pve!ci=11111111-2222-3333-4444-555555555555}"
curl -sk -H "$FHEADER" "https://127.0.0.1:$PORT/api2/json/access/permissions?path=/vms"; echo
echo "== fakepve (https://127.0.0.1:$PORT)"
wrk -t2 -c64 -d"$DURATION" -H "$FHEADER" "https://127.0.0.1:$PORT/api2/json/access/permissions?path=/vms" | tee "$WORK/fake.txt"
echo "== summary"
echo "pvetoken lab: $(grep Requests/sec "$WORK/lab.txt")"
echo "fakepve:      $(grep Requests/sec "$WORK/fake.txt")"
