#!/usr/bin/env bash
# The whole test suite: `npm test`. Sets up what it needs (Docker Engine, PostgreSQL, Chromium,
# local images), then runs format/lint/typecheck, builds the web UI, and runs every test against
# the real components. With CI=true a missing component fails the run; it is never skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
[ -x node_modules/.bin/node ] || npm install --no-audit --no-fund
bash scripts/setup-host.sh
bash scripts/images/build.sh busybox
bash scripts/images/build.sh debian openttd openarena teeworlds # game images: ~1 min from nothing, cached after
export TEST_DATABASE_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:${PGPORT_TEST:-55432}/postgres}
export CAP_REQUIRE_REAL=1
echo "[test] node $(node --version)"
npm run check
if [ -f packages/web/vite.config.ts ]; then npm run build -w packages/web >/dev/null; fi
files=()
while IFS= read -r f; do files+=("$f"); done < <(for d in packages bench test; do [ -d "$d" ] && find "$d" -path '*/node_modules' -prune -o \( -name '*.test.ts' -o -name '*.test.tsx' \) -print; done | sort)
mkdir -p test-artifacts
rm -f test-artifacts/screenshots/failed-*
node --test --test-concurrency="${TEST_CONCURRENCY:-3}" --test-timeout=300000 --test-reporter=spec "$@" "${files[@]}"
