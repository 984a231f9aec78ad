#!/usr/bin/env python3
"""Where corelink's RSS per idle keep-alive connection goes, by mapping.

Starts nginx (backend) and one corelink worker, makes one exchange, then
opens N client connections in bursts of 50 whose requests are in flight
together (as perf/compare's scenario 7 does), waits 5 s, and prints the RSS
growth per connection and the mappings that grew, with their transparent
huge pages (smaps `AnonHugePages`). Used to find that mimalloc's arena was
held in 2 MiB huge pages (docs/io-backends.md, "Huge pages").

  perf/idle-mappings.py BINARY epoll|uring N [tls] [VAR=VALUE ...]

VAR=VALUE pairs go into corelink's environment (e.g. MIMALLOC_* options).
LOAD=SECONDS in the script's own environment first runs that long under
load (corelink-load -c 64, small and 64 KiB responses alternating each
second), as perf/compare's earlier scenarios do before its scenario 7.
Listens on 127.0.0.1:19500 (nginx) and :19501 (corelink). Needs nginx.
"""
import os
import resource
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BODY = "hello from the backend"
BACKEND, PROXY = 19500, 19501


def smaps(pid):
    """{(range, name): (Rss KiB, AnonHugePages KiB)}"""
    out, cur = {}, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            parts = line.split()
            if not parts[0].endswith(":"):
                cur = (parts[0], parts[5] if len(parts) > 5 else "[anon]")
                out[cur] = [0, 0]
            elif parts[0] == "Rss:":
                out[cur][0] = int(parts[1])
            elif parts[0] == "AnonHugePages:":
                out[cur][1] = int(parts[1])
    return out


def rss(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    if len(sys.argv) < 4:
        sys.exit(__doc__)
    binary, io, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rest = sys.argv[4:]
    tls = bool(rest) and rest[0] == "tls"
    extra = dict(a.split("=", 1) for a in rest[1 if tls else 0:])
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = tempfile.mkdtemp(prefix="corelink-idle-mappings.")
    os.makedirs(f"{work}/nginx")
    with open(f"{work}/nginx/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1; worker_rlimit_nofile 30000; pid {work}/nginx/pid;
events {{ worker_connections 25000; }}
http {{ access_log off; client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{BACKEND}; keepalive_requests 1000000; location / {{ return 200 "{BODY}"; }}
    location /64k {{ alias {work}/64k; }} }} }}
""")
    with open(f"{work}/64k", "w") as f:
        f.write("x" * 65536)
    os.chmod(work, 0o755)
    os.chmod(f"{work}/64k", 0o644)
    nginx = subprocess.Popen(["nginx", "-p", f"{work}/nginx", "-c", f"{work}/nginx/nginx.conf",
                              "-e", f"{work}/nginx/error.log", "-g", "daemon off;"])
    server_tls, ctx = "", None
    if tls:
        subprocess.run([binary, "certs", "ca", "--out", f"{work}/ca"], check=True, capture_output=True)
        subprocess.run([binary, "certs", "issue", "--ca", f"{work}/ca", "--name", "serviceB", "--out", f"{work}/svc"],
                       check=True, capture_output=True)
        server_tls = f"\n    tls: {{certPath: {work}/svc/certificate.pem, keyPath: {work}/svc/key.pem}}"
        ctx = ssl.create_default_context(cafile=f"{work}/ca/cacertificate.pem")
    with open(f"{work}/corelink.yaml", "w") as f:
        f.write(f"""admin: {{port: 0}}
routers:
- protocol: http
  dtab: /svc/* => /$/inet/127.0.0.1/{BACKEND};
  servers:
  - port: {PROXY}
    ip: 127.0.0.1{server_tls}
corelink: {{workers: 1, shutdownDelayMs: 0}}
""")
    env = dict(os.environ, CORELINK_IO=io, RUST_LOG="warn", **extra)
    proxy = subprocess.Popen([binary, "run", "--config", f"{work}/corelink.yaml"], env=env,
                             stdout=open(f"{work}/corelink.log", "w"), stderr=subprocess.STDOUT)

    def connect():
        for _ in range(200):
            try:
                s = socket.create_connection(("127.0.0.1", PROXY), timeout=10)
                return ctx.wrap_socket(s, server_hostname="serviceB") if ctx else s
            except ConnectionRefusedError:
                time.sleep(0.05)
        raise SystemExit(f"corelink does not listen; see {work}/corelink.log")

    def exchange(group):
        for s in group:
            s.sendall(b"GET / HTTP/1.1\r\nHost: serviceB\r\n\r\n")
        for s in group:
            data = b""
            while BODY.encode() not in data:
                chunk = s.recv(4096)
                if not chunk:
                    raise SystemExit("corelink closed a connection")
                data += chunk

    try:
        exchange([connect()])
        load_for = int(os.environ.get("LOAD", "0"))
        if load_for:
            tool = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "target", "release", "corelink-load")
            scheme = "https" if tls else "http"
            extra_args = ["--cacert", f"{work}/ca/cacertificate.pem", "--sni", "serviceB"] if tls else []
            for i in range(load_for):
                path = "/64k" if i % 2 else "/"
                subprocess.run([tool, "-c", "64", "-d", "1s", "-H", "Host: serviceB", *extra_args,
                                f"{scheme}://127.0.0.1:{PROXY}{path}"], check=True, capture_output=True)
            time.sleep(6)
        time.sleep(1.5)
        before, rss_before = smaps(proxy.pid), rss(proxy.pid)
        conns = []
        while len(conns) < n:
            group = [connect() for _ in range(min(50, n - len(conns)))]
            exchange(group)
            conns.extend(group)
        time.sleep(5)
        if os.environ.get("PAUSE"):
            print("pid", proxy.pid, flush=True)
            time.sleep(float(os.environ["PAUSE"]))
        for _ in range(int(os.environ.get("WATCH", "0"))):
            print("  RSS", rss(proxy.pid), "KiB", flush=True)
            time.sleep(5)
        after, rss_after = smaps(proxy.pid), rss(proxy.pid)
        print(f"{io} {'TLS' if tls else 'plaintext'} {n} connections: RSS {rss_before} -> {rss_after} KiB, "
              f"{(rss_after - rss_before) / n:.2f} KiB per connection {extra or ''}")
        grew = sorted(((after[k][0] - before.get(k, [0, 0])[0], k) for k in after), reverse=True)
        for delta, k in grew[:6]:
            if delta > 0:
                print(f"  +{delta} KiB {k[0]} {k[1]} (now {after[k][0]} KiB, {after[k][1]} KiB in huge pages)")
    finally:
        proxy.terminate()
        proxy.wait()
        nginx.terminate()
        nginx.wait()


if __name__ == "__main__":
    main()
