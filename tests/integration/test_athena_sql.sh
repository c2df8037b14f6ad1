#!/bin/sh
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
# Syntax check of every sql/athena/ text as the engine sends it: the cmocka program
# test_athena_sql renders each text (plain values, and a hostile object key) into a folder, and
# tests/sqlcheck/check.mjs parses them with the pinned dt-sql-parser (Hive grammar for the DDL,
# Trino grammar for the queries). Broken samples must be rejected, so the check can fail.
# Skips (77) without node or without tests/sqlcheck/node_modules (make deps installs it).
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
: "${HCPIPE_BUILD:?}"
prog="$HCPIPE_BUILD/tests/test_athena_sql"
check="$here/sqlcheck/check.mjs"
if ! command -v node >/dev/null 2>&1 || [ ! -d "$here/sqlcheck/node_modules/dt-sql-parser" ]; then
    echo "node or tests/sqlcheck/node_modules missing: skipped"
    exit 77
fi
[ -x "$prog" ] || { echo "missing $prog"; echo "0 passed, 1 failed"; exit 1; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); echo "ok   $1"; }
bad() { failed=$((failed + 1)); echo "FAIL $1"; }

mkdir "$dir/sent" "$dir/broken"
if HCPIPE_SQL_DUMP="$dir/sent" "$prog" >/dev/null 2>&1; then ok "render"; else bad "render"; fi
n=$(ls "$dir/sent" | grep -c '\.sql$')
for name in create_database create_table facility_metrics accredited_by_state \
    expiring_accreditations; do
    for f in "$dir/sent/$name.sql" "$dir/sent/$name.hostile.sql"; do
        if [ ! -s "$f" ]; then bad "$(basename "$f") rendered"; continue; fi
        if node "$check" "$f"; then ok "$(basename "$f") parses"; else bad "$(basename "$f") parses"; fi
    done
done
[ "$n" -eq 10 ] && ok "ten texts rendered" || bad "ten texts rendered ($n)"

# Negative controls: the hostile key without quote doubling, a truncated DDL, a bad query.
sed "s/x''); DROP/x'); DROP/" "$dir/sent/facility_metrics.hostile.sql" \
    > "$dir/broken/facility_metrics.sql"
echo "CREATE EXTERNAL TABLE IF NOT EXISTS a.b (x string) LOCATION" > "$dir/broken/create_bad.sql"
echo "SELECT a FROM t ORDER BY" > "$dir/broken/query.sql"
for f in "$dir"/broken/*.sql; do
    if node "$check" "$f" >/dev/null 2>&1; then bad "$(basename "$f") rejected"
    else ok "$(basename "$f") rejected"; fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
