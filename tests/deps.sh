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

# dockerfilelint, pinned by docker/package.json + docker/package-lock.json, into
# docker/node_modules (tests/integration/test_docker_lint.sh). Only where npm exists: the image's
# build stage runs `make deps` without Node.
root=$(cd "$(dirname "$0")/.." && pwd)
if command -v npm >/dev/null 2>&1 &&
   ! grep -qs '"version": "1.8.0"' "$root/docker/node_modules/dockerfilelint/package.json"; then
    npm ci --prefix "$root/docker" --no-audit --no-fund ||
        echo "deps.sh: npm ci --prefix docker failed; the Dockerfile lint will fail" >&2
fi
