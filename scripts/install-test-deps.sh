#!/usr/bin/env bash
# Installs the third-party tools the tests run against the lab (idempotent; safe to rerun).
set -euo pipefail
cd "$(dirname "$0")/.."
