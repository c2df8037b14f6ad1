#!/bin/sh
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
# Checks deploy/hcpipe.service:
#   1. `systemd-analyze verify` accepts it (with ExecStart pointed at $HCPIPE_BIN and the
#      EnvironmentFile made optional, since neither /usr/local/bin/hcpipe nor /etc/hcpipe exist
#      here), and rejects a copy with a misspelt directive value (so the check can fail);
#   2. the hardening directives the deploy relies on are there with the expected values;
#   3. `systemd-analyze security --offline=yes` rates its exposure at most 2.0 ("OK");
#   4. HCPIPE_DATA_DIR is the StateDirectory (/var/lib/<name>), the one writable path.
# Skips (77) when systemd-analyze is not installed.
set -u
: "${HCPIPE_BIN:?HCPIPE_BIN must name the binary}"
root=$(cd "$(dirname "$0")/../.." && pwd)
unit="$root/deploy/hcpipe.service"
command -v systemd-analyze >/dev/null 2>&1 || { echo "systemd-analyze not installed: skipping"; exit 77; }
passed=0 failed=0
pass() { passed=$((passed + 1)); echo "PASS $1"; }
fail() { failed=$((failed + 1)); echo "FAIL $1"; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
sed -e "s#^ExecStart=/usr/local/bin/hcpipe #ExecStart=$HCPIPE_BIN #" \
    -e "s#^EnvironmentFile=#EnvironmentFile=-#" "$unit" >"$tmp/hcpipe.service"
if grep -q "^ExecStart=$HCPIPE_BIN serve" "$tmp/hcpipe.service" &&
   out=$(systemd-analyze verify "$tmp/hcpipe.service" 2>&1) && [ -z "$out" ]; then
    pass "systemd-analyze verify: no complaint"
else
    fail "systemd-analyze verify: $out"
fi
sed 's/^ProtectSystem=strict/ProtectSystem=strictly/' "$tmp/hcpipe.service" >"$tmp/bad.service"
mkdir -p "$tmp/bad" && mv "$tmp/bad.service" "$tmp/bad/hcpipe.service"
if out=$(systemd-analyze verify "$tmp/bad/hcpipe.service" 2>&1) && [ -z "$out" ]; then
    fail "verify accepted ProtectSystem=strictly"
else
    pass "verify rejects a misspelt value"
fi

# directive NAME VALUE: the unit sets NAME=VALUE (the last assignment wins, as in systemd).
directive() {
    got=$(grep -E "^$1=" "$unit" | tail -n 1 | cut -d= -f2-)
    if [ "$got" = "$2" ]; then pass "$1=$2"; else fail "$1 is \"$got\", expected \"$2\""; fi
}
directive DynamicUser yes
directive StateDirectory hcpipe
directive ProtectSystem strict
directive ProtectHome yes
directive PrivateTmp yes
directive NoNewPrivileges yes
directive CapabilityBoundingSet ""
directive MemoryDenyWriteExecute yes
directive RestrictAddressFamilies "AF_INET AF_INET6 AF_UNIX"
directive Restart on-failure
directive EnvironmentFile /etc/hcpipe/hcpipe.env
if grep -qx "SystemCallFilter=@system-service" "$unit"; then
    pass "SystemCallFilter=@system-service"
else
    fail "no SystemCallFilter=@system-service"
fi
if grep -qE "^ExecStart=/usr/local/bin/hcpipe serve$" "$unit"; then
    pass "ExecStart runs hcpipe serve"
else
    fail "ExecStart is not /usr/local/bin/hcpipe serve"
fi
state=$(grep -E '^StateDirectory=' "$unit" | cut -d= -f2)
if grep -qx "Environment=HCPIPE_DATA_DIR=/var/lib/$state" "$unit"; then
    pass "HCPIPE_DATA_DIR is the state directory"
else
    fail "HCPIPE_DATA_DIR is not /var/lib/$state"
fi

level=$(systemd-analyze security --offline=yes "$tmp/hcpipe.service" 2>/dev/null |
        sed -n 's/.*Overall exposure level for hcpipe.service: \([0-9.]*\).*/\1/p')
if [ -n "$level" ] && awk -v l="$level" 'BEGIN { exit !(l <= 2.0) }'; then
    pass "systemd-analyze security exposure $level <= 2.0"
elif [ -z "$level" ]; then
    echo "systemd-analyze security --offline unavailable: exposure not rated"
else
    fail "systemd-analyze security exposure $level > 2.0"
fi

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
