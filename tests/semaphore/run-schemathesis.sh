#!/usr/bin/env bash
# Runs schemathesis with Semaphore's own api-docs.yml (2.16.14 excerpt in this directory) against a Semaphore API,
# e.g. the pvetoken lab's simulator.
#   usage: SEMAPHORE_API_TOKEN=... run-schemathesis.sh BASE_URL [extra schemathesis args]
# BASE_URL is the server root (http://127.0.0.1:PORT); the spec's basePath /api is appended.
# Checks: no 5xx, status codes / content types / response bodies as the spec documents them.
# Left out: logout and token expiry (they would end the run's own session). Fixed seed: reruns are reproducible.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
base=${1:?usage: run-schemathesis.sh BASE_URL}
shift
: "${SEMAPHORE_API_TOKEN:?set SEMAPHORE_API_TOKEN}"
st=$(command -v schemathesis || true)
if [ -z "$st" ] && [ -n "${PVETOKEN_TEST_VENV:-}" ]; then st="$PVETOKEN_TEST_VENV/bin/schemathesis"; fi
[ -x "$st" ] || { echo "schemathesis not found: run scripts/install-test-deps.sh and source scripts/test-env.sh" >&2; exit 127; }
# Known differences between the published api-docs and Semaphore's Go handlers, which the simulator follows:
# - `password` and `env` of an environment are Go *string and come back as JSON null when unset: the excerpt is
#   given `x-nullable: true` on those two fields in a temporary copy (the vendored file stays unchanged);
# - error answers (400/401/403/404/409) are undocumented and most have no body and no Content-Type (Go's bare
#   w.WriteHeader): status_code_conformance and content_type_conformance are therefore not run; the schema of every
#   documented answer is.
py=$(dirname "$st")/python
[ -x "$py" ] || py=python3
spec=$(mktemp --suffix=.yml)
trap 'rm -f "$spec"' EXIT
"$py" - "$here/api-docs.yml" "$spec" <<'PY'
import sys, yaml
doc = yaml.safe_load(open(sys.argv[1]))
for field in ("password", "env"):
    doc["definitions"]["Environment"]["properties"][field]["x-nullable"] = True
yaml.safe_dump(doc, open(sys.argv[2], "w"))
PY
"$st" run "$spec" \
  --url "$base/api" \
  --header "Authorization: Bearer $SEMAPHORE_API_TOKEN" \
  --checks not_a_server_error,response_schema_conformance \
  --exclude-path /auth/logout \
  --exclude-path '/user/tokens/{api_token_id}' \
  --phases examples,coverage,fuzzing \
  --max-examples "${SCHEMATHESIS_MAX_EXAMPLES:-25}" \
  --seed 20260401 \
  --workers 1 \
  --no-color \
  "$@"
