#!/usr/bin/env python3
# hcpipe-test: files-only (checks the repository's files, runs none of its C code under test)
"""What deploy/cloudformation.yaml must contain (issue 7), checked on its structure:

  - the source bucket sends its events to EventBridge; both buckets block public access;
  - a Glue database, and an Athena workgroup that enforces its configuration, writes to the
    output bucket and cancels a query past BytesScannedCutoffPerQuery;
  - an EventBridge rule on the default bus for source aws.s3 / detail-type Object Created,
    filtered on the source bucket's name and on the key (SourcePrefix*SourceKeySuffix, .ndjson by
    default: Athena reads the prefix as NDJSON);
  - an API_KEY connection whose key comes from Secrets Manager (a dynamic reference to the
    stack's secret), under the header name parameter;
  - an API destination that POSTs to <ServiceEndpoint>/events (ServiceEndpoint a parameter that
    only accepts https://) with a rate limit;
  - the rule's target: that destination, a role allowed exactly events:InvokeApiDestination on
    it, a retry policy, and an SQS dead-letter queue whose policy lets events.amazonaws.com send
    only from this rule;
  - an IAM role with the managed service policy and an instance profile.

Prints "N passed, N failed".
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "fixtures"))
import cfn  # noqa: E402

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


def of_type(res, t):
    return {k: v for k, v in res.items() if v["Type"] == t}


def one(res, t):
    found = of_type(res, t)
    report("exactly one %s" % t, len(found) == 1, repr(list(found)))
    return next(iter(found.items())) if found else (None, {"Properties": {}})


def main():
    tpl = cfn.load(os.path.join(ROOT, "deploy", "cloudformation.yaml"))
    res, params = tpl["Resources"], tpl.get("Parameters", {})
    buckets = of_type(res, "AWS::S3::Bucket")
    report("two buckets", set(buckets) == {"SourceBucket", "OutputBucket"}, repr(list(buckets)))
    src = res.get("SourceBucket", {}).get("Properties", {})
    report("source bucket sends events to EventBridge",
           src.get("NotificationConfiguration", {}).get("EventBridgeConfiguration", {})
           .get("EventBridgeEnabled") is True)
    for name in buckets:
        pab = buckets[name]["Properties"].get("PublicAccessBlockConfiguration", {})
        report("%s blocks public access" % name, len(pab) == 4 and all(pab.values()), repr(pab))

    one(res, "AWS::Glue::Database")
    wg_name, wg = one(res, "AWS::Athena::WorkGroup")
    conf = wg["Properties"].get("WorkGroupConfiguration", {})
    report("workgroup enforces its configuration", conf.get("EnforceWorkGroupConfiguration") is True)
    report("workgroup has a per-query bytes-scanned cutoff",
           conf.get("BytesScannedCutoffPerQuery") == {"Ref": "BytesScannedCutoffPerQuery"} and
           int(params["BytesScannedCutoffPerQuery"].get("MinValue", 0)) >= 10000000)
    loc = conf.get("ResultConfiguration", {}).get("OutputLocation", {})
    report("workgroup output location is in the output bucket",
           isinstance(loc, dict) and re.match(r"s3://\$\{OutputBucket\}/", loc.get("Fn::Sub", "")),
           repr(loc))

    rule_name, rule = one(res, "AWS::Events::Rule")
    rp = rule["Properties"]
    pat = rp.get("EventPattern", {})
    report("rule on the default bus", rp.get("EventBusName", "default") == "default")
    report("rule matches aws.s3 / Object Created",
           pat.get("source") == ["aws.s3"] and pat.get("detail-type") == ["Object Created"],
           repr(pat))
    detail = pat.get("detail", {})
    report("rule filters on the source bucket",
           detail.get("bucket", {}).get("name") == [{"Ref": "SourceBucket"}], repr(detail))
    keys = detail.get("object", {}).get("key", [])
    report("rule filters on SourcePrefix and SourceKeySuffix (default .ndjson)",
           keys == [{"wildcard": {"Fn::Sub": "${SourcePrefix}*${SourceKeySuffix}"}}] and
           params.get("SourceKeySuffix", {}).get("Default") == ".ndjson" and
           not re.match(params.get("SourcePrefix", {}).get("AllowedPattern", ""), "in*coming/") and
           not re.match(params.get("SourceKeySuffix", {}).get("AllowedPattern", ""), ".*json"),
           repr(keys))

    conn_name, conn = one(res, "AWS::Events::Connection")
    cp = conn["Properties"]
    api = cp.get("AuthParameters", {}).get("ApiKeyAuthParameters", {})
    secrets = of_type(res, "AWS::SecretsManager::Secret")
    value = api.get("ApiKeyValue", {})
    value = value.get("Fn::Sub", "") if isinstance(value, dict) else value
    report("connection is API_KEY with the key from the stack's secret",
           cp.get("AuthorizationType") == "API_KEY" and
           any(re.fullmatch(r"\{\{resolve:secretsmanager:\$\{%s\}(:SecretString)?\}\}" % s, value)
               for s in secrets), repr(api))
    report("connection header is the WebhookHeaderName parameter",
           api.get("ApiKeyName") == {"Ref": "WebhookHeaderName"} and
           params.get("WebhookHeaderName", {}).get("Default") == "x-api-key")

    dest_name, dest = one(res, "AWS::Events::ApiDestination")
    dp = dest["Properties"]
    report("destination uses the connection",
           dp.get("ConnectionArn") == {"Fn::GetAtt": [conn_name, "Arn"]})
    report("destination POSTs to <ServiceEndpoint>/events",
           dp.get("HttpMethod") == "POST" and
           dp.get("InvocationEndpoint") == {"Fn::Sub": "${ServiceEndpoint}/events"})
    pattern = params.get("ServiceEndpoint", {}).get("AllowedPattern", "")
    report("ServiceEndpoint must be https://",
           pattern.startswith("^https://") and re.match(pattern, "https://hcpipe.example.com")
           and not re.match(pattern, "http://hcpipe.example.com")
           and not re.match(pattern, "https://hcpipe.example.com/"), pattern)
    report("destination has a rate limit",
           dp.get("InvocationRateLimitPerSecond") == {"Ref": "InvocationRateLimitPerSecond"})

    targets = rp.get("Targets", [])
    report("rule has one target", len(targets) == 1, repr(targets))
    t = targets[0] if targets else {}
    report("target is the destination", t.get("Arn") == {"Fn::GetAtt": [dest_name, "Arn"]})
    rpol = t.get("RetryPolicy", {})
    report("target has a retry policy",
           {"MaximumRetryAttempts", "MaximumEventAgeInSeconds"} <= set(rpol), repr(rpol))
    queues = of_type(res, "AWS::SQS::Queue")
    dlq = t.get("DeadLetterConfig", {}).get("Arn", {}).get("Fn::GetAtt", [None])[0]
    report("target's dead-letter queue is a standard SQS queue of the stack",
           dlq in queues and not queues[dlq]["Properties"].get("FifoQueue"), repr(dlq))
    qpols = [p["Properties"] for p in of_type(res, "AWS::SQS::QueuePolicy").values()
             if {"Ref": dlq} in p["Properties"].get("Queues", [])]
    ok = False
    for qp in qpols:
        for st in qp["PolicyDocument"]["Statement"]:
            ok = ok or (st.get("Principal") == {"Service": "events.amazonaws.com"} and
                        st.get("Action") in ("sqs:SendMessage", ["sqs:SendMessage"]) and
                        st.get("Condition", {}).get("ArnEquals", {}).get("aws:SourceArn") ==
                        {"Fn::GetAtt": [rule_name, "Arn"]})
    report("DLQ policy lets only this rule send", ok, repr(qpols))
    role_ref = t.get("RoleArn", {}).get("Fn::GetAtt", [None])[0]
    role = res.get(role_ref, {}).get("Properties", {})
    stmts = [st for p in role.get("Policies", []) for st in p["PolicyDocument"]["Statement"]]
    report("target role may only invoke this destination",
           stmts == [{"Effect": "Allow", "Action": "events:InvokeApiDestination",
                      "Resource": {"Fn::GetAtt": [dest_name, "Arn"]}}], repr(stmts))

    svc = res.get("ServiceRole", {}).get("Properties", {})
    report("service role uses the managed service policy",
           svc.get("ManagedPolicyArns") == [{"Ref": "ServicePolicy"}])
    profiles = of_type(res, "AWS::IAM::InstanceProfile")
    report("instance profile of the service role",
           any(p["Properties"].get("Roles") == [{"Ref": "ServiceRole"}] for p in profiles.values()))
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
