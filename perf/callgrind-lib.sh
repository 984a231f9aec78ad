# Shared by the perf/ scripts that run corelink in front of nginx: an nginx
# backend, a one-worker corelink config in front of it, starting and stopping
# corelink, and a callgrind count of the instructions it runs for a given
# number of proxied requests.
# Source it after setting WORK, PORT_BACKEND, PORT_PROXY and LOAD; IO=uring
# measures the io_uring backend (default epoll). URL_PATH=/64k requests a
# 64 KiB static file instead of the small response (default /).

# CALLGRIND_LIB_NEEDS: the tools a script needs (the scripts that run no
# callgrind set it: cpu-split.sh, placement.sh, ops- and syscalls-per-request.sh).
for tool in ${CALLGRIND_LIB_NEEDS:-valgrind nginx}; do
    command -v "$tool" >/dev/null || { echo "$tool is needed (apt-get install -y $tool)" >&2; exit 2; }
done
for p in $PORT_BACKEND $PORT_PROXY; do
    if (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "port $p is busy" >&2; exit 2; fi
done

# nginx serving a small static response, and corelink's config in front of it.
start_backend() {
    mkdir -p "$WORK/nginx"
    head -c 65536 /dev/zero | tr '\0' x >"$WORK/64k"
    # nginx's workers drop root: they must reach the file.
    chmod 755 "$WORK"
    chmod 644 "$WORK/64k"
    cat >"$WORK/nginx/nginx.conf" <<NGINX
worker_processes 1;
pid $WORK/nginx/nginx.pid;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $WORK/nginx; proxy_temp_path $WORK/nginx; fastcgi_temp_path $WORK/nginx;
  uwsgi_temp_path $WORK/nginx; scgi_temp_path $WORK/nginx;
  server { listen 127.0.0.1:$PORT_BACKEND; keepalive_requests 1000000;
           location / { return 200 "a small response body\n"; }
           location /64k { alias $WORK/64k; } }
}
NGINX
    nginx -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" -g 'daemon off;' &
    NGINX_PID=$!
    trap 'stop_contender; kill $NGINX_PID 2>/dev/null; rm -rf "$WORK"' EXIT
    cat >"$WORK/corelink.yaml" <<YAML
admin: {port: 0}
routers:
- protocol: http
  label: cost
  dtab: |
    /svc/* => /\$/inet/127.0.0.1/$PORT_BACKEND;
  servers: [{port: $PORT_PROXY, ip: 127.0.0.1}]
corelink: {workers: 1, shutdownDelayMs: 0, io: ${IO:-epoll}}
YAML
}

# Exits unless every file given after the build command $1 is built.
require_built() {
    local build=$1 f
    shift
    for f in "$@"; do
        [ -x "$f" ] || { echo "missing $f: $build" >&2; exit 2; }
    done
}

# The contender (a corelink or another proxy) a script runs at the moment:
# stopped by `stop_contender`, and on any exit once `start_backend` ran.
CONTENDER_PID=""

# Starts $BIN on the config above with backend $1 (epoll, uring), under the
# command words after it if any (`taskset -c 1`, valgrind), and waits until
# it listens (up to 30 s: valgrind starts slowly); sets CONTENDER_PID.
start_corelink() {
    local io=$1
    shift
    sed "s/io: [a-z]*}/io: $io}/" "$WORK/corelink.yaml" >"$WORK/c-$io.yaml"
    "$@" "$BIN" run --config "$WORK/c-$io.yaml" >"$WORK/run.log" 2>&1 &
    CONTENDER_PID=$!
    for _ in $(seq 1 300); do
        grep -qs "admin listening" "$WORK/run.log" && return
        sleep 0.1
    done
    echo "corelink ($io) did not start:" >&2
    cat "$WORK/run.log" >&2
    exit 1
}

# Stops the running contender and waits until it has exited (its port is
# the next one's).
stop_contender() {
    if [ -n "$CONTENDER_PID" ]; then
        kill "$CONTENDER_PID" 2>/dev/null || true
        wait "$CONTENDER_PID" 2>/dev/null || true
        CONTENDER_PID=""
    fi
}

# User and system clock ticks process $1 has used.
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }

# Runs binary $1 under callgrind serving $2 requests over 10 keep-alive
# connections; prints the path of its callgrind file.
callgrind_run() {
    local requests=$2
    local out="$WORK/cg.$requests.$RANDOM"
    BIN=$1 start_corelink "${IO:-epoll}" valgrind --tool=callgrind --callgrind-out-file="$out.%p" --trace-children=no
    "$LOAD" -c 10 -n "$requests" -H 'Host: cost' "http://127.0.0.1:$PORT_PROXY${URL_PATH:-/}" >/dev/null 2>&1
    stop_contender
    ls "$out".* | head -n1
}

# Total user-space instructions (Ir) of one corelink run ($1) serving $2
# requests over 10 keep-alive connections.
instructions() {
    grep -h "^totals:\|^summary:" "$(callgrind_run "$1" "$2")" | head -n1 | awk '{print $2}'
}

# Instructions per request of binary $1: the difference of a run with
# $BASE + $N requests and one with $BASE, over $N (start-up and shutdown
# cancel out).
per_request() {
    local small large
    small=$(instructions "$1" "$BASE")
    large=$(instructions "$1" $((BASE + N)))
    echo $(( (large - small) / N ))
}
