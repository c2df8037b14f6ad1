#!/bin/sh
# The hcpipe benchmark (`make bench`; not part of the tests). Usage: sh tests/bench/run.sh BIN
#
# 1. Builds the generator (tests/bench/gen.c) and generates BENCH_RECORDS facility records
#    (default 1,000,000, about 620 MB) with BENCH_SEED (default 1) into build/bench/, reusing
#    that file when one with the same count, seed, generator source and size is already there.
# 2. hcpipe, cold: `BIN run --query accredited_by_state --source FILE --data-dir D1` on an empty
#    data dir (load + query): wall time and peak RSS via /usr/bin/time.
# 3. hcpipe, warm: each of the three queries on the same D1 (the unchanged object is not
#    reloaded): wall time.
# 4. DuckDB (tests/bench/duckdb/bench.mjs, npm @duckdb/node-api pinned in package.json) runs
#    the three queries with read_json over the same file, 1 and 2 threads, explicit column
#    types and auto-detection; the faster of the two schema modes is the one compared.
# 5. Checks that hcpipe and DuckDB give the same answers (row counts and a checksum of every
#    result's CSV, after removing CRs and quotes), prints a table, the ratios against the
#    targets of issue 2, and a final machine-readable JSON line (tests/bench/report.mjs).
#
# Settings (environment): BENCH_RECORDS, BENCH_SEED, BENCH_AS_OF (default 2026-08-31),
# BENCH_REPEAT (best of N for every timing, default 1), BENCH_DUCKDB_SCHEMA (default
# "explicit,auto"), BENCH_KEEP=1 keeps the temporary folder (warehouse and result files).
# Exit status: 0 when the bench ran and the answers agree (targets missed or not), 1 otherwise.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: sh tests/bench/run.sh /abs/path/to/build/hcpipe" >&2
    exit 2
fi
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
RECORDS=${BENCH_RECORDS:-1000000}
SEED=${BENCH_SEED:-1}
AS_OF=${BENCH_AS_OF:-2026-08-31}
REPEAT=${BENCH_REPEAT:-1}
SCHEMA=${BENCH_DUCKDB_SCHEMA:-explicit,auto}
QUERIES="accredited_by_state facility_metrics expiring_accreditations"
CACHE=$ROOT/build/bench

die() {
    echo "bench: $*" >&2
    exit 1
}

case $RECORDS in '' | *[!0-9]*) die "BENCH_RECORDS must be a number" ;; esac
case $SEED in '' | *[!0-9]*) die "BENCH_SEED must be a number" ;; esac
case $REPEAT in '' | *[!0-9]* | 0) die "BENCH_REPEAT must be a positive number" ;; esac
[ -x "$BIN" ] || die "$BIN is not an executable (run make first)"
[ -x /usr/bin/time ] || die "/usr/bin/time is missing: run 'make deps' (Debian package time)"
command -v node >/dev/null 2>&1 || die "node is missing (Node.js 18+ and npm run the DuckDB side)"
command -v cc >/dev/null 2>&1 || die "cc is missing: run 'make deps'"

mkdir -p "$CACHE"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/hcpipe-bench.XXXXXX")
if [ "${BENCH_KEEP:-0}" = 1 ]; then
    echo "bench: keeping $WORK"
else
    trap 'rm -rf "$WORK"' EXIT
    trap 'exit 1' INT TERM
fi
RESULTS=$WORK/results.tsv
: >"$RESULTS"

# ---- generator and data file -------------------------------------------------------------
GENSUM=$(sha256sum "$HERE/gen.c" | cut -c1-12)
GEN=$CACHE/gen-$GENSUM
if [ ! -x "$GEN" ]; then
    echo "bench: building the generator"
    rm -f "$CACHE"/gen-*
    cc -std=c11 -O2 -Wall -Wextra -Werror -o "$GEN.tmp" "$HERE/gen.c"
    mv "$GEN.tmp" "$GEN"
fi
DATA=$CACHE/facilities-$RECORDS-$SEED-$GENSUM.ndjson
STAMP=$DATA.size
if [ -f "$DATA" ] && [ -f "$STAMP" ] && [ "$(wc -c <"$DATA")" -eq "$(cat "$STAMP")" ]; then
    echo "bench: reusing $DATA"
else
    rm -f "$CACHE"/facilities-*.ndjson "$CACHE"/facilities-*.ndjson.size
    echo "bench: generating $RECORDS records (seed $SEED)"
    t0=$(date +%s.%N)
    "$GEN" "$RECORDS" "$SEED" >"$DATA.tmp"
    t1=$(date +%s.%N)
    mv "$DATA.tmp" "$DATA"
    wc -c <"$DATA" | tr -d ' ' >"$STAMP"
    awk -v a="$t0" -v b="$t1" -v n="$(cat "$STAMP")" \
        'BEGIN { printf "bench: generated %.1f MB in %.2f s\n", n / 1e6, b - a }'
fi
BYTES=$(cat "$STAMP")
{
    printf 'meta\trecords\t%s\n' "$RECORDS"
    printf 'meta\tbytes\t%s\n' "$BYTES"
    printf 'meta\tseed\t%s\n' "$SEED"
    printf 'meta\tas_of\t%s\n' "$AS_OF"
    printf 'meta\tcpus\t%s\n' "$(nproc 2>/dev/null || echo '?')"
    printf 'meta\tloadavg_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')"
} >>"$RESULTS"

# ---- DuckDB dependencies ------------------------------------------------------------------
if [ ! -d "$HERE/node_modules/@duckdb/node-api" ]; then
    echo "bench: installing @duckdb/node-api (npm ci)"
    npm ci --prefix "$HERE" --no-audit --no-fund >/dev/null || die "npm ci failed"
fi

# ---- hcpipe -------------------------------------------------------------------------------
# timed NAME QUERY: runs one hcpipe job on $WORK/d1 under /usr/bin/time, writing the result to
# $WORK/hcpipe-NAME-QUERY.csv; prints "WALL_S MAXRSS_KB USER_S SYS_S".
timed() {
    out=$WORK/hcpipe-$1-$2.csv
    if ! /usr/bin/time -f '%e %M %U %S' -o "$WORK/time.out" "$BIN" run --query "$2" --source "$DATA" \
        --data-dir "$WORK/d1" --as-of "$AS_OF" --format csv --output "$out" \
        >"$WORK/stdout.txt" 2>"$WORK/stderr.txt"; then
        echo "bench: hcpipe run --query $2 failed:" >&2
        tail -c 2000 "$WORK/stderr.txt" >&2
        exit 1
    fi
    # GNU time prints "Command exited with non-zero status" lines first on failure; the
    # measurement is always the last line.
    tail -n 1 "$WORK/time.out"
}

rows_of() {
    # Data rows of a CSV result: lines minus the header (our names hold no newlines).
    echo $(($(wc -l <"$1") - 1))
}

# record NAME QUERY "WALL_S MAXRSS_KB USER_S SYS_S": one hcpipe line of the results file.
record() {
    # shellcheck disable=SC2086 # the measurement is split into its four fields on purpose
    set -- "$1" "$2" $3
    printf 'hcpipe\t%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" \
        "$(rows_of "$WORK/hcpipe-$1-$2.csv")" "$(awk -v u="$5" -v s="$6" 'BEGIN { print u + s }')" \
        >>"$RESULTS"
}

echo "bench: hcpipe cold: load + accredited_by_state"
best=""
r=0
while [ "$r" -lt "$REPEAT" ]; do
    rm -rf "$WORK/d1"
    m=$(timed cold accredited_by_state)
    if [ -z "$best" ] || awk -v a="${m%% *}" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
        best=$m
    fi
    r=$((r + 1))
done
record cold accredited_by_state "$best"
du -sk "$WORK/d1" | awk '{ printf "meta\twarehouse_kb\t%s\n", $1 }' >>"$RESULTS"

for q in $QUERIES; do
    echo "bench: hcpipe warm: $q"
    best=""
    r=0
    while [ "$r" -lt "$REPEAT" ]; do
        m=$(timed warm "$q")
        if [ -z "$best" ] || awk -v a="${m%% *}" -v b="${best%% *}" 'BEGIN { exit !(a < b) }'; then
            best=$m
        fi
        r=$((r + 1))
    done
    record warm "$q" "$best"
done

# ---- DuckDB -------------------------------------------------------------------------------
echo "bench: DuckDB ($SCHEMA schema; 1 and 2 threads)"
mkdir -p "$WORK/duckdb"
node "$HERE/duckdb/bench.mjs" --file "$DATA" --as-of "$AS_OF" --out "$WORK/duckdb" \
    --threads 1,2 --schema "$SCHEMA" --repeat "$REPEAT" >"$WORK/duckdb.tsv" ||
    die "the DuckDB side failed"
cat "$WORK/duckdb.tsv" >>"$RESULTS"

# ---- same answers? ------------------------------------------------------------------------
# Every DuckDB output (each schema mode and thread count) must match hcpipe's warm result, and
# hcpipe's cold accredited_by_state must match its warm one. CSV dialects differ only in line
# ends and optional quoting (the generator never writes an empty string, commas or quotes).
norm_sum() {
    tr -d '\r"' <"$1" | sha256sum | cut -c1-16
}
for q in $QUERIES; do
    hsum=$(norm_sum "$WORK/hcpipe-warm-$q.csv")
    hrows=$(rows_of "$WORK/hcpipe-warm-$q.csv")
    for f in "$WORK"/duckdb/duckdb-*-"$q".csv; do
        [ -f "$f" ] || continue
        name=$(basename "$f" .csv)
        dsum=$(norm_sum "$f")
        drows=$(rows_of "$f")
        verdict=agree
        [ "$hsum" = "$dsum" ] && [ "$hrows" = "$drows" ] || verdict=differ
        printf 'check\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$q" "$name" "$verdict" "$hrows" "$drows" \
            "$hsum" "$dsum" >>"$RESULTS"
    done
done
csum=$(norm_sum "$WORK/hcpipe-cold-accredited_by_state.csv")
wsum=$(norm_sum "$WORK/hcpipe-warm-accredited_by_state.csv")
verdict=agree
[ "$csum" = "$wsum" ] || verdict=differ
printf 'check\taccredited_by_state\thcpipe-cold-vs-warm\t%s\t-\t-\t%s\t%s\n' "$verdict" "$csum" \
    "$wsum" >>"$RESULTS"
printf 'meta\tloadavg_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')" \
    >>"$RESULTS"

cp "$RESULTS" "$CACHE/last-results.tsv"
node "$HERE/report.mjs" "$RESULTS"
