#!/bin/sh
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
# Lints docker/Dockerfile with the pinned dockerfilelint 1.8.0 (docker/package.json and its
# package-lock.json, installed into docker/node_modules by `make deps` or, when missing, here).
# The image's Dockerfile must have no issue, and a copy with a known mistake (apt-get install
# without --no-install-recommends, a HEALTHCHECK option without "=") must be reported, so the
# linter is proven to run and to read our HEALTHCHECK line. Skips (77) where npm is missing.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
lint=docker/node_modules/.bin/dockerfilelint
passed=0 failed=0

if [ ! -x "$lint" ]; then
    command -v npm >/dev/null 2>&1 || { echo "npm not installed: skipping"; exit 77; }
    npm ci --prefix docker --no-audit --no-fund >/dev/null 2>&1 || {
        echo "npm ci --prefix docker failed"; echo "0 passed, 1 failed"; exit 1; }
fi
version=$(node -p 'require("./docker/node_modules/dockerfilelint/package.json").version')
if [ "$version" = "1.8.0" ]; then
    passed=$((passed + 1)); echo "PASS dockerfilelint is the pinned 1.8.0"
else
    failed=$((failed + 1)); echo "FAIL dockerfilelint is $version, not 1.8.0"
fi

# count FILE: the linter's issue count for FILE (JSON output), "error" when it did not answer.
count() {
    "$lint" -j "$1" 2>/dev/null |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["totalIssues"])' 2>/dev/null ||
        echo error
}

n=$(count docker/Dockerfile)
if [ "$n" = "0" ]; then
    passed=$((passed + 1)); echo "PASS docker/Dockerfile: no issue"
else
    failed=$((failed + 1)); echo "FAIL docker/Dockerfile: $n issue(s)"
    "$lint" docker/Dockerfile
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed 's/install -y --no-install-recommends/install -y/' docker/Dockerfile >"$tmp/Dockerfile.apt"
sed 's/--interval=30s/--interval 30s/' docker/Dockerfile >"$tmp/Dockerfile.hc"
for bad in apt hc; do
    if ! cmp -s docker/Dockerfile "$tmp/Dockerfile.$bad" && [ "$(count "$tmp/Dockerfile.$bad")" != 0 ] &&
       [ "$(count "$tmp/Dockerfile.$bad")" != error ]; then
        passed=$((passed + 1)); echo "PASS a Dockerfile with the $bad mistake is reported"
    else
        failed=$((failed + 1)); echo "FAIL a Dockerfile with the $bad mistake is not reported"
    fi
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
