#!/usr/bin/env bash
# Socket operations per proxied keep-alive request, by kind and size: what
# corelink asks of the kernel, counted from kernel tracepoints with `perf
# record` (io_uring's operations never show in strace).
#
#   perf/ops-per-request.sh [BINARY] [REQUESTS]   (default target/release/corelink, 20000)
#
# IO=uring counts io_uring submissions by opcode and completions by result
# size (a receive's completion carries a buffer: IORING_CQE_F_BUFFER);
# IO=epoll (default) counts recvfrom/sendto/writev calls by result size.
# URL_PATH=/64k a 64 KiB response (default: a small one); C=connections
# (default 4). One worker in front of nginx, as perf/syscalls-per-request.sh.
# Needs perf, nginx, root (tracepoints).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$REPO/target/release/corelink}")"
N="${2:-20000}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-ops.XXXXXX")"
PORT_BACKEND=18399
PORT_PROXY=18400
LOAD="${LOAD:-$REPO/target/release/corelink-load}"
command -v perf >/dev/null || { echo "perf is needed (apt-get install -y linux-perf)" >&2; exit 2; }
[ -x "$LOAD" ] || cargo build --release -q -p corelink-load --manifest-path "$REPO/Cargo.toml"
CALLGRIND_LIB_NEEDS=nginx
source "$REPO/perf/callgrind-lib.sh"
start_backend
start_corelink "${IO:-epoll}"
PID=$CONTENDER_PID
URL="http://127.0.0.1:$PORT_PROXY${URL_PATH:-/}"
# Warm-up: connections open, the buffer ring grows to its working size.
"$LOAD" -c "${C:-4}" -n 2000 -H 'Host: cost' "$URL" >/dev/null
if [ "${IO:-epoll}" = uring ]; then
    EVENTS=(-e io_uring:io_uring_submit_req -e io_uring:io_uring_complete)
else
    EVENTS=(-e syscalls:sys_exit_recvfrom -e syscalls:sys_exit_sendto -e syscalls:sys_exit_writev)
fi
perf record -q "${EVENTS[@]}" -p "$PID" -o "$WORK/ops.data" >/dev/null 2>&1 &
PERF=$!
sleep 1
"$LOAD" -c "${C:-4}" -n "$N" -H 'Host: cost' "$URL" >"$WORK/load.out"
sleep 0.2
kill -INT $PERF
wait $PERF || true
grep -E "requests|errors" "$WORK/load.out"
perf script -i "$WORK/ops.data" 2>/dev/null | python3 -c '
import collections, sys
n = int(sys.argv[1])
counts = collections.Counter()
def size(r):
    return ("error" if r < 0 else "0" if r == 0 else "1 B-1 KiB" if r < 1024 else "1-16 KiB" if r < 16384
            else "16 KiB" if r == 16384 else "over 16 KiB")
for line in sys.stdin:
    t = line.split()
    if "io_uring_submit_req:" in line:
        counts[("submitted", t[t.index("opcode") + 1].rstrip(","), "")] += 1
    elif "io_uring_complete:" in line:
        r = int(t[t.index("result") + 1].rstrip(","))
        kind = "receive" if int(t[t.index("cflags") + 1], 16) & 1 else "other"
        counts[("completed", kind, size(r))] += 1
    elif "sys_exit_" in line:
        r = int(t[-1], 16)
        r = r - 2**64 if r >= 2**63 else r
        call = [w for w in t if w.startswith("syscalls:sys_exit_")][0][len("syscalls:sys_exit_"):].rstrip(":")
        counts[("syscall", call, size(r))] += 1
print(f"per request, over {n} requests:")
for (what, kind, sz), c in sorted(counts.items()):
    print(f"  {what:<10} {kind:<10} {sz:<12} {c / n:6.2f}")
' "$N"
