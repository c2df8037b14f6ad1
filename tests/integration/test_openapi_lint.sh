#!/bin/sh
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
# Lints openapi/openapi.yaml with the pinned @redocly/cli (openapi/package.json); the lint must
# report no error and no warning. Skips (77) where npm is not installed.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
command -v npx >/dev/null 2>&1 || { echo "npx not installed: skipping"; exit 77; }
if [ ! -x openapi/node_modules/.bin/redocly ]; then
    npm ci --prefix openapi --no-audit --no-fund >/dev/null 2>&1 || {
        echo "npm ci --prefix openapi failed"; echo "0 passed, 1 failed"; exit 1; }
fi
out=$(npx --prefix openapi redocly lint --config openapi/redocly.yaml --format=stylish \
      openapi/openapi.yaml 2>&1)
rc=$?
echo "$out" | grep -vE '^ *(║|╔|╚)'
if [ "$rc" -eq 0 ] && ! echo "$out" | grep -qE '[0-9]+:[0-9]+ +(error|warning)'; then
    echo "1 passed, 0 failed"
    exit 0
fi
echo "0 passed, 1 failed"
exit 1
