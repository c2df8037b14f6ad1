#!/bin/sh
# The dashboard in a real browser: starts hcpipe on an ephemeral loopback port over the sample
# and a generated dataset (3000 facilities), makes one job dead (its source object is a socket,
# which cannot be read: a transient I/O error, and --max-attempts 1), then runs
# tests/browser/dashboard.test.mjs in Debian's headless Chromium through playwright-core.
# Screenshots go to build/screenshots/. Exit 77 only when chromium (or node) cannot be had.
set -u
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
: "${HCPIPE_BIN:?HCPIPE_BIN must name the binary}"

if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium \
        >/dev/null 2>&1 || true
fi
if [ ! -x /usr/bin/chromium ]; then
    echo "SKIP: /usr/bin/chromium is not installed (Debian package chromium)"
    exit 77
fi
if ! command -v node >/dev/null 2>&1; then
    echo "SKIP: node is not installed"
    exit 77
fi
if [ ! -f "$root/tests/browser/node_modules/playwright-core/package.json" ]; then
    PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --prefix "$root/tests/browser" --no-audit --no-fund \
        --ignore-scripts >/dev/null 2>&1 || { echo "FAIL: npm ci tests/browser"; exit 1; }
fi

tmp=$(mktemp -d)
pid=""
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

data="$tmp/data"
mkdir -p "$data/buckets/sample" "$data/buckets/gen" "$data/buckets/bad"
cp "$root/tests/data/sample_data.ndjson" "$data/buckets/sample/facilities.ndjson"
python3 - "$data/buckets/gen/facilities.ndjson" <<'EOF'
# 3000 facilities over every state, with accreditations around mid-2026 (some within 30 days
# of the as_of the browser test uses, 2026-06-01), a few with no state or no accreditation.
import datetime, json, random, sys
rng = random.Random(6)
states = ("AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE "
          "NV NH NJ NM NY NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY").split()
weights = [1 + (i * 7) % 13 for i in range(len(states))]
base = datetime.date(2026, 6, 1)
with open(sys.argv[1], "w") as out:
    for i in range(3000):
        st = rng.choices(states, weights)[0] if i % 97 else None
        accs = []
        for k in range(rng.choice([0, 1, 1, 2, 3])):
            d = base + datetime.timedelta(days=rng.randint(-200, 400))
            accs.append({"accreditation_body": rng.choice(["Joint Commission", "NCQA", "DNV", "CARF"]),
                         "accreditation_id": "A%05d%d" % (i, k), "valid_until": d.isoformat()})
        rec = {"facility_id": "GEN%05d" % i, "facility_name": "Facility %d" % i,
               "location": {"address": "%d Main St" % i, "city": "Town %d" % (i % 50),
                            "state": st, "zip": "%05d" % (10000 + i)},
               "employee_count": rng.randint(5, 5000),
               "services": rng.sample(["Emergency Care", "Maternity", "Surgery", "Radiology",
                                       "Laboratory", "Oncology"], rng.randint(0, 4)),
               "accreditations": accs}
        out.write(json.dumps(rec) + "\n")
EOF
# The dead job's source: a socket, which open() refuses with ENXIO (an I/O error, transient).
python3 -c 'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
    "$data/buckets/bad/facilities.ndjson"

"$HCPIPE_BIN" serve --listen 127.0.0.1:0 --data-dir "$data" --max-attempts 1 --workers 2 \
    --insecure-dev-events \
    --seed s3://sample/facilities.ndjson --seed s3://gen/facilities.ndjson >"$tmp/log" 2>&1 &
pid=$!
port=""
for _ in $(seq 1 100); do
    port=$(grep -o '"listen":"127.0.0.1:[0-9]*' "$tmp/log" 2>/dev/null | grep -o '[0-9]*$')
    [ -n "$port" ] && break
    sleep 0.1
done
if [ -z "$port" ]; then
    echo "FAIL: hcpipe did not start"; cat "$tmp/log"; exit 1
fi
url="http://127.0.0.1:$port"
dead=$(curl -sf -X POST "$url/jobs" -H 'Content-Type: application/json' \
    -d '{"query":"facility_metrics","source":"s3://bad/facilities.ndjson"}' |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
for _ in $(seq 1 100); do
    curl -sf "$url/jobs/$dead" | grep -q '"state":"dead"' && break
    sleep 0.1
done
curl -sf "$url/jobs/$dead" | grep -q '"state":"dead"' || { echo "FAIL: the job did not die"; exit 1; }

shots="$root/build/screenshots"
mkdir -p "$shots"
HCPIPE_URL="$url" DATA_DIR="$data" DEAD_JOB="$dead" SCREENSHOTS="$shots" \
    GOOD_OBJECT="$root/tests/data/sample_data.ndjson" \
    DEAD_OBJECT="$data/buckets/bad/facilities.ndjson" \
    timeout 300 node "$root/tests/browser/dashboard.test.mjs"
rc=$?
if ! kill -0 "$pid" 2>/dev/null; then
    echo "FAIL: hcpipe died during the browser tests"; tail -n 20 "$tmp/log"; rc=1
fi
[ "$rc" -eq 0 ] || tail -n 30 "$tmp/log"
exit "$rc"
