#!/usr/bin/env python3
"""Progress: `hcpipe run` shows a progress bar on a terminal and stays quiet otherwise, and
GET /jobs/{id} of a running job reports bytes and records read of the total, rates and an ETA.

A generated input of 120,000 facilities (~34 MB) takes well over the bar's 0.5 s threshold to
load. Run once with stderr on a pseudo-terminal: stderr shows a bar with percent, bytes of the
total, rate and ETA, reaching 100% and erased at the end; run once with stderr on a pipe: stderr
is empty. Both print the same result on stdout. Then a server loads the same object as a job,
polled until its progress shows.

Environment: HCPIPE_BIN. Prints "N passed, N failed" last.
"""
import http.client
import json
import os
import shutil
import pty
import random
import re
import select
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
PASSED = FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("ok   " + name)
    else:
        FAILED += 1
        print("FAIL %s %s" % (name, detail))


def run_with_pty(args):
    master, slave = pty.openpty()
    # The bar waits 0.5 s before it shows; a fast machine may load this input sooner.
    env = dict(os.environ, HCPIPE_PROGRESS_AFTER_MS="0")
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    err = b""
    out_chunks = []
    fds = [master, proc.stdout]
    while fds:
        r, _, _ = select.select(fds, [], [], 1.0)
        if master in r:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO once the child closed the terminal
                data = b""
            if data:
                err += data
            else:
                fds.remove(master)
        if proc.stdout in r:
            data = proc.stdout.read1(65536)
            if data:
                out_chunks.append(data)
            else:
                fds.remove(proc.stdout)
        if not r and proc.poll() is not None:
            break
    out_chunks.append(proc.stdout.read())
    os.close(master)
    proc.wait()
    return proc.returncode, b"".join(out_chunks), err


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", path)
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, json.loads(body)


def server_progress(tmp, src):
    data = os.path.join(tmp, "data")
    os.makedirs(os.path.join(data, "buckets", "big"))
    os.link(src, os.path.join(data, "buckets", "big", "facilities.ndjson"))
    log_path = os.path.join(tmp, "server.log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", data,
                             "--insecure-dev-events"],
                            stdout=log, stderr=log)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            m = re.search(rb'"listen":"127\.0\.0\.1:(\d+)"', open(log_path, "rb").read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/jobs", body=json.dumps({"query": "accredited_by_state",
                                                       "source": "s3://big/facilities.ndjson"}),
                     headers={"Content-Type": "application/json"})
        job_id = json.loads(conn.getresponse().read())["id"]
        conn.close()
        seen = []
        deadline = time.time() + 120
        state = "queued"
        while state not in ("succeeded", "failed", "dead") and time.time() < deadline:
            _, job = get(port, "/jobs/" + job_id)
            state = job["state"]
            if state == "running" and job.get("progress"):
                seen.append(job["progress"])
            time.sleep(0.03)
        size = os.path.getsize(src)
        check("the server job succeeds", state == "succeeded", state)
        mid = [p for p in seen if 0 < p["bytes_read"] < size]
        check("a running job reports its progress", len(mid) >= 1, repr(seen[:3]))
        if mid:
            p = mid[-1]
            check("progress: bytes read of the total", p["bytes_total"] == size and p["bytes_read"] > 0, repr(p))
            check("progress: records read", p["records_read"] > 0, repr(p))
            check("progress: rates", p["rate_bytes_per_s"] > 0 and p["rate_records_per_s"] > 0, repr(p))
            check("progress: an ETA while bytes remain", isinstance(p["eta_s"], int) and p["eta_s"] >= 0, repr(p))
        check("progress never goes backwards",
              all(a["bytes_read"] <= b["bytes_read"] for a, b in zip(seen, seen[1:])))
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        log.close()


def main():
    tmp = tempfile.mkdtemp(prefix="hcpipe-progress-")
    src = os.path.join(tmp, "big.ndjson")
    rng = random.Random(7)
    with open(src, "w") as f:
        for i in range(120000):
            f.write(json.dumps({
                "facility_id": "F%07d" % i, "facility_name": "Facility %d" % i,
                "location": {"state": rng.choice(["TX", "CA", "NY", "WA"]), "city": "C"},
                "employee_count": i % 700, "services": ["a", "b"],
                "accreditations": [{"accreditation_body": "JC", "accreditation_id": "A%d" % i,
                                    "valid_until": "2027-01-01"}]}) + "\n")
    args = [BIN, "run", "--query", "accredited_by_state", "--as-of", "2026-11-27",
            "--source", src]
    try:
        rc, out_tty, err = run_with_pty(args)
        text = err.decode(errors="replace")
        check("on a terminal the run succeeds", rc == 0, str(rc))
        bars = re.findall(r"\r\[[#.]{24}\] +(\d+)%  [\d.]+ [KMG]?i?B / [\d.]+ MiB  [\d.]+ [KMG]?i?B/s  ETA \d+s  \d+ records", text)
        check("a bar with percent, bytes of the total, rate and ETA is drawn", len(bars) >= 1, repr(text[:300]))
        check("the bar reaches 100%", "100" in bars, repr(bars))
        check("the bar is erased at the end", text.endswith("\r\x1b[K"), repr(text[-40:]))
        check("the bar never moves backwards", all(int(a) <= int(b) for a, b in zip(bars, bars[1:])), repr(bars))

        p = subprocess.run(args, capture_output=True, timeout=300)
        check("not on a terminal the run succeeds", p.returncode == 0)
        check("not on a terminal stderr stays quiet", p.stderr == b"", repr(p.stderr[:200]))
        check("the result is the same either way", p.stdout == out_tty and b"TX," in p.stdout)
        server_progress(tmp, src)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
