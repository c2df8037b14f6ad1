#!/usr/bin/env python3
"""`hcpipe run` shows a progress bar on a terminal and stays quiet otherwise.

A generated input of 120,000 facilities (~34 MB) takes well over the bar's 0.5 s threshold to
load. Run once with stderr on a pseudo-terminal: stderr shows a bar with percent, bytes of the
total, rate and ETA, reaching 100% and erased at the end; run once with stderr on a pipe: stderr
is empty. Both print the same result on stdout.

Environment: HCPIPE_BIN. Prints "N passed, N failed" last.
"""
import json
import os
import pty
import random
import re
import select
import subprocess
import sys
import tempfile

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
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=slave)
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
    finally:
        for name in os.listdir(tmp):
            os.unlink(os.path.join(tmp, name))
        os.rmdir(tmp)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
