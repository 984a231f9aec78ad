#!/usr/bin/env python3
"""RSS per idle keep-alive connection of a proxy.

Opens N client connections to the proxy, sends one request on each and reads
the response (so each connection has been through a full exchange and holds
whatever an idle keep-alive connection holds), then reads the proxy's RSS and
reports the growth per connection against the RSS before.

Usage: perf/idle-memory.py PROXY_PID HOST:PORT [N=5000] [HOST_HEADER=svc]
"""
import socket
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def main():
    pid = int(sys.argv[1])
    host, port = sys.argv[2].rsplit(":", 1)
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 5000
    host_header = sys.argv[4] if len(sys.argv) > 4 else "svc"
    request = f"GET / HTTP/1.1\r\nHost: {host_header}\r\n\r\n".encode()
    # Warm up: one exchange so pools and buffers exist before the baseline.
    warm = socket.create_connection((host, int(port)))
    warm.sendall(request)
    warm.recv(65536)
    time.sleep(0.5)
    before = rss_kib(pid)
    conns = []
    # One exchange at a time, so what is measured is what an idle connection
    # keeps, not the peak of many concurrent exchanges.
    for i in range(n):
        s = socket.create_connection((host, int(port)))
        s.settimeout(10)
        s.sendall(request)
        s.recv(65536)
        conns.append(s)
    time.sleep(1.0)
    after = rss_kib(pid)
    per = (after - before) / n
    print(f"connections={n} rss_before_kib={before} rss_after_kib={after} kib_per_conn={per:.2f}")
    for c in conns:
        c.close()


if __name__ == "__main__":
    main()
