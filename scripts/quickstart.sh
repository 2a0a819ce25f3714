#!/usr/bin/env bash
# README command 1: install everything, then bake examples/quickstart (a Debian base + a small web image on it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
echo "==> baking examples/quickstart"
node apps/cli/dist/cli.js build -C examples/quickstart
cat <<'MSG'

Baked. Run the web image (the port is runtime configuration, given at boot):
  docker run --rm -d --name kiln-quickstart -e PORT=8080 -p 127.0.0.1:8080:8080 kiln-quickstart/web:latest
  curl http://127.0.0.1:8080/
  docker rm -f kiln-quickstart
See where it came from:
  docker image inspect kiln-quickstart/web:latest --format '{{json .Config.Labels}}'
MSG
