#!/usr/bin/env python3
"""Resource exhaustion against the real binary (bounded in time; loopback only).

- disk_full: the data dir on a tmpfs with 3 MB free beyond its objects (mount needs root; exit 77 when neither tmpfs nor a
  loop file system can be mounted). A job whose result does not fit fails with
  insufficient-storage or io-error (once the operator frees space: recording the failure needs
  the disk too, and the worker keeps trying until it can); the service stays up and a job that
  succeeded before keeps its state and its result files byte for byte.
- many_connections: 10,000 requests on 1,000 concurrent keep-alive connections (asyncio); every
  request is answered or refused cleanly (no hang past the deadline), and afterwards the server
  answers /healthz at once.
- deep_json_body: a POST /jobs body nested 100,000 deep is a 400 problem, not a crash.
- deep_and_wide_records: an object holding a record nested 100,000 deep and one with 1,000,000
  services: each job ends succeeded or failed with a problem document; the service stays up.
- large_object: a generated 2 GB NDJSON object (records padded with whitespace; 50 MB under a
  sanitizer, where 2 GB would not finish in a minute) is loaded with the server's peak RSS
  (VmHWM) far below the object's size.

Environment: HCPIPE_BIN. Prints "N passed, N failed" last.
"""
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import test_api  # noqa: E402  (Server, make_data_dir, SLOW)

from test_api import Server, make_data_dir, SLOW  # noqa: E402

SAN = bool(os.environ.get("SANITIZER"))
RECORD = ('{"facility_id":"F%07d","facility_name":"Facility %d","location":{"state":"%s"},'
          '"employee_count":%d,"services":["a","b"],"accreditations":[{"accreditation_body":'
          '"JC","accreditation_id":"J%d","valid_until":"2027-01-01"}]}')
STATES = ["CA", "TX", "NY", "FL", "WA"]


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))


def vm_hwm_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def wait_final(S, job_id, timeout):
    deadline = time.time() + timeout * SLOW
    doc = None
    while time.time() < deadline:
        status, _, doc = S.json("GET", "/jobs/" + job_id)
        assert status == 200, (status, doc)
        if doc["state"] in ("succeeded", "failed", "dead", "cancelled"):
            return doc
        time.sleep(0.1)
    raise AssertionError("job %s still %s" % (job_id, doc and doc["state"]))


def submit(S, source, **extra):
    body = dict({"query": "facility_metrics", "source": source, "as_of": "2026-11-27"}, **extra)
    status, _, doc = S.json("POST", "/jobs", body)
    assert status in (201, 202), (status, doc)
    return doc["id"]


# ---- disk full ------------------------------------------------------------------------------

def mount_small_fs(mnt, size_mb):
    """Mounts a size_mb file system on mnt: tmpfs, else a loop ext2. Returns an unmount callable,
    or None when neither can be mounted."""
    if subprocess.call(["mount", "-t", "tmpfs", "-o", "size=%dm" % size_mb, "tmpfs", mnt],
                       stderr=subprocess.DEVNULL) == 0:
        return lambda: subprocess.call(["umount", "-l", mnt])
    img = mnt + ".img"
    with open(img, "wb") as f:
        f.truncate(size_mb << 20)
    if (subprocess.call(["mkfs.ext2", "-q", "-F", img], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL) == 0
            and subprocess.call(["mount", "-o", "loop", img, mnt], stderr=subprocess.DEVNULL) == 0):
        return lambda: (subprocess.call(["umount", "-l", mnt]), os.unlink(img))
    os.unlink(img)
    return None


def test_disk_full():
    mnt = tempfile.mkdtemp(prefix="hcpipe-full-")
    unmount = mount_small_fs(mnt, 64)
    if unmount is None:
        os.rmdir(mnt)
        raise SkipTest("cannot mount a small file system")
    S = None
    logs = tempfile.mkdtemp(prefix="hcpipe-full-logs-")
    try:
        data = os.path.join(mnt, "data")
        os.makedirs(os.path.join(data, "buckets", "sample"))
        shutil.copy(os.path.join(test_api.ROOT, "tests", "data", "sample_data.ndjson"),
                    os.path.join(data, "buckets", "sample"))
        with open(os.path.join(data, "buckets", "sample", "many.ndjson"), "w") as f:
            for i in range(40000):
                f.write(RECORD % (i, i, STATES[i % 5], i % 900, i) + "\n")
        # Objects fit; 3 MB more is room for the store and a small job, not for loading the
        # big object into the warehouse and writing its result (a symlink out is refused).
        st = os.statvfs(mnt)
        used_mb = ((st.f_blocks - st.f_bfree) * st.f_frsize >> 20) + 1
        subprocess.call(["mount", "-o", "remount,size=%dm" % (used_mb + 3), mnt])
        # The server's log lives off the full disk, or the lines the test waits for could not
        # be written (seen under ASan: the log stopped mid-line).
        S = Server(data, ["--workers", "1", "--max-attempts", "1"], log_dir=logs)
        small = submit(S, "s3://sample/sample_data.ndjson")
        assert wait_final(S, small, 60)["state"] == "succeeded"
        _, _, before = S.request("GET", "/jobs/%s/result.json" % small)
        big = submit(S, "s3://sample/many.ndjson")
        # The attempt fails on the full disk, and so does recording it (the job store is on the
        # same disk): the worker keeps trying. The operator frees space; the failure is then
        # recorded and the job is final.
        deadline = time.time() + 60 * SLOW
        while "trying again until it is recorded" not in S.read_log():
            assert time.time() < deadline, S.read_log()
            status, _, doc = S.json("GET", "/jobs/" + big)
            if doc["state"] in ("failed", "dead"):
                break
            time.sleep(0.2)
        os.unlink(os.path.join(data, "buckets", "sample", "many.ndjson"))
        doc = wait_final(S, big, 30)
        assert doc["state"] in ("failed", "dead"), doc
        err = (doc.get("error") or {}).get("type", "")
        assert err.endswith("/insufficient-storage") or err.endswith("/io-error"), doc
        print("  disk full: job %s with %s" % (doc["state"], err.rsplit("/", 1)[-1]))
        status, _, _ = S.request("GET", "/healthz")
        assert status == 200, status
        status, _, doc = S.json("GET", "/jobs/" + small)
        assert status == 200 and doc["state"] == "succeeded", doc
        status, _, after = S.request("GET", "/jobs/%s/result.json" % small)
        assert status == 200 and after == before
        assert S.stop() == 0
        S = None
    finally:
        if S:
            S.kill9()
        unmount()
        shutil.rmtree(mnt, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


# ---- 10,000 requests on 1,000 connections ---------------------------------------------------

async def one_connection(port, n_requests, counts, deadline):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port),
                                                max(0.1, deadline - time.time()))
    except (OSError, asyncio.TimeoutError):
        counts["refused"] += n_requests
        return
    try:
        for i in range(n_requests):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            await writer.drain()
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"),
                                          max(0.1, deadline - time.time()))
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await asyncio.wait_for(reader.readexactly(length), max(0.1, deadline - time.time()))
            status = int(head.split(b" ")[1])
            counts["ok" if status == 200 else "status_%d" % status] = \
                counts.get("ok" if status == 200 else "status_%d" % status, 0) + 1
    except asyncio.TimeoutError:
        counts["hung"] += n_requests - i
    except (OSError, asyncio.IncompleteReadError):
        counts["refused"] += n_requests - i  # closed or reset by the server: a clean refusal
    finally:
        writer.close()


async def many_connections(port, conns, per_conn, budget):
    counts = {"ok": 0, "refused": 0, "hung": 0}
    deadline = time.time() + budget
    await asyncio.gather(*(one_connection(port, per_conn, counts, deadline)
                           for _ in range(conns)))
    return counts


def test_many_connections():
    raise_nofile()
    d = make_data_dir()
    S = Server(d, ["--workers", "1"])
    try:
        t0 = time.time()
        counts = asyncio.run(many_connections(S.port, 1000, 10, 60 * SLOW))
        took = time.time() - t0
        print("  10,000 requests on 1,000 connections in %.1fs: %s" % (took, counts))
        assert S.alive()
        assert counts["hung"] == 0, counts
        assert sum(counts.values()) == 10000, counts
        assert counts["ok"] > 0, counts
        t0 = time.time()
        status, _, _ = S.request("GET", "/healthz")
        assert status == 200 and time.time() - t0 < 2 * SLOW
        assert S.stop() == 0
    finally:
        if S.alive():
            S.kill9()
        shutil.rmtree(d, ignore_errors=True)


# ---- deep and wide input --------------------------------------------------------------------

def test_deep_json_body():
    d = make_data_dir()
    S = Server(d, ["--workers", "1"])
    try:
        body = b"[" * 100000 + b"]" * 100000
        status, hdrs, data = S.request("POST", "/jobs", body, {"Content-Type": "application/json"})
        assert status == 400, (status, data[:300])
        assert hdrs.get("content-type") == "application/problem+json"
        body = b'{"query":' * 100000
        status, _, data = S.request("POST", "/jobs", body, {"Content-Type": "application/json"})
        assert status == 400, (status, data[:300])
        assert S.request("GET", "/healthz")[0] == 200
        assert S.stop() == 0
    finally:
        if S.alive():
            S.kill9()
        shutil.rmtree(d, ignore_errors=True)


def test_deep_and_wide_records():
    d = make_data_dir()
    bucket = os.path.join(d, "buckets", "sample")
    with open(os.path.join(bucket, "deep.ndjson"), "w") as f:
        f.write('{"facility_id":"D1","x":' + "[" * 100000 + "]" * 100000 + "}\n")
    with open(os.path.join(bucket, "wide.ndjson"), "w") as f:
        f.write('{"facility_id":"W1","facility_name":"Wide","location":{"state":"CA"},'
                '"employee_count":1,"services":[')
        f.write(",".join('"s%d"' % i for i in range(1000000)))
        f.write('],"accreditations":[]}\n')
    S = Server(d, ["--workers", "1", "--max-attempts", "1"])
    try:
        for name in ("deep", "wide"):
            job = submit(S, "s3://sample/%s.ndjson" % name)
            doc = wait_final(S, job, 120)
            assert doc["state"] in ("succeeded", "failed"), doc
            if doc["state"] == "failed":
                assert doc["error"]["type"].startswith(test_api.PROBLEM) and doc["error"].get(
                    "detail"), doc
            print("  %s record: %s %s" % (name, doc["state"],
                                           (doc.get("error") or {}).get("detail", "")[:120]))
        print("  peak RSS after deep/wide: %d MB" % (vm_hwm_kb(S.proc.pid) >> 10))
        assert S.request("GET", "/healthz")[0] == 200
        assert S.stop() == 0
    finally:
        if S.alive():
            S.kill9()
        shutil.rmtree(d, ignore_errors=True)


# ---- a large object -------------------------------------------------------------------------

def test_large_object():
    size_mb = 50 if SAN else 2048
    d = make_data_dir()
    path = os.path.join(d, "buckets", "sample", "large.ndjson")
    pad = " " * 9000
    n = 0
    with open(path, "w") as f:
        while f.tell() < size_mb << 20:
            f.write(RECORD % (n, n, STATES[n % 5], n % 900, n) + pad + "\n")
            n += 1
    S = Server(d, ["--workers", "1", "--max-attempts", "1"])
    try:
        base = vm_hwm_kb(S.proc.pid)
        t0 = time.time()
        job = submit(S, "s3://sample/large.ndjson")
        doc = wait_final(S, job, 60)
        took = time.time() - t0
        hwm = vm_hwm_kb(S.proc.pid)
        print("  %d MB object (%d records): %s in %.1fs, VmHWM %d MB (at start %d MB)"
              % (size_mb, n, doc["state"], took, hwm >> 10, base >> 10))
        assert doc["state"] == "succeeded", doc
        assert doc["row_count"] == n, doc
        assert (hwm >> 10) < 256 + (base >> 10), "peak RSS grows with the object"
        assert S.stop() == 0
    finally:
        if S.alive():
            S.kill9()
        shutil.rmtree(d, ignore_errors=True)


class SkipTest(Exception):
    pass


def main():
    if not os.path.exists(test_api.BIN):
        print("no binary at %s" % test_api.BIN)
        return 77
    tests = [test_disk_full, test_many_connections, test_deep_json_body,
             test_deep_and_wide_records, test_large_object]
    only = sys.argv[1:]
    results = []
    for t in tests:
        if only and t.__name__ not in only:
            continue
        t0 = time.time()
        try:
            t()
            results.append(True)
            print("PASS %s (%.1fs)" % (t.__name__, time.time() - t0))
        except SkipTest as e:
            print("SKIP %s: %s" % (t.__name__, e))
        except Exception:
            results.append(False)
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
