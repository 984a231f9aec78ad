#!/usr/bin/env bash
# What the io.l5d.k8s namer costs corelink with a large cluster watched:
# memory (RSS with the namer synced, against the same config without it) and
# CPU per endpoint change (control thread: store update, view, snapshot).
#
#   perf/k8s-namer-cost.sh [SERVICES] [ENDPOINTS] [CHANGES_PER_S] [SECONDS]
#                          (defaults 1000 10000 100 20)
#
# Runs the release builds of corelink and the test API server's load mode
# (crates/k8s-testapi: slices of at most 100 endpoints, one endpoint's
# readiness flipped per change). One worker, no request traffic.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SERVICES="${1:-1000}" ENDPOINTS="${2:-10000}" RATE="${3:-100}" SECONDS_RUN="${4:-20}"
cd "$REPO"
cargo build --release -q -p corelink -p corelink-k8s-testapi
BIN="$REPO/target/release"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-k8s-cost.XXXXXX")"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT
HZ=$(getconf CLK_TCK)

namer_updates() { # admin port
    curl -s "http://127.0.0.1:$1/admin/metrics.json" | python3 -c 'import json,sys; print(int(json.load(sys.stdin)["corelink/routing/namer_updates"]))'
}
rss_kib() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
wait_ready() { # admin port
    for _ in $(seq 1 300); do
        curl -sf "http://127.0.0.1:$1/admin/ready" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "corelink did not become ready" >&2; exit 1
}
start_api() { # churn-ms (0: none)
    local churn=()
    [ "$1" != 0 ] && churn=(--churn-ms "$1")
    rm -f "$WORK/api.addr"
    "$BIN/k8s-testapi" --services "$SERVICES" --endpoints "$ENDPOINTS" "${churn[@]}" >"$WORK/api.addr" 2>"$WORK/api.log" &
    API_PID=$!; PIDS+=("$API_PID")
    for _ in $(seq 1 300); do [ -s "$WORK/api.addr" ] && break; sleep 0.1; done
    API_PORT=$(sed -n 's#^http://127.0.0.1:##p' "$WORK/api.addr")
}
start_corelink() { # name, namer yaml, admin port, listen port, extra dtab line
    cat >"$WORK/$1.yaml" <<YAML
admin: {ip: 127.0.0.1, port: $3}
$2
routers:
- protocol: http
  label: cost
  dtab: |
    /svc => /\$/inet/127.0.0.1/1;
$5
  servers: [{port: $4, ip: 127.0.0.1}]
corelink: {workers: 1, shutdownDelayMs: 0}
YAML
    "$BIN/corelink" run --config "$WORK/$1.yaml" >"$WORK/$1.log" 2>&1 &
    CL_PID=$!; PIDS+=("$CL_PID")
    wait_ready "$3"
}

echo "== $SERVICES services, $ENDPOINTS endpoints; one corelink worker"
start_corelink plain "" 18601 18602 ""
sleep 3
plain_rss=$(rss_kib "$CL_PID")
kill "$CL_PID"

start_api 0
namers="namers: [{kind: io.l5d.k8s, host: 127.0.0.1, port: $API_PORT}]"
k8s_dtab="    /svc => /#/io.l5d.k8s/loadtest/http;"
start_corelink k8s "$namers" 18603 18604 "$k8s_dtab"
sleep 3
k8s_rss=$(rss_kib "$CL_PID")
t0=$(cpu_ticks "$CL_PID"); sleep "$SECONDS_RUN"; t1=$(cpu_ticks "$CL_PID")
idle_ticks=$((t1 - t0))
kill "$CL_PID" "$API_PID"
echo "RSS without the namer: $plain_rss KiB; with it, synced: $k8s_rss KiB (+$((k8s_rss - plain_rss)) KiB)"

churn_ms=$((1000 / RATE))
start_api "$churn_ms"
namers="namers: [{kind: io.l5d.k8s, host: 127.0.0.1, port: $API_PORT}]"
start_corelink churn "$namers" 18605 18606 "$k8s_dtab"
sleep 2
u0=$(namer_updates 18605)
t0=$(cpu_ticks "$CL_PID"); r0=$(rss_kib "$CL_PID"); sleep "$SECONDS_RUN"; t1=$(cpu_ticks "$CL_PID"); r1=$(rss_kib "$CL_PID")
u1=$(namer_updates 18605)
churn_ticks=$((t1 - t0))
changes=$((SECONDS_RUN * 1000 / churn_ms))
awk -v c="$churn_ticks" -v i="$idle_ticks" -v hz="$HZ" -v n="$changes" -v s="$SECONDS_RUN" -v r0="$r0" -v r1="$r1" 'BEGIN {
    printf "CPU over %d s: idle %.2f s, with %d changes %.2f s: %.3f ms per change (%.1f %% of a core at %d changes/s)\n",
        s, i / hz, n, c / hz, (c - i) * 1000 / hz / n, (c - i) * 100 / hz / s, n / s
    printf "RSS while churning: %d -> %d KiB\n", r0, r1 }'
echo "snapshots published while churning: $((u1 - u0))"
