#!/bin/sh
# Copies the dashboard's vendored libraries from web/node_modules (installed from the pinned
# web/package.json + web/package-lock.json) into server/web/vendor/, each with its license.
# The copies are committed, so building hcpipe needs no npm; run this only to change a version:
#   npm ci --prefix web && sh web/vendor.sh
set -eu
here=$(cd "$(dirname "$0")" && pwd)
nm="$here/node_modules"
out="$here/../server/web/vendor"
[ -d "$nm/topojson-client" ] || npm ci --prefix "$here" --no-audit --no-fund --ignore-scripts
mkdir -p "$out"
cp "$nm/topojson-client/dist/topojson-client.min.js" "$out/topojson-client.min.js"
cp "$nm/topojson-client/LICENSE" "$out/LICENSE-topojson-client.txt"
cp "$nm/us-atlas/states-albers-10m.json" "$out/states-albers-10m.json"
cp "$nm/us-atlas/LICENSE" "$out/LICENSE-us-atlas.txt"
# What is vendored, at which version (the dashboard's About line reads nothing from here).
{
    echo "Vendored by web/vendor.sh from npm (pinned in web/package-lock.json):"
    for p in topojson-client us-atlas; do
        v=$(sed -n 's/^ *"version": *"\([^"]*\)".*/\1/p' "$nm/$p/package.json" | head -n 1)
        echo "  $p $v"
    done
} > "$out/VERSIONS.txt"
