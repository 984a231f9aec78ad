#!/usr/bin/env bash
# CPU per request by where the scheduler may run things: corelink (one
# worker), its nginx backend and corelink-load pinned to the two CPUs in
# three ways, and left unpinned as perf/compare leaves them
# (docs/io-backends.md, "epoll at 64 KiB: two modes, and placement").
#
#   perf/placement.sh [ROUNDS=3] [SECONDS=4]
#
# Placements (CPU of corelink / nginx / the load): apart 1/0/0, together
# 1/1/0, with-load 0/1/0, unpinned. URL_PATH picks the response (default
# /64k, the 64 KiB file; / is the small one); IOS the backends (default
# "epoll uring"); BIN another corelink binary. Needs nginx, taskset and
# two CPUs, and a release build:
#   cargo build --release -p corelink -p corelink-load --bin corelink --bin corelink-load
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=${1:-3}
SECS=${2:-4}
BIN="$(realpath "${BIN:-$REPO/target/release/corelink}")"
LOAD="${LOAD:-$REPO/target/release/corelink-load}"
URL_PATH=${URL_PATH:-/64k}
command -v taskset >/dev/null || { echo "taskset is needed (util-linux)" >&2; exit 2; }
[ "$(nproc)" -ge 2 ] || { echo "needs two CPUs" >&2; exit 2; }
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-placement.XXXXXX")"
PORT_BACKEND=18394
PORT_PROXY=18395
CALLGRIND_LIB_NEEDS=nginx
source "$REPO/perf/callgrind-lib.sh"
require_built "cargo build --release -p corelink -p corelink-load --bin corelink --bin corelink-load" "$BIN" "$LOAD"
start_backend
sleep 0.5

# Pins nginx (master and workers) to CPU list $1.
pin_nginx() {
    local p
    for p in $NGINX_PID $(pgrep -P "$NGINX_PID"); do
        taskset -pc "$1" "$p" >/dev/null
    done
}

: >"$WORK/results"
for round in $(seq 1 "$ROUNDS"); do
    for io in ${IOS:-epoll uring}; do
        for placement in apart together with-load unpinned; do
            case $placement in
                apart) proxy_cpu=1 nginx_cpu=0 load_cpu=0 ;;
                together) proxy_cpu=1 nginx_cpu=1 load_cpu=0 ;;
                with-load) proxy_cpu=0 nginx_cpu=1 load_cpu=0 ;;
                unpinned) proxy_cpu=0,1 nginx_cpu=0,1 load_cpu=0,1 ;;
            esac
            pin_nginx "$nginx_cpu"
            start_corelink "$io" taskset -c "$proxy_cpu"
            taskset -c "$load_cpu" "$LOAD" -c 64 -d 1s -H 'Host: cost' "http://127.0.0.1:$PORT_PROXY$URL_PATH" >/dev/null 2>&1
            read -r u0 s0 < <(cpu_ticks "$CONTENDER_PID")
            taskset -c "$load_cpu" "$LOAD" -c 64 -d "${SECS}s" -H 'Host: cost' \
                "http://127.0.0.1:$PORT_PROXY$URL_PATH" >"$WORK/load.out" 2>&1
            read -r u1 s1 < <(cpu_ticks "$CONTENDER_PID")
            n=$(grep -oE "requests +[0-9]+" "$WORK/load.out" | grep -oE "[0-9]+$") || {
                cat "$WORK/load.out" >&2
                exit 1
            }
            awk -v r="$round" -v io="$io" -v p="$placement" -v n="$n" -v t="$(getconf CLK_TCK)" \
                -v du=$((u1 - u0)) -v ds=$((s1 - s0)) 'BEGIN {
                printf "round %d %-5s %-9s user %5.1f  kernel %5.1f  total %5.1f µs/req  (%d requests)\n",
                    r, io, p, du / t * 1e6 / n, ds / t * 1e6 / n, (du + ds) / t * 1e6 / n, n
            }' | tee -a "$WORK/results"
            stop_contender
        done
    done
done

echo "== medians over $ROUNDS rounds, µs of CPU per request ($URL_PATH)"
for io in ${IOS:-epoll uring}; do
    for placement in apart together with-load unpinned; do
        m=$(awk -v io="$io" -v p="$placement" '$3 == io && $4 == p { print $10 }' "$WORK/results" | sort -n |
            awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
        printf "%-5s %-9s %s\n" "$io" "$placement" "$m"
    done
done
