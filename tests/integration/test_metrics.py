#!/usr/bin/env python3
"""GET /metrics on the real binary: `promtool check metrics` accepts the exposition, and the
counters move as the test drives traffic (HTTP requests by route pattern and status with latency
histograms, jobs by state and query, attempts, retries, dead jobs, job durations, the warehouse).

A job is made to fail with a transient I/O error by giving it a socket as its source object
(open() refuses it with ENXIO); with --max-attempts 2 it is retried once and then dead.

Environment: HCPIPE_BIN. Prints "N passed, N failed" last; exits 77 when promtool is missing.
"""
import http.client
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
SLOW = 3 if os.environ.get("SANITIZER") else 1
PASSED = FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("ok   " + name)
    else:
        FAILED += 1
        print("FAIL %s %s" % (name, detail))


def request(port, method, path, body=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10 * SLOW)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None,
                 headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, resp.getheader("Content-Type"), data


LINE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text):
    """{(name, frozenset(labels.items())): value} of every sample."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = LINE.match(line)
        if not m:
            raise AssertionError("unparsable line: " + line)
        labels = frozenset(LABEL.findall(m.group(3) or ""))
        out[(m.group(1), labels)] = float(m.group(4))
    return out


def value(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(port):
    # A request is counted when the server completes it, which may be just after the client
    # has read the answer: let the completions of earlier requests land first.
    time.sleep(0.3 * SLOW)
    status, ctype, data = request(port, "GET", "/metrics")
    assert status == 200, status
    return ctype, data.decode()


def promtool_ok(text):
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       capture_output=True, timeout=60)
    return p.returncode == 0, (p.stdout + p.stderr).decode()


def wait_state(port, job_id, states, timeout):
    deadline = time.time() + timeout * SLOW
    job = None
    while time.time() < deadline:
        _, _, data = request(port, "GET", "/jobs/" + job_id)
        job = json.loads(data)
        if job["state"] in states:
            return job
        time.sleep(0.05)
    raise AssertionError("job %s stayed %s" % (job_id, job and job["state"]))


def main():
    if not shutil.which("promtool"):
        print("SKIP: promtool is not installed (Debian package prometheus)")
        return 77
    tmp = tempfile.mkdtemp(prefix="hcpipe-metrics-")
    proc = None
    try:
        os.makedirs(os.path.join(tmp, "buckets", "sample"))
        os.makedirs(os.path.join(tmp, "buckets", "bad"))
        sample = os.path.join(tmp, "buckets", "sample", "facilities.ndjson")
        shutil.copy(os.path.join(ROOT, "tests", "data", "sample_data.ndjson"), sample)
        n_sample = sum(1 for line in open(sample) if line.strip())
        s = socket.socket(socket.AF_UNIX)
        s.bind(os.path.join(tmp, "buckets", "bad", "facilities.ndjson"))
        s.close()
        log = open(os.path.join(tmp, "log"), "wb")
        proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", tmp,
                                 "--max-attempts", "2", "--seed", "s3://sample/facilities.ndjson",
                                 "--insecure-dev-events"],
                                stdout=log, stderr=log)
        port = None
        deadline = time.time() + 30 * SLOW
        while port is None and time.time() < deadline:
            m = re.search(rb'"listen":"127\.0\.0\.1:(\d+)"', open(os.path.join(tmp, "log"), "rb").read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        assert port, "the server did not start"
        # The seed job loads the sample into the warehouse.
        deadline = time.time() + 30 * SLOW
        while time.time() < deadline:
            _, _, data = request(port, "GET", "/jobs?state=succeeded")
            if json.loads(data)["jobs"]:
                break
            time.sleep(0.05)

        ctype, text = scrape(port)
        check("content type is the text format 0.0.4",
              ctype.startswith("text/plain") and "version=0.0.4" in ctype, ctype)
        ok, out = promtool_ok(text)
        check("promtool check metrics accepts the first scrape", ok, out)
        before = parse(text)
        check("warehouse objects", value(before, "hcpipe_warehouse_objects") == 1)
        check("warehouse facilities", value(before, "hcpipe_warehouse_facilities") == n_sample,
              value(before, "hcpipe_warehouse_facilities"))
        check("warehouse bytes", value(before, "hcpipe_warehouse_bytes") == os.path.getsize(sample))
        check("the seed job is counted by state and query",
              value(before, "hcpipe_jobs", state="succeeded", query="facility_metrics") == 1)
        check("event outcomes are exposed",
              all(("hcpipe_events_total", frozenset({("outcome", o)})) in before
                  for o in ("accepted", "duplicate", "ignored", "rejected")))

        # Traffic: three list calls, an unknown job, an unknown path, a job that succeeds and a
        # job that is retried once and then dead.
        for _ in range(3):
            request(port, "GET", "/jobs")
        unknown = "00000000-0000-4000-8000-000000000000"
        request(port, "GET", "/jobs/" + unknown)
        request(port, "GET", "/no/such/thing")
        status, _, data = request(port, "POST", "/jobs", {"query": "accredited_by_state"})
        good = json.loads(data)["id"]
        status, _, data = request(port, "POST", "/jobs", {"query": "facility_metrics",
                                                          "source": "s3://bad/facilities.ndjson"})
        bad = json.loads(data)["id"]
        wait_state(port, good, ("succeeded",), 30)
        dead = wait_state(port, bad, ("dead", "failed"), 30)
        check("the unreadable source makes the job dead after 2 attempts",
              dead["state"] == "dead" and dead["attempts"] == 2, dead["state"])

        _, text = scrape(port)
        ok, out = promtool_ok(text)
        check("promtool check metrics accepts the scrape after traffic", ok, out)
        after = parse(text)

        def moved(name, delta, **labels):
            d = value(after, name, **labels) - value(before, name, **labels)
            check("%s%s moved by %s" % (name, labels, delta), d == delta, "moved by %s" % d)

        moved("hcpipe_http_requests_total", 3, route="/jobs", method="GET", status="200")
        moved("hcpipe_http_request_duration_seconds_count", 3, route="/jobs", method="GET")
        moved("hcpipe_http_request_duration_seconds_bucket", 3, route="/jobs", method="GET",
              le="+Inf")
        moved("hcpipe_http_request_duration_seconds_count", 2, route="/jobs", method="POST")
        moved("hcpipe_http_requests_total", 1, route="/jobs/{id}", method="GET", status="404")
        moved("hcpipe_http_requests_total", 1, route="unmatched", method="GET", status="404")
        moved("hcpipe_http_requests_total", 2, route="/jobs", method="POST", status="201")
        moved("hcpipe_jobs_finished_total", 1, engine="local", query="accredited_by_state",
              state="succeeded")
        moved("hcpipe_jobs_finished_total", 1, engine="local", query="facility_metrics",
              state="dead")
        moved("hcpipe_jobs_dead_total", 1, engine="local")
        moved("hcpipe_job_attempts_total", 3, engine="local")
        moved("hcpipe_job_retries_total", 1, engine="local")
        moved("hcpipe_job_retries_scheduled_total", 1, engine="local")
        moved("hcpipe_job_duration_seconds_count", 2, engine="local")
        moved("hcpipe_jobs", 1, state="dead", query="facility_metrics")
        moved("hcpipe_jobs", 1, state="succeeded", query="accredited_by_state")
        check("no raw path or id is a label value", unknown not in text and "/no/such" not in text)
        check("the previous scrape is counted too",
              value(after, "hcpipe_http_requests_total", route="/metrics", method="GET",
                    status="200") >= 1)
        # Histogram buckets are cumulative and end at the count.
        buckets = sorted((float(dict(k[1])["le"]) if dict(k[1])["le"] != "+Inf" else float("inf"), v)
                         for k, v in after.items()
                         if k[0] == "hcpipe_http_request_duration_seconds_bucket"
                         and dict(k[1])["route"] == "/jobs" and dict(k[1])["method"] == "GET")
        check("latency buckets are cumulative and end at _count",
              all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])) and
              buckets[-1][1] == value(after, "hcpipe_http_request_duration_seconds_count",
                                     route="/jobs", method="GET"))
        # Events: one accepted, the same again (duplicate), and a malformed payload (rejected).
        events_dir = None
        for cand in (os.path.join(ROOT, "..", "shared", "testdata", "events"),
                     "/work/shared/testdata/events"):
            if os.path.isdir(cand):
                events_dir = cand
                break
        if events_dir:
            good_ev = json.load(open(os.path.join(events_dir, "eventbridge-object-created.json")))
            bad_ev = json.load(open(os.path.join(events_dir, "malformed-missing-key.json")))
            s1, _, _ = request(port, "POST", "/events", good_ev)
            s2, _, _ = request(port, "POST", "/events", good_ev)
            s3, _, _ = request(port, "POST", "/events", bad_ev)
            _, text = scrape(port)
            ev = parse(text)
            check("events were answered 202, 202 and 4xx", s1 == 202 and s2 == 202 and 400 <= s3 < 500,
                  "%s %s %s" % (s1, s2, s3))
            for outcome, n in (("accepted", 1), ("duplicate", 1), ("rejected", 1)):
                d = value(ev, "hcpipe_events_total", outcome=outcome) - value(after, "hcpipe_events_total", outcome=outcome)
                check("hcpipe_events_total{outcome=%s} moved by %d" % (outcome, n), d == n, "moved by %s" % d)
            ok, out = promtool_ok(text)
            check("promtool check metrics accepts the scrape after events", ok, out)
        else:
            print("note: shared/testdata/events not found; event counters not driven")
    finally:
        if proc:
            proc.terminate()
            try:
                proc.wait(timeout=20 * SLOW)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except AssertionError as e:
        print("FAIL %s" % e)
        print("%d passed, %d failed" % (PASSED, FAILED + 1))
        sys.exit(1)
