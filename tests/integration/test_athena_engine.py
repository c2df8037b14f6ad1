#!/usr/bin/env python3
"""Integration tests of the athena engine: the real `hcpipe serve --engine athena` on loopback
against tests/fixtures/fake_athena.py (botocore-verified signatures; scripted states, faults and
pages) and against moto_server with IAM authentication on (tests/fixtures/moto_peer.py).

Covered: the whole flow (DDL, the three queries, typed multi-page results, stats), the golden
check that the SQL sent is exactly sql/athena/<query>.sql with checked values, DDL once per
configuration (across restarts, again for a new configuration and when the table is missing),
each failure class (user error fails at once, Retryable retries, capacity requeues without
spending an attempt, throttling storms are absorbed), the deadline (Stop, then CANCELLED),
user cancel, kill -9 between start and completion (no second StartQueryExecution), many
concurrent jobs under the poll rate, object scope.

Environment: HCPIPE_BIN (default build/hcpipe). Prints "N passed, N failed" last.
"""
import collections
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
SLOW = 3 if os.environ.get("SANITIZER") else 1
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures"))
from hcserver import free_port, wait_ready  # noqa: E402
PROBLEM = "https://hcpipe.dev/problems/"
AS_OF = "2026-05-01"
SOURCE_URI = "s3://hc-data/facilities/"
TMP = tempfile.mkdtemp(prefix="hcpipe-athena-tests-")  # every data dir; removed at the end

try:
    from fake_athena import FakeAthena
except ImportError as e:  # botocore missing
    print("fake_athena unavailable: %s" % e)
    sys.exit(77)

COLUMNS = {
    "facility_metrics": [["facility_id", "varchar"], ["facility_name", "varchar"],
                         ["employee_count", "bigint"], ["number_of_offered_services", "bigint"],
                         ["expiry_date_of_first_accreditation", "date"]],
    "accredited_by_state": [["state", "varchar"], ["facility_count", "bigint"],
                            ["total_employees", "bigint"], ["valid_accreditations", "bigint"]],
    "expiring_accreditations": [["facility_id", "varchar"], ["facility_name", "varchar"],
                                ["state", "varchar"], ["accreditation_body", "varchar"],
                                ["valid_until", "date"], ["days_left", "bigint"]],
}


# ---- the golden rendering of sql/athena/ (what the engine must send) ---------------------------

def sql_quote(s):
    return "'" + s.replace("'", "''") + "'"


def render(name, database="hcpipe", table="facilities", location=SOURCE_URI, as_of=AS_OF,
           source=None):
    with open(os.path.join(ROOT, "sql", "athena", name + ".sql")) as f:
        lines = f.read().split("\n")
    while lines and (lines[0].lstrip().startswith("--") or lines[0] == ""):
        lines.pop(0)
    body = "\n".join(lines).rstrip("\n ")
    subs = {"database": "`%s`" % database, "table": "`%s`" % table,
            "relation": '"%s"."%s"' % (database, table), "location": sql_quote(location),
            "as_of": "DATE '%s'" % as_of, "source": sql_quote(source) if source else "NULL"}
    return re.sub(r"\{\{(\w+)\}\}", lambda m: subs[m.group(1)], body)


# ---- the service -------------------------------------------------------------------------------

class Server:
    """One `hcpipe serve --engine athena` process talking to an Athena peer."""

    def __init__(self, data_dir, peer_env, env=None, args=(), athena_env=True):
        """athena_env=False: no HCPIPE_ENGINE/HCPIPE_SOURCE_URI/HCPIPE_ATHENA_* variable; `args`
        must configure the engine with flags."""
        self.data_dir = data_dir
        self.port = free_port()
        self.log_path = os.path.join(data_dir, "server-%d.log" % self.port)
        full = {k: v for k, v in os.environ.items()
                if not k.startswith(("HCPIPE_", "AWS_"))}
        full.update({"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE":
                     "/nonexistent", "AWS_EC2_METADATA_DISABLED": "true",
                     "HCPIPE_LOG_LEVEL": "debug", "HCPIPE_INSECURE_DEV_EVENTS": "1"})
        if athena_env:
            full.update({"HCPIPE_ENGINE": "athena", "HCPIPE_SOURCE_URI": SOURCE_URI,
                         "HCPIPE_ATHENA_OUTPUT": "s3://hc-results/athena/",
                         "HCPIPE_ATHENA_POLL_INITIAL_MS": "50",
                         "HCPIPE_ATHENA_POLL_MAX_MS": "200", "HCPIPE_ATHENA_POLL_RATE": "20",
                         "HCPIPE_ATHENA_REQUEUE_DELAY_MS": "300"})
        full.update(peer_env)
        full.update(env or {})
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir", data_dir]
            + list(args), stdout=self.log, stderr=self.log, env=full)
        wait_ready(self, 30 * SLOW)

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")[-6000:]

    def request(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30 * SLOW)
        try:
            headers = {}
            if body is not None:
                body = json.dumps(body).encode()
                headers["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.read()
        finally:
            conn.close()

    def json(self, method, path, body=None):
        status, data = self.request(method, path, body)
        return status, (json.loads(data) if data else None)

    def submit(self, **fields):
        fields.setdefault("as_of", AS_OF)
        status, doc = self.json("POST", "/jobs", fields)
        assert status == 201, (status, doc)
        return doc

    def wait_job(self, job_id, states=("succeeded",), timeout=60):
        deadline = time.time() + timeout * SLOW
        doc = None
        while time.time() < deadline:
            status, doc = self.json("GET", "/jobs/" + job_id)
            assert status == 200, (status, doc)
            if doc["state"] in states:
                return doc
            if doc["state"] in ("failed", "dead", "cancelled", "succeeded"):
                raise AssertionError("job ended %s: %s\n%s" % (doc["state"], doc,
                                                              self.read_log()))
            time.sleep(0.05)
        raise AssertionError("job %s still %s\n%s" % (job_id, doc and doc["state"],
                                                     self.read_log()))

    def result(self, job_id):
        status, doc = self.json("GET", "/jobs/%s/result.json" % job_id)
        assert status == 200, (status, doc)
        status, csv = self.request("GET", "/jobs/%s/result.csv" % job_id)
        assert status == 200, status
        return doc, csv.decode()

    def stop(self):
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


FA = None  # the shared fake Athena (reset by each test)


def fake_env(fa):
    return {"AWS_ENDPOINT_URL_ATHENA": fa.endpoint, "AWS_ACCESS_KEY_ID": fa.access_key,
            "AWS_SECRET_ACCESS_KEY": fa.secret_key, "AWS_REGION": fa.region}


def starts(fa, prefix=None):
    """The StartQueryExecution requests (optionally only those whose token has `prefix`)."""
    with fa.lock:
        out = [r for r in fa.requests if r["op"] == "StartQueryExecution"]
    return [r for r in out if prefix is None or (r["token"] or "").startswith(prefix)]


def ops(fa, op):
    with fa.lock:
        return [r for r in fa.requests if r["op"] == op]


def ddl_starts(fa):
    return [r for r in starts(fa) if r["status"] == 200 and
            r["body"]["QueryString"].startswith("CREATE ")]


def no_violations(fa):
    with fa.lock:
        assert not fa.violations, fa.violations


class Fresh:
    """A fresh data dir and server on the shared fake."""

    def __init__(self, env=None, data_dir=None):
        self.data_dir = data_dir or tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
        self.env = env

    def __enter__(self):
        self.srv = Server(self.data_dir, fake_env(FA), self.env)
        return self.srv

    def __exit__(self, *exc):
        if self.srv.proc.poll() is None:
            assert self.srv.stop() == 0, self.srv.read_log()


# ---- tests against the fake ---------------------------------------------------------------------

def test_flow_multi_page_typed_results_and_golden_sql():
    rows = [["FAC%05d" % i, None if i % 7 == 0 else "Clinic \"%d\", east" % i,
             None if i % 5 == 0 else str(i * 3), str(i % 4),
             None if i % 3 == 0 else "2026-12-%02d" % (i % 28 + 1)] for i in range(2500)]
    FA.plan_for("facility_metrics" if False else "number_of_offered_services",
                columns=COLUMNS["facility_metrics"], rows=rows,
                statistics={"EngineExecutionTimeInMillis": 4321, "QueryQueueTimeInMillis": 210,
                            "TotalExecutionTimeInMillis": 4600,
                            "DataScannedInBytes": 3 * 1024 ** 4})
    with Fresh() as srv:
        job = srv.submit(query="facility_metrics")
        done = srv.wait_job(job["id"])
        doc, csv = srv.result(job["id"])
    assert done["attempts"] == 1, done
    assert doc["row_count"] == 2500 and len(doc["rows"]) == 2500, doc["row_count"]
    assert [c["name"] for c in doc["columns"]] == [c[0] for c in COLUMNS["facility_metrics"]]
    for i in (0, 1, 5, 7, 1234, 2499):
        r, want = doc["rows"][i], rows[i]
        assert r["facility_id"] == want[0], (i, r)
        assert r["facility_name"] == want[1], (i, r)
        assert r["employee_count"] == (None if want[2] is None else int(want[2])), (i, r)
        assert r["number_of_offered_services"] == int(want[3]), (i, r)
        assert r["expiry_date_of_first_accreditation"] == want[4], (i, r)
    lines = csv.split("\r\n")
    assert lines[0] == ("facility_id,facility_name,employee_count,number_of_offered_services,"
                        "expiry_date_of_first_accreditation"), lines[0]
    assert lines[2] == 'FAC00001,"Clinic ""1"", east",3,1,2026-12-02', lines[2]
    assert lines[1] == "FAC00000,,,0,", lines[1]
    # Three pages of at most 1000 rows (the header row counts on the first).
    pages = [r for r in ops(FA, "GetQueryResults") if r["status"] == 200]
    assert len(pages) == 3, len(pages)
    assert all(p["body"]["MaxResults"] == 1000 for p in pages), pages
    # Stats: execution id, times, bytes, cost at 5 USD/TiB for 3 TiB.
    st = done["stats"]
    dml = [r for r in starts(FA) if "number_of_offered_services" in r["body"]["QueryString"]]
    assert len(dml) == 1, dml
    assert st["engine"] == "athena" and st["engine_execution_ms"] == 4321, st
    assert st["queue_ms"] == 210 and st["bytes_scanned"] == 3 * 1024 ** 4, st
    assert abs(st["estimated_cost_usd"] - 15.0) < 1e-9, st
    assert st["query_execution_id"], st
    # The token and the golden SQL text.
    body = dml[0]["body"]
    assert dml[0]["token"] == "hcpipe-%s-1" % job["id"], dml[0]["token"]
    assert body["QueryString"] == render("facility_metrics"), body["QueryString"]
    assert body["QueryExecutionContext"] == {"Database": "hcpipe", "Catalog": "AwsDataCatalog"}
    assert body["ResultConfiguration"] == {"OutputLocation": "s3://hc-results/athena/"}, body
    assert body["WorkGroup"] == "primary", body
    # The DDL: database then table, with the checked location.
    ddl = ddl_starts(FA)
    assert [d["body"]["QueryString"] for d in ddl] == [render("create_database"),
                                                      render("create_table")], ddl
    no_violations(FA)


def test_all_three_queries_send_their_golden_text():
    for q in COLUMNS:
        FA.plan_for(render(q)[-60:], columns=COLUMNS[q], rows=[])
    with Fresh() as srv:
        ids = {q: srv.submit(query=q)["id"] for q in COLUMNS}
        for q, jid in ids.items():
            srv.wait_job(jid)
            doc, _ = srv.result(jid)
            assert doc["row_count"] == 0 and [c["name"] for c in doc["columns"]] == \
                [c[0] for c in COLUMNS[q]], doc
    sent = {r["token"]: r["body"]["QueryString"] for r in starts(FA) if r["token"]}
    for q, jid in ids.items():
        assert sent["hcpipe-%s-1" % jid] == render(q), q
    assert len(ddl_starts(FA)) == 2  # once for the three jobs


def test_accredited_by_state_types_and_nulls():
    rows = [["TX", "2", "300", "3"], [None, "1", "0", "1"]]
    FA.plan_for("valid_accreditations", columns=COLUMNS["accredited_by_state"], rows=rows)
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state")
        srv.wait_job(job["id"])
        doc, csv = srv.result(job["id"])
    assert doc["rows"] == [{"state": "TX", "facility_count": 2, "total_employees": 300,
                            "valid_accreditations": 3},
                           {"state": None, "facility_count": 1, "total_employees": 0,
                            "valid_accreditations": 1}], doc["rows"]
    assert csv.split("\r\n")[2] == ",1,0,1", csv


def test_ddl_once_per_configuration():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    data_dir = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
    with Fresh(data_dir=data_dir) as srv:
        for _ in range(3):
            srv.wait_job(srv.submit(query="accredited_by_state")["id"])
    assert len(ddl_starts(FA)) == 2, ddl_starts(FA)
    with Fresh(data_dir=data_dir) as srv:  # a restart: remembered
        srv.wait_job(srv.submit(query="accredited_by_state")["id"])
    assert len(ddl_starts(FA)) == 2, ddl_starts(FA)
    with Fresh(data_dir=data_dir, env={"HCPIPE_ATHENA_TABLE": "facilities_v2"}) as srv:
        srv.wait_job(srv.submit(query="accredited_by_state")["id"])
    ddl = ddl_starts(FA)
    assert len(ddl) == 4, ddl
    assert "`hcpipe`.`facilities_v2`" in ddl[3]["body"]["QueryString"], ddl[3]


def test_table_missing_runs_ddl_again():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    FA.plan_for("valid_accreditations", count=1, states=["RUNNING", "FAILED"],
                athena_error={"ErrorCategory": 2, "ErrorType": 1301, "Retryable": False,
                              "ErrorMessage": "TABLE_NOT_FOUND: line 12:10: Table "
                                              "'awsdatacatalog.hcpipe.facilities' does not exist"})
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state")
        done = srv.wait_job(job["id"], timeout=30)
    assert done["attempts"] == 2, done
    assert len(ddl_starts(FA)) == 4, ddl_starts(FA)


def test_user_error_fails_at_once():
    msg = "COLUMN_NOT_FOUND: line 3:8: Column 'x' cannot be resolved"
    FA.plan_for("valid_accreditations", states=["QUEUED", "FAILED"],
                athena_error={"ErrorCategory": 2, "ErrorType": 1006, "Retryable": False,
                              "ErrorMessage": msg})
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state")
        done = srv.wait_job(job["id"], states=("failed",))
        status, _ = srv.request("GET", "/jobs/%s/result.json" % job["id"])
    assert done["attempts"] == 1, done
    err = done["error"]
    assert err["type"] == PROBLEM + "engine-error", err
    assert msg in err["detail"], err
    assert err["athena"]["error_type"] == 1006 and err["athena"]["retryable"] is False, err
    assert status == 409, status
    assert len(starts(FA, "hcpipe-" + job["id"])) == 1


def test_denied_status_checks_fail_the_job_and_stop_its_query():
    """Status checks refused with AccessDeniedException do not heal by waiting: after three in
    a row the job fails at once (no second attempt, no waiting for its deadline) naming the
    missing permission, and its query is asked to stop."""
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    data_dir = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
    with Fresh(data_dir=data_dir) as srv:  # the schema first, while status checks still work
        srv.wait_job(srv.submit(query="accredited_by_state")["id"])
    FA.plan_for("valid_accreditations", states=["QUEUED", "RUNNING"])  # never finishes
    FA.fail("BatchGetQueryExecution", 400, "AccessDeniedException",
            "User: arn:aws:iam::111122223333:user/hc is not authorized to perform: "
            "athena:BatchGetQueryExecution", count=1000)
    try:
        with Fresh(data_dir=data_dir) as srv:
            job = srv.submit(query="accredited_by_state", timeout_s=600)
            done = srv.wait_job(job["id"], states=("failed",), timeout=30)
    finally:
        with FA.lock:
            FA.faults.clear()
    assert done["attempts"] == 1, done
    err = done["error"]
    assert err["type"] == PROBLEM + "engine-error", err
    assert "athena:BatchGetQueryExecution" in err["detail"], err
    assert "AccessDeniedException" in err["detail"], err
    mine = [r for r in starts(FA, "hcpipe-" + job["id"]) if r["status"] == 200]
    assert len(mine) == 1, mine
    qid = [q for q in FA.queries.values() if q.params["ClientRequestToken"] == mine[0]["token"]]
    stops = [r for r in ops(FA, "StopQueryExecution") if r["body"]["QueryExecutionId"] == qid[0].id]
    assert len(stops) >= 1 and qid[0].cancelled, stops
    denied = [r for r in ops(FA, "BatchGetQueryExecution") if qid[0].id in json.dumps(r["body"])]
    assert 3 <= len(denied) <= 6, len(denied)  # gave up after three, not at the deadline


def test_retryable_error_runs_again_with_a_new_token():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[["TX", "1", "5", "1"]])
    FA.plan_for("valid_accreditations", count=1, states=["RUNNING", "FAILED"],
                athena_error={"ErrorCategory": 1, "ErrorType": 401, "Retryable": True,
                              "ErrorMessage": "Query exhausted resources at this scale factor"})
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state")
        done = srv.wait_job(job["id"], timeout=30)
    assert done["attempts"] == 2, done
    tokens = [r["token"] for r in starts(FA, "hcpipe-" + job["id"])]
    assert tokens == ["hcpipe-%s-1" % job["id"], "hcpipe-%s-2" % job["id"]], tokens


def test_capacity_requeues_without_spending_an_attempt():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    with Fresh(env={"HCPIPE_MAX_ATTEMPTS": "1"}) as srv:
        srv.wait_job(srv.submit(query="accredited_by_state")["id"])  # DDL done
        # Each refused start is retried by the http client (3 attempts): 6 refusals = 2 requeues.
        FA.fail("StartQueryExecution", 400, "TooManyRequestsException",
                "You have exceeded the limit for the number of queries you can run "
                "concurrently", count=6, extra={"Reason": "CONCURRENT_QUERY_LIMIT_EXCEEDED"})
        job = srv.submit(query="accredited_by_state")
        done = srv.wait_job(job["id"], timeout=60)
    assert done["attempts"] == 1, done  # with max_attempts 1 a spent attempt would be dead
    mine = starts(FA, "hcpipe-" + job["id"])
    assert len(mine) == 7, [(r["status"], r["token"]) for r in mine]
    assert {r["token"] for r in mine} == {"hcpipe-%s-1" % job["id"]}, mine
    assert [r["status"] for r in mine].count(200) == 1


def test_throttling_storm_is_absorbed():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[["TX", "1", "5", "1"]],
            states=["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"])
    with Fresh() as srv:
        srv.wait_job(srv.submit(query="accredited_by_state")["id"])
        FA.fail("BatchGetQueryExecution", 400, "ThrottlingException", "Rate exceeded", count=7)
        FA.fail("GetQueryResults", 500, "InternalServerException", "oops", count=2)
        job = srv.submit(query="accredited_by_state")
        done = srv.wait_job(job["id"], timeout=60)
        doc, _ = srv.result(job["id"])
    assert done["attempts"] == 1, done
    assert doc["rows"][0]["state"] == "TX", doc
    with FA.lock:
        assert not FA.faults, FA.faults  # every injected fault was met


def test_deadline_stops_the_query_and_waits_for_cancelled():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    FA.plan_for("valid_accreditations", states=["QUEUED", "RUNNING"])  # never finishes
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state", timeout_s=2)
        done = srv.wait_job(job["id"], states=("failed",), timeout=30)
    assert done["error"]["type"] == PROBLEM + "timeout", done
    mine = [r for r in starts(FA, "hcpipe-" + job["id"]) if r["status"] == 200]
    assert len(mine) == 1, mine
    qid = [q for q in FA.queries.values() if q.params["ClientRequestToken"] == mine[0]["token"]]
    assert len(qid) == 1 and qid[0].cancelled, qid
    stops = [r for r in ops(FA, "StopQueryExecution") if r["body"]["QueryExecutionId"] == qid[0].id]
    assert len(stops) >= 1, stops
    # After the Stop, the service looked again and saw CANCELLED before giving up the job.
    with FA.lock:
        after = FA.requests[FA.requests.index(stops[0]) + 1:]
    assert any(r["op"] in ("BatchGetQueryExecution", "GetQueryExecution") and
               qid[0].id in json.dumps(r["body"]) for r in after), after


def test_user_cancel_stops_the_query():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    FA.plan_for("valid_accreditations", states=["RUNNING"])
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state")
        deadline = time.time() + 20 * SLOW
        while not [r for r in starts(FA, "hcpipe-" + job["id"]) if r["status"] == 200]:
            assert time.time() < deadline, "never started"
            time.sleep(0.05)
        time.sleep(0.3)
        status, doc = srv.json("POST", "/jobs/%s/cancel" % job["id"])
        assert status in (200, 202), (status, doc)
        done = srv.wait_job(job["id"], states=("cancelled",), timeout=30)
    assert done["state"] == "cancelled"
    tok = "hcpipe-%s-1" % job["id"]
    assert [q for q in FA.queries.values() if q.params["ClientRequestToken"] == tok][0].cancelled


def test_kill9_between_start_and_completion_reattaches():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[["TX", "4", "40", "5"]])
    FA.plan_for("valid_accreditations", states=["RUNNING"] * 30 + ["SUCCEEDED"])
    data_dir = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
    srv = Server(data_dir, fake_env(FA))
    job = srv.submit(query="accredited_by_state")
    deadline = time.time() + 20 * SLOW
    while not [r for r in starts(FA, "hcpipe-" + job["id"]) if r["status"] == 200]:
        assert time.time() < deadline, "never started"
        time.sleep(0.02)
    time.sleep(0.5)  # the handle is stored right after the start returns
    srv.kill9()
    srv = Server(data_dir, fake_env(FA))
    try:
        done = srv.wait_job(job["id"], timeout=60)
        doc, _ = srv.result(job["id"])
    finally:
        assert srv.stop() == 0
    assert doc["rows"] == [{"state": "TX", "facility_count": 4, "total_employees": 40,
                            "valid_accreditations": 5}], doc
    mine = starts(FA, "hcpipe-" + job["id"])
    assert len(mine) == 1, [(r["token"], r["status"]) for r in mine]
    assert done["stats"]["query_execution_id"] == [
        q.id for q in FA.queries.values()
        if q.params["ClientRequestToken"] == mine[0]["token"]][0]


def test_kill9_before_the_start_answered_resends_the_token():
    """A crash after Athena started the query but before its answer arrived: the restarted
    service re-sends the same ClientRequestToken and so gets the same execution."""
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[["TX", "2", "20", "2"]])
    data_dir = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
    srv = Server(data_dir, fake_env(FA))
    srv.wait_job(srv.submit(query="accredited_by_state")["id"])  # the DDL is done
    FA.delay("StartQueryExecution", 5)
    job = srv.submit(query="accredited_by_state")
    deadline = time.time() + 20 * SLOW
    while not starts(FA, "hcpipe-" + job["id"]):
        assert time.time() < deadline, "never started"
        time.sleep(0.02)
    time.sleep(0.3)
    srv.kill9()  # Athena has the query; the service never got its id
    srv = Server(data_dir, fake_env(FA))
    try:
        done = srv.wait_job(job["id"], timeout=60)
        doc, _ = srv.result(job["id"])
    finally:
        assert srv.stop() == 0
    mine = starts(FA, "hcpipe-" + job["id"])
    assert len(mine) == 2, [(r["token"], r["status"]) for r in mine]
    assert {r["token"] for r in mine} == {"hcpipe-%s-1" % job["id"]}, mine
    created = [q for q in FA.queries.values()
               if q.params["ClientRequestToken"].startswith("hcpipe-" + job["id"])]
    assert len(created) == 1, created
    assert done["attempts"] == 2 and done["stats"]["query_execution_id"] == created[0].id, done
    assert doc["rows"][0]["total_employees"] == 20, doc


def test_replay_of_a_failed_job_runs_the_query_again():
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[])
    FA.plan_for("valid_accreditations", count=1, states=["FAILED"],
                athena_error={"ErrorCategory": 2, "ErrorType": 1006, "Retryable": False,
                              "ErrorMessage": "permission denied on s3://hc-data"})
    with Fresh() as srv:
        job = srv.submit(query="accredited_by_state")
        srv.wait_job(job["id"], states=("failed",))
        status, doc = srv.json("POST", "/jobs/%s/retry" % job["id"])
        assert status in (200, 202), (status, doc)
        done = srv.wait_job(job["id"], timeout=30)
    tokens = [r["token"] for r in starts(FA, "hcpipe-" + job["id"])]
    assert tokens == ["hcpipe-%s-1" % job["id"], "hcpipe-%s-g1-1" % job["id"]], tokens
    assert done["attempts"] == 1, done


def test_many_concurrent_jobs_stay_under_the_poll_rate():
    rate = 4
    FA.plan(columns=COLUMNS["accredited_by_state"], rows=[["TX", "1", "1", "1"]],
            states=["QUEUED", "RUNNING", "RUNNING", "SUCCEEDED"])
    with Fresh(env={"HCPIPE_WORKERS": "48", "HCPIPE_ATHENA_POLL_RATE": str(rate)}) as srv:
        srv.wait_job(srv.submit(query="accredited_by_state")["id"])
        with FA.lock:
            FA.requests.clear()
        ids = [srv.submit(query="accredited_by_state")["id"] for _ in range(60)]
        for jid in ids:
            srv.wait_job(jid, timeout=120)
    calls = ops(FA, "BatchGetQueryExecution") + ops(FA, "GetQueryExecution")
    per_second = collections.Counter(r["amz_date"] for r in calls)
    assert max(per_second.values()) <= rate, per_second
    batched = [len(r["body"]["QueryExecutionIds"]) for r in ops(FA, "BatchGetQueryExecution")]
    assert max(batched) > 1, batched  # checks of running jobs were batched
    assert sum(batched) >= 60 * 3, sum(batched)
    no_violations(FA)


def test_object_scope_filters_on_path():
    FA.plan(columns=COLUMNS["facility_metrics"], rows=[])
    key = SOURCE_URI + "2026/it's here.json"
    with Fresh() as srv:
        job = srv.submit(query="facility_metrics", source=key, scope="object")
        srv.wait_job(job["id"])
        bad = srv.submit(query="facility_metrics", source="s3://other-bucket/x.json",
                         scope="object")
        failed = srv.wait_job(bad["id"], states=("failed",))
    sent = starts(FA, "hcpipe-" + job["id"])[0]["body"]["QueryString"]
    assert sent == render("facility_metrics", source=key), sent
    assert "'s3://hc-data/facilities/2026/it''s here.json'" in sent
    assert failed["error"]["type"] == PROBLEM + "validation-failed", failed
    assert not starts(FA, "hcpipe-" + bad["id"])


def test_bad_settings_stop_the_service():
    d = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
    for env, name in (({"HCPIPE_SOURCE_URI": "s3://hc-data/x'/"}, "HCPIPE_SOURCE_URI"),
                      ({"HCPIPE_ATHENA_DATABASE": "a\"b"}, "HCPIPE_ATHENA_DATABASE"),
                      ({"HCPIPE_ATHENA_TABLE": "T"}, "HCPIPE_ATHENA_TABLE"),
                      ({"HCPIPE_ATHENA_WORKGROUP": "a b"}, "HCPIPE_ATHENA_WORKGROUP"),
                      ({"HCPIPE_ATHENA_OUTPUT": "s3://x"}, "HCPIPE_ATHENA_OUTPUT"),
                      ({"HCPIPE_ATHENA_POLL_RATE": "0"}, "HCPIPE_ATHENA_POLL_RATE"),
                      ({"HCPIPE_ATHENA_PRICE_PER_TB": "-1"}, "HCPIPE_ATHENA_PRICE_PER_TB")):
        full = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
        full.update({"HCPIPE_ENGINE": "athena", "HCPIPE_SOURCE_URI": SOURCE_URI})
        full.update(env)
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", d],
                           env=full, capture_output=True, timeout=30)
        assert p.returncode == 2, (env, p.returncode, p.stderr)
        assert name in p.stderr.decode(), (env, p.stderr)
    out = subprocess.run([BIN, "serve", "--help"], capture_output=True, timeout=30).stdout
    for name in ("HCPIPE_ATHENA_DATABASE", "HCPIPE_ATHENA_POLL_RATE", "HCPIPE_SOURCE_URI",
                 "HCPIPE_ATHENA_PRICE_PER_TB"):
        assert name.encode() in out, name


def test_flags_alone_configure_the_engine():
    """`hcpipe serve --engine athena` set up by flags only (no HCPIPE_ENGINE, HCPIPE_SOURCE_URI
    or HCPIPE_ATHENA_* variable): the job succeeds and Athena sees the flags' values."""
    source = "s3://hc-flags/data/"
    args = ["--engine", "athena", "--source-uri", source, "--athena-database", "flagdb",
            "--athena-table=flagtable", "--athena-workgroup", "wg-flags",
            "--athena-output", "s3://hc-results/flags/", "--athena-catalog", "FlagCatalog",
            "--athena-poll-rate", "20", "--athena-poll-initial-ms", "50",
            "--athena-poll-max-ms", "200", "--athena-requeue-delay-ms", "300",
            "--athena-results", "pages", "--athena-price-per-tb", "2"]
    FA.plan_for(render("accredited_by_state", database="flagdb", table="flagtable",
                       location=source)[-60:], columns=COLUMNS["accredited_by_state"],
                rows=[["TX", "2", "40", "3"]],
                statistics={"DataScannedInBytes": 1024 ** 4, "EngineExecutionTimeInMillis": 5})
    data_dir = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-flags-")
    srv = Server(data_dir, fake_env(FA), args=args, athena_env=False)
    try:
        job = srv.submit(query="accredited_by_state")
        done = srv.wait_job(job["id"])
        doc, _ = srv.result(job["id"])
    finally:
        assert srv.stop() == 0, srv.read_log()
    assert done["attempts"] == 1 and done["stats"]["engine"] == "athena", done
    assert doc["rows"] == [{"state": "TX", "facility_count": 2, "total_employees": 40,
                            "valid_accreditations": 3}], doc["rows"]
    assert abs(done["stats"]["estimated_cost_usd"] - 2.0) < 1e-9, done["stats"]  # 1 TiB at 2
    dml = starts(FA, "hcpipe-" + job["id"])
    assert len(dml) == 1, dml
    body = dml[0]["body"]
    assert body["QueryString"] == render("accredited_by_state", database="flagdb",
                                         table="flagtable", location=source), body
    assert body["QueryExecutionContext"] == {"Database": "flagdb", "Catalog": "FlagCatalog"}
    assert body["ResultConfiguration"] == {"OutputLocation": "s3://hc-results/flags/"}, body
    assert body["WorkGroup"] == "wg-flags", body
    ddl = ddl_starts(FA)
    assert [d["body"]["QueryString"] for d in ddl] == [
        render("create_database", database="flagdb", table="flagtable", location=source),
        render("create_table", database="flagdb", table="flagtable", location=source)], ddl
    no_violations(FA)


def test_bad_flags_stop_the_service_naming_flag_and_variable():
    d = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
    for args, flag, var in (
            ([], "--source-uri", "HCPIPE_SOURCE_URI"),
            (["--source-uri", "s3://hc-data/x'/"], "--source-uri", "HCPIPE_SOURCE_URI"),
            (["--athena-table", "T"], "--athena-table", "HCPIPE_ATHENA_TABLE"),
            (["--athena-catalog=a b"], "--athena-catalog", "HCPIPE_ATHENA_CATALOG"),
            (["--athena-results", "rows"], "--athena-results", "HCPIPE_ATHENA_RESULTS"),
            (["--athena-poll-initial-ms", "9"], "--athena-poll-initial-ms",
             "HCPIPE_ATHENA_POLL_INITIAL_MS"),
            (["--athena-requeue-delay-ms", "0"], "--athena-requeue-delay-ms",
             "HCPIPE_ATHENA_REQUEUE_DELAY_MS")):
        if flag != "--source-uri":
            args = ["--source-uri", SOURCE_URI] + args
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", d,
                            "--insecure-dev-events", "--engine", "athena"] + args,
                           env=env, capture_output=True, timeout=30)
        err = p.stderr.decode()
        assert p.returncode == 2, (args, p.returncode, err)
        assert flag in err and var in err, (args, err)
    # A flag beats its variable, even a bad one: the service gets past the settings.
    env["HCPIPE_ATHENA_TABLE"] = "Bad Table"
    p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", d, "--engine",
                        "athena", "--source-uri", SOURCE_URI, "--athena-table", "good",
                        "--athena-poll-rate", "x"], env=env, capture_output=True, timeout=30)
    err = p.stderr.decode()
    assert p.returncode == 2 and "--athena-poll-rate" in err and "TABLE" not in err, err
    out = subprocess.run([BIN, "serve", "--help"], capture_output=True, timeout=30).stdout
    for flag in ("--source-uri", "--athena-database", "--athena-table", "--athena-workgroup",
                 "--athena-output", "--athena-catalog", "--athena-poll-rate",
                 "--athena-poll-initial-ms", "--athena-poll-max-ms", "--athena-requeue-delay-ms",
                 "--athena-results", "--athena-price-per-tb"):
        assert flag.encode() in out, flag


# ---- the whole flow against moto_server with IAM authentication on ---------------------------

def moto_result(query, rows):
    cols = COLUMNS[query]
    header = {"Data": [{"VarCharValue": c[0]} for c in cols]}
    data = [{"Data": [{} if v is None else {"VarCharValue": v} for v in r]} for r in rows]
    return {"rows": [header] + data,
            "column_info": [{"CatalogName": "hive", "SchemaName": "", "TableName": "",
                             "Name": c[0], "Label": c[0], "Type": c[1], "Precision": 0,
                             "Scale": 0, "Nullable": "UNKNOWN", "CaseSensitive": False}
                            for c in cols]}


def test_moto_flow_with_iam_auth():
    try:
        from moto_peer import MotoPeer, PeerUnavailable
    except ImportError as e:
        print("  moto_peer unavailable: %s (skipped)" % e)
        return
    try:
        peer = MotoPeer().start()
    except PeerUnavailable as e:
        print("  moto unavailable: %s (skipped)" % e)
        return
    try:
        s3 = peer.client("s3")
        for b in ("hc-data", "hc-results"):
            s3.create_bucket(Bucket=b)
        s3.put_object(Bucket="hc-data", Key="facilities/a.json",
                      Body=b'{"facility_id": "FAC1", "employee_count": 3}\n')
        # moto writes the queued rows as the result CSV without doubling quotes: no '"' here.
        want = {
            "facility_metrics": [["FAC1", None, "3", "0", None],
                                 ["FAC2", "B, two", None, "2", "2026-12-31"]],
            "accredited_by_state": [["TX", "1", "250", "2"]],
            "expiring_accreditations": [["FAC2", "B", "TX", "JC", "2026-06-01", "31"]],
        }
        order = ["facility_metrics", "accredited_by_state", "expiring_accreditations"]
        env = {"AWS_ENDPOINT_URL": peer.endpoint, "AWS_ACCESS_KEY_ID": peer.access_key,
               "AWS_SECRET_ACCESS_KEY": peer.secret_key, "AWS_REGION": peer.region}
        ath = peer.client("athena")
        for rnd, mode in enumerate(("pages", "csv")):
            # moto hands a queued result to each started execution in turn, the DDL included.
            empty = {"rows": [], "column_info": []}
            peer.queue_athena_results([empty, empty] + [moto_result(q, want[q]) for q in order])
            before = set(ath.list_query_executions()["QueryExecutionIds"])
            data_dir = tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-moto-")
            srv = Server(data_dir, env, {"HCPIPE_WORKERS": "1", "HCPIPE_ATHENA_RESULTS": mode,
                                         "HCPIPE_OUTPUT_URI": "s3://hc-results/published/"})
            try:
                for q in order:  # one at a time: moto hands out its queued results in order
                    job = srv.submit(query=q)
                    done = srv.wait_job(job["id"], timeout=60)
                    doc, csv = srv.result(job["id"])
                    assert done["attempts"] == 1, done
                    assert done["stats"]["engine"] == "athena", done["stats"]
                    assert done["stats"]["query_execution_id"], done["stats"]
                    assert len(doc["rows"]) == len(want[q]), (mode, q, doc)
                    assert [c["name"] for c in doc["columns"]] == [c[0] for c in COLUMNS[q]]
                    for got, row in zip(doc["rows"], want[q]):
                        for (name, typ), v in zip(COLUMNS[q], row):
                            exp = None if v is None else int(v) if typ == "bigint" else v
                            assert got[name] == exp, (mode, q, name, got, row)
                    # Published to the output bucket as the seed stored them.
                    key = "published/%s/%s" % (q, job["id"])
                    pub = s3.get_object(Bucket="hc-results", Key=key + ".json")["Body"].read()
                    assert json.loads(pub) == doc, q
                    pub = s3.get_object(Bucket="hc-results", Key=key + ".csv")["Body"].read()
                    assert pub.decode() == csv, q
                listed = set(ath.list_query_executions()["QueryExecutionIds"]) - before
                assert len(listed) == 5, listed  # 2 DDL + 3 queries
                texts = sorted(ath.get_query_execution(QueryExecutionId=i)["QueryExecution"]
                               ["Query"] for i in listed)
                assert texts == sorted([render("create_database"), render("create_table")] +
                                       [render(q) for q in order]), texts
                log = srv.read_log()
                assert ("results read from the CSV object" in log) == (mode == "csv"), mode
            finally:
                assert srv.stop() == 0, srv.read_log()
        # A wrong secret is refused by moto's IAM layer: the job fails as an engine error.
        env["AWS_SECRET_ACCESS_KEY"] = "wrong-secret"
        srv = Server(tempfile.mkdtemp(dir=TMP, prefix="hcpipe-athena-moto-"), env,
                     {"HCPIPE_MAX_ATTEMPTS": "1"})
        try:
            job = srv.submit(query="facility_metrics")
            done = srv.wait_job(job["id"], states=("failed", "dead"), timeout=60)
            assert "Signature" in json.dumps(done["error"]) or \
                "signature" in json.dumps(done["error"]), done["error"]
        finally:
            assert srv.stop() == 0, srv.read_log()
    finally:
        peer.stop()


TESTS = [v for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]


def main():
    global FA
    only = sys.argv[1:]
    passed = failed = 0
    FA = FakeAthena().start()
    try:
        for t in TESTS:
            if only and t.__name__ not in only:
                continue
            FA.reset()
            t0 = time.time()
            try:
                t()
                passed += 1
                print("ok   %s (%.1fs)" % (t.__name__, time.time() - t0))
            except Exception:
                failed += 1
                print("FAIL %s" % t.__name__)
                traceback.print_exc()
            sys.stdout.flush()
    finally:
        FA.stop()
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
