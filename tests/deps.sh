#!/bin/sh
# Installs every Debian package the build and the tests need (`make deps`). Idempotent; skips
# apt-get entirely when everything is already installed.
set -eu
pkgs="gcc make pkg-config libmicrohttpd-dev libjansson-dev libcurl4-openssl-dev libsqlite3-dev
      libssl-dev uuid-dev libexpat1-dev libcmocka-dev python3 python3-yaml sqlite3 curl jq
      clang libclang-rt-14-dev"
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

# The pinned OpenAPI linter (tests/integration/test_openapi_lint.sh), where npm is installed.
if command -v npm >/dev/null 2>&1; then
    here=$(cd "$(dirname "$0")/.." && pwd)
    [ -x "$here/openapi/node_modules/.bin/redocly" ] ||
        npm ci --prefix "$here/openapi" --no-audit --no-fund
fi
