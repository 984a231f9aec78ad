#!/usr/bin/env bash
# Syscalls per proxied plaintext keep-alive request, by name: strace -c on
# one worker in front of nginx, over a fixed number of requests.
#
#   perf/syscalls-per-request.sh [BINARY] [REQUESTS]   (default target/release/corelink, 20000)
#
# IO=uring measures the io_uring backend (default epoll); URL_PATH=/64k a
# 64 KiB response. strace slows every
# syscall, so the loop batches differently than untraced: compare binaries
# with this script, not with untraced runs. On io_uring the sends and
# receives run inside io_uring_enter and do not appear by name.
# Needs strace, nginx (and builds corelink-load if missing).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$REPO/target/release/corelink}")"
N="${2:-20000}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-syscalls.XXXXXX")"
PORT_BACKEND=18397
PORT_PROXY=18398
LOAD="${LOAD:-$REPO/target/release/corelink-load}"
command -v strace >/dev/null || { echo "strace is needed (apt-get install -y strace)" >&2; exit 2; }
[ -x "$LOAD" ] || cargo build --release -q -p corelink-load --manifest-path "$REPO/Cargo.toml"
CALLGRIND_LIB_NEEDS=nginx
source "$REPO/perf/callgrind-lib.sh"
start_backend
start_corelink "${IO:-epoll}"
PID=$CONTENDER_PID
# Warm the pool, then trace exactly the measured requests.
"$LOAD" -c 10 -n 1000 -H 'Host: cost' "http://127.0.0.1:$PORT_PROXY${URL_PATH:-/}" >/dev/null 2>&1
strace -f -c -o "$WORK/strace.txt" -p "$PID" 2>/dev/null &
STRACE=$!
sleep 1
"$LOAD" -c 10 -n "$N" -H 'Host: cost' "http://127.0.0.1:$PORT_PROXY${URL_PATH:-/}" >/dev/null 2>&1
kill -INT $STRACE
wait $STRACE || true
echo "== $BIN, io ${IO:-epoll}: syscalls per request over $N requests"
awk -v n="$N" '$4 ~ /^[0-9]+$/ && $NF != "total" { printf "%8.3f  %s\n", $4 / n, $NF; sum += $4 }
     END { printf "%8.3f  total\n", sum / n }' "$WORK/strace.txt" | sort -rn
