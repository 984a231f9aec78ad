#!/usr/bin/env bash
# Memory of a corelink sidecar running the Kubernetes scenario's config
# (deploy/kubernetes/sidecar/config.yaml), idle and under a small load, to
# size the manifests' resource requests (docs/kubernetes.md has the numbers).
#
#   perf/sidecar-memory.sh [WORKERS] [LOAD_SECS] [CONNECTIONS]
#   MAX_IDLE=256 perf/sidecar-memory.sh 1 15 256   # client.hostConnectionPool.maxIdle
#   K8S_ENDPOINTS=1000 perf/sidecar-memory.sh        # + the io.l5d.k8s namer's watches
#
# Two sidecars on loopback, each with the scenario's two routers: sidecar A's
# outgoing router (client TLS, boundPath) sends to sidecar B's incoming router
# (server TLS), which sends to an nginx "serviceb". The k8s namer is replaced
# by io.l5d.fs with the same bound-path shape (/#/io.l5d.fs/serviceb), as
# Kubernetes needs an API server this box does not have. wrk drives sidecar
# A's outgoing router with keep-alive connections (the application's pool).
# RSS is read from /proc (VmRSS; VmHWM for the peak) for both sidecars:
# A pays for the client side of TLS, B for the server side.
# With K8S_ENDPOINTS=N, each sidecar also runs an io.l5d.k8s namer (under
# another prefix, so routing is unchanged) watching a test API server
# (target/release/k8s-testapi) with N endpoints in N/10 Services: the
# namer watches the whole cluster, so this is what a cluster of that size
# adds to every sidecar.
# Needs: target/release/corelink (BIN to override), nginx, wrk.
set -euo pipefail
cd "$(dirname "$0")/.."

WORKERS=${1:-1}
LOAD_SECS=${2:-20}
CONNS=${3:-16}
BIN=${BIN:-target/release/corelink}
export CORELINK_IO=${CORELINK_IO:-epoll}

for tool in nginx wrk curl; do
  command -v "$tool" >/dev/null || { echo "perf/sidecar-memory.sh: $tool is missing" >&2; exit 1; }
done
[ -x "$BIN" ] || { echo "perf/sidecar-memory.sh: $BIN is missing (cargo build --release)" >&2; exit 1; }

work=$(mktemp -d)
chmod 0755 "$work"
pids=()
cleanup() {
  # Last started first: the sidecars before the API server they watch.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[i]}" 2>/dev/null || true
    wait "${pids[i]}" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

"$BIN" certs ca --out "$work/ca" 2>/dev/null
for svc in servicea serviceb; do
  "$BIN" certs issue --ca "$work/ca" --name "$svc" --out "$work/$svc" 2>/dev/null
  cp "$work/ca/cacertificate.pem" "$work/$svc/"
done

k8s_namer=""
if [ -n "${K8S_ENDPOINTS:-}" ]; then
  testapi=${TESTAPI:-target/release/k8s-testapi}
  [ -x "$testapi" ] || { echo "perf/sidecar-memory.sh: $testapi is missing (cargo build --release -p corelink-k8s-testapi)" >&2; exit 1; }
  "$testapi" --services $((K8S_ENDPOINTS / 10 > 0 ? K8S_ENDPOINTS / 10 : 1)) --endpoints "$K8S_ENDPOINTS" >"$work/testapi.out" &
  pids+=($!)
  for ((i = 0; i < 100; i++)); do [ -s "$work/testapi.out" ] && break; sleep 0.1; done
  api=$(head -n 1 "$work/testapi.out" | sed 's|^http://||')
  [ -n "$api" ] || { echo "perf/sidecar-memory.sh: k8s-testapi did not start" >&2; exit 1; }
  k8s_namer="- kind: io.l5d.k8s
  prefix: /k8s-load
  host: ${api%:*}
  port: ${api##*:}"
fi

mkdir -p "$work/nginx/logs" "$work/disco"
cat >"$work/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $work/nginx/nginx.pid;
error_log stderr error;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:18080;
    location / { return 200 "hello from serviceb\n"; }
  }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -g 'daemon off;' &
pids+=($!)

# One sidecar's config: the ConfigMap's, with the fs namer, loopback
# addresses and this sidecar's ports.
sidecar_config() {
  local svc=$1 out=$2 in=$3 admin=$4 pool=""
  [ -n "${MAX_IDLE:-}" ] && pool="    hostConnectionPool: {maxIdle: $MAX_IDLE}"
  cat <<EOF
admin:
  ip: 127.0.0.1
  port: $admin
  shutdownGraceMs: 10000
namers:
- kind: io.l5d.fs
  rootDir: $work/disco
$k8s_namer
routers:
- protocol: http
  label: outgoing
  dtab: |
    /ns  => /#/io.l5d.fs;
    /svc => /ns;
  servers:
  - port: $out
    ip: 127.0.0.1
  client:
$pool
    tls:
      kind: io.l5d.boundPath
      caCertPath: $work/$svc/cacertificate.pem
      names:
      - prefix: "/#/io.l5d.fs/{service}"
        commonNamePattern: "{service}"
- protocol: http
  label: incoming
  dtab: |
    /svc => /\$/inet/127.0.0.1/18080;
  servers:
  - port: $in
    ip: 127.0.0.1
    tls:
      certPath: $work/$svc/certificate.pem
      keyPath: $work/$svc/key.pem
corelink:
  workers: $WORKERS
  shutdownDelayMs: 0
EOF
}
echo "127.0.0.1 24143" >"$work/disco/serviceb"
sidecar_config servicea 14141 14143 19990 >"$work/a.yaml"
sidecar_config serviceb 24141 24143 29990 >"$work/b.yaml"
RUST_LOG=warn "$BIN" run --config "$work/b.yaml" >/dev/null &
pid_b=$!
pids+=("$pid_b")
RUST_LOG=warn "$BIN" run --config "$work/a.yaml" >/dev/null &
pid_a=$!
pids+=("$pid_a")

ready() { curl -s -m 1 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$1/admin/ready" 2>/dev/null || true; }
for ((i = 0; i < 100; i++)); do
  [ "$(ready 19990)" = 200 ] && [ "$(ready 29990)" = 200 ] && break
  sleep 0.1
done
if [ "$(ready 19990)" != 200 ] || [ "$(ready 29990)" != 200 ]; then echo "sidecars did not become ready" >&2; exit 1; fi

kib() { awk -v k="$2" '$1 == k":" { print $2 }' "/proc/$1/status"; }
mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
row() { printf '| %-40s | %8s MiB | %8s MiB |\n' "$1" "$(mib "$(kib "$pid_a" "$2")")" "$(mib "$(kib "$pid_b" "$2")")"; }

echo "corelink $("$BIN" --version | cut -d' ' -f2), io=$CORELINK_IO, workers=$WORKERS, maxIdle=${MAX_IDLE:-default}, k8s endpoints watched=${K8S_ENDPOINTS:-none}, wrk -t1 -c$CONNS -d${LOAD_SECS}s, $(date -u +%Y-%m-%d)"
echo "| state | sidecar A (outgoing, client TLS) | sidecar B (incoming, server TLS) |"
echo "|---|---|---|"
sleep 2
row "idle after start (VmRSS)" VmRSS
body=$(curl -s -m 5 -H 'Host: serviceb' http://127.0.0.1:14141/)
[ "$body" = "hello from serviceb" ] || { echo "request through the sidecars failed: $body" >&2; exit 1; }
row "after one request (VmRSS)" VmRSS

ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
cpu_a0=$(ticks "$pid_a") cpu_b0=$(ticks "$pid_b")
# Peak RSS seen while wrk runs, sampled every 0.2 s (VmHWM below is exact).
peak_a=0 peak_b=0
wrk -t1 -c"$CONNS" -d"${LOAD_SECS}s" -H 'Host: serviceb' http://127.0.0.1:14141/ >"$work/wrk.txt" &
wrk_pid=$!
while kill -0 "$wrk_pid" 2>/dev/null; do
  a=$(kib "$pid_a" VmRSS) b=$(kib "$pid_b" VmRSS)
  ((a > peak_a)) && peak_a=$a
  ((b > peak_b)) && peak_b=$b
  sleep 0.2
done
wait "$wrk_pid"
cpu_a1=$(ticks "$pid_a") cpu_b1=$(ticks "$pid_b")
printf '| %-40s | %8s MiB | %8s MiB |\n' "under load, sampled peak (VmRSS)" "$(mib "$peak_a")" "$(mib "$peak_b")"
row "peak since start (VmHWM)" VmHWM
sleep 5
row "5 s after the load (VmRSS)" VmRSS
echo
grep -E "Requests/sec|Latency|requests in" "$work/wrk.txt" | sed 's/^ */wrk: /'
hz=$(getconf CLK_TCK)
requests=$(awk '/requests in/ { print $1 }' "$work/wrk.txt")
per_req() { awk -v t="$1" -v hz="$hz" -v n="$requests" 'BEGIN { printf "%.1f", t / hz / n * 1e6 }'; }
echo "CPU per proxied request over the load: sidecar A $(per_req $((cpu_a1 - cpu_a0))) us, sidecar B $(per_req $((cpu_b1 - cpu_b0))) us ($requests requests)"
handshakes=$(curl -s -m 5 http://127.0.0.1:29990/admin/metrics.json | tr ',{}' '\n' | awk -F: '/"rt\/incoming\/server\/127.0.0.1\/24143\/tls\/handshakes"/ { print $2 }')
echo "TLS handshakes served by sidecar B: ${handshakes:-?} (sidecar A's pool to B; $CONNS client connections)"
