#!/bin/sh
# Installs every Debian package the build and the tests need (`make deps`). Idempotent; skips
# apt-get entirely when everything is already installed.
set -eu
pkgs="gcc make pkg-config libmicrohttpd-dev libgnutls28-dev libjansson-dev libcurl4-openssl-dev libsqlite3-dev
      libssl-dev uuid-dev libexpat1-dev libcmocka-dev python3 python3-yaml sqlite3 curl jq
      clang libclang-rt-14-dev awscli time openssl chromium prometheus wrk"
# Node runs s3rver (tests/package.json); install Debian's only when no node is on PATH (a
# NodeSource node already bundles npm, and Debian's npm would conflict with it).
command -v node >/dev/null 2>&1 || pkgs="$pkgs nodejs npm"
missing=""
for p in $pkgs; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

# The pinned SQL parser that syntax-checks sql/athena/ (tests/integration/test_athena_sql.sh).
if command -v npm >/dev/null 2>&1; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    [ -d "$here/tests/sqlcheck/node_modules/dt-sql-parser" ] ||
        npm ci --prefix "$here/tests/sqlcheck" --no-audit --no-fund
fi

# s3rver, pinned by tests/package.json + tests/package-lock.json, into tests/node_modules.
# Only where npm exists: the image's build stage (docker/Dockerfile) runs `make deps` without Node.
here=$(cd "$(dirname "$0")" && pwd)
if command -v npm >/dev/null 2>&1 &&
   { [ ! -f "$here/node_modules/s3rver/package.json" ] ||
     ! grep -q '"version": "3.7.1"' "$here/node_modules/s3rver/package.json"; }; then
    npm ci --prefix "$here" --no-audit --no-fund
fi

# moto_server (moto 5.2.1 with its server extras) for the AWS peer tests, when missing.
if ! command -v moto_server >/dev/null 2>&1; then
    python3 -m pip install "moto[server]==5.2.1" || echo "deps.sh: could not install moto; AWS peer tests will skip" >&2
fi

# The pinned OpenAPI linter (tests/integration/test_openapi_lint.sh), from openapi/package.json
# + openapi/package-lock.json into openapi/node_modules.
if command -v npm >/dev/null 2>&1 && [ ! -x "$here/../openapi/node_modules/.bin/redocly" ]; then
    npm ci --prefix "$here/../openapi" --no-audit --no-fund
fi

# playwright-core (drives Debian's chromium in tests/integration/test_dashboard.sh; it never
# downloads a browser), pinned by tests/browser/package.json + package-lock.json.
if command -v npm >/dev/null 2>&1 &&
   [ ! -f "$here/browser/node_modules/playwright-core/package.json" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$here/browser" --no-audit --no-fund \
        --ignore-scripts
fi

# dockerfilelint, pinned by docker/package.json + docker/package-lock.json, into
# docker/node_modules (tests/integration/test_docker_lint.sh). Only where npm exists: the image's
# build stage runs `make deps` without Node.
root=$(cd "$(dirname "$0")/.." && pwd)
if command -v npm >/dev/null 2>&1 &&
   ! grep -qs '"version": "1.8.0"' "$root/docker/node_modules/dockerfilelint/package.json"; then
    npm ci --prefix "$root/docker" --no-audit --no-fund ||
        echo "deps.sh: npm ci --prefix docker failed; the Dockerfile lint will fail" >&2
fi
