#!/usr/bin/env python3
"""Integration test of aws/athena.c against moto (IAM auth on) and the fake Athena endpoint.

Runs $HCPIPE_BUILD/tests/test_athena (cmocka; peer groups driven by HCPIPE_TEST_* variables, see
tests/unit/test_athena.c) against:

  1. moto_server with IAM auth: start, get, results (a result set queued through moto's
     /moto-api/static/athena/query-results, read with the NextToken loop), stop; a wrong secret
     gives SignatureDoesNotMatch and a user without athena:* AccessDenied.
  2. tests/fixtures/fake_athena.py, which verifies every signature with botocore and the JSON 1.1
     headers and body shapes: state progressions, AthenaError, throttling and 5xx retries,
     multi-page results, BatchGetQueryExecution, idempotent ClientRequestToken.

Standard library only (plus the fixtures). Prints "N passed, N failed"; exits 77 when no peer can
start at all.
"""
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))
from fake_athena import FakeAthena  # noqa: E402
from moto_peer import MotoPeer, PeerUnavailable  # noqa: E402

BUILD = os.environ.get("HCPIPE_BUILD", os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                    "build"))
TEST_ATHENA = os.path.join(BUILD, "tests", "test_athena")

passed = 0
failed = 0


def report(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail[-6000:]))


def run_unit(name, peer_kind, endpoint, access_key, secret_key, extra=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_") or k.startswith("HCPIPE_TEST_"):
            del env[k]
    env.update({"HCPIPE_TEST_ATHENA_ENDPOINT": endpoint, "HCPIPE_TEST_ATHENA_PEER": peer_kind,
                "HCPIPE_TEST_ACCESS_KEY": access_key, "HCPIPE_TEST_SECRET_KEY": secret_key,
                "AWS_REGION": "us-east-1"})
    env.update(extra or {})
    p = subprocess.run([TEST_ATHENA], env=env, capture_output=True, timeout=300)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    ok = p.returncode == 0 and out.count("[  PASSED  ]") == 2 and "[  FAILED  ]" not in out
    report(name, ok, out)
    return ok


def main():
    if not os.access(TEST_ATHENA, os.X_OK):
        print("test_athena is not built at %s" % TEST_ATHENA)
        print("0 passed, 1 failed")
        return 1
    started = 0

    try:
        with MotoPeer() as moto:
            started += 1
            ak, sk = moto.create_user("hcpipe-s3-only", {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]})
            # One result set: header row, then a value, a NULL (no VarCharValue) and "".
            moto.queue_athena_results([{
                "rows": [{"Data": [{"VarCharValue": "id"}, {"VarCharValue": "name"}]},
                         {"Data": [{"VarCharValue": "1"}, {"VarCharValue": "alpha"}]},
                         {"Data": [{"VarCharValue": "2"}, {}]},
                         {"Data": [{"VarCharValue": "3"}, {"VarCharValue": ""}]}],
                "column_info": [{"Name": "id", "Type": "integer"},
                                {"Name": "name", "Type": "varchar"}]}])
            run_unit("moto (IAM auth): start/get/results/stop, SignatureDoesNotMatch, "
                     "AccessDenied", "moto", moto.endpoint, moto.access_key, moto.secret_key,
                     {"HCPIPE_TEST_ATHENA_DENIED_ACCESS_KEY": ak,
                      "HCPIPE_TEST_ATHENA_DENIED_SECRET_KEY": sk})
    except PeerUnavailable as e:
        print("moto unavailable: %s" % e)

    try:
        import botocore.auth  # noqa: F401
    except ImportError:
        print("botocore missing: the fake Athena cannot verify signatures")
    else:
        with FakeAthena() as fake:
            started += 1
            run_unit("fake Athena (botocore-verified): progressions, AthenaError, throttling, "
                     "5xx, pages, batch, idempotency", "fake", fake.endpoint, fake.access_key,
                     fake.secret_key)
            report("fake Athena saw no protocol violations", not fake.violations
                   or all(v["type"] == "InvalidSignatureException" for v in fake.violations),
                   repr(fake.violations))

    if started == 0:
        print("no Athena peer could start; skipping")
        return 77
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
