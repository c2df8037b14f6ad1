#!/usr/bin/env python3
"""Integration tests of POST /events and GET /events/{id}: the real binary on a loopback port.

Every payload of shared/testdata/events is replayed with the status and effect its README
expects (api-destination-request.http byte for byte over a raw socket); then authentication
(API key, Basic, refusal to start without a credential), redelivery and concurrent duplicates,
out-of-order sequencers, the filters, Object Deleted removing an object's facilities from later
dataset results, a burst of 200 events with the server staying responsive, and the whole flow
from an object in the bucket folder to its result.

Environment: HCPIPE_BIN (default build/hcpipe); HCPIPE_SHARED (else the nearest ancestor's
shared/) for the payloads. Prints "N passed, N failed" last; exits 77 when the payloads are not
found.
"""
import base64
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
SLOW = 3 if os.environ.get("SANITIZER") else 1
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures"))
from hcserver import free_port, wait_ready  # noqa: E402
PROBLEM = "https://hcpipe.dev/problems/"
KEY = "example-shared-secret-0123456789"  # the key in api-destination-request.http
BUCKET = "example-facility-data"
SITE = "facilities/2024/06/site-0001.json"
SPECIAL = "facilities/2024/site A+B/über (1).json"


def find_events_dir():
    env = os.environ.get("HCPIPE_SHARED")
    if env:
        d = os.path.join(env, "testdata", "events")
        return d if os.path.isdir(d) else None
    base = os.getcwd()
    while True:
        d = os.path.join(base, "shared", "testdata", "events")
        if os.path.isdir(d):
            return d
        parent = os.path.dirname(base)
        if parent == base:
            return None
        base = parent


EVENTS = find_events_dir()


def payload(name):
    with open(os.path.join(EVENTS, name), "rb") as f:
        return f.read()


def put_object(data_dir, bucket, key, src=None, data=None):
    path = os.path.join(data_dir, "buckets", bucket, key)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if src:
        shutil.copy(src, path)
    else:
        with open(path, "wb") as f:
            f.write(data)
    return path


def eventbridge(kind, key, sequencer, event_id, bucket=BUCKET, time_="2024-06-03T09:15:42Z",
                etag="9b2cf535f27731c974343645a3985328"):
    obj = {"key": key, "sequencer": sequencer}
    if kind == "Object Created":
        obj.update({"size": 1, "etag": etag})
    return json.dumps({"version": "0", "id": event_id, "detail-type": kind, "source": "aws.s3",
                       "account": "111122223333", "time": time_, "region": "eu-west-1",
                       "resources": ["arn:aws:s3:::" + bucket],
                       "detail": {"version": "0", "bucket": {"name": bucket}, "object": obj,
                                  "reason": "PutObject"}}).encode()


class Server:
    """One hcpipe serve process with its own data dir."""

    def __init__(self, data_dir, args=(), env=None, key=KEY):
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = os.path.join(data_dir, "server-%d.log" % self.port)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
        if key:
            full_env["HCPIPE_WEBHOOK_API_KEY"] = key
        full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir", data_dir]
            + list(args), stdout=self.log, stderr=self.log, env=full_env)
        wait_ready(self, 30 * SLOW)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * SLOW)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post_event(self, body, key=KEY, headers=None):
        h = {"Content-Type": "application/json; charset=utf-8"}
        if key is not None:
            h["x-api-key"] = key
        h.update(headers or {})
        status, hdrs, data = self.request("POST", "/events", body, h)
        return status, hdrs, (json.loads(data) if data else None)

    def get(self, path):
        status, _, data = self.request("GET", path)
        return status, json.loads(data) if data else None

    def wait_job(self, job_id, states=("succeeded",), timeout=60):
        deadline = time.time() + timeout * SLOW
        doc = None
        while time.time() < deadline:
            status, doc = self.get("/jobs/" + job_id)
            assert status == 200, (status, doc)
            if doc["state"] in states:
                return doc
            if doc["state"] in ("failed", "dead", "cancelled", "succeeded"):
                raise AssertionError("job ended %s: %s" % (doc["state"], doc))
            time.sleep(0.05)
        raise AssertionError("job %s still %s" % (job_id, doc and doc["state"]))

    def all_jobs(self):
        status, doc = self.get("/jobs?limit=1000")
        assert status == 200, doc
        return doc["jobs"] if isinstance(doc, dict) else doc

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=30 * SLOW)
        finally:
            self.log.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class Fixture:
    """A data dir with the sample in the event bucket and a server over it."""

    def __init__(self, args=(), env=None, key=KEY):
        self.dir = tempfile.mkdtemp(prefix="hcpipe-events-")
        self.srv = None
        self.args, self.env, self.key = args, env, key

    def __enter__(self):
        self.srv = Server(self.dir, self.args, self.env, self.key)
        return self

    def __exit__(self, *exc):
        if self.srv:
            self.srv.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def assert_problem(status, hdrs, doc, want_status, slug):
    assert status == want_status, (status, doc)
    assert hdrs.get("content-type", "").startswith("application/problem+json"), hdrs
    assert doc["type"] == PROBLEM + slug, doc
    assert doc["status"] == want_status, doc


def sample(name="sample_data.ndjson"):
    return os.path.join(ROOT, "tests", "data", name)


def facility_ids(srv, as_of="2024-06-03"):
    status, _, data = srv.request("POST", "/jobs", json.dumps(
        {"query": "facility_metrics", "as_of": as_of}).encode(),
        {"Content-Type": "application/json"})
    assert status == 201, data
    job = json.loads(data)
    srv.wait_job(job["id"])
    status, res = srv.get("/jobs/%s/result.json" % job["id"])
    assert status == 200, res
    return {row["facility_id"] for row in res["rows"]}


def raw_request(port, data):
    """Sends bytes as they are and returns (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30 * SLOW) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    resp = b"".join(chunks)
    head, _, body = resp.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), head, body


# ---- the tests ---------------------------------------------------------------------------------

def test_every_payload_as_the_readme_expects():
    with Fixture() as fx:
        srv = fx.srv
        put_object(fx.dir, BUCKET, SITE, src=sample())
        put_object(fx.dir, BUCKET, SPECIAL, src=sample("sample_data.json"))

        # The API destination's request, byte for byte (path, headers and key as in the file).
        status, head, body = raw_request(srv.port, payload("api-destination-request.http"))
        doc = json.loads(body)
        assert status == 202, (status, head, body)
        assert doc["duplicate"] is False and len(doc["jobs"]) == 1, doc
        first_jobs = doc["jobs"]
        job = srv.wait_job(first_jobs[0])
        assert job["source"] == "s3://%s/%s" % (BUCKET, SITE), job
        assert job["query"] == "accredited_by_state" and job["as_of"] == "2024-06-03", job
        assert job["scope"] == "dataset", job

        # The same event as a JSON file: a redelivery of the request above.
        status, _, doc = srv.post_event(payload("eventbridge-object-created.json"))
        assert status == 202 and doc["duplicate"] is True, doc
        assert doc["jobs"] == first_jobs, doc

        # Special key: decoded (space, '+', non-ASCII, parentheses), found under that name.
        status, _, doc = srv.post_event(payload("eventbridge-object-created-special-key.json"))
        assert status == 202 and len(doc["jobs"]) == 1, doc
        assert doc["events"][0]["key"] == SPECIAL, doc
        job = srv.wait_job(doc["jobs"][0])
        assert job["source"] == "s3://%s/%s" % (BUCKET, SPECIAL), job
        special_jobs = doc["jobs"]

        # Multipart: accepted; the ETag with its -<parts> suffix is kept as sent.
        status, _, doc = srv.post_event(payload("eventbridge-object-created-multipart.json"))
        assert status == 202 and len(doc["jobs"]) == 1, doc
        status, ev = srv.get("/events/" + doc["event_id"])
        assert status == 200 and ev["etag"] == "3858f62230ac3c915f300c664312c11f-88", ev
        assert ev["size"] == 734003200, ev

        # Records: record 0 is the special-key event again (same sequencer), record 1 is new.
        status, _, doc = srv.post_event(payload("s3-notification-records.json"))
        assert status == 202, doc
        assert doc["format"] == "s3-records" and len(doc["events"]) == 2, doc
        r0, r1 = doc["events"]
        assert r0["duplicate"] is True and r0["jobs"] == special_jobs, doc
        assert r1["duplicate"] is False and len(r1["jobs"]) == 1, doc
        assert r1["key"] == "facilities/2024/06/région=nord/site#1.json", doc
        assert doc["duplicate"] is False, doc

        # TestEvent: 2xx, nothing started.
        before = len(srv.all_jobs())
        status, _, doc = srv.post_event(payload("s3-notification-test-event.json"))
        assert status == 200 and doc["jobs"] == [] and "ignored" in doc, doc

        # Malformed payloads: 400 with the problem type, nothing started.
        for name, slug in (("malformed-truncated.json", "invalid-json"),
                           ("malformed-missing-key.json", "invalid-event"),
                           ("malformed-wrong-types.json", "invalid-event"),
                           ("malformed-bad-percent-encoding.json", "invalid-event"),
                           ("malformed-invalid-utf8-after-decoding.json", "invalid-event"),
                           ("malformed-empty-records.json", "invalid-event"),
                           ("malformed-wrong-source.json", "invalid-event")):
            status, hdrs, doc = srv.post_event(payload(name))
            assert_problem(status, hdrs, doc, 400, slug)
            assert doc.get("detail"), (name, doc)
        assert len(srv.all_jobs()) == before

        # Object Deleted: 2xx, one delete job, no query; the object's rows leave the warehouse.
        status, _, doc = srv.post_event(payload("eventbridge-object-deleted.json"))
        assert status == 202 and len(doc["jobs"]) == 1, doc
        job = srv.wait_job(doc["jobs"][0])
        assert job["query"] == "delete_object" and job["stats"]["removed"] is True, job
        status, ev = srv.get("/events/" + doc["event_id"])
        assert status == 200 and ev["state"] == "succeeded" and ev["kind"] == "deleted", ev

        # Every payload file was replayed.
        names = {n for n in os.listdir(EVENTS) if n != "README.md"}
        assert len(names) == 14, names
        assert srv.proc.poll() is None


def test_full_flow_object_to_result():
    with Fixture() as fx:
        srv = fx.srv
        put_object(fx.dir, BUCKET, "incoming/batch-1.ndjson", src=sample())
        status, _, doc = srv.post_event(
            eventbridge("Object Created", "incoming/batch-1.ndjson", "0100", "flow-1"))
        assert status == 202, doc
        job = srv.wait_job(doc["jobs"][0])
        assert job["as_of"] == "2024-06-03", job
        status, res = srv.get("/jobs/%s/result.json" % job["id"])
        assert status == 200, res
        assert [c["name"] for c in res["columns"]][:2] == ["state", "facility_count"], res
        assert sum(r["facility_count"] for r in res["rows"]) > 0, res
        status, _, csv = srv.request("GET", "/jobs/%s/result.csv" % job["id"])
        assert status == 200 and csv.startswith(b"state,facility_count"), csv[:80]
        # What the event became.
        status, ev = srv.get("/events/" + doc["event_id"])
        assert status == 200 and ev["state"] == "succeeded", ev
        assert [j["id"] for j in ev["jobs"]] == doc["jobs"], ev
        status, ev2 = srv.get("/events/flow-1")  # by the EventBridge id too
        assert status == 200 and ev2["id"] == ev["id"], ev2
        status, nf = srv.get("/events/no-such-event")
        assert status == 404 and nf["type"] == PROBLEM + "not-found", nf


def test_event_queries_scope_and_as_of_settings():
    with Fixture(env={"HCPIPE_EVENT_QUERIES": "facility_metrics, expiring_accreditations",
                      "HCPIPE_EVENT_SCOPE": "object"}) as fx:
        srv = fx.srv
        put_object(fx.dir, BUCKET, "a.json", src=sample())
        status, _, doc = srv.post_event(eventbridge("Object Created", "a.json", "01", "q-1",
                                                    time_="2025-01-31T23:30:00-02:00"))
        assert status == 202 and len(doc["jobs"]) == 2, doc
        jobs = [srv.wait_job(j) for j in doc["jobs"]]
        assert [j["query"] for j in jobs] == ["facility_metrics", "expiring_accreditations"], jobs
        assert all(j["scope"] == "object" for j in jobs), jobs
        assert all(j["as_of"] == "2025-02-01" for j in jobs), jobs  # UTC date of the time


def test_auth_api_key():
    with Fixture() as fx:
        srv = fx.srv
        body = eventbridge("Object Created", "x.json", "01", "auth-1")
        for key in (None, "", "wrong", KEY[:-1], KEY + "x", KEY.upper()):
            status, hdrs, doc = srv.post_event(body, key=key)
            assert_problem(status, hdrs, doc, 401, "unauthorized")
        # Basic is not configured here: it does not open the door.
        status, hdrs, doc = srv.post_event(body, key=None, headers={
            "Authorization": "Basic " + base64.b64encode(b"u:" + KEY.encode()).decode()})
        assert_problem(status, hdrs, doc, 401, "unauthorized")
        assert srv.all_jobs() == []
        status, _, doc = srv.post_event(body)
        assert status == 202, doc
        # GET /events/{id} is read like /jobs.
        assert srv.get("/events/" + doc["event_id"])[0] == 200
        assert KEY not in srv.read_log()


def test_auth_custom_header_and_basic():
    env = {"HCPIPE_WEBHOOK_HEADER": "X-Hook-Token", "HCPIPE_WEBHOOK_BASIC": "eb:s3cr3t:pw"}
    with Fixture(env=env) as fx:
        srv = fx.srv
        body = eventbridge("Object Created", "x.json", "01", "auth-2")

        def basic(cred):
            return {"Authorization": "Basic " + base64.b64encode(cred).decode()}

        status, hdrs, doc = srv.post_event(body)  # the key in x-api-key: not the header now
        assert_problem(status, hdrs, doc, 401, "unauthorized")
        assert hdrs.get("www-authenticate", "").startswith("Basic"), hdrs
        for h in (basic(b"eb:wrong"), basic(b"eb:s3cr3t"), basic(b"EB:s3cr3t:pw"),
                  {"Authorization": "Basic !!!!"}, {"Authorization": "Bearer " + KEY}):
            status, hdrs, doc = srv.post_event(body, key=None, headers=h)
            assert_problem(status, hdrs, doc, 401, "unauthorized")
        status, _, doc = srv.post_event(body, key=None, headers=basic(b"eb:s3cr3t:pw"))
        assert status == 202, doc
        status, _, doc = srv.post_event(body, key=None, headers={"x-hook-token": KEY})
        assert status == 202 and doc["duplicate"] is True, doc
        log = srv.read_log()
        assert "s3cr3t" not in log and KEY not in log


def test_refuses_to_start_without_credential():
    d = tempfile.mkdtemp(prefix="hcpipe-events-")
    try:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
        r = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", d], env=env,
                           capture_output=True, timeout=30 * SLOW)
        assert r.returncode == 2, r
        assert b"HCPIPE_WEBHOOK_API_KEY" in r.stderr and b"--insecure-dev-events" in r.stderr, r
        # A bad secret is refused without being echoed.
        r = subprocess.run([BIN, "serve", "--data-dir", d],
                           env=dict(env, HCPIPE_WEBHOOK_API_KEY="se\x01cret-value"),
                           capture_output=True, timeout=30 * SLOW)
        assert r.returncode == 2 and b"HCPIPE_WEBHOOK_API_KEY" in r.stderr, r
        assert b"cret-value" not in r.stderr, r.stderr
        for var, val in (("HCPIPE_EVENT_QUERIES", "nope"), ("HCPIPE_EVENT_SCOPE", "all"),
                         ("HCPIPE_EVENT_BUCKETS", "Bad_Bucket"),
                         ("HCPIPE_WEBHOOK_HEADER", "bad header"),
                         ("HCPIPE_WEBHOOK_BASIC", "nocolon")):
            r = subprocess.run([BIN, "serve", "--data-dir", d],
                               env=dict(env, HCPIPE_WEBHOOK_API_KEY="k", **{var: val}),
                               capture_output=True, timeout=30 * SLOW)
            assert r.returncode == 2 and var.encode() in r.stderr, (var, r)
        r = subprocess.run([BIN, "serve", "--help"], env=env, capture_output=True)
        for var in ("HCPIPE_WEBHOOK_API_KEY", "HCPIPE_WEBHOOK_HEADER", "HCPIPE_WEBHOOK_BASIC",
                    "HCPIPE_EVENT_BUCKETS", "HCPIPE_EVENT_PREFIX", "HCPIPE_EVENT_SUFFIXES",
                    "HCPIPE_EVENT_QUERIES", "HCPIPE_EVENT_SCOPE"):
            assert var.encode() in r.stdout, var
        # The development switch starts it, loudly, and then any caller is accepted.
        srv = Server(d, ["--insecure-dev-events"], key=None)
        try:
            assert "INSECURE" in srv.read_log()
            status, _, doc = srv.post_event(eventbridge("Object Created", "x.json", "01", "i"),
                                            key=None)
            assert status == 202, doc
        finally:
            srv.kill()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_duplicates_make_one_job():
    with Fixture() as fx:
        srv = fx.srv
        body = eventbridge("Object Created", "dup.json", "0A0B", "dup-1")
        status, _, first = srv.post_event(body)
        assert status == 202 and first["duplicate"] is False, first
        status, _, again = srv.post_event(body)
        assert status == 202 and again["duplicate"] is True, again
        assert again["jobs"] == first["jobs"] and again["event_id"] == first["event_id"]

        # The same new event from 16 connections at once: one job, everyone gets its id.
        body = eventbridge("Object Created", "dup2.json", "0A0C", "dup-2")
        results = []

        def post():
            results.append(srv.post_event(body))

        threads = [threading.Thread(target=post) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(r[0] == 202 for r in results), results
        assert len({tuple(r[2]["jobs"]) for r in results}) == 1, results
        assert sum(1 for r in results if not r[2]["duplicate"]) == 1, results
        jobs = [j for j in srv.all_jobs() if j["source"].endswith("/dup2.json")]
        assert len(jobs) == 1, jobs


def test_out_of_order_sequencers():
    with Fixture() as fx:
        srv = fx.srv
        put_object(fx.dir, BUCKET, "ooo.json", src=sample())
        # A newer Deleted arrives before an older Created: the Created starts nothing.
        status, _, d = srv.post_event(eventbridge("Object Deleted", "ooo.json", "0200", "o-del"))
        assert status == 202 and len(d["jobs"]) == 1, d
        status, _, c = srv.post_event(eventbridge("Object Created", "ooo.json", "0100", "o-cre"))
        assert status == 200 and c["jobs"] == [] and "older" in c["ignored"], c
        status, ev = srv.get("/events/o-cre")
        assert ev["status"] == "superseded" and ev["superseded_by"] == d["event_id"], ev
        assert ev["state"] == "superseded" and ev["jobs"] == [], ev
        # A newer Created applies and loads; then an older Deleted deletes nothing.
        status, _, c2 = srv.post_event(eventbridge("Object Created", "ooo.json", "0300", "o-c2"))
        assert status == 202 and len(c2["jobs"]) == 1, c2
        srv.wait_job(c2["jobs"][0])
        status, _, d2 = srv.post_event(eventbridge("Object Deleted", "ooo.json", "0250", "o-d2"))
        assert status == 200 and d2["jobs"] == [], d2
        with open(sample()) as f:
            sample_ids = {json.loads(line)["facility_id"] for line in f if line.strip()}
        assert sample_ids and sample_ids <= facility_ids(srv)  # the old Deleted removed nothing
        deletes = [j for j in srv.all_jobs() if j["query"] == "delete_object"]
        assert len(deletes) == 1, deletes


def test_filters_answer_200_ignored():
    env = {"HCPIPE_EVENT_BUCKETS": "allowed-bucket,other-bucket", "HCPIPE_EVENT_PREFIX": "in/",
           "HCPIPE_EVENT_SUFFIXES": ".json,.ndjson"}
    with Fixture(env=env) as fx:
        srv = fx.srv
        for bucket, key, why in (("elsewhere", "in/a.json", "BUCKETS"),
                                 ("allowed-bucket", "out/a.json", "PREFIX"),
                                 ("allowed-bucket", "in/a.csv", "SUFFIXES"),
                                 ("allowed-bucket", "in/a.jsonl", "SUFFIXES")):
            status, _, doc = srv.post_event(eventbridge("Object Created", key, "01", key + bucket,
                                                        bucket=bucket))
            assert status == 200 and doc["jobs"] == [] and why in doc["ignored"], doc
        # Detail-types we do not handle are acknowledged too.
        other = json.loads(eventbridge("Object Created", "in/a.json", "01", "tags"))
        other["detail-type"] = "Object Tags Added"
        status, _, doc = srv.post_event(json.dumps(other).encode())
        assert status == 200 and doc["jobs"] == [], doc
        assert srv.all_jobs() == []
        status, _, doc = srv.post_event(eventbridge("Object Created", "in/a.JSON", "01", "ok",
                                                    bucket="other-bucket"))
        assert status == 202 and len(doc["jobs"]) == 1, doc


def test_deleted_object_leaves_dataset_results():
    with Fixture() as fx:
        srv = fx.srv
        put_object(fx.dir, BUCKET, "a.ndjson", src=sample())
        others = [{"facility_id": "ZZZ%03d" % i, "facility_name": "Other %d" % i,
                   "location": {"state": "VT"}, "employee_count": i} for i in range(3)]
        put_object(fx.dir, BUCKET, "b.json",
                   data="\n".join(json.dumps(o) for o in others).encode())
        a_ids = set()
        with open(sample()) as f:
            for line in f:
                if line.strip():
                    a_ids.add(json.loads(line)["facility_id"])
        for key, seq in (("a.ndjson", "0100"), ("b.json", "0101")):
            status, _, doc = srv.post_event(eventbridge("Object Created", key, seq, "c-" + key))
            assert status == 202, doc
            srv.wait_job(doc["jobs"][0])
        ids = facility_ids(srv)
        assert a_ids <= ids and {"ZZZ000", "ZZZ001", "ZZZ002"} <= ids, ids
        os.remove(os.path.join(fx.dir, "buckets", BUCKET, "a.ndjson"))
        status, _, doc = srv.post_event(eventbridge("Object Deleted", "a.ndjson", "0200", "d-a"))
        assert status == 202, doc
        job = srv.wait_job(doc["jobs"][0])
        assert job["stats"]["removed"] is True, job
        assert facility_ids(srv) == {"ZZZ000", "ZZZ001", "ZZZ002"}
        # Deleting an object that was never loaded is fine (nothing to remove).
        status, _, doc = srv.post_event(eventbridge("Object Deleted", "never.json", "01", "d-n"))
        job = srv.wait_job(doc["jobs"][0])
        assert job["stats"]["removed"] is False, job


def test_limits_and_bad_requests():
    with Fixture() as fx:
        srv = fx.srv
        big = b'{"Records": [' + b" " * (300 << 10) + b"]}"
        status, hdrs, doc = srv.post_event(big)
        assert_problem(status, hdrs, doc, 413, "payload-too-large")
        status, hdrs, doc = srv.post_event(b"")
        assert status == 400, doc
        status, hdrs, data = srv.request("GET", "/events")
        assert status == 405 and "POST" in hdrs.get("allow", ""), (status, hdrs)
        # A body cut short by the client: the server survives and answers the next request.
        with socket.create_connection(("127.0.0.1", srv.port)) as s:
            s.sendall(b"POST /events HTTP/1.1\r\nHost: x\r\nx-api-key: " + KEY.encode() +
                      b"\r\nContent-Length: 500\r\n\r\n{\"version\":")
        assert srv.request("GET", "/healthz")[0] == 200
        assert srv.all_jobs() == []


def test_burst_of_200_events_stays_responsive():
    with Fixture() as fx:
        srv = fx.srv
        statuses, health_ms = [], []
        lock = threading.Lock()

        def sender(start):
            for i in range(start, 200, 4):
                st, _, _ = srv.post_event(eventbridge("Object Created", "burst/%03d.json" % i,
                                                      "%04X" % i, "burst-%d" % i))
                with lock:
                    statuses.append(st)

        def prober():
            while len(statuses) < 200:
                t0 = time.time()
                assert srv.request("GET", "/healthz")[0] == 200
                health_ms.append((time.time() - t0) * 1000)
                time.sleep(0.01)

        t0 = time.time()
        threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        probe = threading.Thread(target=prober)
        for t in threads + [probe]:
            t.start()
        for t in threads + [probe]:
            t.join()
        elapsed = time.time() - t0
        assert statuses.count(202) == 200, statuses
        assert health_ms and max(health_ms) < 2000 * SLOW, health_ms
        jobs = [j for j in srv.all_jobs() if j["source"] and "/burst/" in j["source"]]
        assert len(jobs) == 200, len(jobs)
        print("  200 events in %.2f s (%.0f/s); healthz max %.0f ms" %
              (elapsed, 200 / elapsed, max(health_ms)))


def test_kill9_keeps_acknowledged_events():
    """kill -9 while events arrive from 4 connections: after the restart every acknowledged
    event has its job, none twice; redelivering every event then makes one job per event."""
    d = tempfile.mkdtemp(prefix="hcpipe-events-")
    total = 400
    try:
        srv = Server(d)
        acked = {}
        lock = threading.Lock()

        def sender(start):
            for i in range(start, total, 4):
                try:
                    st, _, doc = srv.post_event(eventbridge("Object Created", "k9/%d.json" % i,
                                                            "%04d" % i, "k9-%d" % i))
                except (OSError, http.client.HTTPException):
                    return  # the server died under us
                if st == 202:
                    with lock:
                        acked[i] = doc["jobs"]

        threads = [threading.Thread(target=sender, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        deadline = time.time() + 30 * SLOW
        while len(acked) < 40 and time.time() < deadline:
            time.sleep(0.005)
        srv.proc.kill()
        srv.proc.wait()
        for t in threads:
            t.join()
        srv.log.close()
        assert 40 <= len(acked) < total, len(acked)  # killed while events were arriving
        srv = Server(d)
        try:
            jobs = [j for j in srv.all_jobs() if "/k9/" in (j["source"] or "")]
            by_source = {}
            for j in jobs:
                by_source.setdefault(j["source"], []).append(j["id"])
            assert all(len(v) == 1 for v in by_source.values()), by_source
            for i, ids in acked.items():
                assert by_source.get("s3://%s/k9/%d.json" % (BUCKET, i)) == ids, (i, ids)
            # EventBridge redelivers everything it did not see acknowledged (and some it did).
            for i in range(total):
                st, _, doc = srv.post_event(eventbridge("Object Created", "k9/%d.json" % i,
                                                        "%04d" % i, "k9-%d" % i))
                assert st == 202, doc
                if i in acked:
                    assert doc["duplicate"] and doc["jobs"] == acked[i], (i, doc)
            jobs = [j for j in srv.all_jobs() if "/k9/" in (j["source"] or "")]
            assert len(jobs) == total and len({j["source"] for j in jobs}) == total, len(jobs)
        finally:
            srv.kill()
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_raw_key_used_when_only_it_exists():
    with Fixture() as fx:
        srv = fx.srv
        # The object's name holds a literal "%20" and a "+": a sender that did not encode it.
        raw = "raw/site%20one+two.json"
        put_object(fx.dir, BUCKET, raw, src=sample())
        status, _, doc = srv.post_event(eventbridge("Object Created", raw, "01", "raw-1"))
        assert status == 202, doc
        assert doc["events"][0]["key"] == "raw/site one two.json", doc  # decoded identity
        job = srv.wait_job(doc["jobs"][0])
        assert job["source"] == "s3://%s/%s" % (BUCKET, raw), job
        # When the decoded name exists too, the decoded key wins.
        put_object(fx.dir, BUCKET, "raw/b c.json", src=sample())
        put_object(fx.dir, BUCKET, "raw/b+c.json", src=sample())
        status, _, doc = srv.post_event(eventbridge("Object Created", "raw/b+c.json", "01",
                                                    "raw-2"))
        job = srv.wait_job(doc["jobs"][0])
        assert job["source"] == "s3://%s/raw/b c.json" % BUCKET, job
        # Neither exists: the decoded key, and the job says the source is missing.
        status, _, doc = srv.post_event(eventbridge("Object Created", "raw/x%2By.json", "01",
                                                    "raw-3"))
        job = srv.wait_job(doc["jobs"][0], states=("failed",))
        assert job["source"] == "s3://%s/raw/x+y.json" % BUCKET, job
        assert job["error"]["type"] == PROBLEM + "source-not-found", job


def test_failed_event_jobs_replayed_in_bulk():
    with Fixture() as fx:
        srv = fx.srv
        ids = []
        for i in range(3):  # objects that are not there yet: the jobs fail
            status, _, doc = srv.post_event(eventbridge("Object Created", "late/%d.json" % i,
                                                        "01", "late-%d" % i))
            ids.append(doc["jobs"][0])
        for j in ids:
            srv.wait_job(j, states=("failed",))
        status, _, data = srv.request("POST", "/jobs/retry?state=bogus")
        assert status == 422, data
        status, _, data = srv.request("POST", "/jobs/retry")  # dead ones: none here
        assert status == 200 and json.loads(data) == {"retried": 0, "jobs": []}, data
        for i in range(3):
            put_object(fx.dir, BUCKET, "late/%d.json" % i, src=sample())
        status, _, data = srv.request("POST", "/jobs/retry?state=failed")
        doc = json.loads(data)
        assert status == 200 and doc["retried"] == 3 and sorted(doc["jobs"]) == sorted(ids), doc
        for j in ids:
            srv.wait_job(j)
        status, ev = srv.get("/events/late-0")
        assert ev["state"] == "succeeded", ev


def main():
    if not os.path.exists(BIN):
        print("binary %s not found" % BIN)
        return 77
    if not EVENTS:
        print("shared/testdata/events not found: skipping")
        return 77
    tests = [(n, f) for n, f in sorted(globals().items()) if n.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        t0 = time.time()
        try:
            fn()
            passed += 1
            print("PASS %s (%.1fs)" % (name, time.time() - t0))
        except Exception:
            failed += 1
            print("FAIL %s" % name)
            traceback.print_exc()
        sys.stdout.flush()
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
