#!/usr/bin/env python3
"""docker/healthcheck.sh, the image's HEALTHCHECK, against loopback servers.

A small HTTP server answers GET /readyz with a chosen status; the script must exit 0 on 200 and
1 on 503, on a refused connection and on a wrong path, reach the port of HCPIPE_LISTEN (IPv4
wildcard, an explicit address, an IPv6 wildcard when the machine has ::1), and use HTTPS (without
verifying the certificate) when HCPIPE_TLS_CERT is set. Then against the real service:
$HCPIPE_BIN serve on a free loopback port is healthy, and unhealthy once stopped.
Skips (77) without curl or openssl.

Prints "N passed, N failed".
"""
import http.server
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(ROOT, "docker", "healthcheck.sh")

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


class Handler(http.server.BaseHTTPRequestHandler):
    status = 200
    paths = []

    def do_GET(self):
        Handler.paths.append(self.path)
        code = Handler.status if self.path == "/readyz" else 404
        self.send_response(code)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


def serve(family=socket.AF_INET, host="127.0.0.1", tls=None):
    class Server(http.server.ThreadingHTTPServer):
        address_family = family
    srv = Server((host, 0), Handler)
    if tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*tls)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run(env):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HCPIPE_")}
    e.update(env)
    p = subprocess.run(["sh", SCRIPT], env=e, capture_output=True, text=True, timeout=30)
    return p.returncode, p.stderr


def main():
    if not shutil.which("curl") or not shutil.which("openssl"):
        print("curl or openssl missing: skipping")
        return 77
    srv = serve()
    port = srv.server_address[1]
    listen = "0.0.0.0:%d" % port
    Handler.status = 200
    rc, err = run({"HCPIPE_LISTEN": listen})
    report("ready (200) -> exit 0", rc == 0 and Handler.paths[-1:] == ["/readyz"],
           "%d %s %s" % (rc, err, Handler.paths))
    Handler.status = 503
    rc, err = run({"HCPIPE_LISTEN": listen})
    report("not ready (503) -> exit 1", rc == 1, "%d %s" % (rc, err))
    Handler.status = 200
    rc, err = run({"HCPIPE_LISTEN": "127.0.0.1:%d" % port})
    report("explicit address", rc == 0, "%d %s" % (rc, err))
    srv.shutdown()
    srv.server_close()
    rc, err = run({"HCPIPE_LISTEN": listen})
    report("connection refused -> exit 1", rc == 1, "%d %s" % (rc, err))

    try:
        srv6 = serve(socket.AF_INET6, "::1")
    except OSError:
        print("no IPv6 loopback: IPv6 case not run")
    else:
        rc, err = run({"HCPIPE_LISTEN": "[::]:%d" % srv6.server_address[1]})
        report("IPv6 wildcard reaches [::1]", rc == 0, "%d %s" % (rc, err))
        srv6.shutdown()
        srv6.server_close()

    with tempfile.TemporaryDirectory() as d:
        cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        tsrv = serve(tls=(cert, key))
        tport = tsrv.server_address[1]
        rc, err = run({"HCPIPE_LISTEN": "0.0.0.0:%d" % tport, "HCPIPE_TLS_CERT": cert,
                       "HCPIPE_TLS_KEY": key})
        report("HTTPS with a self-signed certificate when HCPIPE_TLS_CERT is set", rc == 0,
               "%d %s" % (rc, err))
        rc, err = run({"HCPIPE_LISTEN": "0.0.0.0:%d" % tport})
        report("plain HTTP to a TLS port fails", rc == 1, "%d %s" % (rc, err))
        tsrv.shutdown()
        tsrv.server_close()
    binary = os.environ.get("HCPIPE_BIN")
    if binary and os.path.exists(binary):
        real_service(binary)
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


def real_service(binary):
    import time
    with tempfile.TemporaryDirectory() as d:
        for _ in range(3):  # the free port may be taken between lookup and bind
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            env = {k: v for k, v in os.environ.items() if not k.startswith(("HCPIPE_", "AWS_"))}
            env.update({"HCPIPE_LISTEN": "127.0.0.1:%d" % port, "HCPIPE_DATA_DIR": d,
                        "HCPIPE_WEBHOOK_API_KEY": "healthcheck-test-key"})
            log = open(os.path.join(d, "log"), "wb")
            proc = subprocess.Popen([binary, "serve"], env=env, stdout=log, stderr=log)
            rc = 1
            deadline = time.time() + 20
            while time.time() < deadline and proc.poll() is None:
                rc, err = run({"HCPIPE_LISTEN": "0.0.0.0:%d" % port})
                if rc == 0:
                    break
                time.sleep(0.2)
            if proc.poll() is None:
                break
            log.close()
        report("hcpipe serve: healthy", rc == 0 and proc.poll() is None,
               open(os.path.join(d, "log"), errors="replace").read()[-2000:])
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        rc, err = run({"HCPIPE_LISTEN": "0.0.0.0:%d" % port})
        report("hcpipe serve stopped: unhealthy", rc == 1, "%d %s" % (rc, err))


if __name__ == "__main__":
    sys.exit(main())
