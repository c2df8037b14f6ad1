-- events.lua: the wrk script of the event benchmark (tests/bench/events.sh).
--
-- Every request is a new EventBridge "Object Created" event: its id and its object key are
-- "<run>-<thread>-<n>" (distinct across threads and runs, so nothing is a duplicate and nothing
-- is superseded). Each thread counts the answers by status and appends the key of every event
-- answered 202 to BENCH_ACK_DIR/acked-<thread>.txt, so the caller can check afterwards that every
-- acknowledged event has its job in the store. Environment: BENCH_RUN (a tag unique to this run),
-- BENCH_ACK_DIR (where the acknowledged keys go), BENCH_BUCKET (the bucket of the events).

local run = os.getenv("BENCH_RUN") or tostring(os.time())
local ack_dir = os.getenv("BENCH_ACK_DIR") or "."
local bucket = os.getenv("BENCH_BUCKET") or "bench-bucket"
local threads = {}

local template = '{"version":"0","id":"%s","detail-type":"Object Created","source":"aws.s3",' ..
    '"account":"111122223333","time":"2026-08-31T09:15:42Z","region":"eu-west-1",' ..
    '"resources":["arn:aws:s3:::' .. bucket .. '"],"detail":{"version":"0",' ..
    '"bucket":{"name":"' .. bucket .. '"},"object":{"key":"bench/%s.json","size":48213,' ..
    '"etag":"9b2cf535f27731c974343645a3985328","sequencer":"00665D8A2E3B1C4F27"},' ..
    '"request-id":"N4N7GDK58NMKJ12R","requester":"111122223333","reason":"PutObject"}}'

function setup(thread)
    table.insert(threads, thread)
    thread:set("tid", #threads)
end

function init(args)
    n = 0
    acked, dup, other, s503, s429 = 0, 0, 0, 0, 0
    ack_file = io.open(string.format("%s/acked-%d.txt", ack_dir, tid), "a")
    ack_file:setvbuf("line")
    headers = {["Content-Type"] = "application/json"}
end

function request()
    n = n + 1
    local id = string.format("%s-%d-%d", run, tid, n)
    return wrk.format("POST", "/events", headers, string.format(template, id, id))
end

function response(status, hdrs, body)
    if status == 202 then
        if body:find('"duplicate":true', 1, true) then
            dup = dup + 1
        else
            acked = acked + 1
        end
        local key = body:match('"key":"bench/([^"]*)%.json"')
        if key then
            ack_file:write(key, "\n")
        end
    elseif status == 503 then
        s503 = s503 + 1
    elseif status == 429 then
        s429 = s429 + 1
    else
        other = other + 1
    end
end

function done(summary, latency, requests)
    local a, d, o, s3, s4, sent = 0, 0, 0, 0, 0, 0
    for _, t in ipairs(threads) do
        a = a + t:get("acked")
        d = d + t:get("dup")
        o = o + t:get("other")
        s3 = s3 + t:get("s503")
        s4 = s4 + t:get("s429")
        sent = sent + t:get("n")
    end
    local secs = summary.duration / 1e6
    io.write(string.format("RESULT accepted=%d duplicate=%d s503=%d s429=%d other=%d sent=%d " ..
        "seconds=%.3f rate=%.1f p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f " ..
        "errors_connect=%d errors_read=%d errors_write=%d errors_timeout=%d\n",
        a, d, s3, s4, o, sent, secs, a / secs, latency:percentile(50) / 1000,
        latency:percentile(90) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
        summary.errors.connect, summary.errors.read, summary.errors.write,
        summary.errors.timeout))
end
