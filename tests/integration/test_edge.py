#!/usr/bin/env python3
"""Integration tests of the edge: HTTPS, API tokens, and the limits that keep one client from
starving the others. The real binary runs on an ephemeral loopback port.

- TLS: a self-signed certificate made here with the openssl CLI; HTTPS works with it as the CA,
  plain HTTP to the TLS port gets no HTTP answer, SIGHUP with a new pair makes new connections see
  the new certificate while an open connection keeps working, a bad pair on SIGHUP keeps the old
  one, and bad or missing files stop the program at start naming the setting.
- Tokens: 401 + WWW-Authenticate: Bearer without or with an unknown token (also one differing
  only in its last byte, and a prefix of a real token), 403 for a read token on a write route,
  read and write scopes, open health routes, the token file reloaded on SIGHUP, tokens never in
  the log (their names are), bad lists refused at start without being echoed.
- Limits: the connection limit (with the pool the next connection waits in the listen queue
  until one closes; with a thread per connection it is closed at once; the open ones keep
  working either way), the per-IP limit (extra connections closed at once), slowloris connections (headers
  or a body trickled a byte at a time) cut at the request deadline while normal requests go on,
  the thread count with many idle connections (pool vs a thread per connection), body caps.

Environment: HCPIPE_BIN (default build/hcpipe). Prints "N passed, N failed" last; exits 77 when
the openssl CLI is missing.
"""
import http.client
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BIN = os.environ.get("HCPIPE_BIN", os.path.join(ROOT, "build", "hcpipe"))
SLOW = 3 if os.environ.get("SANITIZER") else 1
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                "fixtures"))
from hcserver import free_port, wait_ready  # noqa: E402
PROBLEM = "https://hcpipe.dev/problems/"
READ_TOKEN = "r3ad-T0ken-0123456789abcdef"
WRITE_TOKEN = "wr1te-T0ken-0123456789abcdef:with:colons"
FILE_TOKEN = "f1le-T0ken-0123456789abcdef"
WEBHOOK_KEY = "webhook-key-0123456789abcdef"
TOKENS = "reader:read:%s, writer:write:%s" % (READ_TOKEN, WRITE_TOKEN)


def make_cert(directory, name, cn):
    """A self-signed EC certificate for 127.0.0.1; returns (cert path, key path)."""
    cert = os.path.join(directory, name + ".crt")
    key = os.path.join(directory, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:P-256", "-nodes", "-keyout", key, "-out", cert, "-days", "2",
                    "-subj", "/CN=" + cn, "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return cert, key


def tls_context(cafile):
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = True
    return ctx


class Server:
    """One hcpipe serve process; `ca` set means HTTPS with that CA file."""

    def __init__(self, args=(), env=None, ca=None, wait=True):
        self.data_dir = tempfile.mkdtemp(prefix="hcpipe-edge-")
        self.port = free_port()
        self.ca = ca
        self.log_path = os.path.join(self.data_dir, "server.log")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
        full_env["HCPIPE_WEBHOOK_API_KEY"] = WEBHOOK_KEY  # POST /events needs a credential
        full_env.update(env or {})
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:%d" % self.port, "--data-dir",
             os.path.join(self.data_dir, "var")] + list(args),
            stdout=self.log, stderr=self.log, env=full_env)
        if wait:
            self.wait_ready()

    def wait_ready(self):
        wait_ready(self, 30 * SLOW, (OSError, ssl.SSLError, http.client.HTTPException))

    def read_log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def wait_log(self, text, after=0, timeout=10):
        deadline = time.time() + timeout * SLOW
        while time.time() < deadline:
            if text in self.read_log()[after:]:
                return
            time.sleep(0.05)
        raise AssertionError("no %r in the log:\n%s" % (text, self.read_log()[-3000:]))

    def connection(self, ca=None, timeout=None):
        ca = ca or self.ca
        if ca:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout or 10 * SLOW,
                                               context=tls_context(ca))
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout or 10 * SLOW)

    def request(self, method, path, body=None, headers=None, token=None, ca=None):
        conn = self.connection(ca)
        try:
            hdrs = dict(headers or {})
            if token:
                hdrs["Authorization"] = "Bearer " + token
            if isinstance(body, dict):
                body = json.dumps(body).encode()
                hdrs["Content-Type"] = "application/json"
            conn.request(method, path, body=body, headers=hdrs)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def threads(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("Threads:"):
                    return int(line.split()[1])
        return -1

    def settled_threads(self):
        """The thread count once it stops changing (threads that start lazily, after /readyz
        answered, have started): two equal readings 0.3 s apart."""
        last = self.threads()
        for _ in range(50):
            time.sleep(0.3 * SLOW)
            now = self.threads()
            if now == last:
                return now
            last = now
        return last

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("server did not stop on SIGTERM")
        self.log.close()
        code = self.proc.returncode
        shutil.rmtree(self.data_dir, ignore_errors=True)
        return code


def run_start_failure(args, env=None):
    """Runs serve expecting it to refuse to start; returns (exit code, stderr)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
    full_env["HCPIPE_WEBHOOK_API_KEY"] = WEBHOOK_KEY
    full_env.update(env or {})
    d = tempfile.mkdtemp(prefix="hcpipe-edge-")
    try:
        p = subprocess.run([BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir", d] + list(args),
                           env=full_env, capture_output=True, timeout=30 * SLOW)
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return p.returncode, p.stderr.decode("utf-8", "replace")


def assert_problem(status, hdrs, body, want_status, slug):
    assert status == want_status, (status, body)
    assert hdrs.get("content-type") == "application/problem+json", hdrs
    doc = json.loads(body)
    assert doc["type"] == PROBLEM + slug and doc["status"] == want_status, doc
    return doc


def peer_cert_der(port, ca):
    ctx = tls_context(ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10 * SLOW) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            return s.getpeercert(binary_form=True)


def pem_to_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


# ---- TLS -------------------------------------------------------------------------------------

def test_tls_https_reload_and_plain_http_refused():
    tmp = tempfile.mkdtemp(prefix="hcpipe-edge-certs-")
    try:
        cert_a, key_a = make_cert(tmp, "a", "hcpipe-a")
        cert_b, key_b = make_cert(tmp, "b", "hcpipe-b")
        live_cert, live_key = os.path.join(tmp, "live.crt"), os.path.join(tmp, "live.key")
        shutil.copy(cert_a, live_cert)
        shutil.copy(key_a, live_key)
        s = Server(["--tls-cert", live_cert], env={"HCPIPE_TLS_KEY": live_key}, ca=cert_a)
        try:
            status, _, body = s.request("GET", "/healthz")
            assert status == 200 and json.loads(body)["status"] == "ok", (status, body)
            assert peer_cert_der(s.port, cert_a) == pem_to_der(cert_a)
            # Plain HTTP to the TLS port gets no HTTP answer.
            try:
                plain = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5 * SLOW)
                plain.request("GET", "/healthz")
                resp = plain.getresponse()
                raise AssertionError("plain HTTP answered %s" % resp.status)
            except (http.client.HTTPException, ConnectionError, socket.timeout):
                pass
            # The service survives the plain request.
            assert s.request("GET", "/healthz")[0] == 200
            # A keep-alive HTTPS connection opened before the reload.
            old = s.connection()
            old.request("GET", "/healthz")
            assert old.getresponse().read()
            # SIGHUP with the new pair: new connections see certificate B.
            mark = len(s.read_log())
            shutil.copy(cert_b, live_cert)
            shutil.copy(key_b, live_key)
            s.proc.send_signal(signal.SIGHUP)
            s.wait_log('"TLS certificate reloaded"', mark)
            assert peer_cert_der(s.port, cert_b) == pem_to_der(cert_b)
            status, _, _ = s.request("GET", "/readyz", ca=cert_b)
            assert status == 200, status
            try:
                s.request("GET", "/healthz", ca=cert_a)
                raise AssertionError("the old certificate is still served")
            except ssl.SSLCertVerificationError:
                pass
            # The connection opened before the reload still works.
            old.request("GET", "/healthz")
            resp = old.getresponse()
            assert resp.status == 200 and resp.read()
            old.close()
            # A bad pair on SIGHUP (key A with certificate B) is refused; B stays.
            mark = len(s.read_log())
            shutil.copy(key_a, live_key)
            s.proc.send_signal(signal.SIGHUP)
            s.wait_log('"TLS reload failed; the old certificate stays"', mark)
            assert peer_cert_der(s.port, cert_b) == pem_to_der(cert_b)
            assert s.request("GET", "/healthz", ca=cert_b)[0] == 200
        finally:
            assert s.stop() == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def test_tls_bad_settings_stop_at_start():
    tmp = tempfile.mkdtemp(prefix="hcpipe-edge-certs-")
    try:
        cert_a, key_a = make_cert(tmp, "a", "hcpipe-a")
        _, key_b = make_cert(tmp, "b", "hcpipe-b")
        junk = os.path.join(tmp, "junk.pem")
        with open(junk, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
        code, err = run_start_failure(["--tls-cert", cert_a])
        assert code == 2 and "--tls-key" in err, (code, err)
        code, err = run_start_failure([], env={"HCPIPE_TLS_KEY": key_a})
        assert code == 2 and "--tls-cert" in err, (code, err)
        code, err = run_start_failure(["--tls-key", key_a],
                                      env={"HCPIPE_TLS_CERT": os.path.join(tmp, "missing.crt")})
        assert code == 2 and "HCPIPE_TLS_CERT" in err and "missing.crt" in err, (code, err)
        code, err = run_start_failure(["--tls-cert", junk, "--tls-key", key_a])
        assert code == 2 and "--tls-cert" in err, (code, err)
        code, err = run_start_failure(["--tls-cert", cert_a, "--tls-key", cert_a])
        assert code == 2 and "--tls-key" in err, (code, err)
        code, err = run_start_failure(["--tls-cert", cert_a, "--tls-key", key_b])
        assert code == 2 and "does not go with" in err and "--tls-key" in err, (code, err)
        with open(key_b) as f:
            key_text = f.read()
        assert key_text.splitlines()[1] not in err, "a key's bytes were echoed"
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- tokens ----------------------------------------------------------------------------------

def test_tokens_scopes_401_403_and_open_health():
    tmp = tempfile.mkdtemp(prefix="hcpipe-edge-tok-")
    tfile = os.path.join(tmp, "tokens")
    with open(tfile, "w") as f:
        f.write("# operators\n\n")
    s = Server(["--api-tokens-file", tfile], env={"HCPIPE_API_TOKENS": TOKENS})
    try:
        for path in ("/healthz", "/readyz", "/openapi.json"):
            assert s.request("GET", path)[0] == 200, path
        # No token, wrong scheme, unknown tokens: 401 with a Bearer challenge.
        st, h, b = s.request("GET", "/jobs")
        assert_problem(st, h, b, 401, "unauthorized")
        assert h["www-authenticate"].startswith("Bearer"), h
        st, h, b = s.request("GET", "/jobs", headers={"Authorization": "Basic " + READ_TOKEN})
        assert_problem(st, h, b, 401, "unauthorized")
        for bad in (READ_TOKEN[:-1] + ("x" if READ_TOKEN[-1] != "x" else "y"),  # last byte differs
                    READ_TOKEN[:-1],                                             # a prefix
                    READ_TOKEN + "0",                                            # longer
                    "x" * len(READ_TOKEN)):                                       # same length
            st, h, b = s.request("GET", "/jobs", token=bad)
            assert_problem(st, h, b, 401, "unauthorized")
            assert 'error="invalid_token"' in h["www-authenticate"], h
        # Read scope reads, and gets 403 on every write route.
        st, _, b = s.request("GET", "/jobs", token=READ_TOKEN)
        assert st == 200 and "jobs" in json.loads(b), (st, b)
        st, h, b = s.request("POST", "/jobs", {"query": "facility_metrics",
                                               "source": "s3://sample/x.json"}, token=READ_TOKEN)
        assert_problem(st, h, b, 403, "forbidden")
        assert "insufficient_scope" in h["www-authenticate"], h
        # Write scope writes and reads.
        st, _, b = s.request("POST", "/jobs", {"query": "facility_metrics",
                                               "source": "s3://sample/x.json"},
                             token=WRITE_TOKEN)
        assert st == 201, (st, b)
        job = json.loads(b)["id"]
        st, h, b = s.request("POST", "/jobs/%s/cancel" % job, token=READ_TOKEN)
        assert_problem(st, h, b, 403, "forbidden")
        st, h, b = s.request("POST", "/jobs/%s/cancel" % job)
        assert_problem(st, h, b, 401, "unauthorized")
        assert s.request("GET", "/jobs/" + job, token=WRITE_TOKEN)[0] == 200
        assert s.request("GET", "/jobs/" + job, token=READ_TOKEN)[0] == 200
        # Unauthenticated requests never reach a handler, even for unknown jobs.
        assert s.request("GET", "/jobs/nope")[0] == 401
        assert s.request("GET", "/jobs/nope", token=READ_TOKEN)[0] == 404
        # POST /events keeps its own credential: the webhook key, not a bearer token.
        test_event = {"Service": "Amazon S3", "Event": "s3:TestEvent",
                      "Time": "2024-06-03T09:15:42.000Z", "Bucket": "sample",
                      "RequestId": "R1", "HostId": "H1"}
        st, _, b = s.request("POST", "/events", test_event, headers={"x-api-key": WEBHOOK_KEY})
        assert st == 200, (st, b)
        st, h, b = s.request("POST", "/events", test_event, token=WRITE_TOKEN)
        assert_problem(st, h, b, 401, "unauthorized")
        # What an event became is read with a token.
        assert s.request("GET", "/events/nope")[0] == 401
        assert s.request("GET", "/events/nope", token=READ_TOKEN)[0] == 404
        # The token file is read again on SIGHUP.
        assert s.request("GET", "/jobs", token=FILE_TOKEN)[0] == 401
        with open(tfile, "a") as f:
            f.write("ci-bot:read:%s\n" % FILE_TOKEN)
        mark = len(s.read_log())
        s.proc.send_signal(signal.SIGHUP)
        s.wait_log('"API tokens reloaded","tokens":"3"', mark)
        assert s.request("GET", "/jobs", token=FILE_TOKEN)[0] == 200
        assert s.request("GET", "/jobs", token=READ_TOKEN)[0] == 200
        # A broken file on SIGHUP keeps the old list.
        with open(tfile, "a") as f:
            f.write("broken line\n")
        mark = len(s.read_log())
        s.proc.send_signal(signal.SIGHUP)
        s.wait_log("API token reload failed", mark)
        assert s.request("GET", "/jobs", token=FILE_TOKEN)[0] == 200
        log = s.read_log()
        for secret in (READ_TOKEN, WRITE_TOKEN, FILE_TOKEN, WEBHOOK_KEY):
            assert secret not in log, "a token was logged"
        assert '"token":"reader"' in log and '"token":"writer"' in log and '"token":"ci-bot"' in log
    finally:
        assert s.stop() == 0
        shutil.rmtree(tmp, ignore_errors=True)


def test_tokens_open_api_warns():
    s = Server()
    try:
        assert s.request("GET", "/jobs")[0] == 200
        assert "no API tokens configured" in s.read_log()
    finally:
        assert s.stop() == 0


def test_tokens_bad_lists_stop_at_start():
    secret = "s3cr3t-s3cr3t-s3cr3t-s3cr3t"
    for spec, want in (("reader:admin:" + secret, "scope"),
                       ("reader:read:short", "16..512"),
                       ("reader:" + secret, "name:scope:token"),
                       ("a:read:%s,a:write:%sX" % (secret, secret), "used twice"),
                       ("a:read:%s,b:write:%s" % (secret, secret), "same token")):
        code, err = run_start_failure([], env={"HCPIPE_API_TOKENS": spec})
        assert code == 2 and "HCPIPE_API_TOKENS" in err and want in err, (spec, code, err)
        assert secret not in err and "short" not in err, err
        code, err = run_start_failure(["--api-tokens", spec])
        assert code == 2 and "--api-tokens" in err and secret not in err, (code, err)
    code, err = run_start_failure(["--api-tokens-file", "/nonexistent/tokens"])
    assert code == 2 and "--api-tokens-file" in err and "/nonexistent/tokens" in err, err


def test_tokens_over_tls():
    tmp = tempfile.mkdtemp(prefix="hcpipe-edge-certs-")
    try:
        cert, key = make_cert(tmp, "a", "hcpipe-a")
        s = Server(["--tls-cert", cert, "--tls-key", key, "--api-tokens", TOKENS], ca=cert)
        try:
            assert s.request("GET", "/jobs")[0] == 401
            assert s.request("GET", "/jobs", token=READ_TOKEN)[0] == 200
        finally:
            assert s.stop() == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- limits ----------------------------------------------------------------------------------

def open_keepalive(s):
    c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10 * SLOW)
    c.request("GET", "/healthz")
    r = c.getresponse()
    assert r.status == 200 and r.read()
    return c


def read_all(sock):
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except ConnectionError:
        pass
    return data


def connection_limit(threads_arg):
    """Returns "refused" or "queued": what happened to the connection over the limit."""
    s = Server(["--max-connections", "4", "--max-connections-per-ip", "0", "--http-threads",
                threads_arg])
    try:
        time.sleep(0.3)  # the readiness probe's connection is gone
        held = [open_keepalive(s) for _ in range(4)]
        extra = socket.create_connection(("127.0.0.1", s.port), timeout=10 * SLOW)
        extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        extra.settimeout(1.0)
        try:
            data = read_all(extra)
            assert data == b"", "a 5th connection was served: %r" % data
            outcome = "refused"
        except socket.timeout:
            outcome = "queued"
        for c in held:  # the open ones keep working
            c.request("GET", "/healthz")
            r = c.getresponse()
            assert r.status == 200 and r.read()
        held.pop().close()
        if outcome == "queued":  # served once a slot is free
            extra.settimeout(10 * SLOW)
            data = read_all(extra)
            assert data.startswith(b"HTTP/1.1 200"), data
        else:
            time.sleep(0.3)
            assert s.request("GET", "/healthz")[0] == 200
        extra.close()
        for c in held:
            c.close()
        return outcome
    finally:
        assert s.stop() == 0


def test_connection_limit_pool():
    outcome = connection_limit("4")
    assert outcome == "queued", outcome  # pool threads stop accepting at their share


def test_connection_limit_thread_per_connection():
    outcome = connection_limit("0")
    assert outcome == "refused", outcome  # the listening thread accepts and closes it


def test_per_ip_limit_closes_extra_connections():
    s = Server(["--max-connections-per-ip", "2"])
    try:
        time.sleep(0.3)  # the readiness probe's connection is gone
        held = [open_keepalive(s) for _ in range(2)]
        extra = socket.create_connection(("127.0.0.1", s.port), timeout=10 * SLOW)
        try:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            assert extra.recv(100) == b"", "a 3rd connection from one IP was served"
        except ConnectionError:
            pass
        extra.close()
        for c in held:
            c.request("GET", "/healthz")
            r = c.getresponse()
            assert r.status == 200 and r.read()
        held.pop().close()
        time.sleep(0.2)
        assert s.request("GET", "/healthz")[0] == 200
        held[0].close()
    finally:
        assert s.stop() == 0


def slow_sender(port, head, stop, state):
    """Sends `head` one byte every 0.3 s until the server cuts the connection."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        for b in head:
            if stop.is_set():
                break
            sock.sendall(bytes([b]))
            time.sleep(0.3)
        sock.settimeout(30)
        state["closed_at"] = time.time() if sock.recv(100) in (b"",) else None
    except (ConnectionError, OSError):
        state["closed_at"] = time.time()


def slowloris(threads_arg):
    s = Server(["--request-timeout", "2", "--connection-timeout", "60", "--max-connections", "40",
                "--max-connections-per-ip", "0", "--http-threads", threads_arg])
    try:
        stop = threading.Event()
        states = []
        workers = []
        start = time.time()
        heads = [b"GET /healthz HTTP/1.1\r\nHost: slow\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n",
                 b"POST /jobs HTTP/1.1\r\nHost: slow\r\nContent-Type: application/json\r\n"
                 b"Content-Length: 500\r\n\r\n" + b" " * 500]
        for i in range(30):
            st = {}
            states.append(st)
            head = heads[i % 2] if i % 3 else heads[1][:80]  # some finish the headers, then trickle
            t = threading.Thread(target=slow_sender, args=(s.port, head, stop, st), daemon=True)
            t.start()
            workers.append(t)
        time.sleep(0.5)
        # Normal requests go on while the slow ones hold their connections.
        for _ in range(10):
            t0 = time.time()
            assert s.request("GET", "/healthz")[0] == 200
            assert time.time() - t0 < 1.0 * SLOW, "a normal request waited behind slow ones"
        for t in workers:
            t.join(15 * SLOW)
        stop.set()
        cut = [st.get("closed_at") for st in states]
        assert all(cut), "some slow connections were never cut: %r" % cut
        assert max(cut) - start < 2 + 3 * SLOW, "cut after %.1f s" % (max(cut) - start)
        assert min(cut) - start > 1.5, "cut too early (%.1f s)" % (min(cut) - start)
        assert s.request("GET", "/healthz")[0] == 200
        assert "request not received in time" in s.read_log()
    finally:
        assert s.stop() == 0


def test_slowloris_cut_with_pool():
    slowloris("4")


def test_slowloris_cut_with_thread_per_connection():
    slowloris("0")


def test_tls_silent_clients_cut():
    """Connections to the TLS port that never finish a handshake are cut at the deadline."""
    tmp = tempfile.mkdtemp(prefix="hcpipe-edge-certs-")
    try:
        cert, key = make_cert(tmp, "a", "hcpipe-a")
        s = Server(["--tls-cert", cert, "--tls-key", key, "--request-timeout", "2",
                    "--max-connections-per-ip", "0"], ca=cert)
        try:
            start = time.time()
            silent = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(8)]
            silent[0].sendall(b"\x16\x03\x01\x00")  # the start of a ClientHello, then nothing
            for _ in range(5):
                assert s.request("GET", "/healthz")[0] == 200
            for x in silent:
                x.settimeout(10 * SLOW)
                try:
                    assert x.recv(100) == b""
                except ConnectionError:
                    pass
                x.close()
            took = time.time() - start
            assert 1.5 < took < 2 + 3 * SLOW, "cut after %.1f s" % took
        finally:
            assert s.stop() == 0
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def idle_threads(threads_arg, n=40):
    s = Server(["--http-threads", threads_arg, "--max-connections-per-ip", "0"])
    try:
        before = s.settled_threads()
        socks = [socket.create_connection(("127.0.0.1", s.port)) for _ in range(n)]
        time.sleep(0.5 * SLOW)
        during = s.threads()
        for x in socks:
            x.close()
        return before, during
    finally:
        assert s.stop() == 0


def test_idle_connections_cost_no_thread_in_the_pool():
    before, during = idle_threads("4")
    assert during - before <= 2, "pool: %d threads before, %d with 40 idle connections" % (
        before, during)
    before0, during0 = idle_threads("0")
    assert during0 - before0 >= 35, "thread per connection: %d -> %d" % (before0, during0)
    print("  threads with 40 idle connections: pool %d -> %d; per-connection %d -> %d"
          % (before, during, before0, during0))


def test_body_caps():
    s = Server(["--max-body", "2048", "--api-tokens", TOKENS])
    try:
        big = {"query": "facility_metrics", "source": "s3://sample/x.json", "pad": "x" * 4000}
        st, h, b = s.request("POST", "/jobs", big, token=WRITE_TOKEN)
        assert_problem(st, h, b, 413, "payload-too-large")
        # The per-route cap of cancel (4096) is smaller than a default cap would be.
        st, h, b = s.request("POST", "/jobs/abc/cancel", body=b"x" * 5000, token=WRITE_TOKEN)
        assert_problem(st, h, b, 413, "payload-too-large")
        # Without a token the answer is 401 and the body is not buffered.
        st, h, b = s.request("POST", "/jobs", big)
        assert_problem(st, h, b, 401, "unauthorized")
        # A chunked body over the cap.
        c = http.client.HTTPConnection("127.0.0.1", s.port, timeout=10 * SLOW)
        c.request("POST", "/jobs", body=iter([b"{" + b" " * 1500, b" " * 1500 + b"}"]),
                  headers={"Authorization": "Bearer " + WRITE_TOKEN,
                           "Content-Type": "application/json"}, encode_chunked=True)
        r = c.getresponse()
        assert r.status == 413, r.status
        r.read()
        c.close()
        assert s.request("GET", "/healthz")[0] == 200
    finally:
        assert s.stop() == 0


TESTS = [
    test_tls_https_reload_and_plain_http_refused,
    test_tls_bad_settings_stop_at_start,
    test_tokens_scopes_401_403_and_open_health,
    test_tokens_open_api_warns,
    test_tokens_bad_lists_stop_at_start,
    test_tokens_over_tls,
    test_tls_silent_clients_cut,
    test_connection_limit_pool,
    test_connection_limit_thread_per_connection,
    test_per_ip_limit_closes_extra_connections,
    test_slowloris_cut_with_pool,
    test_slowloris_cut_with_thread_per_connection,
    test_idle_connections_cost_no_thread_in_the_pool,
    test_body_caps,
]


def main():
    if not shutil.which("openssl"):
        print("openssl CLI missing: skipping")
        return 77
    only = sys.argv[1:]
    results = []
    for t in TESTS:
        if only and t.__name__ not in only:
            continue
        try:
            t()
            results.append(True)
            print("PASS %s" % t.__name__)
        except Exception:  # noqa: BLE001 - report every failure and go on
            results.append(False)
            print("FAIL %s" % t.__name__)
            traceback.print_exc()
    passed = sum(results)
    print("%d passed, %d failed" % (passed, len(results) - passed))
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
