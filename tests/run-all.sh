#!/bin/bash
# Runs every test program and prints one closing line: "N passed, N failed, N skipped".
#
# Unit tests: every $HCPIPE_BUILD/tests/test_* (cmocka); each counts as its own number of tests.
# Integration tests: every tests/integration/test_*.py and *.sh; exit 0 = passed, 77 = skipped.
# A Python test prints "N passed, N failed" of its own; its numbers are added.
#
# Programs run side by side, HCPIPE_TEST_JOBS at a time (default: the number of cores); each
# one's output is printed whole when it ends, with how long it took. Every test uses its own
# temporary folder and ephemeral loopback ports, so any two can run together. Under a sanitizer
# (SANITIZER set) the files-only tests (line 2 says "# hcpipe-test: files-only") are skipped.
set -u
here=$(cd "$(dirname "$0")" && pwd)
: "${HCPIPE_BIN:?HCPIPE_BIN must name the binary}"
: "${HCPIPE_BUILD:?HCPIPE_BUILD must name the build folder}"
export HCPIPE_BIN HCPIPE_BUILD
jobs=${HCPIPE_TEST_JOBS:-$(nproc 2>/dev/null || echo 1)}
# Under ThreadSanitizer a race report stops the program (a test then fails) and known
# third-party false positives are suppressed (tests/tsan.supp says which and why).
case "${SANITIZER:-}" in
*thread*)
    TSAN_OPTIONS="halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$here/tsan.supp ${TSAN_OPTIONS:-}"
    export TSAN_OPTIONS ;;
esac
passed=0 failed=0 skipped=0
failures=""
out=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$out"' EXIT

# The integration programs first: they are the long ones, so the short ones fill in around them.
programs=()
for t in "$here"/integration/test_*.py "$here"/integration/test_*.sh "$HCPIPE_BUILD"/tests/test_*; do
    case "$t" in
    *.py | *.sh)
        [ -f "$t" ] || continue
        # A files-only test checks the repository's files and runs none of the C code, so a
        # sanitizer build would only repeat it: it runs in the plain run and is skipped here.
        if [ -n "${SANITIZER:-}" ] && sed -n 2p "$t" | grep -q '^# hcpipe-test: files-only'; then
            skipped=$((skipped + 1)); echo "SKIP $(basename "$t") (files only; it runs in the plain run)"
            continue
        fi
        programs+=("$t") ;;
    *) [ -x "$t" ] && programs+=("$t") ;;
    esac
done

run_one() { # program, log file: runs it and leaves its exit code and seconds beside the log
    local t=$1 log=$2 start rc
    start=$(date +%s%N)
    case "$t" in
    *.py) python3 "$t" ;;
    *.sh) sh "$t" ;;
    *) "$t" ;;
    esac >"$log" 2>&1 </dev/null
    rc=$?
    echo "$rc $(( ($(date +%s%N) - start) / 1000000 ))" >"$log.rc"
}

count_line() { # the last "N passed, N failed" line of a log, added to the totals
    local line p f
    line=$(grep -E '^([A-Za-z]+: )?[0-9]+ passed, [0-9]+ failed' "$1" | tail -n 1)
    [ -n "$line" ] || return 1
    p=$(echo "$line" | sed -E 's/^([A-Za-z]+: )?([0-9]+) passed.*/\2/')
    f=$(echo "$line" | sed -E 's/.* ([0-9]+) failed.*/\1/')
    passed=$((passed + p)); failed=$((failed + f))
    return 0
}

report() { # program, log file: prints the log and adds its results to the totals
    local t=$1 log=$2 name rc ms p f
    name=$(basename "$t")
    read -r rc ms <"$log.rc"
    cat "$log"
    printf '# %s: exit %s after %d.%01ds\n' "$name" "$rc" $((ms / 1000)) $((ms % 1000 / 100))
    case "$t" in
    *.py | *.sh)
        if [ "$rc" -eq 77 ]; then
            skipped=$((skipped + 1)); echo "SKIP $name"; return
        fi
        if ! count_line "$log"; then
            if [ "$rc" -eq 0 ]; then passed=$((passed + 1)); else failed=$((failed + 1)); fi
        elif [ "$rc" -ne 0 ] && ! grep -qE ' [1-9][0-9]* failed' "$log"; then
            failed=$((failed + 1))
        fi
        ;;
    *)
        p=$(grep -E '^\[  PASSED  \] [0-9]+ test' "$log" | sed -E 's/[^0-9]*([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')
        f=$(grep -E '^\[  FAILED  \] [0-9]+ test' "$log" | sed -E 's/[^0-9]*([0-9]+).*/\1/' | awk '{s+=$1} END {print s+0}')
        if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
        passed=$((passed + p)); failed=$((failed + f))
        ;;
    esac
    [ "$rc" -eq 0 ] || failures="$failures $name"
}

declare -A running=() # pid -> index into programs
i=0
while [ "$i" -lt "${#programs[@]}" ] || [ "${#running[@]}" -gt 0 ]; do
    if [ "$i" -lt "${#programs[@]}" ] && [ "${#running[@]}" -lt "$jobs" ]; then
        run_one "${programs[$i]}" "$out/$i.log" &
        running[$!]=$i
        i=$((i + 1))
        continue
    fi
    done_pid=""
    wait -n -p done_pid
    [ -n "$done_pid" ] || continue
    k=${running[$done_pid]}
    unset "running[$done_pid]"
    report "${programs[$k]}" "$out/$k.log"
done

[ -z "$failures" ] || echo "failing:$failures"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ] && [ -z "$failures" ]
