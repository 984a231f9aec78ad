#!/usr/bin/env python3
"""Makes docs/dashboard.png: the admin dashboard after a minute of real traffic.

The test (tests/dashboard.rs) checks the dashboard's numbers under Chromium's
virtual time, which cannot show a rate chart (virtual seconds are not real
ones). This script runs in real time instead:

  1. `corelink certs` makes a CA and serviceB's certificate;
  2. one corelink runs two routers as in the seed scenario: `outgoing`
     (plaintext on :14141, TLS to :14143 checking the name serviceB) and
     `incoming` (terminates TLS, forwards to a local backend);
  3. four client threads send requests at a rate that rises and falls, a few
     of them to a path the backend fails (500);
  4. headless Chromium shows http://127.0.0.1:19990/ and, after the load,
     a screenshot is taken over the DevTools protocol.

Needs: a built corelink (cargo build --release), chromium, and Python's
websocket-client (pip install websocket-client). Usage:

    scripts/dashboard-screenshot.py [--seconds 60] [--out docs/dashboard.png]
"""
import argparse
import base64
import http.client
import http.server
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websocket  # websocket-client

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_PORT, IN_PORT, BACKEND_PORT, ADMIN_PORT, DEVTOOLS_PORT = 14141, 14143, 18080, 19990, 19222


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # One write per response and no Nagle: otherwise the body waits for the
    # ACK of the head (40 ms of delayed ACK on Linux).
    disable_nagle_algorithm = True

    def do_GET(self):
        time.sleep(random.uniform(0.0005, 0.004))
        status = 500 if self.path.startswith("/fail") else 200
        reason = "OK" if status == 200 else "Internal Server Error"
        self.wfile.write(f"HTTP/1.1 {status} {reason}\r\nContent-Length: 3\r\n\r\nok\n".encode())

    def log_message(self, *args):
        pass


def load(stop, started, seconds):
    conn = http.client.HTTPConnection("127.0.0.1", OUT_PORT, timeout=5)
    while not stop.is_set():
        t = time.time() - started
        # 20 to 220 requests/s per thread, one slow wave over the run.
        rate = 120 + 100 * math.sin(2 * math.pi * t / seconds)
        path = "/fail" if random.random() < 0.01 else "/"
        try:
            conn.request("GET", path, headers={"Host": "serviceB"})
            conn.getresponse().read()
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", OUT_PORT, timeout=5)
        time.sleep(1 / rate)


def wait_for(url, limit=15):
    deadline = time.time() + limit
    while time.time() < deadline:
        try:
            return urllib.request.urlopen(url, timeout=1).read()
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{url} did not answer within {limit} s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--out", default=os.path.join(ROOT, "docs", "dashboard.png"))
    parser.add_argument("--corelink", default=os.path.join(ROOT, "target", "release", "corelink"))
    parser.add_argument("--chromium", default="chromium")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="corelink-dashboard-")
    subprocess.run([args.corelink, "certs", "ca", "--out", f"{work}/ca"], check=True, capture_output=True)
    subprocess.run([args.corelink, "certs", "issue", "--ca", f"{work}/ca", "--name", "serviceB", "--out", f"{work}/b"],
                   check=True, capture_output=True)
    config = f"""admin: {{ip: 127.0.0.1, port: {ADMIN_PORT}}}
routers:
- protocol: http
  label: outgoing
  dtab: /svc/serviceB => /$/inet/127.0.0.1/{IN_PORT};
  servers: [{{ip: 127.0.0.1, port: {OUT_PORT}}}]
  client:
    tls: {{commonName: serviceB, trustCerts: [{work}/ca/cacertificate.pem]}}
- protocol: http
  label: incoming
  dtab: /svc => /$/inet/127.0.0.1/{BACKEND_PORT};
  servers:
  - ip: 127.0.0.1
    port: {IN_PORT}
    tls: {{certPath: {work}/b/certificate.pem, keyPath: {work}/b/key.pem}}
corelink: {{workers: 1, shutdownDelayMs: 0}}
"""
    with open(f"{work}/corelink.yaml", "w") as f:
        f.write(config)

    backend = http.server.ThreadingHTTPServer(("127.0.0.1", BACKEND_PORT), Backend)
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    proxy = subprocess.Popen([args.corelink, "run", "--config", f"{work}/corelink.yaml"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    browser = None
    try:
        wait_for(f"http://127.0.0.1:{ADMIN_PORT}/admin/ready")
        browser = subprocess.Popen(
            [args.chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
             f"--user-data-dir={work}/profile", f"--remote-debugging-port={DEVTOOLS_PORT}",
             "--window-size=1280,860", f"http://127.0.0.1:{ADMIN_PORT}/?interval=1000"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        targets = json.loads(wait_for(f"http://127.0.0.1:{DEVTOOLS_PORT}/json"))
        page = next(t for t in targets if t["type"] == "page")

        stop, started = threading.Event(), time.time()
        clients = [threading.Thread(target=load, args=(stop, started, args.seconds)) for _ in range(4)]
        for c in clients:
            c.start()
        time.sleep(args.seconds)
        stop.set()
        for c in clients:
            c.join()
        time.sleep(3)  # two refreshes after the load: the rate falls to 0

        ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=10)
        ws.send(json.dumps({"id": 1, "method": "Page.captureScreenshot", "params": {"format": "png"}}))
        while True:
            reply = json.loads(ws.recv())
            if reply.get("id") == 1:
                break
        ws.close()
        with open(args.out, "wb") as f:
            f.write(base64.b64decode(reply["result"]["data"]))
        print(f"wrote {args.out}")
    finally:
        if browser:
            browser.kill()
        proxy.terminate()
        proxy.wait(timeout=15)
        backend.shutdown()


if __name__ == "__main__":
    main()
