#!/usr/bin/env python3
"""Integration tests of the HTTP API: the real binary on an ephemeral loopback port.

Each server gets a temporary data dir holding the sample facilities in buckets/sample/. The
tests drive it over HTTP with the standard library only: the job lifecycle of every catalog
query with the sample's expected numbers, ETag/304/HEAD on result files, every error status and
problem type, paging, cancel and retry, the settings (bad values, flags beating the
environment), graceful shutdown, and a kill -9 in the middle of a job followed by a restart.

Environment: HCPIPE_BIN (default build/hcpipe). Prints "N passed, N failed" last.
"""
import datetime
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
VALGRIND = os.environ.get("VALGRIND") == "1"  # VALGRIND=1 runs every server under valgrind
SLOW = 10 if VALGRIND else 3 if os.environ.get("SANITIZER") else 1  # slower builds wait longer
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures"))
from hcserver import free_port, wait_ready  # noqa: E402
PROBLEM = "https://hcpipe.dev/problems/"
AS_OF = "2026-11-27"


def make_data_dir():
    d = tempfile.mkdtemp(prefix="hcpipe-api-")
    bucket = os.path.join(d, "buckets", "sample")
    os.makedirs(bucket)
    for name in ("sample_data.json", "sample_data.ndjson"):
        shutil.copy(os.path.join(ROOT, "tests", "data", name), bucket)
    return d


class Server:
    """One hcpipe serve process."""

    def __init__(self, data_dir, args=(), env=None, host="127.0.0.1", log_dir=None):
        self.data_dir = data_dir
        self.host = host
        self.port = free_port()
        self.log_path = os.path.join(log_dir or data_dir, "server-%d.log" % self.port)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
        full_env["HCPIPE_INSECURE_DEV_EVENTS"] = "1"  # no webhook credential in these tests
        full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        prefix = ["valgrind", "-q", "--error-exitcode=99", "--leak-check=full"] if VALGRIND else []
        self.proc = subprocess.Popen(
            prefix + [BIN, "serve", "--listen",
                      ("[%s]:%d" if ":" in host else "%s:%d") % (host, self.port), "--data-dir", data_dir]
            + list(args),
            stdout=self.log, stderr=self.log, env=full_env)
        self.wait_ready()

    def wait_ready(self):
        wait_ready(self, 30 * SLOW)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-4000:]

    def request(self, method, path, body=None, headers=None):
        """Returns (status, headers as a lower-cased dict, body bytes)."""
        conn = http.client.HTTPConnection(self.host, self.port, timeout=30 * SLOW)
        try:
            if isinstance(body, (dict, list)):
                body = json.dumps(body).encode()
                headers = dict(headers or {}, **{"Content-Type": "application/json"})
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        return status, hdrs, (json.loads(data) if data else None)

    def submit(self, **fields):
        status, hdrs, doc = self.json("POST", "/jobs", fields)
        assert status == 201, (status, doc)
        return doc

    def wait_job(self, job_id, states=("succeeded",), timeout=60):
        deadline = time.time() + timeout * SLOW
        doc = None
        while time.time() < deadline:
            status, _, doc = self.json("GET", "/jobs/" + job_id)
            assert status == 200, (status, doc)
            if doc["state"] in states:
                return doc
            if doc["state"] in ("failed", "dead", "cancelled", "succeeded"):
                raise AssertionError("job ended %s: %s" % (doc["state"], doc))
            time.sleep(0.05)
        raise AssertionError("job %s still %s" % (job_id, doc and doc["state"]))

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        """SIGTERM; the service must exit 0."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop on SIGTERM")
        self.log.close()
        return self.proc.returncode

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.log.close()


def assert_problem(status, hdrs, body, want_status, slug):
    assert status == want_status, (status, body)
    assert hdrs.get("content-type") == "application/problem+json", hdrs
    doc = json.loads(body)
    assert doc["type"] == PROBLEM + slug, doc
    assert doc["status"] == want_status, doc
    assert doc["title"], doc
    return doc


def csv_lines(data):
    text = data.decode()
    assert text.endswith("\r\n"), repr(text)
    return text[:-2].split("\r\n")


# The shared server of most tests; started in main().
S = None


def lifecycle(query, source="s3://sample/sample_data.json"):
    job = S.submit(query=query, source=source, as_of=AS_OF)
    assert job["state"] in ("queued", "running"), job
    assert job["query"] == query and job["as_of"] == AS_OF and job["source"] == source, job
    for key in ("id", "attempts", "created_at", "updated_at", "error"):
        assert key in job, key
    done = S.wait_job(job["id"])
    assert done["attempts"] == 1, done
    status, hdrs, doc = S.json("GET", "/jobs/%s/result.json" % job["id"])
    assert status == 200 and hdrs["content-type"].startswith("application/json"), status
    assert doc["job_id"] == job["id"] and doc["query"] == query and doc["as_of"] == AS_OF, doc
    assert doc["row_count"] == len(doc["rows"]), doc
    status, hdrs, csv = S.request("GET", "/jobs/%s/result.csv" % job["id"])
    assert status == 200 and hdrs["content-type"].startswith("text/csv"), (status, hdrs)
    return doc, csv_lines(csv)


def test_lifecycle_accredited_by_state():
    doc, csv = lifecycle("accredited_by_state")
    assert [c["name"] for c in doc["columns"]] == [
        "state", "facility_count", "total_employees", "valid_accreditations"], doc
    assert doc["rows"] == [{"state": "TX", "facility_count": 1, "total_employees": 250,
                            "valid_accreditations": 1}], doc["rows"]
    assert csv == ["state,facility_count,total_employees,valid_accreditations", "TX,1,250,1"], csv


def test_lifecycle_facility_metrics():
    doc, csv = lifecycle("facility_metrics", "s3://sample/sample_data.ndjson")
    got = [(r["facility_id"], r["number_of_offered_services"],
            r["expiry_date_of_first_accreditation"]) for r in doc["rows"]]
    assert got == [("FAC12345", 5, "2026-12-31"), ("FAC54321", 2, "2024-09-30"),
                   ("FAC67890", 4, "2025-12-31")], got
    assert doc["rows"][0]["employee_count"] == 250, doc["rows"][0]
    assert csv[0] == ("facility_id,facility_name,employee_count,number_of_offered_services,"
                      "expiry_date_of_first_accreditation"), csv
    assert csv[1] == "FAC12345,City Hospital,250,5,2026-12-31", csv
    assert len(csv) == 4, csv


def test_lifecycle_expiring_accreditations():
    doc, csv = lifecycle("expiring_accreditations")
    # Independent check: accreditations of the sample valid within [as_of, as_of + 6 months].
    with open(os.path.join(ROOT, "tests", "data", "sample_data.json")) as f:
        records = json.load(f)["sample_data"]
    as_of = datetime.date.fromisoformat(AS_OF)
    end = datetime.date(2027, 5, 27)
    want = []
    for r in records:
        for a in r.get("accreditations") or []:
            until = datetime.date.fromisoformat(a["valid_until"])
            if as_of <= until <= end:
                want.append((r["facility_id"], a["accreditation_body"], a["valid_until"],
                             (until - as_of).days))
    got = [(r["facility_id"], r["accreditation_body"], r["valid_until"], r["days_left"])
           for r in doc["rows"]]
    assert want and got == sorted(want, key=lambda w: (w[2], w[0], w[1])), (got, want)
    assert len(csv) == 1 + len(want), csv


def test_result_etag_304_head():
    job = S.submit(query="facility_metrics", as_of=AS_OF)
    S.wait_job(job["id"])
    for name in ("result.json", "result.csv"):
        path = "/jobs/%s/%s" % (job["id"], name)
        status, hdrs, body = S.request("GET", path)
        assert status == 200 and body, status
        etag = hdrs["etag"]
        assert etag.startswith('"') and int(hdrs["content-length"]) == len(body), hdrs
        status, hdrs2, body2 = S.request("GET", path, headers={"If-None-Match": etag})
        assert status == 304 and body2 == b"" and hdrs2["etag"] == etag, (status, hdrs2)
        status, _, _ = S.request("GET", path, headers={"If-None-Match": '"other"'})
        assert status == 200, status
        status, hdrs3, body3 = S.request("HEAD", path)
        assert status == 200 and body3 == b"", status
        assert hdrs3["content-length"] == str(len(body)) and hdrs3["etag"] == etag, hdrs3


def test_bad_json_400():
    status, hdrs, body = S.request("POST", "/jobs", b'{"query": "facility_metrics",\n  "as_of": }',
                                   {"Content-Type": "application/json"})
    doc = assert_problem(status, hdrs, body, 400, "invalid-json")
    assert doc["line"] == 2 and doc["column"] > 0 and "line 2" in doc["detail"], doc
    status, hdrs, body = S.request("POST", "/jobs", b"", {"Content-Type": "application/json"})
    assert_problem(status, hdrs, body, 400, "invalid-json")


def raw_exchange(port, head):
    """Sends raw request headers and reads the response without sending any body."""
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as s:
        s.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        head_end = data.index(b"\r\n\r\n")
        lines = data[:head_end].decode().split("\r\n")
        hdrs = {k.strip().lower(): v.strip() for k, v in
                (line.split(":", 1) for line in lines[1:])}
        body = data[head_end + 4:]
        while len(body) < int(hdrs.get("content-length", 0)):
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
        return int(lines[0].split()[1]), hdrs, body


def test_oversize_body_413():
    big = b'{"query": "' + b"x" * (1 << 20) + b'"}'
    for _ in range(5):  # the answer must reach the client every time
        status, hdrs, body = S.request("POST", "/jobs", big, {"Content-Type": "application/json"})
        assert_problem(status, hdrs, body, 413, "payload-too-large")
    # Other errors found on the headers also reach a client that is still sending its body.
    status, hdrs, body = S.request("POST", "/nowhere", big)
    assert_problem(status, hdrs, body, 404, "not-found")
    status, hdrs, body = S.request("PUT", "/jobs", big)
    assert_problem(status, hdrs, body, 405, "method-not-allowed")
    # A client that waits for "100 Continue" gets the 413 before it sends the body.
    status, hdrs, body = raw_exchange(S.port, (
        b"POST /jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2000000\r\nExpect: 100-continue\r\n\r\n"))
    assert_problem(status, hdrs, body, 413, "payload-too-large")

    # Chunked, so the server only finds out while reading.
    def chunks():
        for _ in range(20):
            yield b"y" * 65536

    conn = http.client.HTTPConnection("127.0.0.1", S.port, timeout=30 * SLOW)
    try:
        conn.request("POST", "/jobs", body=chunks(), encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
        resp = conn.getresponse()
        assert_problem(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read(),
                       413, "payload-too-large")
    finally:
        conn.close()


def test_validation_422():
    cases = [
        ({"query": "facility_metrics", "colour": "red"}, "validation-failed", "colour"),
        ({"query": "facility_metrics", "as_of": "2026-02-30"}, "validation-failed", "as_of"),
        ({"query": "facility_metrics", "as_of": "27/11/2026"}, "validation-failed", "as_of"),
        ({"query": "no_such_query"}, "unknown-query", "query"),
        ({"source": "s3://sample/sample_data.json"}, "validation-failed", "query"),
        ({"query": "facility_metrics", "source": "/etc/passwd"}, "invalid-source", "source"),
        ({"query": "facility_metrics", "source": "s3://sample/../x"}, "invalid-source", "source"),
        ({"query": "facility_metrics", "scope": "object"}, "invalid-source", "source"),
        ({"query": "facility_metrics", "scope": "world"}, "validation-failed", "scope"),
        ({"query": "facility_metrics", "on_bad_record": "ignore"}, "validation-failed",
         "on_bad_record"),
        ({"query": "facility_metrics", "timeout_s": 0}, "validation-failed", "timeout_s"),
        ({"query": "facility_metrics", "timeout_s": 10 ** 9}, "validation-failed", "timeout_s"),
        ({"query": "facility_metrics", "timeout_s": "5"}, "validation-failed", "timeout_s"),
        (["facility_metrics"], "validation-failed", "body"),
    ]
    for body, slug, field in cases:
        status, hdrs, data = S.request("POST", "/jobs", json.dumps(body).encode())
        doc = assert_problem(status, hdrs, data, 422, slug)
        assert doc["invalid_params"][0]["name"] == field, (body, doc)
        assert field in doc["detail"], doc


def test_method_405_with_allow():
    status, hdrs, body = S.request("DELETE", "/jobs")
    assert_problem(status, hdrs, body, 405, "method-not-allowed")
    allow = [m.strip() for m in hdrs["allow"].split(",")]
    assert sorted(allow) == ["GET", "HEAD", "POST"], allow
    status, hdrs, body = S.request("GET", "/jobs/abc/cancel")
    assert_problem(status, hdrs, body, 405, "method-not-allowed")
    assert hdrs["allow"] == "POST", hdrs


def test_unknown_path_404():
    # "/" is the dashboard; an unknown dashboard file is a 404 like any unknown path.
    for path in ("/nope", "/jobs/x/y/z", "/jobs/", "/ui/no-such-file.js", "/ui/vendor/nope.js"):
        status, hdrs, body = S.request("GET", path)
        assert_problem(status, hdrs, body, 404, "not-found")


def test_unknown_job_404():
    for method, path in (("GET", "/jobs/%s"), ("GET", "/jobs/%s/result.json"),
                         ("GET", "/jobs/%s/result.csv"), ("POST", "/jobs/%s/cancel"),
                         ("POST", "/jobs/%s/retry")):
        status, hdrs, body = S.request(method, path % "00000000-0000-4000-8000-000000000000")
        assert_problem(status, hdrs, body, 404, "job-not-found")


def test_failed_job_result_409_and_retry():
    job = S.submit(query="facility_metrics", source="s3://sample/missing.ndjson")
    done = S.wait_job(job["id"], states=("failed", "dead"))
    assert done["error"]["type"].startswith(PROBLEM), done
    status, hdrs, body = S.request("GET", "/jobs/%s/result.json" % job["id"])
    doc = assert_problem(status, hdrs, body, 409, "result-not-ready")
    assert done["state"] in doc["detail"], doc
    status, _, doc = S.json("POST", "/jobs/%s/retry" % job["id"])
    assert status == 200 and doc["state"] == "queued" and doc["attempts"] == 0, doc
    S.wait_job(job["id"], states=("failed", "dead"))


def test_retry_succeeded_409():
    job = S.submit(query="facility_metrics")
    S.wait_job(job["id"])
    status, hdrs, body = S.request("POST", "/jobs/%s/retry" % job["id"])
    doc = assert_problem(status, hdrs, body, 409, "conflict")
    assert "succeeded" in doc["detail"], doc
    status, hdrs, body = S.request("POST", "/jobs/%s/cancel" % job["id"])
    assert_problem(status, hdrs, body, 409, "conflict")


def test_list_paging_and_filters():
    ids = [S.submit(query="accredited_by_state", as_of="2025-01-0%d" % i)["id"]
           for i in range(1, 6)]
    for i in ids:
        S.wait_job(i)
    seen, cursor, pages = [], None, 0
    while True:
        path = "/jobs?limit=2&query=accredited_by_state" + ("&cursor=" + cursor if cursor else "")
        status, _, doc = S.json("GET", path)
        assert status == 200 and len(doc["jobs"]) <= 2, doc
        seen += [j["id"] for j in doc["jobs"]]
        assert all(j["query"] == "accredited_by_state" for j in doc["jobs"]), doc
        pages += 1
        cursor = doc["next_cursor"]
        if not cursor:
            break
        assert pages < 100
    assert len(seen) == len(set(seen)), seen
    assert [i for i in seen if i in ids] == list(reversed(ids)), (seen, ids)  # newest first
    status, _, doc = S.json("GET", "/jobs?state=succeeded&limit=1000")
    assert status == 200 and all(j["state"] == "succeeded" for j in doc["jobs"]), doc
    assert set(ids) <= {j["id"] for j in doc["jobs"]}
    status, _, doc = S.json("GET", "/jobs")
    assert status == 200 and len(doc["jobs"]) <= 50
    for bad, field in (("limit=0", "limit"), ("limit=1001", "limit"), ("limit=x", "limit"),
                       ("state=bogus", "state"), ("cursor=%21%21garbage", "cursor"),
                       ("query=nope", "query")):
        status, hdrs, body = S.request("GET", "/jobs?" + bad)
        doc = assert_problem(status, hdrs, body, 422, "unknown-query" if field == "query"
                             else "validation-failed")
        assert doc["invalid_params"][0]["name"] == field, doc


def test_request_id_and_openapi():
    status, hdrs, _ = S.request("GET", "/healthz", headers={"X-Request-Id": "abc-123"})
    assert status == 200 and hdrs["x-request-id"] == "abc-123", hdrs
    status, hdrs, _ = S.request("GET", "/healthz", headers={"X-Request-Id": "bad id\x01"})
    assert status == 200 and len(hdrs["x-request-id"]) == 36, hdrs
    status, hdrs, body = S.request("HEAD", "/jobs?limit=1")
    assert status == 200 and body == b"" and int(hdrs["content-length"]) > 0, hdrs
    status, hdrs, doc = S.json("GET", "/openapi.json")
    assert status == 200 and doc["openapi"].startswith("3.1") and "/jobs" in doc["paths"], status
    status, _, _ = S.request("GET", "/openapi.json", headers={"If-None-Match": hdrs["etag"]})
    assert status == 304
    # The per-request log line, and nothing of the body in the log.
    S.request("POST", "/jobs", b'{"query": "facility_metrics", "secret": "hunter2"}')
    time.sleep(0.2)
    log = S.read_log()
    assert '"request_id":"abc-123"' in log and "hunter2" not in log, log[-2000:]


def big_input(data_dir, n):
    """Writes n generated facilities as NDJSON into buckets/big/; returns the source."""
    os.makedirs(os.path.join(data_dir, "buckets", "big"), exist_ok=True)
    path = os.path.join(data_dir, "buckets", "big", "facilities.ndjson")
    states = ["TX", "CA", "FL", "NY", "WA", None]
    with open(path, "w") as f:
        for i in range(n):
            f.write(json.dumps({
                "facility_id": "GEN%07d" % i, "facility_name": "Facility %d" % i,
                "location": {"address": "%d Main St" % i, "city": "Springfield",
                             "state": states[i % len(states)], "zip": "%05d" % (i % 99999)},
                "employee_count": i % 500,
                "services": ["Service %d" % k for k in range(i % 7)],
                "labs": [{"lab_name": "Lab %d" % i, "certifications": ["CLIA", "CAP"]}],
                "accreditations": [{"accreditation_body": "Joint Commission",
                                    "accreditation_id": "JC%d" % i,
                                    "valid_until": "202%d-0%d-15" % (5 + i % 4, 1 + i % 9)}],
            }) + "\n")
    return "s3://big/facilities.ndjson"


def test_cancel_queued_and_running():
    """One worker busy with a big job: a job queued behind it is cancelled at once; the running
    one is asked to stop and ends cancelled (or succeeded, when it finished first)."""
    d = make_data_dir()
    source = big_input(d, 60000)
    srv = Server(d, ["--workers", "1"])
    try:
        big = srv.submit(query="facility_metrics", source=source)
        behind = srv.submit(query="facility_metrics")
        status, _, doc = srv.json("POST", "/jobs/%s/cancel" % behind["id"])
        assert status == 200 and doc["state"] == "cancelled", doc
        status, hdrs, body = srv.request("POST", "/jobs/%s/cancel" % behind["id"])
        assert_problem(status, hdrs, body, 409, "conflict")
        status, hdrs, body = srv.request("GET", "/jobs/%s/result.csv" % behind["id"])
        doc = assert_problem(status, hdrs, body, 409, "result-not-ready")
        assert "cancelled" in doc["detail"], doc
        status, hdrs, body = srv.request("GET", "/jobs/%s/result.json" % big["id"])
        if status == 409:
            assert_problem(status, hdrs, body, 409, "result-not-ready")
        status, _, doc = srv.json("POST", "/jobs/%s/cancel" % big["id"])
        if status == 200:
            end = srv.wait_job(big["id"], states=("cancelled", "succeeded"))
            assert end["state"] in ("cancelled", "succeeded"), end
        else:
            assert status == 409 and doc["detail"].find("succeeded") >= 0, doc
        assert srv.stop() == 0
    finally:
        if srv.alive():
            srv.kill9()
        shutil.rmtree(d, ignore_errors=True)


def test_restart_after_kill9():
    """kill -9 while a job runs; the next start finishes it exactly once."""
    d = make_data_dir()
    n = 80000
    source = big_input(d, n)
    srv = Server(d, ["--workers", "1"])
    second = None
    try:
        job = srv.submit(query="facility_metrics", source=source)
        deadline, state = time.time() + 30 * SLOW, None
        while time.time() < deadline:
            state = srv.json("GET", "/jobs/" + job["id"])[2]["state"]
            if state != "queued":
                break
            time.sleep(0.005)
        assert state == "running", "the job was %s when the server was killed" % state
        srv.kill9()
        second = Server(d, ["--workers", "1"])
        # While it runs again, GET /jobs/{id} shows live progress from the worker.
        running = with_progress = 0
        deadline = time.time() + 120 * SLOW
        while time.time() < deadline:
            doc = second.json("GET", "/jobs/" + job["id"])[2]
            if doc["state"] != "running" and doc["state"] != "queued":
                break
            if doc["state"] == "running":
                running += 1
                if "progress" in doc:
                    with_progress += 1
                    assert {"bytes_read", "records_read"} <= set(doc["progress"]), doc
            time.sleep(0.01)
        assert with_progress > 0 or running <= 2, (running, with_progress)
        print("  restart: %d polls saw the job running, %d with progress" % (running, with_progress))
        done = second.wait_job(job["id"], timeout=120)
        assert done["attempts"] >= 2, done  # the interrupted attempt and the one that finished
        status, _, doc = second.json("GET", "/jobs/%s/result.json" % job["id"])
        assert status == 200 and doc["row_count"] == n == len(doc["rows"]), doc["row_count"]
        ids = [r["facility_id"] for r in doc["rows"]]
        assert len(set(ids)) == n, "duplicate facilities"
        status, _, lst = second.json("GET", "/jobs?limit=1000")
        assert [j["id"] for j in lst["jobs"]] == [job["id"]], lst  # no second job appeared
        time.sleep(0.3 * SLOW)
        assert second.json("GET", "/jobs/" + job["id"])[2]["state"] == "succeeded"
        assert second.stop() == 0
    finally:
        for s in (srv, second):
            if s and s.alive():
                s.kill9()
        shutil.rmtree(d, ignore_errors=True)


def test_sigterm_mid_job():
    """SIGTERM while a job runs: the service exits 0 at a safe point, and the next start
    finishes the job."""
    d = make_data_dir()
    source = big_input(d, 80000)
    srv = Server(d, ["--workers", "1"])
    second = None
    try:
        job = srv.submit(query="facility_metrics", source=source)
        deadline, state = time.time() + 30 * SLOW, None
        while time.time() < deadline:
            state = srv.json("GET", "/jobs/" + job["id"])[2]["state"]
            if state != "queued":
                break
            time.sleep(0.005)
        assert state == "running", state
        t0 = time.time()
        assert srv.stop() == 0
        assert time.time() - t0 < 20 * SLOW, "shutdown took %.1fs" % (time.time() - t0)
        assert "shutting down" in srv.read_log() and '"stopped"' in srv.read_log()
        second = Server(d, ["--workers", "1"])
        done = second.wait_job(job["id"], timeout=120)
        status, _, doc = second.json("GET", "/jobs/%s/result.json" % job["id"])
        assert status == 200 and doc["row_count"] == 80000, doc["row_count"]
        assert done["state"] == "succeeded"
        assert second.stop() == 0
    finally:
        for s in (srv, second):
            if s and s.alive():
                s.kill9()
        shutil.rmtree(d, ignore_errors=True)


def test_ipv6_listen():
    """--listen [::1]:PORT serves on IPv6 loopback (skipped where the machine has none)."""
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        print("  no IPv6 loopback here: nothing to check")
        return
    d = make_data_dir()
    srv = None
    try:
        srv = Server(d, [], host="::1")
        status, _, doc = srv.json("GET", "/healthz")
        assert status == 200 and doc == {"status": "ok"}, doc
        # The "listening" line is written just after the daemon starts answering /readyz.
        want = '"listen":"[::1]:%d"' % srv.port
        deadline = time.time() + 5 * SLOW
        while want not in srv.read_log() and time.time() < deadline:
            time.sleep(0.05)
        assert want in srv.read_log()
        assert srv.stop() == 0
    finally:
        if srv and srv.alive():
            srv.kill9()
        shutil.rmtree(d, ignore_errors=True)


def run_cli(args, env=None):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
    full_env.update(env or {})
    return subprocess.run([BIN] + args, env=full_env, capture_output=True, timeout=30 * SLOW)


def test_settings_invalid_values_stop():
    d = make_data_dir()
    try:
        for env, args, name in (({"HCPIPE_WORKERS": "abc"}, [], "HCPIPE_WORKERS"),
                                ({"HCPIPE_LISTEN": "nowhere"}, [], "HCPIPE_LISTEN"),
                                ({"HCPIPE_JOB_TIMEOUT": "-1"}, [], "HCPIPE_JOB_TIMEOUT"),
                                ({"HCPIPE_MAX_ATTEMPTS": "0"}, [], "HCPIPE_MAX_ATTEMPTS"),
                                ({"HCPIPE_LOG_LEVEL": "loud"}, [], "HCPIPE_LOG_LEVEL"),
                                ({}, ["--workers", "65"], "--workers"),
                                ({}, ["--seed", "http://x/y"], "--seed"),
                                ({}, ["--bogus"], "--bogus")):
            r = run_cli(["serve", "--data-dir", d] + args, env)
            assert r.returncode == 2, (env, args, r.returncode, r.stderr)
            assert name.encode() in r.stderr and r.stderr.startswith(b"hcpipe: "), r.stderr
        r = run_cli(["serve", "--data-dir", d, "--engine", "athena"])
        assert r.returncode == 2 and b"athena" in r.stderr, r.stderr
        r = run_cli(["serve", "--help"])
        assert r.returncode == 0, r
        for var in ("HCPIPE_LISTEN", "HCPIPE_DATA_DIR", "HCPIPE_ENGINE", "HCPIPE_WORKERS",
                    "HCPIPE_JOB_TIMEOUT", "HCPIPE_MAX_ATTEMPTS", "HCPIPE_LOG_LEVEL", "--seed",
                    "--max-body", "--insecure-dev-events", "127.0.0.1:8080", "./var"):
            assert var.encode() in r.stdout, var
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_settings_flag_beats_env():
    d = make_data_dir()
    srv = None
    try:
        # A bad environment value is overridden by a good flag, and the env's port is not used.
        srv = Server(d, ["--workers", "1", "--job-timeout", "30"],
                     env={"HCPIPE_WORKERS": "abc", "HCPIPE_JOB_TIMEOUT": "5",
                          "HCPIPE_LISTEN": "127.0.0.1:1"})
        status, hdrs, body = srv.request("POST", "/jobs", json.dumps(
            {"query": "facility_metrics", "timeout_s": 20}).encode())
        assert status == 201, body  # 20 <= the flag's 30, though above the env's 5
        status, hdrs, body = srv.request("POST", "/jobs", json.dumps(
            {"query": "facility_metrics", "timeout_s": 31}).encode())
        assert_problem(status, hdrs, body, 422, "validation-failed")
        assert srv.stop() == 0
    finally:
        if srv and srv.alive():
            srv.kill9()
        shutil.rmtree(d, ignore_errors=True)


def test_seed_jobs_at_start():
    d = make_data_dir()
    srv = None
    try:
        srv = Server(d, ["--seed", "s3://sample/sample_data.ndjson"])
        status, _, doc = srv.json("GET", "/jobs")
        seeds = [j for j in doc["jobs"] if j["source"] == "s3://sample/sample_data.ndjson"]
        assert len(seeds) == 1 and seeds[0]["query"] == "facility_metrics", doc
        srv.wait_job(seeds[0]["id"])
        # The sample is in the warehouse: a dataset query without a source sees it.
        job = srv.submit(query="accredited_by_state", as_of=AS_OF)
        srv.wait_job(job["id"])
        status, _, res = srv.json("GET", "/jobs/%s/result.json" % job["id"])
        assert res["rows"] == [{"state": "TX", "facility_count": 1, "total_employees": 250,
                                "valid_accreditations": 1}], res
        assert srv.stop() == 0
    finally:
        if srv and srv.alive():
            srv.kill9()
        shutil.rmtree(d, ignore_errors=True)


SHARED = [
    test_lifecycle_accredited_by_state,
    test_lifecycle_facility_metrics,
    test_lifecycle_expiring_accreditations,
    test_result_etag_304_head,
    test_bad_json_400,
    test_oversize_body_413,
    test_validation_422,
    test_method_405_with_allow,
    test_unknown_path_404,
    test_unknown_job_404,
    test_failed_job_result_409_and_retry,
    test_retry_succeeded_409,
    test_list_paging_and_filters,
    test_request_id_and_openapi,
]
OWN_SERVER = [
    test_settings_invalid_values_stop,
    test_settings_flag_beats_env,
    test_seed_jobs_at_start,
    test_cancel_queued_and_running,
    test_restart_after_kill9,
    test_sigterm_mid_job,
    test_ipv6_listen,
]


def run(test, results):
    t0 = time.time()
    try:
        test()
        results.append(True)
        print("PASS %s (%.1fs)" % (test.__name__, time.time() - t0))
    except Exception:  # noqa: BLE001 - every failure is reported, then the next test runs
        results.append(False)
        print("FAIL %s" % test.__name__)
        traceback.print_exc(file=sys.stdout)
    sys.stdout.flush()


def main():
    global S
    if not os.access(BIN, os.X_OK):
        print("no binary at %s" % BIN)
        return 77
    only = sys.argv[1:]
    results = []
    d = make_data_dir()
    try:
        S = Server(d, ["--workers", "2"])
        for t in SHARED:
            if not only or t.__name__ in only:
                run(t, results)
        ok = S.alive()
        results.append(ok)
        print("%s server_survived_everything" % ("PASS" if ok else "FAIL"))
        status, _, _ = S.request("GET", "/healthz") if ok else (0, None, None)
        code = S.stop()
        results.append(status == 200 and code == 0)
        print("%s graceful_shutdown_exit_0 (exit %s)" % ("PASS" if code == 0 else "FAIL", code))
        if not all(results):
            print(S.read_log())
    finally:
        shutil.rmtree(d, ignore_errors=True)
    for t in OWN_SERVER:
        if not only or t.__name__ in only:
            run(t, results)
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
