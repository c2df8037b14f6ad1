#!/usr/bin/env python3
"""`hcpipe run`: the sample's expected results, exit codes (0/1/2), problem+json on stderr,
--output, s3:// sources under --data-dir, object scope, and the temporary warehouse being removed.
"""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

BIN = os.environ.get("HCPIPE_BIN")
HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLE_JSON = os.path.join(HERE, "..", "data", "sample_data.json")
SAMPLE_NDJSON = os.path.join(HERE, "..", "data", "sample_data.ndjson")
PASSED = 0
FAILED = 0


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok", name)
    else:
        FAILED += 1
        print("FAIL", name, str(detail)[:1500])


def run(*args, env=None):
    p = subprocess.run([BIN, "run"] + list(args), capture_output=True, timeout=120, env=env)
    return p.returncode, p.stdout.decode("utf-8"), p.stderr.decode("utf-8")


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("HCPIPE_BIN not set")
        return 77
    tmp = tempfile.mkdtemp(prefix="hcpipe-runcli-")
    env = dict(os.environ, TMPDIR=tmp)
    try:
        rc, out, err = run("--query", "accredited_by_state", "--source", SAMPLE_JSON, "--as-of",
                           "2026-11-27", env=env)
        check("sample accredited_by_state csv", rc == 0 and out ==
              "state,facility_count,total_employees,valid_accreditations\r\nTX,1,250,1\r\n",
              (rc, out, err))
        check("temporary warehouse removed", os.listdir(tmp) == [], os.listdir(tmp))

        rc, out, err = run("--query", "facility_metrics", "--source", SAMPLE_NDJSON, "--as-of",
                           "2026-11-27", "--format", "json")
        doc = json.loads(out) if rc == 0 else {}
        rows = [(r["facility_id"], r["number_of_offered_services"],
                 r["expiry_date_of_first_accreditation"]) for r in doc.get("rows", [])]
        check("sample facility_metrics json", rows == [("FAC12345", 5, "2026-12-31"),
                                                       ("FAC54321", 2, "2024-09-30"),
                                                       ("FAC67890", 4, "2025-12-31")], rows)
        check("json document members", doc.get("query") == "facility_metrics" and
              doc.get("as_of") == "2026-11-27" and doc.get("engine") == "local" and
              doc.get("row_count") == 3 and [c["type"] for c in doc["columns"]] ==
              ["varchar", "varchar", "bigint", "bigint", "date"], doc)

        outfile = os.path.join(tmp, "out.csv")
        rc, out, err = run("--query", "expiring_accreditations", "--source", SAMPLE_NDJSON,
                           "--as-of", "2026-11-27", "--output", outfile)
        with open(outfile, encoding="utf-8", newline="") as f:
            text = f.read()
        check("--output writes the file, not stdout", rc == 0 and out == "" and text ==
              "facility_id,facility_name,state,accreditation_body,valid_until,days_left\r\n"
              "FAC12345,City Hospital,TX,Joint Commission,2026-12-31,34\r\n", (rc, out, text))
        os.unlink(outfile)

        # s3:// sources resolve against <data-dir>/buckets, and object scope picks the last one.
        data = os.path.join(tmp, "data")
        os.makedirs(os.path.join(data, "buckets", "sample"))
        shutil.copy(SAMPLE_NDJSON, os.path.join(data, "buckets", "sample", "a.ndjson"))
        with open(os.path.join(data, "buckets", "sample", "b.ndjson"), "w") as f:
            f.write('{"facility_id":"FAC99999","facility_name":"New, \\"Q\\"",'
                    '"location":{"state":null},"employee_count":3,'
                    '"accreditations":[{"accreditation_body":"X","valid_until":"2027-01-01"}]}\n')
        rc, out, err = run("--query", "accredited_by_state", "--source", "s3://sample/a.ndjson",
                           "--source", "s3://sample/b.ndjson", "--as-of", "2026-11-27",
                           "--data-dir", data)
        check("two s3 sources, dataset scope", rc == 0 and out.splitlines() ==
              ["state,facility_count,total_employees,valid_accreditations", "TX,1,250,1",
               ",1,3,1"], (rc, out, err))
        rc, out, err = run("--query", "facility_metrics", "--source", "s3://sample/b.ndjson",
                           "--scope", "object", "--as-of", "2026-11-27", "--data-dir", data)
        check("object scope", rc == 0 and out.splitlines()[1:] ==
              ['FAC99999,"New, ""Q""",3,0,2027-01-01'], (rc, out, err))
        check("the data dir is kept", os.path.exists(os.path.join(data, "warehouse.db")))

        # Failures: exit 1 and a problem document on stderr.
        rc, out, err = run("--query", "facility_metrics", "--source", "s3://sample/none.json",
                           "--data-dir", data)
        prob = json.loads(err) if rc == 1 else {}
        check("missing object -> 1 + problem", rc == 1 and out == "" and
              prob.get("type", "").endswith("/source-not-found") and prob.get("status") == 422,
              (rc, err))
        rc, out, err = run("--query", "facility_metrics", "--source", os.path.join(tmp, "nope"))
        check("missing file -> 1", rc == 1 and "source-not-found" in err, (rc, err))
        bad = os.path.join(tmp, "bad.ndjson")
        with open(bad, "w") as f:
            f.write('{"facility_id":"A"}\n{"facility_id":"A"}\n[1]\n')
        rc, out, err = run("--query", "facility_metrics", "--source", bad)
        prob = json.loads(err) if rc == 1 else {}
        check("bad records -> 1 + bad_records", rc == 1 and
              [b["position"] for b in prob.get("bad_records", [])] == [2, 3], (rc, err))
        rc, out, err = run("--query", "facility_metrics", "--source", bad, "--on-bad-record",
                           "skip", "--format", "json")
        doc = json.loads(out) if rc == 0 else {}
        check("skip -> bad_records + warnings in result.json", rc == 0 and
              [b["position"] for b in doc.get("bad_records", [])] == [2, 3] and
              len(doc.get("warnings", [])) == 1 and doc.get("row_count") == 1, (rc, out, err))
        os.unlink(bad)

        # Usage errors: exit 2.
        for args in [[], ["--query", "nope", "--source", SAMPLE_JSON],
                     ["--query", "facility_metrics"],
                     ["--query", "facility_metrics", "--source", SAMPLE_JSON, "--as-of",
                      "2026-02-30"],
                     ["--query", "facility_metrics", "--source", SAMPLE_JSON, "--scope", "all"],
                     ["--query", "facility_metrics", "--source", SAMPLE_JSON, "--format", "xml"],
                     ["--query", "facility_metrics", "--source", SAMPLE_JSON,
                      "--on-bad-record", "ignore"],
                     ["--query", "facility_metrics", "--source", SAMPLE_JSON, "--bogus"],
                     ["--query", "facility_metrics", "--source"]]:
            rc, out, err = run(*args, env=env)
            check("usage error %r -> 2" % args, rc == 2 and "hcpipe run" in err, (rc, err))
        rc, out, err = run("--help")
        check("--help", rc == 0 and "--on-bad-record" in out and "--data-dir" in out)
        check("nothing left in TMPDIR", glob.glob(os.path.join(tmp, "hcpipe-run-*")) == [])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
