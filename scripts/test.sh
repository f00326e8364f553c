#!/usr/bin/env bash
# The whole test suite, on a fresh Debian machine: install what the tests need, then run every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-test-deps.sh
# shellcheck source=scripts/test-env.sh
. scripts/test-env.sh
cargo test --workspace --locked "$@"
