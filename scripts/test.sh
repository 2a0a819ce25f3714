#!/usr/bin/env bash
# README command 2: install what the tests need, then run every test suite against the real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
phase() { printf '\n\033[1m==> [%dm%02ds] %s\033[0m\n' $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60)) "$*"; }

bash scripts/bootstrap.sh
rm -rf .test-results
mkdir -p .test-results
status=0

# The Vagrant driver's suites boot VMs under QEMU's software emulation: one busy core and long waits for boots, the longest
# path of the run. They start first (the packages were all built by bootstrap.sh) and run beside everything else. A wall-clock
# cap turns a stuck run into a failure with its log, well inside CI's limit, instead of a run that never reports.
phase "Vagrant suites started in the background (log: .test-results/vagrant.log)"
(cd packages/drivers/vagrant && timeout --signal=INT --kill-after=2m 80m pnpm test) > .test-results/vagrant.log 2>&1 &
vagrant_tests=$!

phase "typecheck, lint, API reports"
pnpm typecheck --output-logs=errors-only || status=2
pnpm lint --output-logs=errors-only || status=2
# The public API of @kiln/core (its three entry points) and @kiln/test-suite must match api/*.api.md: a change shows in review.
node scripts/api-report.mjs --check || status=2

if [ "$status" -eq 0 ]; then
  phase "test suites, one package at a time"
  timeout --signal=INT --kill-after=3m 65m pnpm exec turbo run test --concurrency=1 --continue --only --filter='!@kiln/driver-vagrant' || status=$?
fi

phase "waiting for the Vagrant suites"
vagrant_status=0
wait "$vagrant_tests" || vagrant_status=$?
sed 's/^/@kiln\/driver-vagrant:test: /' .test-results/vagrant.log
[ "$vagrant_status" -eq 0 ] || status=$((status > 0 ? status : 1))
phase "done"
node scripts/test-summary.mjs || status=$((status > 0 ? status : 1))
exit "$status"
