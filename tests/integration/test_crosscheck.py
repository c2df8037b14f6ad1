#!/usr/bin/env python3
"""Cross-check of the three catalog queries against an independent Python implementation.

Generates a deterministic dataset of 60,000 facilities in two objects (an NDJSON file and a JSON
array) with nulls, missing fields, unicode, empty services, facility_ids repeated across the two
objects (the second object loaded wins) and a few bad records (skipped with --on-bad-record
skip), runs `$HCPIPE_BIN run` for each query and scope, and compares the typed JSON rows with
what the reference below computes. The reference is written from the issue's text of the
semantics, not from the engine's SQL.
"""
import calendar
import datetime
import json
import os
import random
import subprocess
import sys
import tempfile

BIN = os.environ.get("HCPIPE_BIN")
PASSED = 0
FAILED = 0

STATES = ["TX", "CA", "FL", "NY", "WA", "ÖS", "Zü", "tx", "", None]
BODIES = ["Joint Commission", "NCQA", "DNV", "CARF", "Åcreditación \"Q\"", "", None]
NAMES = ["City Hospital", "Clinic, Inc.", "Größe Klinik", "病院", "Line\nBreak", "Quote \"Q\"", ""]


def check(name, cond, detail=""):
    global PASSED, FAILED
    if cond:
        PASSED += 1
        print("ok", name)
    else:
        FAILED += 1
        print("FAIL", name, detail[:2000])


def rand_date(rng):
    # Mostly 2023-2030, with a share of edge dates around as_of 2026-08-31 and its window end.
    if rng.random() < 0.15:
        return rng.choice(["2026-08-30", "2026-08-31", "2026-09-01", "2027-02-27", "2027-02-28",
                           "2027-03-01", "2027-03-03"])
    d = datetime.date(2023, 1, 1) + datetime.timedelta(days=rng.randrange(0, 8 * 365))
    return d.isoformat()


def make_record(rng, fid):
    r = {"facility_id": fid}
    if rng.random() < 0.97:
        r["facility_name"] = rng.choice(NAMES + [None]) if rng.random() < 0.2 else \
            "Facility %s %s" % (fid, rng.choice(["Ünïcode", "Care", "Health"]))
    if rng.random() < 0.95:
        r["employee_count"] = rng.choice([None, 0, rng.randrange(1, 5000)])
    if rng.random() < 0.95:
        if rng.random() < 0.05:
            r["location"] = None
        else:
            loc = {"address": "%d Main St" % rng.randrange(1, 999), "city": "Town",
                   "zip": "%05d" % rng.randrange(0, 99999)}
            if rng.random() < 0.95:
                loc["state"] = rng.choice(STATES)
            r["location"] = loc
    k = rng.random()
    if k < 0.05:
        r["services"] = None
    elif k < 0.1:
        r["services"] = []
    elif k < 0.97:
        r["services"] = ["S%d" % i for i in range(rng.randrange(0, 13))]
    if rng.random() < 0.5:
        r["labs"] = [{"lab_name": "Lab", "certifications": ["CLIA"]}]
    k = rng.random()
    if k < 0.05:
        r["accreditations"] = None
    elif k < 0.1:
        r["accreditations"] = []
    elif k < 0.97:
        accs = []
        for i in range(rng.randrange(0, 5)):
            a = {"accreditation_id": "A%d" % i}
            if rng.random() < 0.95:
                a["accreditation_body"] = rng.choice(BODIES)
            a["valid_until"] = None if rng.random() < 0.05 else rand_date(rng)
            accs.append(a)
        r["accreditations"] = accs
    r["extra"] = {"nested": [1, {"x": None}]}
    return r


def generate(rng, ids, bad_every):
    """Records for the ids, with bad records mixed in. Returns (records, bad positions)."""
    recs, bad = [], []
    for fid in ids:
        recs.append(make_record(rng, fid))
        if bad_every and len(recs) % bad_every == 0:
            kind = rng.randrange(4)
            if kind == 0:
                recs.append(make_record(rng, recs[-1]["facility_id"]))  # repeated id
            elif kind == 1:
                b = make_record(rng, "BAD%d" % len(recs))
                b["employee_count"] = -5
                recs.append(b)
            elif kind == 2:
                b = make_record(rng, "BAD%d" % len(recs))
                b["accreditations"] = [{"accreditation_body": "X", "valid_until": "2026-02-30"}]
                recs.append(b)
            else:
                b = make_record(rng, "BAD%d" % len(recs))
                b["facility_id"] = ""
                recs.append(b)
            bad.append(len(recs))  # 1-based position of the bad one
    return recs, bad


# ---- the reference implementation (from the semantics) ----

def valid_record(r, seen):
    if not isinstance(r, dict):
        return False
    fid = r.get("facility_id")
    if not isinstance(fid, str) or fid == "" or fid in seen:
        return False
    ec = r.get("employee_count")
    if ec is not None and (not isinstance(ec, int) or isinstance(ec, bool) or ec < 0):
        return False
    for a in r.get("accreditations") or []:
        v = a.get("valid_until")
        if v is not None:
            try:
                datetime.date.fromisoformat(v)
            except ValueError:
                return False
    return True


def current_facilities(objects):
    """objects: list of record lists, in load order. Returns {facility_id: (obj index, record)}."""
    cur = {}
    for oi, recs in enumerate(objects):
        seen = set()
        for r in recs:
            if not valid_record(r, seen):
                continue
            seen.add(r["facility_id"])
            cur[r["facility_id"]] = (oi, r)
    return cur


def bkey(s):
    return (s is None, s.encode("utf-8") if s is not None else b"")


def add_months(d, n):
    y, m = divmod(d.month - 1 + n, 12)
    y += d.year
    m += 1
    return datetime.date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def state_of(r):
    loc = r.get("location")
    return loc.get("state") if isinstance(loc, dict) else None


def ref_facility_metrics(facs):
    rows = []
    for fid in sorted(facs, key=lambda s: s.encode("utf-8")):
        r = facs[fid]
        accs = r.get("accreditations") or []
        rows.append({"facility_id": fid, "facility_name": r.get("facility_name"),
                     "employee_count": r.get("employee_count"),
                     "number_of_offered_services": len(r.get("services") or []),
                     "expiry_date_of_first_accreditation":
                         accs[0].get("valid_until") if accs else None})
    return rows


def ref_accredited_by_state(facs, as_of):
    groups = {}
    for r in facs.values():
        n = sum(1 for a in r.get("accreditations") or []
                if a.get("valid_until") is not None and a["valid_until"] >= as_of)
        if n == 0:
            continue
        g = groups.setdefault(state_of(r), [0, 0, 0])
        g[0] += 1
        g[1] += r.get("employee_count") or 0
        g[2] += n
    rows = [{"state": s, "facility_count": g[0], "total_employees": g[1],
             "valid_accreditations": g[2]} for s, g in groups.items()]
    rows.sort(key=lambda x: (-x["facility_count"], bkey(x["state"])))
    return rows


def ref_expiring(facs, as_of):
    d0 = datetime.date.fromisoformat(as_of)
    end = add_months(d0, 6).isoformat()
    rows = []
    for fid, r in facs.items():
        for a in r.get("accreditations") or []:
            v = a.get("valid_until")
            if v is not None and as_of <= v <= end:
                rows.append({"facility_id": fid, "facility_name": r.get("facility_name"),
                             "state": state_of(r), "accreditation_body": a.get("accreditation_body"),
                             "valid_until": v,
                             "days_left": (datetime.date.fromisoformat(v) - d0).days})
    rows.sort(key=lambda x: (x["valid_until"], x["facility_id"].encode("utf-8"),
                             bkey(x["accreditation_body"])))
    return rows


# ---- running hcpipe ----

def run(args):
    p = subprocess.run([BIN, "run"] + args, capture_output=True, timeout=600)
    return p.returncode, p.stdout, p.stderr


def main():
    if not BIN or not os.access(BIN, os.X_OK):
        print("HCPIPE_BIN not set")
        return 77
    rng = random.Random(20261127)
    ids_a = ["F%06d" % i for i in range(0, 40000)]
    ids_b = ["F%06d" % i for i in range(30000, 50000)] + ["Ü%05d" % i for i in range(10000)]
    rng.shuffle(ids_b)
    recs_a, bad_a = generate(rng, ids_a, 0)
    recs_b, bad_b = generate(rng, ids_b, 997)
    tmp = tempfile.mkdtemp(prefix="hcpipe-xcheck-")
    path_a = os.path.join(tmp, "a.ndjson")
    path_b = os.path.join(tmp, "b.json")
    with open(path_a, "w", encoding="utf-8") as f:
        for r in recs_a:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    with open(path_b, "w", encoding="utf-8") as f:
        json.dump(recs_b, f, ensure_ascii=bool(rng.random() < 0.5), indent=None)
    data_dir = os.path.join(tmp, "data")
    cur = current_facilities([recs_a, recs_b])
    dataset = {fid: r for fid, (oi, r) in cur.items()}
    only_b = {fid: r for fid, (oi, r) in cur.items() if oi == 1}
    check("generated at least 50,000 facilities", len(dataset) >= 50000, str(len(dataset)))

    for as_of in ["2026-08-31", "2026-11-27"]:
        expected = {
            "facility_metrics": lambda f: ref_facility_metrics(f),
            "accredited_by_state": lambda f: ref_accredited_by_state(f, as_of),
            "expiring_accreditations": lambda f: ref_expiring(f, as_of),
        }
        for query, ref in expected.items():
            for scope, facs in [("dataset", dataset), ("object", only_b)]:
                if query == "facility_metrics" and as_of != "2026-08-31":
                    continue
                # One warehouse for every run: later runs find both objects unchanged.
                rc, out, err = run(["--query", query, "--source", path_a, "--source", path_b,
                                    "--as-of", as_of, "--scope", scope, "--on-bad-record", "skip",
                                    "--format", "json", "--data-dir", data_dir])
                name = "%s %s %s" % (query, scope, as_of)
                if rc != 0:
                    check(name, False, err.decode(errors="replace"))
                    continue
                doc = json.loads(out)
                want = ref(facs)
                got = doc["rows"]
                detail = ""
                if got != want:
                    for i, (g, w) in enumerate(zip(got, want)):
                        if g != w:
                            detail = "row %d: got %r want %r" % (i, g, w)
                            break
                    else:
                        detail = "row counts %d vs %d" % (len(got), len(want))
                check(name, got == want, detail)
                check(name + " row_count", doc["row_count"] == len(want))
                positions = [b["position"] for b in doc.get("bad_records", [])]
                check(name + " bad records", positions == bad_a + bad_b,
                      "%r vs %r" % (positions[:10], (bad_a + bad_b)[:10]))

    # CSV of the same run agrees with the JSON rows (nulls empty, quoting).
    import csv
    import io
    rc, out, err = run(["--query", "facility_metrics", "--source", path_a, "--source", path_b,
                        "--as-of", "2026-08-31", "--on-bad-record", "skip", "--format", "csv"])
    rows = list(csv.reader(io.StringIO(out.decode("utf-8"), newline="")))
    want = ref_facility_metrics(dataset)
    ok = rc == 0 and len(rows) == len(want) + 1
    for r, w in zip(rows[1:], want):
        if not ok:
            break
        ok = r[0] == w["facility_id"] and r[1] == ("" if w["facility_name"] is None
                                                   else w["facility_name"])
    check("facility_metrics csv", ok)
    check("csv uses CRLF", b"\r\n" in out and out.count(b"\r\n") >= len(want) + 1)

    # Fail policy: the bad records of b fail the job, listing the first 20.
    rc, out, err = run(["--query", "facility_metrics", "--source", path_b, "--as-of",
                        "2026-08-31"])
    ok = rc == 1
    if ok:
        prob = json.loads(err)
        ok = prob.get("type", "").endswith("/bad-records") and \
            [b["position"] for b in prob["bad_records"]] == bad_b[:20]
    check("fail policy lists the first 20 bad records", ok, err.decode(errors="replace")[:500])

    import shutil
    shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 0 if FAILED == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
