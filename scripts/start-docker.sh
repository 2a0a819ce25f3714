#!/usr/bin/env bash
# Starts the Docker engine if none answers. This machine has no init system, so nothing else will.
set -euo pipefail
docker info >/dev/null 2>&1 && exit 0
echo "==> starting dockerd"
if [ -f /var/run/docker.pid ] && ! kill -0 "$(cat /var/run/docker.pid)" 2>/dev/null; then rm -f /var/run/docker.pid; fi
nohup dockerd >/var/log/kiln-dockerd.log 2>&1 &
for _ in $(seq 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "dockerd did not start; see /var/log/kiln-dockerd.log" >&2
tail -20 /var/log/kiln-dockerd.log >&2 || true
exit 1
