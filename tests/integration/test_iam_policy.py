#!/usr/bin/env python3
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
"""The service policy of deploy/cloudformation.yaml grants exactly what hcpipe calls.

The expected (IAM action, resource) pairs are derived from the C sources by
tests/fixtures/aws_actions.py (the functions of aws/athena.c and aws/s3.c that server/ and
routes/ call, and the operations they send, plus what Athena does with the caller's
permissions). Before any service code calls the clients, the check is one-sided (nothing beyond
what the clients can do). The template's ServicePolicy is resolved
with each stack resource replaced by a marker, and must:
  - allow exactly the expected pairs (no missing action, no extra action, no extra resource);
  - use only Allow statements with Action and Resource (no NotAction/NotResource, no wildcard in
    an action, no "*" resource);
  - be the only policy of ServiceRole (no inline policy, no other managed policy);
and the comparison must notice a policy with one action removed or one action added.

Prints "N passed, N failed"; exits 77 when the sources are not available at all.
"""
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))
import aws_actions  # noqa: E402
import cfn  # noqa: E402

TEMPLATE = os.path.join(ROOT, "deploy", "cloudformation.yaml")
P, R, A = "aws", "us-east-1", "123456789012"
MARKERS = {
    "AWS::Partition": P, "AWS::Region": R, "AWS::AccountId": A,
    "SourceBucket": "SOURCE", "SourceBucket.Arn": "arn:aws:s3:::SOURCE",
    "OutputBucket": "OUTPUT", "OutputBucket.Arn": "arn:aws:s3:::OUTPUT",
    "AthenaWorkGroup": "WORKGROUP", "GlueDatabase": "DATABASE",
}
KINDS = {
    "arn:aws:s3:::SOURCE/*": "source-objects",
    "arn:aws:s3:::SOURCE": "source-bucket",
    "arn:aws:s3:::OUTPUT/*": "output-objects",
    "arn:aws:s3:::OUTPUT": "output-bucket",
    "arn:aws:athena:%s:%s:workgroup/WORKGROUP" % (R, A): "workgroup",
    "arn:aws:glue:%s:%s:catalog" % (R, A): "glue-catalog",
    "arn:aws:glue:%s:%s:database/DATABASE" % (R, A): "glue-database",
    "arn:aws:glue:%s:%s:table/DATABASE/*" % (R, A): "glue-tables",
}

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


def as_list(v):
    return v if isinstance(v, list) else [v]


def granted_pairs(statements):
    """(action, kind) pairs of Allow statements; unknown resources map to their ARN."""
    pairs = set()
    for st in statements:
        for action in as_list(st.get("Action", [])):
            for res in as_list(st.get("Resource", [])):
                pairs.add((action, KINDS.get(res, res)))
    return pairs


def main():
    try:
        d = aws_actions.derive(ROOT)
    except aws_actions.DerivationError as e:
        # A client rewritten so its calls cannot be read is a failure, never a skip: the
        # policy would go unchecked without anyone noticing.
        print("FAIL cannot derive hcpipe's AWS calls: %s" % e)
        print("0 passed, 1 failed")
        return 1
    print("sources: %s" % d.origin)
    print("derived from %s" % ("the service's calls into the clients" if d.exact else
                               "the clients (no service code calls them yet)"))
    print("Athena operations: %s" % " ".join(d.athena_ops))
    print("S3 operations: %s" % " ".join(d.s3_ops))
    report("Athena operations derived", bool(d.athena_ops) or d.origin["aws/athena.c"] == "missing")
    report("S3 operations derived", bool(d.s3_ops) or d.origin["aws/s3.c"] == "missing")

    tpl = cfn.load(TEMPLATE)
    res = tpl["Resources"]
    policy = res["ServicePolicy"]
    report("ServicePolicy is an AWS::IAM::ManagedPolicy", policy["Type"] == "AWS::IAM::ManagedPolicy")
    doc = cfn.resolve(policy["Properties"]["PolicyDocument"], MARKERS)
    statements = as_list(doc["Statement"])

    shape_errors = []
    for st in statements:
        sid = st.get("Sid", "?")
        if st.get("Effect") != "Allow":
            shape_errors.append("%s: Effect %s" % (sid, st.get("Effect")))
        for key in ("NotAction", "NotResource", "NotPrincipal", "Principal"):
            if key in st:
                shape_errors.append("%s: has %s" % (sid, key))
        for action in as_list(st.get("Action", [])):
            if "*" in action or "?" in action:
                shape_errors.append("%s: wildcard action %s" % (sid, action))
        for r in as_list(st.get("Resource", [])):
            if r not in KINDS:
                shape_errors.append("%s: resource %s is not one of the stack's" % (sid, r))
    report("only Allow statements on the stack's own resources, no wildcard action",
           not shape_errors, "; ".join(shape_errors))

    granted = granted_pairs(statements)
    missing = sorted(d.expected - granted)
    extra = sorted(granted - d.expected)
    if d.exact:
        report("grants every derived (action, resource) pair (%d)" % len(d.expected),
               not missing, repr(missing))
    else:
        print("NOTE no code in server/ or routes/ calls the AWS clients yet: checked against "
              "every operation the clients can perform; not granted: %r" % missing)
    report("grants nothing beyond them", not extra, repr(extra))
    actions = sorted({a for a, _ in d.expected})
    print("actions: %s" % " ".join(actions))

    role = res["ServiceRole"]["Properties"]
    report("ServiceRole's only policy is ServicePolicy",
           role.get("ManagedPolicyArns") == [{"Ref": "ServicePolicy"}] and "Policies" not in role,
           repr(role.get("ManagedPolicyArns")))
    others = [name for name, r in res.items() if r["Type"] in ("AWS::IAM::Policy",
                                                              "AWS::IAM::ManagedPolicy")
              and name != "ServicePolicy"]
    attached = []
    for name in others:
        props = res[name]["Properties"]
        if {"Ref": "ServiceRole"} in as_list(props.get("Roles", [])):
            attached.append(name)
    report("no other policy is attached to ServiceRole", not attached, repr(attached))

    # The comparison itself must notice one action removed or added.
    first = statements[0]
    dropped = [dict(st) for st in statements]
    dropped[0] = dict(first, Action=as_list(first["Action"])[1:])
    added = [dict(st) for st in statements]
    added[0] = dict(first, Action=as_list(first["Action"]) + ["s3:PutBucketPolicy"])
    report("the check notices a removed and an added action",
           (granted - granted_pairs(dropped)) <= d.expected - granted_pairs(dropped) and
           granted_pairs(added) - d.expected)

    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
