#!/bin/sh
# Runs every test program and prints one closing line: "N passed, N failed".
#
# Unit tests: every $HCPIPE_BUILD/tests/test_* (cmocka); each counts as its own number of tests.
# Integration tests: every tests/integration/test_*.py and *.sh; exit 0 = passed, 77 = skipped.
# A Python test prints "N passed, N failed" of its own; its numbers are added.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${HCPIPE_BIN:?HCPIPE_BIN must name the binary}"
: "${HCPIPE_BUILD:?HCPIPE_BUILD must name the build folder}"
export HCPIPE_BIN HCPIPE_BUILD
# Under ThreadSanitizer a race report stops the program (a test then fails) and known
# third-party false positives are suppressed (tests/tsan.supp says which and why).
case "${SANITIZER:-}" in
*thread*)
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$here/tsan.supp ${TSAN_OPTIONS:-}"
    export TSAN_OPTIONS ;;
esac
passed=0 failed=0 skipped=0
failures=""
log=$(mktemp)
trap 'rm -f "$log"' EXIT

count_line() {
    # The last "N passed, N failed" line of the log, added to the totals.
    line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$log" | tail -n 1)
    [ -n "$line" ] || return 1
    p=$(echo "$line" | sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    return 0
}

for t in "$HCPIPE_BUILD"/tests/test_*; do
    [ -x "$t" ] || continue
    name=$(basename "$t")
    "$t" >"$log" 2>&1
    rc=$?
    cat "$log"
    p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | sed -E 's/[^0-9]*([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')
    f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | sed -E 's/[^0-9]*([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')
    if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
    passed=$((passed + p)); failed=$((failed + f))
    [ "$f" -eq 0 ] || failures="$failures $name"
done

for t in "$here"/integration/test_*; do
    [ -f "$t" ] || continue
    name=$(basename "$t")
    case "$t" in
        *.py) python3 "$t" >"$log" 2>&1 ;;
        *.sh) sh "$t" >"$log" 2>&1 ;;
        *) continue ;;
    esac
    rc=$?
    cat "$log"
    if [ "$rc" -eq 77 ]; then
        skipped=$((skipped + 1)); echo "SKIP $name"; continue
    fi
    if ! count_line; then
        if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
    elif [ "$rc" -ne 0 ] && ! grep -qE ' [1-9][0-9]* failed' "$log"; then
        failed=$((failed + 1))
    fi
    [ "$rc" -eq 0 ] || failures="$failures $name"
done

[ -z "$failures" ] || echo "failing:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$failures" ]
