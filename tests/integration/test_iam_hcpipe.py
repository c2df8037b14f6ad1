#!/usr/bin/env python3
"""The stack's service policy proven with hcpipe itself: the real `hcpipe serve` against
moto_server with IAM authentication on, signed with the keys of a user whose ONLY policy is
deploy/cloudformation.yaml's ServicePolicy (its resources resolved to this test's buckets
hc-data / hc-results, and to hcpipe's default workgroup "primary" and database "hcpipe").

1. Full policy: the whole flow succeeds without a denial: the Athena engine (DDL, the three
   queries, results read with GetQueryResults, results read from the CSV object, publishing to
   the output bucket with HCPIPE_OUTPUT_URI), a user cancel (StopQueryExecution) and the local
   engine with HCPIPE_SOURCE=s3 reading the source bucket.
2. For each action hcpipe's own code calls, the same user's policy with only that action removed
   (swapped in place: the user and its keys stay) makes the matching call fail: AccessDenied in
   the job's error or in the service's log, on the same line as the denied request's name (a
   denied HeadObject has no body: its 403 status is the denial, as on AWS). Status checks that are denied are retried by the
   service (it cannot tell a denial from a passing failure of its poller): the test sees the
   denial in the log, puts the policy back, and the same job then succeeds.
3. The actions only Athena uses on the caller's behalf (s3:GetBucketLocation, the multipart
   ones, the Glue catalog) are not called by hcpipe, and moto's Athena does not make those calls:
   one run with ALL of them removed still succeeds. Their need is proven by boto3 calls in
   test_iam_live.py, not here.

moto limitation: moto 5.2.1 checks the Resource of S3 requests only; other services are
authorised against Resource "*". The Athena and Glue statements are tested with their resources
widened to "*" (actions unchanged); their ARNs are checked statically by test_iam_policy.py.
moto 5.2.1 also rejects the signature of a ListObjectsV2 whose prefix holds a '/' (boto3's too),
so the local engine's source is the bucket's root (s3://hc-data/); the Athena engine's
location is s3://hc-data/facilities/ (only rendered into the DDL). moto hands the next queued
Athena result to each execution it starts, so one is queued before each start that is allowed.

Environment: HCPIPE_BIN; IAM_DEBUG=1 prints each denial's evidence. Prints "N passed, N failed" last; exits 77 when moto/boto3 is missing.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
sys.path.insert(0, HERE)
try:
    import cfn  # noqa: E402
    from moto_peer import MotoPeer, PeerUnavailable  # noqa: E402
    import test_athena_engine as ate  # noqa: E402  (the serve driver, golden columns)
except ImportError as e:
    print("fixtures unavailable: %s: skipping" % e)
    sys.exit(77)

shutil.rmtree(ate.TMP, ignore_errors=True)  # the imported module's own temp dir is unused
TMP = tempfile.mkdtemp(prefix="hcpipe-iam-hcpipe-")
SLOW = ate.SLOW
REGION, ACCOUNT = "us-east-1", "123456789012"
SOURCE, OUTPUT = "hc-data", "hc-results"
WORKGROUP, DATABASE = "primary", "hcpipe"  # hcpipe's defaults
QUERIES = ("facility_metrics", "accredited_by_state", "expiring_accreditations")
WANT = {
    "facility_metrics": [["FAC1", None, "3", "0", None],
                         ["FAC2", "B, two", None, "2", "2026-12-31"]],
    "accredited_by_state": [["TX", "1", "250", "2"]],
    "expiring_accreditations": [["FAC2", "B", "TX", "JC", "2026-06-01", "31"]],
}
EMPTY = {"rows": [], "column_info": []}
# Actions the service policy grants only for Athena's own calls on the caller's behalf.
ON_BEHALF = ("s3:GetBucketLocation", "s3:ListBucketMultipartUploads",
             "s3:ListMultipartUploadParts", "s3:AbortMultipartUpload", "glue:CreateDatabase",
             "glue:GetDatabase", "glue:CreateTable", "glue:GetTable", "glue:GetPartitions")

passed = 0
failed = 0


def check(name, fn):
    global passed, failed
    t0 = time.time()
    try:
        fn()
        passed += 1
        print("ok   %s (%.1fs)" % (name, time.time() - t0))
    except Exception:
        failed += 1
        print("FAIL %s" % name)
        traceback.print_exc()
    sys.stdout.flush()


def actions_of(st):
    return st["Action"] if isinstance(st["Action"], list) else [st["Action"]]


def without(policy, removed):
    out = json.loads(json.dumps(policy))
    stmts = []
    for st in out["Statement"]:
        acts = [a for a in actions_of(st) if a not in removed]
        if acts:
            stmts.append(dict(st, Action=acts))
    out["Statement"] = stmts
    return out


def service_policy():
    tpl = cfn.load(os.path.join(ROOT, "deploy", "cloudformation.yaml"))
    values = {
        "AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT,
        "SourceBucket": SOURCE, "SourceBucket.Arn": "arn:aws:s3:::" + SOURCE,
        "OutputBucket": OUTPUT, "OutputBucket.Arn": "arn:aws:s3:::" + OUTPUT,
        "AthenaWorkGroup": WORKGROUP, "GlueDatabase": DATABASE,
    }
    policy = cfn.resolve(tpl["Resources"]["ServicePolicy"]["Properties"]["PolicyDocument"],
                         values)
    for st in policy["Statement"]:
        if not all(a.startswith("s3:") for a in actions_of(st)):
            st["Resource"] = "*"  # moto authorises non-S3 requests against "*" only
    return policy


class Log:
    """Reads a server's log from a mark on (the whole file, not the driver's last 6000 chars)."""

    def __init__(self, srv):
        self.srv = srv
        self.mark = 0

    def since(self):
        with open(self.srv.log_path, "rb") as f:
            f.seek(self.mark)
            return f.read().decode("utf-8", "replace")

    def reset(self):
        self.mark = os.path.getsize(self.srv.log_path)


def lines_with(text, *needles):
    return [l for l in text.splitlines() if all(n in l for n in needles)]


def end_state(srv, job_id, timeout=60):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        status, doc = srv.json("GET", "/jobs/" + job_id)
        assert status == 200, (status, doc)
        if doc["state"] in ("failed", "dead", "cancelled", "succeeded"):
            return doc
        time.sleep(0.05)
    raise AssertionError("job %s did not end\n%s" % (job_id, srv.read_log()))


def wait_log(log, timeout, *needles):
    deadline = time.time() + timeout * SLOW
    while time.time() < deadline:
        found = lines_with(log.since(), *needles)
        if found:
            if os.environ.get("IAM_DEBUG"):
                print("   log:", found[0][:400])
            return found
        time.sleep(0.1)
    raise AssertionError("no log line with %r:\n%s" % (needles, log.since()[-4000:]))


def denied_in(text):
    """Any sign of a denial in a log or an error (a HEAD denial has only its 403 status)."""
    return ("AccessDenied" in text or "not authorized" in text or '"status":"403"' in text or
            "/problems/forbidden" in text)


def main():
    try:
        import botocore  # noqa: F401
    except ImportError:
        print("botocore missing: skipping")
        return 77
    try:
        peer = MotoPeer(region=REGION).start()
    except PeerUnavailable as e:
        print("moto peer unavailable: %s: skipping" % e)
        return 77
    servers = []
    try:
        admin = peer.client("s3")
        for b in (SOURCE, OUTPUT):
            admin.create_bucket(Bucket=b)
        admin.put_object(Bucket=SOURCE, Key="facilities/a.ndjson",
                         Body=b'{"facility_id": "FAC1", "employee_count": 3}\n'
                              b'{"facility_id": "FAC2", "facility_name": "B"}\n')
        policy = service_policy()
        granted = sorted({a for st in policy["Statement"] for a in actions_of(st)})
        iam = peer.client("iam")
        ak, sk = peer.create_user("hcpipe-svc", policy)

        def set_policy(doc):
            iam.put_user_policy(UserName="hcpipe-svc", PolicyName="hcpipe-svc-policy",
                                PolicyDocument=json.dumps(doc))

        env = {"AWS_ENDPOINT_URL": peer.endpoint, "AWS_ACCESS_KEY_ID": ak,
               "AWS_SECRET_ACCESS_KEY": sk, "AWS_REGION": REGION}
        common = {"HCPIPE_MAX_ATTEMPTS": "1", "HCPIPE_WORKERS": "1",
                  "HCPIPE_OUTPUT_URI": "s3://%s/published/" % OUTPUT}
        athena = dict(common, HCPIPE_SOURCE_URI="s3://%s/facilities/" % SOURCE,
                      HCPIPE_ATHENA_OUTPUT="s3://%s/athena/" % OUTPUT)
        # The local engine lists the bucket's root: moto 5.2.1 rejects the signature of any
        # ListObjectsV2 whose prefix has a '/' (boto3's too), see moto_peer.py.
        local = dict(common, HCPIPE_ENGINE="local", HCPIPE_SOURCE="s3",
                     HCPIPE_SOURCE_URI="s3://%s/" % SOURCE)

        def start(extra, data_dir=None):
            d = data_dir or tempfile.mkdtemp(dir=TMP, prefix="srv-")
            srv = ate.Server(d, env, extra)
            servers.append(srv)
            return srv, Log(srv)

        srv_p, log_p = start(dict(athena, HCPIPE_ATHENA_RESULTS="pages"))
        srv_c = log_c = srv_l = log_l = None
        state = {}

        def athena_job(srv, q="facility_metrics", queue=True):
            # moto hands the next queued result to each execution it starts: queue one only
            # when the start will be allowed.
            if queue:
                peer.queue_athena_results([ate.moto_result(q, WANT[q])])
            return srv.submit(query=q)

        def assert_published(q, job_id, doc):
            key = "published/%s/%s.json" % (q, job_id)
            pub = admin.get_object(Bucket=OUTPUT, Key=key)["Body"].read()
            assert json.loads(pub) == doc, (q, key)

        # -- 1. the full policy --------------------------------------------------------------
        def full_athena_pages():
            peer.queue_athena_results([EMPTY, EMPTY] + [ate.moto_result(q, WANT[q])
                                                       for q in QUERIES])
            for q in QUERIES:  # one at a time: moto hands out its queued results in order
                job = srv_p.submit(query=q)
                done = end_state(srv_p, job["id"])
                assert done["state"] == "succeeded", (done, srv_p.read_log())
                assert done["stats"]["engine"] == "athena", done["stats"]
                doc, _ = srv_p.result(job["id"])
                assert len(doc["rows"]) == len(WANT[q]), (q, doc)
                assert_published(q, job["id"], doc)
            log = log_p.since()
            ddl = lines_with(log, "CREATE")
            assert not denied_in(log), log[-4000:]
            state["ddl"] = bool(ddl)

        def full_athena_csv():
            nonlocal srv_c, log_c
            srv_c, log_c = start(dict(athena, HCPIPE_ATHENA_RESULTS="csv"))
            q = "accredited_by_state"
            peer.queue_athena_results([EMPTY, EMPTY, ate.moto_result(q, WANT[q])])
            job = srv_c.submit(query=q)
            done = end_state(srv_c, job["id"])
            assert done["state"] == "succeeded", (done, srv_c.read_log())
            doc, _ = srv_c.result(job["id"])
            assert len(doc["rows"]) == 1, doc
            assert_published(q, job["id"], doc)
            log = log_c.since()
            assert "results read from the CSV object" in log, log[-4000:]
            assert not denied_in(log), log[-4000:]

        def full_local_s3_source():
            nonlocal srv_l, log_l
            srv_l, log_l = start(local)
            for q in QUERIES:
                job = srv_l.submit(query=q)
                done = end_state(srv_l, job["id"])
                assert done["state"] == "succeeded", (done, srv_l.read_log())
                doc, _ = srv_l.result(job["id"])
                assert_published(q, job["id"], doc)
                if q == "facility_metrics":
                    assert [r["facility_id"] for r in doc["rows"]] == ["FAC1", "FAC2"], doc
                    assert done["stats"]["dataset_objects_loaded"] == 1, done["stats"]
            assert not denied_in(log_l.since()), log_l.since()[-4000:]

        check("full policy: athena engine, DDL + three queries, pages, published",
              full_athena_pages)
        check("full policy: athena engine, results from the CSV object", full_athena_csv)
        check("full policy: local engine reading the source bucket, published",
              full_local_s3_source)

        # -- 2. one action removed: the matching call is denied ---------------------------
        def removed(action, fn):
            def run():
                for l in (log_p, log_c, log_l):
                    l.reset()
                set_policy(without(policy, {action}))
                try:
                    fn()
                finally:
                    set_policy(policy)
            check("without %s: %s" % (action, fn.__doc__), run)

        def job_fails_denied(srv, log, job, call):
            """The job fails, and its error or one log line names both AccessDenied and `call`
            (the denied request)."""
            done = end_state(srv, job["id"])
            assert done["state"] in ("failed", "dead"), done
            lines = [json.dumps(done["error"])] + log.since().splitlines()
            assert lines_with("\n".join(lines), "AccessDenied", call), \
                (call, done["error"], log.since()[-3000:])
            if os.environ.get("IAM_DEBUG"):
                print("   error:", json.dumps(done["error"]))
                for l in lines_with(log.since(), "AccessDenied"):
                    print("   log:", l[:400])
            return done

        def s3_get_local():
            """the local engine's read of the source object is denied"""
            # A changed object, so the local engine reads it again (unchanged ETags are kept).
            admin.put_object(Bucket=SOURCE, Key="facilities/a.ndjson",
                             Body=b'{"facility_id": "FAC3"}\n')
            # The engine reads the object's metadata first (HeadObject): a HEAD answer has no
            # body, so the denial is its 403 status (code "Forbidden"), the same on AWS.
            done = end_state(srv_l, srv_l.submit(query="facility_metrics")["id"])
            assert done["state"] in ("failed", "dead"), done
            assert done["error"]["type"].endswith("/forbidden"), done["error"]
            text = log_l.since()
            assert lines_with(text, "s3 request failed", '"op":"HeadObject"', '"status":"403"') \
                or lines_with(text, "s3 request failed", '"op":"GetObject"', "AccessDenied"), \
                text[-3000:]

        def s3_get_csv():
            """the athena engine's read of the result CSV object is denied"""
            job_fails_denied(srv_c, log_c, athena_job(srv_c, "accredited_by_state"),
                             "reading the result s3://%s/athena/" % OUTPUT)

        def s3_list():
            """the local engine's listing of the source bucket is denied"""
            job_fails_denied(srv_l, log_l, srv_l.submit(query="facility_metrics"),
                             '"op":"ListObjectsV2","bucket":"%s"' % SOURCE)

        def s3_put():
            """publishing to the output bucket is denied"""
            job_fails_denied(srv_p, log_p, athena_job(srv_p),
                             '"op":"PutObject","bucket":"%s","key":"published/' % OUTPUT)

        def start_query():
            """StartQueryExecution is denied"""
            job_fails_denied(srv_p, log_p, athena_job(srv_p, queue=False),
                             "not authorized to perform: athena:StartQueryExecution")

        def get_results():
            """GetQueryResults is denied"""
            job_fails_denied(srv_p, log_p, athena_job(srv_p),
                             "not authorized to perform: athena:GetQueryResults")

        def get_query():
            """the status check (GetQueryExecution, moto has no batch call) is denied, retried,
            and succeeds once the action is granted again"""
            job = athena_job(srv_p)
            wait_log(log_p, 30, "status check failed", "AccessDenied",
                     "not authorized to perform: athena:GetQueryExecution")
            set_policy(policy)
            done = end_state(srv_p, job["id"])
            assert done["state"] == "succeeded", (done, log_p.since()[-3000:])

        def batch_get():
            """the batch status check is denied (a fresh service), retried, and falls back to
            GetQueryExecution once granted again (moto does not implement the batch call)"""
            srv, log = start(dict(athena, HCPIPE_ATHENA_RESULTS="pages"),
                             data_dir=tempfile.mkdtemp(dir=TMP, prefix="srv-batch-"))
            peer.queue_athena_results([EMPTY, EMPTY])
            job = athena_job(srv)
            wait_log(log, 30, "status check failed", "AccessDenied",
                     "not authorized to perform: athena:BatchGetQueryExecution")
            assert not lines_with(log.since(), "BatchGetQueryExecution is not available"), \
                "a denial must not be taken for a missing batch call"
            set_policy(policy)
            done = end_state(srv, job["id"])
            assert done["state"] == "succeeded", (done, log.since()[-3000:])
            fell = lines_with(log.since(), "BatchGetQueryExecution is not available")
            assert fell and not any(denied_in(l) for l in fell), fell
            assert srv.stop() == 0

        calls = {
            "s3:GetObject": [s3_get_local, s3_get_csv],
            "s3:ListBucket": [s3_list],
            "s3:PutObject": [s3_put],
            "athena:StartQueryExecution": [start_query],
            "athena:GetQueryExecution": [get_query],
            "athena:BatchGetQueryExecution": [batch_get],
            "athena:GetQueryResults": [get_results],
        }
        def coverage():
            listed = set(calls) | set(ON_BEHALF) | {"athena:StopQueryExecution"}
            assert sorted(listed) == granted, (sorted(listed), granted)
        check("every granted action is exercised here or listed as Athena's own", coverage)
        for action, fns in calls.items():
            for fn in fns:
                removed(action, fn)

        # StopQueryExecution: the pages service restarted on its data dir (its DDL is done)
        # with a first status check 3 s away, so a cancel finds the query still tracked.
        def stop_runs():
            assert srv_p.stop() == 0
            srv, log = start(dict(athena, HCPIPE_ATHENA_RESULTS="pages",
                                  HCPIPE_ATHENA_POLL_INITIAL_MS=str(3000 * SLOW),
                                  HCPIPE_ATHENA_POLL_MAX_MS=str(3000 * SLOW)), data_dir=srv_p.data_dir)

            def cancel_one():
                log.reset()
                job = athena_job(srv)
                wait_log(log, 30, "query started")
                status, doc = srv.json("POST", "/jobs/%s/cancel" % job["id"])
                assert status in (200, 202), (status, doc)
                return end_state(srv, job["id"]), log.since()

            done, text = cancel_one()  # full policy
            assert not denied_in(text), text[-3000:]
            assert lines_with(text, "StopQueryExecution") == [] or \
                not lines_with(text, "StopQueryExecution failed"), text[-3000:]
            assert lines_with(text, "query stopped"), text[-3000:]
            assert done["state"] == "cancelled", done
            set_policy(without(policy, {"athena:StopQueryExecution"}))
            try:
                done, text = cancel_one()
            finally:
                set_policy(policy)
            stop = lines_with(text, "StopQueryExecution failed", "AccessDenied",
                              "not authorized to perform: athena:StopQueryExecution")
            if os.environ.get("IAM_DEBUG"):
                print("   log:", stop[:1], "\n   error:", done["error"])
            assert stop, text[-3000:]
            assert srv.stop() == 0
        check("with and without athena:StopQueryExecution: a user cancel stops the query / "
              "is denied", stop_runs)

        # -- 3. the actions only Athena uses on the caller's behalf ------------------------
        def on_behalf():
            for l in (log_c, log_l):
                l.reset()
            set_policy(without(policy, set(ON_BEHALF)))
            try:
                job = athena_job(srv_c, "accredited_by_state")
                done = end_state(srv_c, job["id"])
                assert done["state"] == "succeeded", (done, log_c.since()[-3000:])
                admin.put_object(Bucket=SOURCE, Key="facilities/a.ndjson",
                                 Body=b'{"facility_id": "FAC4"}\n')
                job = srv_l.submit(query="facility_metrics")
                done = end_state(srv_l, job["id"])
                assert done["state"] == "succeeded", (done, log_l.since()[-3000:])
                assert done["stats"]["dataset_objects_loaded"] == 1, done["stats"]
                assert not denied_in(log_c.since() + log_l.since())
            finally:
                set_policy(policy)
        check("without all of Athena's on-behalf actions hcpipe's own calls still succeed",
              on_behalf)
        def clean_exits():
            for srv in servers:
                if srv.proc.poll() is None:
                    assert srv.stop() == 0, srv.read_log()
                assert srv.proc.returncode == 0, (srv.proc.returncode, srv.read_log())
                with open(srv.log_path, "rb") as f:
                    text = f.read().decode("utf-8", "replace")
                assert "Sanitizer" not in text and "runtime error" not in text, text[-4000:]
        check("every service exits 0 on SIGTERM, no sanitizer report", clean_exits)
    finally:
        for srv in servers:
            if srv.proc.poll() is None:
                try:
                    srv.stop()
                except Exception:
                    traceback.print_exc()
        peer.stop()
        shutil.rmtree(TMP, ignore_errors=True)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
