#!/bin/bash
# Runs each libFuzzer target for N seconds on its committed seed corpus plus what earlier runs
# found, as many side by side as there are cores (FUZZ_JOBS overrides), and prints executions
# and findings per target. Usage: run.sh SECONDS BIN...
set -u
secs=$1; shift
jobs=${FUZZ_JOBS:-$(nproc 2>/dev/null || echo 1)}
status=0
mkdir -p build/fuzz/artifacts

name_of() { # bin: the target's name (build/fuzz/fuzz_records -> records)
    basename "$1" | sed 's/^fuzz_//'
}

fuzz_one() { # bin: runs it, leaves its exit code in build/fuzz/<name>.rc
    local bin=$1 name work seeds
    name=$(name_of "$bin")
    seeds=tests/fuzz/corpus/$name
    work=build/fuzz/corpus/$name
    mkdir -p "$work" "$seeds"
    "$bin" -max_total_time="$secs" -print_final_stats=1 -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix=build/fuzz/artifacts/"$name"- "$work" "$seeds" >"build/fuzz/$name.log" 2>&1
    echo $? >"build/fuzz/$name.rc"
}

report() { # bin
    local name log rc execs
    name=$(name_of "$1")
    log=build/fuzz/$name.log
    rc=$(cat "build/fuzz/$name.rc")
    execs=$(grep -E '^stat::number_of_executed_units' "$log" | awk '{print $2}')
    echo "fuzz $name: ${execs:-0} executions in ${secs}s, exit $rc"
    if [ "$rc" -ne 0 ]; then
        status=1
        tail -n 40 "$log"
    fi
}

batch=()
for bin in "$@"; do
    fuzz_one "$bin" &
    batch+=("$bin")
    if [ "${#batch[@]}" -ge "$jobs" ]; then
        wait
        for b in "${batch[@]}"; do report "$b"; done
        batch=()
    fi
done
wait
for b in "${batch[@]}"; do report "$b"; done
exit $status
