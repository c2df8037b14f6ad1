#!/bin/sh
# The event-intake benchmark (`make bench`, or alone: `make bench BENCH_ONLY=events`; not part of
# the tests). Usage: sh tests/bench/events.sh /abs/path/to/build/hcpipe
#
# 1. Starts `BIN serve --insecure-dev-events` on 127.0.0.1, port 0, with a fresh data dir under
#    build/bench/ (a real disk: synchronous=FULL commits really fsync), plus
#    BENCH_EVENTS_SERVE_FLAGS.
# 2. wrk (Debian package wrk) from a second process posts distinct EventBridge "Object Created"
#    events (tests/bench/events.lua) over BENCH_EVENTS_CONNECTIONS connections for
#    BENCH_EVENTS_SECONDS, after a 2 s warm-up: accepted events/s, p50/p99 latency.
# 3. The same server's GET /healthz rate over the same connections: the ceiling, and the ratio.
# 4. Stops the server (SIGTERM) and counts in its job store: every event answered 202 must have
#    its event row and exactly one job (one query per event), and no event may have more:
#    "jobs in store = distinct events acknowledged", plus the events the server committed while
#    wrk stopped before reading their answer (at most one per connection).
# 5. Prints a table, the target of issue 5 (>= 5000 events/s, p99 < 20 ms: met / not met), the
#    group commit's counters (the server logs them at shutdown), and a last line of JSON.
#
# Settings: BENCH_EVENTS_SECONDS (10), BENCH_EVENTS_CONNECTIONS (32), BENCH_EVENTS_WRK_THREADS
# (2), BENCH_EVENTS_SERVE_FLAGS (none; e.g. "--http-threads 0" for a thread per connection).
# Exit status: 0 when the bench ran and nothing acknowledged was lost or doubled (targets met or
# not), 1 otherwise.
set -eu

if [ $# -ne 1 ]; then
    echo "usage: sh tests/bench/events.sh /abs/path/to/build/hcpipe" >&2
    exit 2
fi
BIN=$1
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
SECONDS_RUN=${BENCH_EVENTS_SECONDS:-10}
CONNS=${BENCH_EVENTS_CONNECTIONS:-32}
WRK_THREADS=${BENCH_EVENTS_WRK_THREADS:-2}
SERVE_FLAGS=${BENCH_EVENTS_SERVE_FLAGS:-}

die() {
    echo "bench-events: $*" >&2
    exit 1
}

for v in "$SECONDS_RUN" "$CONNS" "$WRK_THREADS"; do
    case $v in '' | *[!0-9]* | 0) die "BENCH_EVENTS_SECONDS, _CONNECTIONS and _WRK_THREADS must be positive numbers" ;; esac
done
[ -x "$BIN" ] || die "$BIN is not an executable (run make first)"
command -v wrk >/dev/null 2>&1 || die "wrk is missing: run 'make deps' (Debian package wrk)"
command -v sqlite3 >/dev/null 2>&1 || die "sqlite3 is missing: run 'make deps'"
command -v curl >/dev/null 2>&1 || die "curl is missing: run 'make deps'"

mkdir -p "$ROOT/build/bench"
WORK=$(mktemp -d "$ROOT/build/bench/events.XXXXXX")
PID=""
cleanup() {
    if [ -n "$PID" ]; then kill "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
mkdir -p "$WORK/data" "$WORK/ack"

# ---- the server ---------------------------------------------------------------------------
# shellcheck disable=SC2086 # the extra flags are split on purpose
env -u HCPIPE_WEBHOOK_API_KEY -u HCPIPE_WEBHOOK_BASIC "$BIN" serve --listen 127.0.0.1:0 \
    --data-dir "$WORK/data" --insecure-dev-events --max-connections-per-ip 0 $SERVE_FLAGS \
    >"$WORK/server.log" 2>&1 &
PID=$!
PORT=""
i=0
while [ $i -lt 100 ]; do
    PORT=$(sed -n 's/.*"msg":"hcpipe listening","listen":"127\.0\.0\.1:\([0-9]*\)".*/\1/p' \
        "$WORK/server.log" | head -n 1)
    if [ -n "$PORT" ] && curl -fsS "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1; then
        break
    fi
    kill -0 "$PID" 2>/dev/null || die "the server exited: $(tail -c 2000 "$WORK/server.log")"
    sleep 0.1
    i=$((i + 1))
done
[ -n "$PORT" ] || die "the server did not get ready: $(tail -c 2000 "$WORK/server.log")"
URL=http://127.0.0.1:$PORT
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

# ---- load ---------------------------------------------------------------------------------
echo "bench-events: warm-up (2 s), then $SECONDS_RUN s of POST /events over $CONNS connections"
BENCH_RUN=warm BENCH_ACK_DIR=$WORK/ack wrk -t"$WRK_THREADS" -c"$CONNS" -d2s \
    -s "$HERE/events.lua" "$URL" >"$WORK/wrk-warm.txt" 2>&1 || die "wrk failed"
mkdir -p "$WORK/ack-warm"
mv "$WORK"/ack/acked-*.txt "$WORK/ack-warm/" 2>/dev/null || true
BENCH_RUN=run BENCH_ACK_DIR=$WORK/ack wrk -t"$WRK_THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" \
    -s "$HERE/events.lua" "$URL" >"$WORK/wrk-events.txt" 2>&1 || die "wrk failed"
EV=$(grep '^RESULT ' "$WORK/wrk-events.txt") || die "no result from wrk: $(cat "$WORK/wrk-events.txt")"
echo "bench-events: GET /healthz over $CONNS connections for $SECONDS_RUN s (the ceiling)"
cat >"$WORK/healthz.lua" <<'EOF'
function done(summary, latency, requests)
    io.write(string.format("RESULT rate=%.1f p50_ms=%.3f p99_ms=%.3f\n",
        summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
        latency:percentile(99) / 1000))
end
EOF
wrk -t"$WRK_THREADS" -c"$CONNS" -d"${SECONDS_RUN}s" -s "$WORK/healthz.lua" "$URL/healthz" \
    >"$WORK/wrk-healthz.txt" 2>&1 || die "wrk failed"
HZ=$(grep '^RESULT ' "$WORK/wrk-healthz.txt") || die "no result from wrk: $(cat "$WORK/wrk-healthz.txt")"
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo '?')

kill -TERM "$PID"
wait "$PID" || true
PID=""

# ---- what the store holds -----------------------------------------------------------------
cat "$WORK"/ack/acked-*.txt "$WORK"/ack-warm/acked-*.txt 2>/dev/null | sort >"$WORK/acked.txt"
sort -u "$WORK/acked.txt" >"$WORK/acked-distinct.txt"
COUNTS=$(sqlite3 -batch -separator ' ' :memory: <<EOF
CREATE TABLE acked (k TEXT);
.mode csv
.import '$WORK/acked-distinct.txt' acked
.mode list
.separator ' '
ATTACH 'file:$WORK/data/jobs.db?mode=ro' AS s;
CREATE TEMP TABLE per AS
  SELECT a.k, (SELECT count(*) FROM s.events e WHERE e.bucket = 'bench-bucket'
                 AND e.key = 'bench/' || a.k || '.json') AS n_events,
              (SELECT count(*) FROM s.events e JOIN s.jobs j ON j.event_id = e.id
                WHERE e.bucket = 'bench-bucket' AND e.key = 'bench/' || a.k || '.json') AS n_jobs
  FROM acked a;
SELECT (SELECT count(*) FROM acked),
       (SELECT count(*) FROM s.events),
       (SELECT count(*) FROM s.jobs),
       (SELECT count(*) FROM per WHERE n_events = 0 OR n_jobs = 0),
       (SELECT count(*) FROM per WHERE n_events > 1 OR n_jobs > 1),
       (SELECT count(*) FROM (SELECT e.id FROM s.events e JOIN s.jobs j ON j.event_id = e.id
                              GROUP BY e.id HAVING count(*) > 1));
EOF
) || die "could not read the job store"
STATS=$(grep '"msg":"jobstore: group commit of events"' "$WORK/server.log" | tail -n 1 |
    sed 's/.*"batches":"\([0-9]*\)","events":"\([0-9]*\)","largest_batch":"\([0-9]*\)".*/\2 events in \1 transactions, largest batch \3/' || true)

# ---- report -------------------------------------------------------------------------------
{
    T=$(printf '\t')
    echo "$EV" | tr ' ' '\n' | grep '=' | sed "s/^/events$T/"
    echo "$HZ" | tr ' ' '\n' | grep '=' | sed "s/^/healthz$T/"
    # shellcheck disable=SC2086 # six numbers
    set -- $COUNTS
    put() { printf '%s\t%s=%s\n' "$1" "$2" "$3"; }
    put store acked_distinct "$1"
    put store events "$2"
    put store jobs "$3"
    put store acked_lost "$4"
    put store acked_doubled "$5"
    put store events_with_several_jobs "$6"
    put store acked_answers "$(wc -l <"$WORK/acked.txt" | tr -d ' ')"
    put meta connections "$CONNS"
    put meta seconds "$SECONDS_RUN"
    put meta serve_flags "$SERVE_FLAGS"
    put meta cpus "$(nproc 2>/dev/null || echo '?')"
    put meta loadavg_before "$LOAD_BEFORE"
    put meta loadavg_after "$LOAD_AFTER"
    put meta group_commit "$STATS"
} >"$WORK/results.txt"
cp "$WORK/results.txt" "$ROOT/build/bench/last-events.txt"

awk -v conns="$CONNS" '
    { split($2, kv, "="); v[$1 "." kv[1]] = substr($2, length(kv[1]) + 2) }
    END {
        rate = v["events.rate"] + 0; p50 = v["events.p50_ms"] + 0; p99 = v["events.p99_ms"] + 0
        hz = v["healthz.rate"] + 0
        printf "\nPOST /events, distinct events, %s connections, %s s (serve flags: %s)\n",
            conns, v["meta.seconds"], (v["meta.serve_flags"] == "" ? "defaults" : v["meta.serve_flags"])
        printf "  accepted (202)      %10d   (503: %d, 429: %d, other: %d, socket errors: %d)\n",
            v["events.accepted"], v["events.s503"], v["events.s429"], v["events.other"],
            v["events.errors_connect"] + v["events.errors_read"] + v["events.errors_write"] + v["events.errors_timeout"]
        printf "  accepted events/s   %10.0f   target >= 5000: %s\n", rate, (rate >= 5000 ? "met" : "NOT met")
        printf "  latency p50 / p99   %7.2f ms / %.2f ms   target p99 < 20 ms: %s\n", p50, p99,
            (p99 < 20 ? "met" : "NOT met")
        printf "  GET /healthz /s     %10.0f   events/healthz ratio %.3f\n", hz, (hz > 0 ? rate / hz : 0)
        printf "  jobs in store       %10d   distinct events acknowledged %d (events in store %d;\n",
            v["store.jobs"], v["store.acked_distinct"], v["store.events"]
        printf "                                 committed but unanswered when wrk stopped: %d)\n",
            v["store.events"] - v["store.acked_distinct"]
        printf "  acknowledged lost   %10d   acknowledged with 2+ events/jobs %d, events with 2+ jobs %d\n",
            v["store.acked_lost"], v["store.acked_doubled"], v["store.events_with_several_jobs"]
        printf "  load average        before %s, after %s, on %s cpus\n", v["meta.loadavg_before"],
            v["meta.loadavg_after"], v["meta.cpus"]
    }' FS='\t' "$WORK/results.txt"
echo "  group commit        $(sed -n 's/^meta	group_commit=//p' "$WORK/results.txt")"
awk 'BEGIN { printf "{" } { split($2, kv, "="); val = substr($2, length(kv[1]) + 2);
        gsub(/\\/, "\\\\", val); gsub(/"/, "\\\"", val);
        printf "%s\"%s.%s\":\"%s\"", (NR > 1 ? "," : ""), $1, kv[1], val }
     END { print "}" }' FS='\t' "$WORK/results.txt"

# shellcheck disable=SC2086 # six numbers
set -- $COUNTS
# Nothing acknowledged lost or doubled, and no event with more jobs than its one query.
[ "$4" -eq 0 ] && [ "$5" -eq 0 ] && [ "$6" -eq 0 ] && [ "$3" -eq "$2" ] ||
    die "acknowledged events lost or doubled (see above)"
