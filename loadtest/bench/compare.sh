#!/usr/bin/env bash
# Compare corelink-load with wrk against a local nginx (see ../README.md).
#
#   loadtest/bench/compare.sh            # 3 alternating rounds of each scenario
#   ROUNDS=5 DUR=10s loadtest/bench/compare.sh
#
# Starts nginx (1 worker, access_log off, a small `return 200` body) on 127.0.0.1 on a
# free port with a config in a temp dir, pinned to CPU 0; the clients run pinned to
# CPU 1, both at nice -20 (NICE=0 to disable). Every run is bounded by `timeout`; nginx
# is stopped on exit.
set -euo pipefail

BIN=${BIN:-${CARGO_TARGET_DIR:-/work/scratch/load-target}/release/corelink-load}
ROUNDS=${ROUNDS:-3}
DUR=${DUR:-10s}
LAT_DUR=${LAT_DUR:-5s}
# Both nginx and the clients run at this nice level, so that other work on the machine
# (builds) disturbs the measurement less; it is the same for wrk and corelink-load.
NICE=${NICE:--20}
NGINX_CPU=${NGINX_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}

command -v nginx >/dev/null && command -v wrk >/dev/null || {
    echo "needs nginx and wrk: apt-get update && apt-get install -y nginx wrk" >&2
    exit 1
}
[ -x "$BIN" ] || { echo "build first: cargo build --release (BIN=$BIN)" >&2; exit 1; }

dir=$(mktemp -d /tmp/corelink-load-bench.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$dir/tmp"
cat >"$dir/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path $dir/tmp/body;
    proxy_temp_path $dir/tmp/proxy;
    fastcgi_temp_path $dir/tmp/fastcgi;
    uwsgi_temp_path $dir/tmp/uwsgi;
    scgi_temp_path $dir/tmp/scgi;
    server {
        listen 127.0.0.1:$port;
        location / {
            default_type text/plain;
            return 200 "hello from nginx\n";
        }
    }
}
CONF

timeout 3600 nice -n "$NICE" taskset -c "$NGINX_CPU" nginx -p "$dir" -c "$dir/nginx.conf" &
nginx_pid=$!
trap 'kill "$nginx_pid" 2>/dev/null; wait "$nginx_pid" 2>/dev/null; echo "nginx stopped; results in $dir" >&2' EXIT
for _ in $(seq 50); do
    curl -sf "http://127.0.0.1:$port/" >/dev/null 2>&1 && break
    python3 -c "import socket; socket.create_connection(('127.0.0.1', $port)).close()" 2>/dev/null && break
    sleep 0.1
done
url="http://127.0.0.1:$port/"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///') on $url (cpu $NGINX_CPU); clients on cpu $CLIENT_CPU; nice $NICE" >&2

run() { # name args...
    local name=$1; shift
    echo "+ $*" >&2
    # /usr/bin/time records the client's own CPU time (user, system): CPU per request is
    # robust against other load on the machine, unlike req/s.
    timeout 120 nice -n "$NICE" taskset -c "$CLIENT_CPU" /usr/bin/time -f '%U %S' -o "$dir/$name.cpu" "$@" >"$dir/$name.txt"
}

for scen in "tput:-t1 -c64 -d$DUR" "lat:-t1 -c1 -d$LAT_DUR"; do
    tag=${scen%%:*}; args=${scen#*:}
    for r in $(seq "$ROUNDS"); do
        # shellcheck disable=SC2086
        run "wrk-$tag-$r" wrk $args --latency "$url"
        # shellcheck disable=SC2086
        run "cl-$tag-$r" "$BIN" $args --json "$dir/cl-$tag-$r.json" --hgrm "$dir/cl-$tag-$r.hgrm" "$url"
    done
done

python3 - "$dir" "$ROUNDS" <<'PY'
import json, re, statistics, sys
d, rounds = sys.argv[1], int(sys.argv[2])
unit = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}
def cpu(path):
    u, s = open(path).read().split()[-2:]
    return float(u) + float(s)
def wrk(path):
    t = open(path).read()
    n = int(re.search(r"(\d+) requests in", t).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
    lat = {}
    for p, v, u in re.findall(r"^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s|m)\s*$", t, re.M):
        lat["p" + p] = float(v) * unit[u]
    errs = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    sock = re.search(r"Socket errors: (.*)", t)
    return rps, lat, (sock.group(1) if sock else "none") + (f", non-2xx {errs.group(1)}" if errs else ""), cpu(path[:-4] + ".cpu") / n * 1e6
def cl(path):
    j = json.load(open(path))
    l = j["latency_ms"]
    return j["requests_per_sec"], {"p50": l["p50"], "p90": l["p90"], "p99": l["p99"]}, f"errors {j['errors']['total']}, non-2xx {j['non_2xx']}", cpu(path[:-5] + ".cpu") / j["requests"] * 1e6
def wrk_corrected(path, conns):
    """Our latency distribution with wrk 4's stats_correct() applied: wrk back-fills, for
    every sample n >= 2*expected (expected = the mean interval between a connection's
    requests), samples at n - expected, n - 2*expected, ... while > expected. Rebuilt from
    the .hgrm rows, so approximate."""
    j = json.load(open(path + ".json"))
    expected = 1e6 / (j["requests_per_sec"] / conns)
    counts, prev = {}, 0
    for line in open(path + ".hgrm"):
        cols = line.split()
        if len(cols) >= 3 and not line.startswith("#") and cols[0] != "Value":
            v, total = float(cols[0]) * 1000, int(cols[2])
            if total > prev:
                counts[v] = counts.get(v, 0) + total - prev
                prev = total
    extra = {}
    for n, c in counts.items():
        m = n - expected
        while n >= 2 * expected and m > expected:
            extra[m] = extra.get(m, 0) + c
            m -= expected
    for m, c in extra.items():
        counts[m] = counts.get(m, 0) + c
    vals = sorted(counts.items())
    total = sum(counts.values())
    out = {}
    for p in (50, 90, 99):
        acc = 0
        for v, c in vals:
            acc += c
            if acc >= total * p / 100:
                out["p%d" % p] = v / 1000
                break
    return out
for tag, title in (("tput", "throughput -t1 -c64"), ("lat", "low load -t1 -c1")):
    print(f"== {title}")
    res = {"wrk": [], "corelink-load": []}
    for r in range(1, rounds + 1):
        res["wrk"].append(wrk(f"{d}/wrk-{tag}-{r}.txt"))
        res["corelink-load"].append(cl(f"{d}/cl-{tag}-{r}.json"))
    for name, rows in res.items():
        rps = [x[0] for x in rows]
        line = f"  {name:14} req/s runs: " + " ".join(f"{x:.0f}" for x in rps) + f"  median {statistics.median(rps):.0f}"
        for p in ("p50", "p90", "p99"):
            vals = [x[1].get(p) for x in rows if p in x[1]]
            if vals:
                line += f"  {p} {statistics.median(vals):.3f}ms"
        line += f"  cpu/req {statistics.median(x[3] for x in rows):.2f}us"
        line += "  (" + "; ".join(sorted({x[2] for x in rows})) + ")"
        print(line)
    conns = 64 if tag == "tput" else 1
    wc = [wrk_corrected(f"{d}/cl-{tag}-{r}", conns) for r in range(1, rounds + 1)]
    print("  corelink-load with wrk's closed-loop correction applied:"
          + "".join(f"  {p} {statistics.median(x[p] for x in wc):.3f}ms" for p in ("p50", "p90", "p99")))
    ratios = [c[0] / w[0] for w, c in zip(res["wrk"], res["corelink-load"])]
    print("  corelink-load/wrk req/s per round: " + " ".join(f"{x:.2f}" for x in ratios)
          + f"  median {statistics.median(ratios):.2f}")
PY
