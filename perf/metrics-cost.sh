#!/usr/bin/env bash
# What per-request metrics cost, in instructions (callgrind), since timings on
# a shared 2-core box are too noisy for a 3 % budget (issue 8).
#
#   perf/metrics-cost.sh [REQUESTS]        (default 10000)
#
# Builds corelink twice (release): with the default `metrics` feature and with
# `--no-default-features` (recording compiled out). Runs each under callgrind
# (epoll, one worker) in front of nginx, twice: with 1,000 requests and with
# 1,000 + REQUESTS, over 10 keep-alive connections. The difference of the two
# totals divided by REQUESTS is the user-space instructions per proxied
# request (start-up and shutdown cancel out). Needs valgrind, nginx.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-10000}"
BASE=1000
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-metrics-cost.XXXXXX")"
PORT_BACKEND=18391
PORT_PROXY=18392
for tool in valgrind nginx; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install -y $tool)" >&2; exit 2; }
done
for p in $PORT_BACKEND $PORT_PROXY; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is busy" >&2; exit 2; fi
done

cd "$REPO"
echo "== building (release, with and without metrics)"
cargo build --release -q -p corelink --bin corelink
cargo build --release -q -p corelink-load
cargo build --release -q --bin corelink --no-default-features --target-dir "$REPO/target/no-metrics"
WITH="$REPO/target/release/corelink"
WITHOUT="$REPO/target/no-metrics/release/corelink"
LOAD="$REPO/target/release/corelink-load"

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$PORT_BACKEND; keepalive_requests 1000000;
           location / { return 200 "a small response body\n"; } }
}
NGINX
nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" -g 'daemon off;' &
NGINX_PID=$!
trap 'kill $NGINX_PID 2>/dev/null; rm -rf "$WORK"' EXIT
cat >"$WORK/corelink.yaml" <<YAML
admin: {port: 0}
routers:
- protocol: http
  label: cost
  dtab: |
    /svc/* => /\$/inet/127.0.0.1/$PORT_BACKEND;
  servers: [{port: $PORT_PROXY, ip: 127.0.0.1}]
corelink: {workers: 1, shutdownDelayMs: 0, io: epoll}
YAML

# Total user-space instructions (Ir) of one corelink run serving $2 requests.
instructions() {
    local bin=$1 requests=$2 out="$WORK/cg.$RANDOM"
    valgrind --tool=callgrind --callgrind-out-file="$out.%p" --trace-children=no \
        "$bin" run --config "$WORK/corelink.yaml" >"$WORK/run.log" 2>&1 &
    local pid=$!
    for _ in $(seq 1 200); do
        grep -q "admin listening" "$WORK/run.log" && break
        sleep 0.1
    done
    "$LOAD" -c 10 -n "$requests" -H 'Host: cost' "http://127.0.0.1:$PORT_PROXY/" >/dev/null 2>&1
    kill -TERM $pid
    wait $pid || true
    grep -h "^totals:\|^summary:" "$out".* | head -n1 | awk '{print $2}'
}

echo "== callgrind, $BASE and $((BASE + N)) requests, each binary"
declare -A per
for variant in with without; do
    bin=$WITH
    [[ $variant == without ]] && bin=$WITHOUT
    small=$(instructions "$bin" $BASE)
    large=$(instructions "$bin" $((BASE + N)))
    per[$variant]=$(( (large - small) / N ))
    echo "metrics $variant: ${per[$variant]} instructions per request ($small / $large total)"
done
awk -v a="${per[with]}" -v b="${per[without]}" \
    'BEGIN { printf "metrics cost: %d instructions per request, %.1f %% of the request\n", a - b, 100 * (a - b) / a }'
