#!/usr/bin/env python3
"""Integration test of aws/s3.c against real S3 peers, cross-checked with the AWS CLI v2.

Runs $HCPIPE_BUILD/tests/test_s3 (cmocka; its peer group is driven by HCPIPE_TEST_* variables,
see tests/unit/test_s3.c) against:

  1. moto_server with IAM auth on: signatures verified, a wrong secret must give
     SignatureDoesNotMatch and a user without s3:PutObject AccessDenied. Keys are limited to what
     moto 5.2.1's own verifier can check (see tests/fixtures/moto_peer.py).
  2. moto_server without IAM auth: the awkward keys ('+', '%', unicode, '*', parentheses, '~',
     spaces, '//').
  3. s3rver (it does not verify V4 signatures, only the key id S3RVER): the awkward keys but
     "a//b" (it stores objects as files).
  4. The AWS CLI v2 (/usr/bin/aws) on s3rver and on moto (with and without IAM auth): objects our client puts are read back by
     the CLI, and objects the CLI puts are read by our client.

Standard library only (plus the fixtures). Prints "N passed, N failed"; exits 77 when no peer can
start at all.
"""
import hashlib
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))
from moto_peer import MotoPeer, PeerUnavailable  # noqa: E402
from s3rver_peer import S3rverPeer  # noqa: E402

BUILD = os.environ.get("HCPIPE_BUILD", os.path.join(os.path.dirname(os.path.dirname(HERE)),
                                                    "build"))
TEST_S3 = os.path.join(BUILD, "tests", "test_s3")
AWS_CLI = "/usr/bin/aws"

AWKWARD_KEYS = [
    "plain.json",
    "dir/sub dir/with space.json",
    "plus+sign.json",
    "per%cent.json",
    "uni/\u00fcn\u00ef \u20ac.json",
    "tilde~star*(paren).json",
    "facilities/site A+B/\u00fcn\u00ef (1)~*.json",
    "double//slash.json",
]
# What moto's IAM signature check can verify (see moto_peer.py).
# moto's verifier also fails on any query value needing %XX (a prefix with '/' or ' '), and the
# tests list with the key as prefix, so these keys stay plain.
MOTO_AUTH_KEYS = ["plain.json", "tilde~x.json", "under_score-dash.v2.json"]
# s3rver stores objects as files: "a//b" cannot exist next to other keys.
S3RVER_KEYS = [k for k in AWKWARD_KEYS if "//" not in k]

passed = 0
failed = 0


def report(name, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print("PASS %s" % name)
    else:
        failed += 1
        print("FAIL %s %s" % (name, detail[-4000:]))


def expected_content(key):
    """The bytes test_s3.c's expected_content() builds for key."""
    line = ("hcpipe:%s\n" % key).encode()
    out = b""
    while len(out) < 3000:
        out += line
    return out


def run_unit(name, peer, bucket, mode="full", keys=None, extra=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_") or k.startswith("HCPIPE_TEST_"):
            del env[k]
    env.update({
        "HCPIPE_TEST_S3_ENDPOINT": peer.endpoint,
        "HCPIPE_TEST_S3_BUCKET": bucket,
        "HCPIPE_TEST_ACCESS_KEY": peer.access_key,
        "HCPIPE_TEST_SECRET_KEY": peer.secret_key,
        "HCPIPE_TEST_S3_MODE": mode,
        "AWS_REGION": "us-east-1",
    })
    if keys is not None:
        env["HCPIPE_TEST_S3_KEYS"] = "\n".join(keys)
    env.update(extra or {})
    p = subprocess.run([TEST_S3], env=env, capture_output=True, timeout=300)
    out = (p.stdout + p.stderr).decode("utf-8", "replace")
    # The pure group and the peer group must both have passed, and the peer group must have run.
    ok = p.returncode == 0 and out.count("[  PASSED  ]") == 2 and "[  FAILED  ]" not in out
    report(name, ok, out)
    return ok


def cli(peer, args, config_dir, input_file=None):
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("AWS_"):
            del env[k]
    cfg = os.path.join(config_dir, "config")
    if not os.path.exists(cfg):
        with open(cfg, "w") as f:
            f.write("[default]\nregion = us-east-1\ns3 =\n    addressing_style = path\n")
    env.update({"AWS_ACCESS_KEY_ID": peer.access_key, "AWS_SECRET_ACCESS_KEY": peer.secret_key,
                "AWS_CONFIG_FILE": cfg, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
                "AWS_PAGER": "", "AWS_DEFAULT_REGION": "us-east-1"})
    return subprocess.run([AWS_CLI, "--endpoint-url", peer.endpoint] + args, env=env,
                          capture_output=True, timeout=120)


def cross_check_cli(label, peer, bucket, key_set=AWKWARD_KEYS, ours="ours/", theirs="cli/"):
    """Our puts read by the CLI, the CLI's puts read by us."""
    if not os.path.exists(AWS_CLI):
        report("%s: AWS CLI v2 present at /usr/bin/aws" % label, False,
               "install the Debian package awscli (make deps)")
        return
    if os.environ.get("SANITIZER") and len(key_set) > 2:
        # The CLI's side runs no code of ours and the plain run checks every key; under a
        # sanitizer the first and the last (most awkward) keys keep our side of it covered.
        key_set = [key_set[0], key_set[-1]]
    with tempfile.TemporaryDirectory() as tmp:
        keys = [ours + k for k in key_set]
        if run_unit("%s: our client puts objects" % label, peer, bucket, "put", keys):
            for k in keys:
                out = os.path.join(tmp, "obj")
                p = cli(peer, ["s3api", "get-object", "--bucket", bucket, "--key", k, out], tmp)
                ok = p.returncode == 0 and open(out, "rb").read() == expected_content(k)
                report("%s: CLI reads %r" % (label, k), ok, p.stderr.decode())
        keys = [theirs + k for k in key_set]
        put_ok = True
        for k in keys:
            src = os.path.join(tmp, "src-" + hashlib.sha1(k.encode()).hexdigest())
            with open(src, "wb") as f:
                f.write(expected_content(k))
            p = cli(peer, ["s3api", "put-object", "--bucket", bucket, "--key", k, "--body", src],
                    tmp)
            if p.returncode != 0:
                put_ok = False
                report("%s: CLI puts %r" % (label, k), False, p.stderr.decode())
        if put_ok:
            run_unit("%s: our client reads the CLI's objects" % label, peer, bucket, "verify",
                     keys)


def main():
    if not os.access(TEST_S3, os.X_OK):
        print("test_s3 is not built at %s" % TEST_S3)
        print("0 passed, 1 failed")
        return 1
    started = 0

    # 1. moto with IAM auth.
    try:
        with MotoPeer() as moto:
            started += 1
            moto.client("s3").create_bucket(Bucket="hcpipe-auth")
            ak, sk = moto.create_user("hcpipe-reader", {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": ["s3:GetObject", "s3:ListBucket"],
                               "Resource": "*"}]})
            run_unit("moto (IAM auth): S3 calls, wrong secret, denied put", moto, "hcpipe-auth",
                     keys=MOTO_AUTH_KEYS,
                     extra={"HCPIPE_TEST_S3_AUTH": "1", "HCPIPE_TEST_S3_PAGING_PREFIX": "paging-",
                            "HCPIPE_TEST_S3_DENIED_ACCESS_KEY": ak,
                            "HCPIPE_TEST_S3_DENIED_SECRET_KEY": sk})
            # Both clients' signatures verified by moto (plain keys, no '/' in the prefix).
            cross_check_cli("moto (IAM auth)", moto, "hcpipe-auth", MOTO_AUTH_KEYS, "ours-",
                            "cli-")
    except PeerUnavailable as e:
        print("moto with IAM auth unavailable: %s" % e)

    # 2. moto without IAM auth: the awkward keys, plus the CLI cross-check.
    try:
        with MotoPeer(iam_auth=False) as moto:
            started += 1
            moto.client("s3").create_bucket(Bucket="hcpipe-keys")
            run_unit("moto (no auth): S3 calls with awkward keys", moto, "hcpipe-keys")
            cross_check_cli("moto (no auth)", moto, "hcpipe-keys")
    except PeerUnavailable as e:
        print("moto without IAM auth unavailable: %s" % e)

    # 3. s3rver (checks signatures with S3RVER/S3RVER), plus the CLI cross-check.
    try:
        with S3rverPeer(buckets=["hcpipe-s3rver"]) as s3rver:
            started += 1
            # s3rver does not verify SigV4 signatures (only that the key id exists) and ignores
            # If-Match.
            run_unit("s3rver: S3 calls with awkward keys", s3rver, "hcpipe-s3rver",
                     keys=S3RVER_KEYS, extra={"HCPIPE_TEST_S3_NO_IF_MATCH": "1"})
            cross_check_cli("s3rver", s3rver, "hcpipe-s3rver", S3RVER_KEYS)
    except PeerUnavailable as e:
        print("s3rver unavailable: %s" % e)

    if started == 0:
        print("no S3 peer could start; skipping")
        return 77
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
