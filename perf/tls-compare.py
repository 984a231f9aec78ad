#!/usr/bin/env python3
"""TLS side by side: corelink against nginx, one worker each, same backend.

    perf/tls-compare.py [--rounds N] [--seconds S] [--io epoll|uring] [--quick]

Scenarios, interleaved round by round so machine noise hits both alike:

  term      TLS termination with keep-alive (client -> proxy over TLS ->
            plaintext backend), 50 connections;
  resume    a new TLS connection per request, sessions resumed (tickets);
  full      a new TLS connection per request, full handshakes;
  twohop    linker-to-linker: plaintext into hop A, TLS from A to hop B,
            plaintext from B to the backend (two corelinks vs two nginx).

Reports the median (min-max) requests/s, the proxies' CPU time per request
(utime+stime from /proc over the measured window, both hops summed for
twohop) and corelink's ratios to nginx. Needs nginx; builds corelink and
corelink-load (release) if missing. Everything listens on 127.0.0.1 ports
18401-18409; every run is bounded.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
CORELINK = os.path.join(TARGET, "release", "corelink")
LOAD = os.path.join(TARGET, "release", "corelink-load")
PORTS = dict(backend=18401, cl_b=18402, ng_b=18403, cl_a=18404, ng_a=18405)
HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pids):
    total = 0
    for pid in pids:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total


def port_busy(port):
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_port(port, what):
    deadline = time.time() + 15
    while time.time() < deadline:
        if port_busy(port):
            return
        time.sleep(0.05)
    sys.exit(f"{what} did not start on port {port}")


def nginx_conf(work, name, server):
    d = os.path.join(work, name)
    os.makedirs(d, exist_ok=True)
    conf = f"""worker_processes 1;
pid {d}/nginx.pid;
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d}; uwsgi_temp_path {d}; scgi_temp_path {d};
  {server}
}}
"""
    path = os.path.join(d, "nginx.conf")
    with open(path, "w") as f:
        f.write(conf)
    return d, path


class Procs:
    def __init__(self):
        self.children = []

    def start(self, args, env=None, log=None):
        out = open(log, "w") if log else subprocess.DEVNULL
        p = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.children.append(p)
        return p

    def stop(self):
        for p in self.children:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for p in self.children:
            p.wait()


def pids_of(proc):
    """The process and its children (nginx master and worker)."""
    out = subprocess.run(["pgrep", "-P", str(proc.pid)], capture_output=True, text=True).stdout.split()
    return [proc.pid] + [int(x) for x in out]


def load(url, seconds, extra):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    args = [LOAD, "-t", "1", "-d", f"{seconds}s", "--warmup", "1s", "--json", path] + extra + [url]
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 30)
    with open(path) as f:
        j = json.load(f)
    os.unlink(path)
    return j


def measure(url, pids, seconds, extra):
    before = cpu_ticks(pids)
    j = load(url, seconds, extra)
    after = cpu_ticks(pids)
    rps = j["requests_per_sec"]
    # CPU ticks cover the warm-up second too: spread them over all requests.
    requests = rps * (j["duration_s"] + 1.0)
    cpu_us = (after - before) * 1e6 / HZ / max(requests, 1)
    errors = j["errors"]["total"] + j.get("non_2xx", 0)
    return rps, cpu_us, errors


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--io", default="epoll", choices=["epoll", "uring"])
    ap.add_argument("--quick", action="store_true", help="1 round of 3 s")
    ap.add_argument("--scenarios", default="term,resume,full,twohop")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.seconds = 1, 3
    if not shutil.which("nginx"):
        sys.exit("nginx is needed: apt-get install -y nginx")
    for port in PORTS.values():
        if port_busy(port):
            sys.exit(f"port {port} is busy; stop what listens there")
    if not (os.path.exists(CORELINK) and os.path.exists(LOAD)):
        subprocess.run(["cargo", "build", "--release", "-q", "-p", "corelink", "-p", "corelink-load"], cwd=REPO, check=True)

    work = tempfile.mkdtemp(prefix="corelink-tls-compare.")
    procs = Procs()
    try:
        ca, svc = os.path.join(work, "ca"), os.path.join(work, "serviceB")
        subprocess.run([CORELINK, "certs", "ca", "--out", ca], check=True, capture_output=True)
        subprocess.run([CORELINK, "certs", "issue", "--ca", ca, "--name", "serviceB", "--out", svc], check=True, capture_output=True)
        cacert, cert, key = f"{ca}/cacertificate.pem", f"{svc}/certificate.pem", f"{svc}/key.pem"
        p = PORTS
        body = "a small response body of about sixty four bytes, like an API!\n"
        d, conf = nginx_conf(work, "backend", f'server {{ listen 127.0.0.1:{p["backend"]}; keepalive_requests 1000000; location / {{ return 200 "{body}"; }} }}')
        procs.start(["nginx", "-p", d, "-c", conf, "-e", f"{d}/error.log", "-g", "daemon off;"])
        d, conf = nginx_conf(work, "nginx-b", f"""upstream be {{ server 127.0.0.1:{p["backend"]}; keepalive 64; }}
  server {{ listen 127.0.0.1:{p["ng_b"]} ssl; keepalive_requests 1000000;
    ssl_certificate {cert}; ssl_certificate_key {key}; ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_tickets on;
    location / {{ proxy_pass http://be; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}""")
        ng_b = procs.start(["nginx", "-p", d, "-c", conf, "-e", f"{d}/error.log", "-g", "daemon off;"])
        d, conf = nginx_conf(work, "nginx-a", f"""upstream b {{ server 127.0.0.1:{p["ng_b"]}; keepalive 64; }}
  server {{ listen 127.0.0.1:{p["ng_a"]}; keepalive_requests 1000000;
    location / {{ proxy_pass https://b; proxy_http_version 1.1; proxy_set_header Connection "";
      proxy_ssl_verify on; proxy_ssl_trusted_certificate {cacert}; proxy_ssl_name serviceB;
      proxy_ssl_server_name on; proxy_ssl_session_reuse on; }} }}""")
        ng_a = procs.start(["nginx", "-p", d, "-c", conf, "-e", f"{d}/error.log", "-g", "daemon off;"])
        env = dict(os.environ, CORELINK_IO=args.io, RUST_LOG="warn")
        cl_b_yaml = os.path.join(work, "b.yaml")
        with open(cl_b_yaml, "w") as f:
            f.write(f"""admin: {{port: 0}}
routers:
- protocol: http
  label: incoming
  dtab: /svc/* => /$/inet/127.0.0.1/{p["backend"]};
  servers:
  - port: {p["cl_b"]}
    ip: 127.0.0.1
    tls: {{certPath: {cert}, keyPath: {key}}}
corelink: {{workers: 1, shutdownDelayMs: 0}}
""")
        cl_a_yaml = os.path.join(work, "a.yaml")
        with open(cl_a_yaml, "w") as f:
            f.write(f"""admin: {{port: 0}}
routers:
- protocol: http
  label: outgoing
  dtab: /svc/* => /$/inet/127.0.0.1/{p["cl_b"]};
  servers: [{{port: {p["cl_a"]}, ip: 127.0.0.1}}]
  client:
    tls: {{commonName: serviceB, trustCerts: [{cacert}]}}
corelink: {{workers: 1, shutdownDelayMs: 0}}
""")
        cl_b = procs.start([CORELINK, "run", "--config", cl_b_yaml], env=env, log=os.path.join(work, "b.log"))
        cl_a = procs.start([CORELINK, "run", "--config", cl_a_yaml], env=env, log=os.path.join(work, "a.log"))
        for name, port in p.items():
            wait_port(port, name)
        time.sleep(0.5)

        tls = ["--cacert", cacert, "--sni", "serviceB"]
        scenarios = {
            "term": ("TLS termination, keep-alive, 50 conns",
                     [("corelink", f"https://127.0.0.1:{p['cl_b']}/", [cl_b], ["-c", "50"] + tls),
                      ("nginx", f"https://127.0.0.1:{p['ng_b']}/", [ng_b], ["-c", "50"] + tls)]),
            "resume": ("new TLS connection per request, resumed, 10 slots",
                       [("corelink", f"https://127.0.0.1:{p['cl_b']}/", [cl_b], ["-c", "10", "--new-conn"] + tls),
                        ("nginx", f"https://127.0.0.1:{p['ng_b']}/", [ng_b], ["-c", "10", "--new-conn"] + tls)]),
            "full": ("new TLS connection per request, full handshakes, 10 slots",
                     [("corelink", f"https://127.0.0.1:{p['cl_b']}/", [cl_b], ["-c", "10", "--new-conn", "--no-tls-resume"] + tls),
                      ("nginx", f"https://127.0.0.1:{p['ng_b']}/", [ng_b], ["-c", "10", "--new-conn", "--no-tls-resume"] + tls)]),
            "twohop": ("linker-to-linker: plaintext in, TLS between two hops, 50 conns",
                       [("corelink", f"http://127.0.0.1:{p['cl_a']}/", [cl_a, cl_b], ["-c", "50", "-H", "Host: serviceB"]),
                        ("nginx", f"http://127.0.0.1:{p['ng_a']}/", [ng_a, ng_b], ["-c", "50"])]),
        }
        chosen = [s for s in args.scenarios.split(",") if s]
        results = {s: {"corelink": [], "nginx": []} for s in chosen}
        for r in range(args.rounds):
            for s in chosen:
                for name, url, procs_of, extra in scenarios[s][1]:
                    pids = [x for pr in procs_of for x in pids_of(pr)]
                    rps, cpu, errors = measure(url, pids, args.seconds, extra)
                    results[s][name].append((rps, cpu, errors))
                    print(f"round {r + 1} {s:7s} {name:9s} {rps:9.0f} req/s {cpu:7.1f} us/req errors {errors}", flush=True)

        print()
        print(f"corelink {args.io} vs nginx, one worker each; {args.rounds} rounds of {args.seconds} s, medians (min-max)")
        print()
        print("| scenario | corelink req/s | nginx req/s | req/s ratio | corelink CPU µs/req | nginx CPU µs/req | CPU ratio (nginx/corelink) |")
        print("|---|---|---|---|---|---|---|")
        for s in chosen:
            row = []
            med = {}
            for name in ("corelink", "nginx"):
                rps = [x[0] for x in results[s][name]]
                cpu = [x[1] for x in results[s][name]]
                med[name] = (statistics.median(rps), statistics.median(cpu))
                row.append((f"{med[name][0]:.0f} ({min(rps):.0f}–{max(rps):.0f})", f"{med[name][1]:.1f} ({min(cpu):.1f}–{max(cpu):.1f})"))
            ratio = med["corelink"][0] / med["nginx"][0]
            cpu_ratio = med["nginx"][1] / med["corelink"][1]
            print(f"| {scenarios[s][0]} | {row[0][0]} | {row[1][0]} | {ratio:.2f}× | {row[0][1]} | {row[1][1]} | {cpu_ratio:.2f}× |")
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
