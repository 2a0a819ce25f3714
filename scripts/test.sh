#!/usr/bin/env bash
# README command 2: install what the tests need, then run every test suite against the real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
rm -rf .test-results
pnpm typecheck --output-logs=errors-only
pnpm lint --output-logs=errors-only
status=0
pnpm test || status=$?
node scripts/test-summary.mjs || status=$((status > 0 ? status : 1))
exit "$status"
