#!/usr/bin/env python3
"""Live proof of the stack's service policy against moto_server with IAM authentication on.

A user whose only policy is deploy/cloudformation.yaml's ServicePolicy (its resources resolved to
this test's buckets, workgroup and database) makes every call hcpipe makes (the S3 and Athena
operations derived from aws/s3.c and aws/athena.c by tests/fixtures/aws_actions.py) and the
calls Athena makes on its behalf (bucket location, multipart uploads, the Glue catalog), without
a denial. Then, for each action of the policy, a user with that one action removed gets
AccessDenied on the calls that need it. S3 resource scoping is checked too: the same user may not
write to the source bucket nor read a bucket outside the stack.

The calls are made with boto3 (the same API operations hcpipe sends): hcpipe has no command that
makes arbitrary S3/Athena calls yet; when the athena engine lands, `hcpipe run --engine athena`
can replace them.

moto limitation: moto 5.2.1 checks the Resource of S3 requests only; every other service is
authorised against Resource "*". The Athena and Glue statements are therefore tested with their
resources widened to "*" (their actions unchanged); their resource ARNs are checked statically
by test_iam_policy.py.

moto runs through tests/fixtures/moto_peer.py (IAM auth on, an allow-all admin).

Prints "N passed, N failed"; exits 77 when moto_server or boto3 is missing.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))
import aws_actions  # noqa: E402
import cfn  # noqa: E402
from moto_peer import MotoPeer, PeerUnavailable  # noqa: E402

REGION, ACCOUNT = "us-east-1", "123456789012"
SOURCE, OUTPUT, OTHER = "hcpipe-live-source", "hcpipe-live-output", "hcpipe-live-other"
WORKGROUP, DATABASE = "hcpipe-live", "hcpipe_live"
KEY = "incoming/facilities.ndjson"

passed = 0
failed = 0


def report(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail))


def main():
    try:
        from botocore.exceptions import ClientError
    except ImportError:
        print("botocore missing: skipping")
        return 77
    try:
        d = aws_actions.derive(ROOT)
    except aws_actions.DerivationError as e:
        # A client rewritten so its calls cannot be read is a failure, never a skip: the
        # policy would go unchecked without anyone noticing.
        print("FAIL cannot derive hcpipe's AWS calls: %s" % e)
        print("0 passed, 1 failed")
        return 1
    try:
        peer = MotoPeer(region=REGION).start()
    except PeerUnavailable as e:
        print("moto peer unavailable: %s: skipping" % e)
        return 77

    try:
        # The peer's admin (allowed everything) sets the scene.
        admin = {s: peer.client(s) for s in ("iam", "s3", "athena", "glue")}
        for b in (SOURCE, OUTPUT, OTHER):
            admin["s3"].create_bucket(Bucket=b)
        admin["s3"].put_object(Bucket=SOURCE, Key=KEY, Body=b'{"facility_id":"F1"}\n')
        admin["s3"].put_object(Bucket=OUTPUT, Key="results/r.json", Body=b"[]")
        admin["s3"].put_object(Bucket=OTHER, Key=KEY, Body=b"x")
        admin["athena"].create_work_group(Name=WORKGROUP, Configuration={
            "ResultConfiguration": {"OutputLocation": "s3://%s/athena/" % OUTPUT}})
        admin["glue"].create_database(DatabaseInput={"Name": DATABASE})
        admin["glue"].create_table(DatabaseName=DATABASE, TableInput={"Name": "facilities"})
        qid = admin["athena"].start_query_execution(
            QueryString="SELECT 1", WorkGroup=WORKGROUP)["QueryExecutionId"]
        upload = admin["s3"].create_multipart_upload(Bucket=OUTPUT, Key="athena/big.csv")
        upload_id = upload["UploadId"]

        # The stack's policy with this test's resources.
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
            acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            if not all(a.startswith("s3:") for a in acts):
                st["Resource"] = "*"  # moto authorises non-S3 requests against "*" only

        counter = [0]

        def user_with(doc):
            counter[0] += 1
            ak, sk = peer.create_user("svc%d" % counter[0], doc)
            return {s: peer.client(s, ak, sk) for s in ("s3", "athena", "glue")}

        # Each call: (label, IAM action it needs, function of the user's clients).
        n = [0]

        def fresh(prefix):
            n[0] += 1
            return "%s%d" % (prefix, n[0])

        calls = [
            ("S3 GetObject source", "s3:GetObject",
             lambda c: c["s3"].get_object(Bucket=SOURCE, Key=KEY)["Body"].read()),
            ("S3 HeadObject source", "s3:GetObject",
             lambda c: c["s3"].head_object(Bucket=SOURCE, Key=KEY)),
            ("S3 GetObject output", "s3:GetObject",
             lambda c: c["s3"].get_object(Bucket=OUTPUT, Key="results/r.json")["Body"].read()),
            ("S3 ListObjectsV2 source", "s3:ListBucket",
             lambda c: c["s3"].list_objects_v2(Bucket=SOURCE, Prefix="incoming")),
            ("S3 ListObjectsV2 output", "s3:ListBucket",
             lambda c: c["s3"].list_objects_v2(Bucket=OUTPUT)),
            ("S3 PutObject output", "s3:PutObject",
             lambda c: c["s3"].put_object(Bucket=OUTPUT, Key="results/x.json", Body=b"{}")),
            ("S3 DeleteObject output", "s3:DeleteObject",
             lambda c: c["s3"].delete_object(Bucket=OUTPUT, Key="results/x.json")),
            ("S3 GetBucketLocation source", "s3:GetBucketLocation",
             lambda c: c["s3"].get_bucket_location(Bucket=SOURCE)),
            ("S3 GetBucketLocation output", "s3:GetBucketLocation",
             lambda c: c["s3"].get_bucket_location(Bucket=OUTPUT)),
            ("S3 ListMultipartUploads output", "s3:ListBucketMultipartUploads",
             lambda c: c["s3"].list_multipart_uploads(Bucket=OUTPUT)),
            ("S3 ListParts output", "s3:ListMultipartUploadParts",
             lambda c: c["s3"].list_parts(Bucket=OUTPUT, Key="athena/big.csv",
                                          UploadId=upload_id)),
            ("S3 AbortMultipartUpload output", "s3:AbortMultipartUpload",
             lambda c: c["s3"].abort_multipart_upload(
                 Bucket=OUTPUT, Key="athena/big.csv",
                 UploadId=admin["s3"].create_multipart_upload(
                     Bucket=OUTPUT, Key="athena/big.csv")["UploadId"])),
            ("Athena StartQueryExecution", "athena:StartQueryExecution",
             lambda c: c["athena"].start_query_execution(
                 QueryString="SELECT 1", WorkGroup=WORKGROUP,
                 QueryExecutionContext={"Database": DATABASE})),
            ("Athena GetQueryExecution", "athena:GetQueryExecution",
             lambda c: c["athena"].get_query_execution(QueryExecutionId=qid)),
            ("Athena BatchGetQueryExecution", "athena:BatchGetQueryExecution",
             lambda c: c["athena"].batch_get_query_execution(QueryExecutionIds=[qid])),
            ("Athena GetQueryResults", "athena:GetQueryResults",
             lambda c: c["athena"].get_query_results(QueryExecutionId=qid)),
            ("Athena StopQueryExecution", "athena:StopQueryExecution",
             lambda c: c["athena"].stop_query_execution(QueryExecutionId=qid)),
            ("Glue CreateDatabase", "glue:CreateDatabase",
             lambda c: c["glue"].create_database(DatabaseInput={"Name": fresh("hcpipe_db")})),
            ("Glue GetDatabase", "glue:GetDatabase",
             lambda c: c["glue"].get_database(Name=DATABASE)),
            ("Glue CreateTable", "glue:CreateTable",
             lambda c: c["glue"].create_table(DatabaseName=DATABASE,
                                              TableInput={"Name": fresh("t")})),
            ("Glue GetTable", "glue:GetTable",
             lambda c: c["glue"].get_table(DatabaseName=DATABASE, Name="facilities")),
            ("Glue GetPartitions", "glue:GetPartitions",
             lambda c: c["glue"].get_partitions(DatabaseName=DATABASE, TableName="facilities")),
        ]

        # moto 5.2.1 authorises a request before it dispatches it, and has no
        # BatchGetQueryExecution: an authorised call of it ends in 500 NotImplemented, a denied
        # one in 403 AccessDenied.
        unimplemented = {"Athena BatchGetQueryExecution"}

        def outcome(fn, c, label=""):
            try:
                fn(c)
                return "ok"
            except ClientError as e:
                err = e.response.get("Error", {})
                status = e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code, msg = err.get("Code", "?"), err.get("Message", "")
                # A 403 without an S3/JSON error body (HEAD; moto's XML answer to a JSON
                # protocol request) comes back as code "403".
                if code in ("403", "Forbidden") and (not msg or msg == "Forbidden" or
                                                     "<Code>AccessDenied</Code>" in msg):
                    return "AccessDenied"
                if label in unimplemented and status == 500:
                    return "ok"
                return code

        def denied(code):
            return code in ("AccessDenied", "AccessDeniedException")

        # Every action the policy grants (the derived ones when the service calls the clients)
        # has at least one live call; calls of actions it does not grant are not made.
        granted = sorted({a for st in policy["Statement"] for a in
                          (st["Action"] if isinstance(st["Action"], list) else [st["Action"]])})
        needed = sorted({a for a, _ in d.expected}) if d.exact else granted
        report("the policy grants the derived actions" if d.exact else
               "the policy grants nothing beyond the clients' actions",
               set(granted) == set(needed) if d.exact else
               set(granted) <= {a for a, _ in d.expected}, repr(granted))
        calls = [c for c in calls if c[1] in granted]
        covered = {a for _, a, _ in calls}
        report("every derived action has a live call", set(needed) <= covered,
               repr(sorted(set(needed) - covered)))
        hc_ops = ["S3 %s" % op for op in d.s3_ops
                  if aws_actions.S3_IAM[op] in granted] + ["Athena %s" % op for op in d.athena_ops]
        labels = " ".join(l for l, _, _ in calls)
        report("every operation hcpipe's code performs is called",
               all(op in labels for op in hc_ops), repr(hc_ops))

        full = user_with(policy)
        for label, action, fn in calls:
            code = outcome(fn, full, label)
            report("full policy: %s" % label, code == "ok", code)

        code = outcome(lambda c: c["s3"].put_object(Bucket=SOURCE, Key="x", Body=b"x"), full)
        report("full policy: PutObject to the source bucket is denied", denied(code), code)
        code = outcome(lambda c: c["s3"].get_object(Bucket=OTHER, Key=KEY), full)
        report("full policy: GetObject outside the stack's buckets is denied", denied(code), code)
        code = outcome(lambda c: c["s3"].delete_object(Bucket=SOURCE, Key=KEY), full)
        report("full policy: DeleteObject in the source bucket is denied", denied(code), code)

        # One action removed at a time: its calls are denied.
        for action in needed:
            reduced = json.loads(json.dumps(policy))
            stmts = []
            for st in reduced["Statement"]:
                acts = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
                acts = [a for a in acts if a != action]
                if acts:
                    stmts.append(dict(st, Action=acts))
            reduced["Statement"] = stmts
            user = user_with(reduced)
            for label, act, fn in calls:
                if act != action:
                    continue
                code = outcome(fn, user, label)
                report("without %s: %s denied" % (action, label), denied(code), code)
    finally:
        peer.stop()
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
