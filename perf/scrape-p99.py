#!/usr/bin/env python3
"""Does a metrics scrape under load move corelink's p99? (issue 8)

corelink (release, epoll, one worker) proxies to nginx under an open-loop
load from corelink-load (constant rate, coordinated-omission corrected).
Each round measures twice, interleaved, in alternating order:

  control  a side thread GETs /admin/ping 10 times a second;
  scrape   the same thread GETs /admin/metrics.json and
           /admin/metrics/prometheus, 5 times a second each (Prometheus
           usually scrapes every 15 s: this is 150 times that).

Both modes make the same number of admin requests, so the side thread costs
the same CPU; only the scrapes reach the worker (it answers them between
requests). Before measuring, one request each to `--scopes` distinct Host
names gives the core that many service scopes to copy per scrape (a
sidecar usually has a handful). Reports p50/p99/p99.9 per mode (median over
rounds) and the ratio. Needs nginx; builds corelink and corelink-load in
release.

    perf/scrape-p99.py [--rounds 7] [--seconds 10] [--rate 4000] [--scopes 100]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND, PROXY, ADMIN = 18471, 18472, 18473


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.read()
    except OSError:
        return b""


def side_thread(stop, paths):
    """Cycles through `paths`, 10 requests a second."""
    i = 0
    while not stop.is_set():
        get(f"http://127.0.0.1:{ADMIN}{paths[i % len(paths)]}")
        i += 1
        stop.wait(0.1)
    return i


def measure(load, rate, seconds, paths):
    stop = threading.Event()
    side = threading.Thread(target=side_thread, args=(stop, paths))
    side.start()
    fd, out = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    try:
        subprocess.run([load, "-t", "1", "-c", "20", "-R", str(rate), "-d", f"{seconds}s", "--warmup", "1s",
                        "--json", out, "-H", "Host: svc", f"http://127.0.0.1:{PROXY}/"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 60, check=True)
        with open(out) as f:
            j = json.load(f)
    finally:
        stop.set()
        side.join()
        os.unlink(out)
    lat = j["latency_ms"]
    errors = j["errors"]["total"] + j.get("non_2xx", 0)
    return dict(p50=lat["p50"], p99=lat["p99"], p999=lat["p99_9"], rps=j["requests_per_sec"], errors=errors)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rate", type=int, default=4000)
    parser.add_argument("--scopes", type=int, default=100)
    args = parser.parse_args()

    subprocess.run(["cargo", "build", "--release", "-q", "-p", "corelink", "--bin", "corelink"], cwd=ROOT, check=True)
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "corelink-load"], cwd=ROOT, check=True)
    corelink = os.path.join(ROOT, "target", "release", "corelink")
    load = os.path.join(ROOT, "target", "release", "corelink-load")

    work = tempfile.mkdtemp(prefix="corelink-scrape-")
    with open(f"{work}/nginx.conf", "w") as f:
        f.write(f"""worker_processes 1;
pid {work}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {work}; proxy_temp_path {work}; fastcgi_temp_path {work};
  uwsgi_temp_path {work}; scgi_temp_path {work};
  server {{ listen 127.0.0.1:{BACKEND}; keepalive_requests 1000000;
           location / {{ return 200 "a small response body\\n"; }} }}
}}
""")
    with open(f"{work}/corelink.yaml", "w") as f:
        f.write(f"""admin: {{ip: 127.0.0.1, port: {ADMIN}}}
routers:
- protocol: http
  label: scrape
  dtab: /svc/* => /$/inet/127.0.0.1/{BACKEND};
  servers: [{{ip: 127.0.0.1, port: {PROXY}}}]
corelink: {{workers: 1, io: epoll, shutdownDelayMs: 0}}
""")
    nginx = subprocess.Popen(["nginx", "-p", work, "-c", f"{work}/nginx.conf", "-e", f"{work}/error.log",
                              "-g", "daemon off;"])
    proxy = subprocess.Popen([corelink, "run", "--config", f"{work}/corelink.yaml"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 15
        while get(f"http://127.0.0.1:{ADMIN}/admin/ready") != b"ready\n":
            if time.time() > deadline:
                sys.exit("corelink did not become ready")
            time.sleep(0.2)
        for i in range(args.scopes):
            req = urllib.request.Request(f"http://127.0.0.1:{PROXY}/", headers={"Host": f"scope{i}"})
            urllib.request.urlopen(req, timeout=5).read()
        modes = {"control": ["/admin/ping"], "scrape": ["/admin/metrics.json", "/admin/metrics/prometheus"]}
        results = {m: [] for m in modes}
        for r in range(args.rounds):
            order = list(modes) if r % 2 == 0 else list(reversed(modes))
            for mode in order:
                m = measure(load, args.rate, args.seconds, modes[mode])
                results[mode].append(m)
                print(f"round {r + 1} {mode:8s} {m['rps']:.0f} req/s  p50 {m['p50']:.3f}  p99 {m['p99']:.3f}  "
                      f"p99.9 {m['p999']:.3f} ms  errors {m['errors']}", flush=True)
        print(f"\n{args.rounds} rounds of {args.seconds} s at {args.rate} req/s (open loop, 20 connections), "
              f"{args.scopes} extra service scopes\n")
        print("| mode | p50 ms | p99 ms | p99.9 ms |\n|---|---|---|---|")
        med = {mode: {k: statistics.median(x[k] for x in rs) for k in ("p50", "p99", "p999")}
               for mode, rs in results.items()}
        for mode, v in med.items():
            print(f"| {mode} | {v['p50']:.3f} | {v['p99']:.3f} | {v['p999']:.3f} |")
        print(f"\np99 scrape / control: {med['scrape']['p99'] / med['control']['p99']:.2f}×")
    finally:
        proxy.terminate()
        nginx.terminate()
        proxy.wait(timeout=15)
        nginx.wait(timeout=15)


if __name__ == "__main__":
    main()
