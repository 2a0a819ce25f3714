#!/usr/bin/env bash
# README command 2: install what the tests need, then run every test suite against the real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
pnpm test
