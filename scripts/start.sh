#!/usr/bin/env bash
# `npm start`: everything on this machine — Docker Engine (installed/started when missing),
# the web UI built when absent, then the Panel on $PORT (8080) with an Agent for this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
bash scripts/setup-host.sh runtime
if [ ! -f packages/web/dist/index.html ]; then
  echo "[start] building the web UI" >&2
  npm run build -w packages/web >/dev/null
fi
exec node packages/cli/src/main.ts up "$@"
