#!/usr/bin/env bash
# Plaintext keep-alive proxying, CPU time per proxied request: corelink (epoll,
# io_uring) vs nginx vs a bare forwarder that does no HTTP work (the floor in
# DESIGN.md). One worker each, same nginx backend serving a small static
# response, driven by wrk -t1 -c64. Runs are interleaved across contenders for
# several rounds so machine noise hits all alike; reports medians.
#
# Usage: perf/engine-cpu.sh [ROUNDS=3] [SECONDS=10] [BODY=small|64k]
# Needs nginx and wrk (apt-get install -y nginx wrk) and a release build:
#   cargo build --release --bin corelink --example bare_forwarder
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-10}
BODY=${3:-small}
case $BODY in
  small) URL_PATH=/ ;;
  64k) URL_PATH=/64k.bin ;;
  *) echo "BODY must be small or 64k"; exit 1 ;;
esac
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=$ROOT/target/release
for tool in nginx wrk taskset; do
  command -v $tool >/dev/null || { echo "missing $tool (apt-get install -y nginx wrk)"; exit 1; }
done
[ -x "$BIN/corelink" ] && [ -x "$BIN/examples/bare_forwarder" ] || {
  echo "build first: cargo build --release --bin corelink --example bare_forwarder"; exit 1; }

for port in 18181 18182 18183 18184 18185; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port is in use: stop whatever listens there first"; exit 1
  fi
done
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; sleep 0.3; rm -rf "$WORK"; }
trap cleanup EXIT
BACKEND=127.0.0.1:18181
# CPU 0: load generator and backend; CPU 1: the proxy under test.
LOAD_CPU=0
PROXY_CPU=1

mkdir -p "$WORK/backend" "$WORK/nginx-proxy" "$WORK/www"
head -c 65536 /dev/urandom > "$WORK/www/64k.bin"
# nginx workers run as nobody: mktemp -d makes a 0700 directory.
chmod 755 "$WORK" "$WORK/www" && chmod 644 "$WORK/www/64k.bin"
cat > "$WORK/backend/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/backend/nginx.pid;
error_log stderr crit;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000;
  server { listen $BACKEND; location / { return 200 "hello world\n"; } location /64k.bin { root $WORK/www; } } }
CONF
cat > "$WORK/nginx-proxy/nginx.conf" <<CONF
worker_processes 1; daemon off; pid $WORK/nginx-proxy/nginx.pid;
error_log stderr crit;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server $BACKEND; keepalive 64; keepalive_requests 1000000; }
  server {
    listen 127.0.0.1:18182;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
corelink_conf() { # io port
  cat > "$WORK/corelink-$1.yaml" <<CONF
admin: {port: 0}
routers:
- protocol: http
  label: bench
  dtab: /svc/* => /\$/inet/127.0.0.1/18181;
  servers: [{port: $2}]
corelink: {workers: 1, io: $1, shutdownDelayMs: 0}
CONF
}
corelink_conf epoll 18183
corelink_conf uring 18184

taskset -c $LOAD_CPU nginx -p "$WORK/backend" -c "$WORK/backend/nginx.conf" -e stderr & PIDS+=($!)
taskset -c $PROXY_CPU nginx -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" -e stderr & PIDS+=($!)
NGINX_PROXY_MASTER=$!
RUST_LOG=warn taskset -c $PROXY_CPU "$BIN/corelink" run -c "$WORK/corelink-epoll.yaml" >/dev/null & PIDS+=($!)
COREL_EPOLL=$!
RUST_LOG=warn taskset -c $PROXY_CPU "$BIN/corelink" run -c "$WORK/corelink-uring.yaml" >/dev/null & PIDS+=($!)
COREL_URING=$!
taskset -c $PROXY_CPU "$BIN/examples/bare_forwarder" 127.0.0.1:18185 $BACKEND & PIDS+=($!)
FORWARDER=$!
sleep 1
NGINX_PROXY_WORKER=$(pgrep -P $NGINX_PROXY_MASTER | head -1)

declare -A PORT=([forwarder]=18185 [corelink-epoll]=18183 [corelink-uring]=18184 [nginx]=18182)
declare -A PID=([forwarder]=$FORWARDER [corelink-epoll]=$COREL_EPOLL [corelink-uring]=$COREL_URING [nginx]=$NGINX_PROXY_WORKER)
CONTENDERS=(forwarder corelink-epoll corelink-uring nginx)
# The bare forwarder assumes one read holds a whole message: small bodies only.
[ "$BODY" = small ] || CONTENDERS=(corelink-epoll corelink-uring nginx)
TICK=$(getconf CLK_TCK)

cpu_ticks() { # total utime+stime of a process and its threads
  awk '{print $14 + $15}' "/proc/$1/stat"
}

RESULTS=$WORK/results.txt
for round in $(seq 1 "$ROUNDS"); do
  for c in "${CONTENDERS[@]}"; do
    # warm up the connection pools
    taskset -c $LOAD_CPU wrk -t1 -c64 -d1s -H 'Host: svc' "http://127.0.0.1:${PORT[$c]}$URL_PATH" >/dev/null
    before=$(cpu_ticks "${PID[$c]}")
    out=$(taskset -c $LOAD_CPU wrk -t1 -c64 -d"${SECS}s" -H 'Host: svc' "http://127.0.0.1:${PORT[$c]}$URL_PATH")
    after=$(cpu_ticks "${PID[$c]}")
    reqs=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx|Socket errors/ {print}' | tr '\n' ' ')
    if [ -n "$errs" ]; then echo "ERROR: $c: $errs" >&2; fi
    us=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$reqs" 'BEGIN { printf "%.2f", t / hz * 1e6 / n }')
    echo "$c $rps $us" >> "$RESULTS"
    printf 'round %d %-15s %10s req/s %7s CPU-us/req %s\n' "$round" "$c" "$rps" "$us" "$errs"
  done
done

echo
echo "| contender | req/s (median) | CPU µs/req (median, min–max) | vs forwarder | vs nginx |"
echo "|---|---|---|---|---|"
median() { sort -n | awk '{a[NR]=$1} END { if (NR%2) print a[(NR+1)/2]; else printf "%.2f\n", (a[NR/2]+a[NR/2+1])/2 }'; }
NGX=$(awk '$1=="nginx" {print $3}' "$RESULTS" | median)
FWD=$(awk '$1=="forwarder" {print $3}' "$RESULTS" | median)
[ -n "$FWD" ] || FWD=nan
for c in "${CONTENDERS[@]}"; do
  rps=$(awk -v c="$c" '$1==c {print $2}' "$RESULTS" | median)
  us=$(awk -v c="$c" '$1==c {print $3}' "$RESULTS" | median)
  lo=$(awk -v c="$c" '$1==c {print $3}' "$RESULTS" | sort -n | head -1)
  hi=$(awk -v c="$c" '$1==c {print $3}' "$RESULTS" | sort -n | tail -1)
  vs_fwd=$(awk -v a="$us" -v b="$FWD" 'BEGIN { if (b == "nan") print "–"; else printf "%.2f×", a/b }')
  printf '| %s | %s | %s (%s–%s) | %s | %.2f× |\n' "$c" "$rps" "$us" "$lo" "$hi" \
    "$vs_fwd" "$(awk -v a="$us" -v b="$NGX" 'BEGIN{print a/b}')"
done
