#!/usr/bin/env bash
# Where a small plaintext keep-alive request's CPU goes: user space against
# the kernel, for the bare forwarder (the floor), corelink on epoll and
# corelink on io_uring (docs/io-backends.md, "Kernel and user time").
#
#   perf/cpu-split.sh [ROUNDS=3] [SECONDS=5]
#
# One worker each in front of the same nginx, corelink-load -c 64, the
# contenders interleaved in every round; user and system time are read from
# /proc/PID/stat before and after each run and divided by the requests it
# served. The medians are printed last. BIN=PATH measures another corelink
# binary; BASE=PATH adds a contender, `base`: that binary on io_uring
# in the same rounds (a change against the build before it). NGINX=1 adds
# nginx as a proxy (one process, `master_process off`, upstream keepalive 64,
# as perf/compare configures it), for corelink's ratio to nginx measured the
# same way as its ratio to the forwarder. PROFILE=1 adds
# a round that samples each contender with `perf record -e cpu-clock`
# (software clock: works in a VM; the sampling costs the profiled process,
# so that round stays out of the medians) and
# sorts its kernel time into the io_uring machinery, readiness (epoll and the
# sockets' poll), the scheduler, the syscall entry and descriptor lookups,
# and the rest (the TCP/IP path all contenders share).
# Needs nginx and a release build:
#   cargo build --release -p corelink -p corelink-load --bin corelink --bin corelink-load --example bare_forwarder
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=${1:-3}
SECS=${2:-5}
BIN="$(realpath "${BIN:-$REPO/target/release/corelink}")"
FWD="$REPO/target/release/examples/bare_forwarder"
LOAD="${LOAD:-$REPO/target/release/corelink-load}"
if [ -n "${PROFILE:-}" ]; then
    command -v perf >/dev/null || { echo "PROFILE=1 needs perf (apt-get install -y linux-perf)" >&2; exit 2; }
fi
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-cpu-split.XXXXXX")"
PORT_BACKEND=18391
PORT_PROXY=18392
PORT_FWD=18393
if (exec 3<>"/dev/tcp/127.0.0.1/$PORT_FWD") 2>/dev/null; then echo "port $PORT_FWD is busy" >&2; exit 2; fi
CALLGRIND_LIB_NEEDS=nginx
source "$REPO/perf/callgrind-lib.sh"
CONTENDERS="fwd epoll uring"
if [ -n "${BASE:-}" ]; then
    BASE="$(realpath "$BASE")"
    CONTENDERS="$CONTENDERS base"
fi
if [ -n "${NGINX:-}" ]; then
    CONTENDERS="$CONTENDERS nginx"
fi
require_built "cargo build --release -p corelink -p corelink-load --bin corelink --bin corelink-load --example bare_forwarder" \
    "$BIN" "$FWD" "$LOAD"
start_backend
TICKS=$(getconf CLK_TCK)

# Waits up to 5 s until port $1 listens; otherwise says that $2 did not
# start, shows the files after it, and exits.
wait_listening() {
    local listen=$1 what=$2
    shift 2
    for _ in $(seq 1 50); do
        (exec 3<>"/dev/tcp/127.0.0.1/$listen") 2>/dev/null && return
        sleep 0.1
    done
    echo "$what did not start:" >&2
    cat "$@" >&2
    exit 1
}

# Starts contender $1 (fwd, epoll, uring, base, nginx): sets CONTENDER_PID and `port`.
start() {
    if [ "$1" = nginx ]; then
        mkdir -p "$WORK/nginx-proxy"
        cat >"$WORK/nginx-proxy/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx-proxy/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx-proxy; proxy_temp_path $WORK/nginx-proxy; fastcgi_temp_path $WORK/nginx-proxy;
  uwsgi_temp_path $WORK/nginx-proxy; scgi_temp_path $WORK/nginx-proxy;
  upstream up { server 127.0.0.1:$PORT_BACKEND; keepalive 64; }
  server { listen 127.0.0.1:$PORT_FWD; keepalive_requests 1000000;
           location / { proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
NGINX
        # One process doing the work, so its /proc times are nginx's.
        nginx -p "$WORK/nginx-proxy" -c "$WORK/nginx-proxy/nginx.conf" -e "$WORK/nginx-proxy/error.log" \
            -g 'daemon off; master_process off;' >"$WORK/run.log" 2>&1 &
        CONTENDER_PID=$!
        port=$PORT_FWD
        wait_listening "$PORT_FWD" nginx "$WORK/run.log" "$WORK/nginx-proxy/error.log"
        return
    fi
    if [ "$1" = base ]; then
        local measured=$BIN
        BIN=$BASE
        start_corelink uring
        BIN=$measured
        port=$PORT_PROXY
        return
    fi
    if [ "$1" != fwd ]; then
        start_corelink "$1"
        port=$PORT_PROXY
        return
    fi
    "$FWD" "127.0.0.1:$PORT_FWD" "127.0.0.1:$PORT_BACKEND" >"$WORK/run.log" 2>&1 &
    CONTENDER_PID=$!
    port=$PORT_FWD
    wait_listening "$PORT_FWD" "the forwarder" "$WORK/run.log"
}

: >"$WORK/results"
LAST=$ROUNDS
[ -n "${PROFILE:-}" ] && LAST=$((ROUNDS + 1))
for round in $(seq 1 "$LAST"); do
    for c in $CONTENDERS; do
        start "$c"
        # Warm up: connections open, pools filled, the allocator settled.
        "$LOAD" -c 64 -d 1s -H 'Host: cost' "http://127.0.0.1:$port/" >/dev/null 2>&1
        read -r u0 s0 < <(cpu_ticks "$CONTENDER_PID")
        "$LOAD" -c 64 -d "${SECS}s" -H 'Host: cost' "http://127.0.0.1:$port/" >"$WORK/load.out" 2>&1 &
        load=$!
        profiled=""
        if [ "$round" -gt "$ROUNDS" ]; then
            profiled=yes
            sleep 0.5
            perf record -q -F 2000 -e cpu-clock -p "$CONTENDER_PID" -o "$WORK/$c.data" -- sleep "$((SECS - 1))" >/dev/null 2>&1 || true
        fi
        wait $load
        read -r u1 s1 < <(cpu_ticks "$CONTENDER_PID")
        n=$(grep -oE "requests +[0-9]+" "$WORK/load.out" | grep -oE "[0-9]+$") || {
            echo "the load generator reported no requests for $c:" >&2
            cat "$WORK/load.out" >&2
            exit 1
        }
        line=$(awk -v c="$c" -v r="$round" -v n="$n" -v t="$TICKS" -v du=$((u1 - u0)) -v ds=$((s1 - s0)) 'BEGIN {
            u = du / t * 1e6 / n; s = ds / t * 1e6 / n
            printf "round %d %-6s user %5.2f  kernel %5.2f  total %5.2f µs/req  (%d requests)", r, c, u, s, u + s, n
        }')
        if [ -n "$profiled" ]; then
            echo "$line (profiled)"
        else
            echo "$line" | tee -a "$WORK/results"
        fi
        if [ -n "$profiled" ] && [ -f "$WORK/$c.data" ]; then
            # Requests during the profile: the run's rate times its length.
            echo "$c $(awk -v n="$n" -v s="$SECS" 'BEGIN { print n / s * (s - 1) }')" >>"$WORK/profiled"
        fi
        stop_contender
    done
done

echo "== medians over $ROUNDS rounds, µs of CPU per request"
for c in $CONTENDERS; do
    median() { grep " $c " "$WORK/results" | awk -v f="$1" '{ print $f }' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
    printf "%-6s user %5.2f  kernel %5.2f  total %5.2f\n" "$c" "$(median 5)" "$(median 7)" "$(median 9)"
done

if [ -n "${PROFILE:-}" ]; then
    echo "== the profiled round's time by what it does, µs per request (perf record -e cpu-clock)"
    for c in $CONTENDERS; do
        [ -f "$WORK/$c.data" ] || continue
        requests=$(awk -v c="$c" '$1 == c { print $2 }' "$WORK/profiled")
        perf script -i "$WORK/$c.data" -F ip,sym 2>/dev/null | python3 -c '
import sys
c, requests = sys.argv[1], float(sys.argv[2])
groups = {"io_uring": 0, "readiness": 0, "scheduler": 0, "syscall, fd": 0, "rest": 0}
user = 0
sched = {"finish_task_switch.isra.0", "__schedule", "schedule", "pick_next_task_fair", "dequeue_task_fair",
         "enqueue_task_fair", "update_curr", "try_to_wake_up", "update_load_avg", "__switch_to",
         "__switch_to_asm", "switch_mm_irqs_off", "schedule_hrtimeout_range", "select_task_rq_fair"}
entry = {"do_syscall_64", "entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "syscall_exit_to_user_mode",
         "syscall_return_via_sysret", "exit_to_user_mode_prepare", "fdget", "fget", "fput", "__fdget",
         "__sys_sendto", "__sys_recvfrom", "__x64_sys_sendto", "__x64_sys_recvfrom",
         "__x64_sys_io_uring_enter", "__do_sys_io_uring_enter"}
for line in sys.stdin:
    parts = line.split(None, 1)
    if len(parts) < 2:
        continue
    ip, sym = parts[0], parts[1].strip()
    if not ip.startswith("ffff"):
        user += 1
    elif sym.startswith(("io_", "__io_", "tctx_", "llist_")):
        groups["io_uring"] += 1
    elif sym.startswith(("ep_", "do_epoll", "__x64_sys_epoll", "sock_poll", "tcp_poll", "__pollwait")):
        groups["readiness"] += 1
    elif sym in sched:
        groups["scheduler"] += 1
    elif sym in entry:
        groups["syscall, fd"] += 1
    else:
        groups["rest"] += 1
# 2,000 samples a second: 500 µs each.
us = lambda samples: samples * 500 / requests
print(f"{c:6} user {us(user):5.2f}  kernel {us(sum(groups.values())):5.2f}: " +
      ", ".join(f"{k} {us(v):.2f}" for k, v in groups.items()))
' "$c" "$requests"
    done
fi
