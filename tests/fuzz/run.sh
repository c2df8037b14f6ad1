#!/bin/sh
# Runs each libFuzzer target for N seconds on its committed seed corpus plus what earlier runs
# found, and prints executions and findings per target. Usage: run.sh SECONDS BIN...
set -u
secs=$1; shift
status=0
for bin in "$@"; do
    name=$(basename "$bin" | sed 's/^fuzz_//')
    seeds=tests/fuzz/corpus/$name
    work=build/fuzz/corpus/$name
    mkdir -p "$work" "$seeds" build/fuzz/artifacts
    log=build/fuzz/$name.log
    "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix=build/fuzz/artifacts/"$name"- "$work" "$seeds" >"$log" 2>&1
    rc=$?
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz $name: ${execs:-0} executions in ${secs}s, exit $rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -n 40 "$log"
    fi
done
exit $status
