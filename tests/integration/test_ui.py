#!/usr/bin/env python3
"""The dashboard's files as the real binary serves them: every file of server/web/ and
server/web/vendor/ byte for byte from inside the binary, with its content type, an ETag that
turns into 304, the caching policy (no-cache for the page and the app, a day for vendored
libraries), HEAD, and 404 for anything else (no path escapes the embedded table).

Environment: HCPIPE_BIN. Prints "N passed, N failed" last.
"""
import http.client
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
WEB = os.path.join(ROOT, "server", "web")
PASSED = FAILED = 0


def check(name, ok, detail=""):
    global PASSED, FAILED
    if ok:
        PASSED += 1
        print("ok   " + name)
    else:
        FAILED += 1
        print("FAIL %s %s" % (name, detail))


def request(port, method, path, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, headers=headers or {})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body


TYPES = {".html": "text/html", ".js": "text/javascript", ".css": "text/css",
         ".json": "application/json", ".txt": "text/plain"}


def main():
    tmp = tempfile.mkdtemp(prefix="hcpipe-ui-")
    log_path = os.path.join(tmp, "log")
    log = open(log_path, "wb")
    proc = subprocess.Popen([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", tmp,
                             "--insecure-dev-events"],
                            stdout=log, stderr=log)
    try:
        port = None
        deadline = time.time() + 30
        while port is None and time.time() < deadline:
            m = re.search(rb'"listen":"127\.0\.0\.1:(\d+)"', open(log_path, "rb").read())
            port = int(m.group(1)) if m else None
            time.sleep(0.05)
        assert port, "the server did not start"

        status, h, body = request(port, "GET", "/")
        check("GET / is the page", status == 200 and h["content-type"].startswith("text/html")
              and body == open(os.path.join(WEB, "index.html"), "rb").read())
        check("the page is revalidated (no-cache)", h.get("cache-control") == "no-cache", h.get("cache-control"))
        etag = h.get("etag")
        status, h2, body2 = request(port, "GET", "/", {"If-None-Match": etag})
        check("If-None-Match on the page gives 304", status == 304 and body2 == b"" and h2.get("etag") == etag)
        status, h3, body3 = request(port, "HEAD", "/")
        check("HEAD / has no body and the same length", status == 200 and body3 == b"" and
              h3.get("content-length") == str(len(body)))

        files = [(f, "/ui/" + f) for f in sorted(os.listdir(WEB)) if os.path.isfile(os.path.join(WEB, f))]
        files += [(os.path.join("vendor", f), "/ui/vendor/" + f)
                  for f in sorted(os.listdir(os.path.join(WEB, "vendor")))]
        for rel, url in files:
            status, h, body = request(port, "GET", url)
            ext = os.path.splitext(rel)[1]
            want = open(os.path.join(WEB, rel), "rb").read()
            check("%s is served byte for byte as %s" % (url, TYPES.get(ext)),
                  status == 200 and body == want and h["content-type"].startswith(TYPES.get(ext, "?")),
                  "%s %s" % (status, h.get("content-type")))
            policy = "public, max-age=86400" if rel.startswith("vendor") else "no-cache"
            check("%s caching: %s" % (url, policy), h.get("cache-control") == policy, h.get("cache-control"))
            status, _, _ = request(port, "GET", url, {"If-None-Match": h.get("etag", "")})
            check("%s revalidates to 304" % url, status == 304)
        check("the vendored libraries ship with their licenses",
              any(r.endswith("LICENSE-topojson-client.txt") for r, _ in files) and
              any(r.endswith("LICENSE-us-atlas.txt") for r, _ in files))
        for bad in ("/ui/nope.js", "/ui/vendor/nope.js", "/ui/..%2Fopenapi.json", "/ui/vendor/..",
                    "/ui/index.html/x", "/ui/vendor/vendor/topojson-client.min.js"):
            status, h, _ = request(port, "GET", bad)
            check("%s is 404" % bad, status == 404 and h["content-type"] == "application/problem+json",
                  str(status))
        status, h, _ = request(port, "POST", "/")
        check("POST / is 405 with Allow", status == 405 and "GET" in h.get("allow", ""), str(status))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d passed, %d failed" % (PASSED, FAILED))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
