#!/usr/bin/env bash
# README command 2: install what the tests need, then run every test suite against the real Docker engine.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
rm -rf .test-results
pnpm typecheck --output-logs=errors-only
pnpm lint --output-logs=errors-only
status=0
# The Vagrant driver's suites boot VMs under QEMU's software emulation: one busy core and long waits for boots. They run beside
# the other suites (which run one package at a time) instead of after them; the packages were all built by bootstrap.sh.
mkdir -p .test-results
(cd packages/drivers/vagrant && pnpm test) > .test-results/vagrant.log 2>&1 &
vagrant_tests=$!
pnpm exec turbo run test --concurrency=1 --only --filter='!@kiln/driver-vagrant' || status=$?
vagrant_status=0
wait "$vagrant_tests" || vagrant_status=$?
sed 's/^/@kiln\/driver-vagrant:test: /' .test-results/vagrant.log
[ "$vagrant_status" -eq 0 ] || status=$((status > 0 ? status : 1))
node scripts/test-summary.mjs || status=$((status > 0 ? status : 1))
exit "$status"
