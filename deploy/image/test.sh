#!/usr/bin/env bash
# Builds the image with deploy/image/build.sh and checks it with podman:
#  1. the image config: user 65532:65532, entrypoint, cmd;
#  2. `corelink demo --check` inside it, under podman's default seccomp
#     profile and with seccomp=unconfined (its output is printed);
#  3. `corelink run` inside it: runs as uid 65532, which I/O backend it picks
#     under each seccomp profile (the default profile refuses io_uring_setup,
#     and corelink must fall back to epoll with one log line), /admin/ready
#     and /admin/ping from outside, SIGTERM drains and exits 0;
#  4. CORELINK_IO=uring where seccomp refuses io_uring: a clear start-up error.
#
# Exit status: 0 passed, 1 failed, 77 cannot run containers here (podman or
# buildah missing, or podman unusable: .ci/run reports that as a skip).
#
# Environment: BINARY (default target/release/corelink, built when missing),
# IMAGE (default localhost/corelink:test, removed at exit unless KEEP_IMAGE=1),
# PODMAN_FLAGS (default "--runtime runc --cgroup-manager=cgroupfs", what this
# development machine needs), CONTAINERS_CONF (default: a generated file with
# `default_ulimits = []`).
set -euo pipefail
cd "$(dirname "$0")/../.."

export IMAGE=${IMAGE:-localhost/corelink:test}
read -r -a podman_flags <<<"${PODMAN_FLAGS:---runtime runc --cgroup-manager=cgroupfs}"
WAIT_SECS=15

skip() { echo "deploy/image/test.sh: SKIP: $*"; exit 77; }
fail() { echo "deploy/image/test.sh: FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

command -v podman >/dev/null || skip "podman is missing (Debian: apt-get install -y podman buildah runc)"
command -v buildah >/dev/null || skip "buildah is missing (Debian: apt-get install -y podman buildah runc)"

work=$(mktemp -d)
containers=()
cleanup() {
  for c in "${containers[@]}"; do pm rm -f "$c" >/dev/null 2>&1 || true; done
  [ "${KEEP_IMAGE:-0}" = 1 ] || pm rmi -f "$IMAGE" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
pm() { podman "${podman_flags[@]}" "$@"; }

if [ -z "${CONTAINERS_CONF:-}" ]; then
  printf '[containers]\ndefault_ulimits = []\n' >"$work/containers.conf"
  export CONTAINERS_CONF=$work/containers.conf
fi
if [ "$(id -u)" != 0 ] && ! timeout 60 podman unshare true >/dev/null 2>&1; then
  skip "not root and no usable user namespace (podman unshare failed)"
fi
if ! info=$(timeout 60 podman "${podman_flags[@]}" info 2>&1); then
  skip "podman cannot run here: $(echo "$info" | tail -n 1)"
fi

step "build $IMAGE (deploy/image/build.sh)"
timeout 300 deploy/image/build.sh >/dev/null
pm image inspect "$IMAGE" --format 'size {{.Size}} bytes'

step "image config"
user=$(pm image inspect "$IMAGE" --format '{{.Config.User}}')
entrypoint=$(pm image inspect "$IMAGE" --format '{{json .Config.Entrypoint}}')
cmd=$(pm image inspect "$IMAGE" --format '{{json .Config.Cmd}}')
echo "user $user, entrypoint $entrypoint, cmd $cmd"
[ "$user" = "65532:65532" ] || fail "image user is '$user', want 65532:65532"
[ "$entrypoint" = '["/usr/local/bin/corelink"]' ] || fail "entrypoint is $entrypoint"
[ "$cmd" = '["run","--config","/config/linkerd.yaml"]' ] || fail "cmd is $cmd"

# A container that cannot start at all here (no user namespaces, a refused
# mount) is the machine's limit, not the image's: skip. `--version` needs
# nothing but the binary and its libraries.
if ! out=$(timeout 60 podman "${podman_flags[@]}" run --rm --network none "$IMAGE" --version 2>&1); then
  if echo "$out" | grep -qiE 'OCI runtime|user namespace|newuidmap|cgroup|permission denied'; then
    skip "podman cannot start containers here: $(echo "$out" | tail -n 1)"
  fi
  fail "corelink --version in the container: $out"
fi
echo "$out"

for seccomp in default unconfined; do
  sec=()
  [ "$seccomp" = unconfined ] && sec=(--security-opt seccomp=unconfined)
  step "corelink demo --check (seccomp: $seccomp)"
  if ! out=$(timeout 120 podman "${podman_flags[@]}" run --rm --network none "${sec[@]}" "$IMAGE" demo --check 2>&1); then
    echo "$out"
    fail "demo --check failed in the container (seccomp: $seccomp)"
  fi
  echo "$out"
  echo "$out" | grep -q "reached serviceB through both sidecars, over TLS" || fail "demo --check output lacks its success line"
done

# corelink run: a plaintext router; the admin on 0.0.0.0 as in the
# Kubernetes manifests, published on a free loopback port when podman's
# network works here.
install -d -m 0755 "$work/config"
cat >"$work/config/linkerd.yaml" <<'EOF'
admin:
  ip: 0.0.0.0
  port: 9990
routers:
- protocol: http
  label: outgoing
  dtab: /svc/* => /$/inet/127.0.0.1/8080;
  servers:
  - port: 4141
    ip: 127.0.0.1
corelink:
  workers: 1
  shutdownDelayMs: 0
EOF
chmod 0644 "$work/config/linkerd.yaml"

# Waits until the container logs "corelink started" (bounded).
wait_started() {
  local c=$1 i
  for ((i = 0; i < WAIT_SECS * 10; i++)); do
    if pm logs "$c" 2>&1 | grep -q "corelink started"; then return 0; fi
    [ "$(pm inspect --format '{{.State.Running}}' "$c")" = true ] || { pm logs "$c" 2>&1 | tail -n 5; return 1; }
    sleep 0.1
  done
  pm logs "$c" 2>&1 | tail -n 5
  return 1
}

network=(-p 127.0.0.1::9990)
for seccomp in default unconfined; do
  sec=()
  [ "$seccomp" = unconfined ] && sec=(--security-opt seccomp=unconfined)
  step "corelink run (seccomp: $seccomp)"
  if ! c=$(timeout 60 podman "${podman_flags[@]}" run -d "${network[@]}" "${sec[@]}" -v "$work/config:/config:ro" "$IMAGE" 2>&1); then
    if [ "${network[0]}" = -p ]; then
      echo "notice: podman could not publish a port here ($(echo "$c" | tail -n 1)); checking without the network"
      network=(--network none)
      c=$(timeout 60 podman "${podman_flags[@]}" run -d "${network[@]}" "${sec[@]}" -v "$work/config:/config:ro" "$IMAGE")
    else
      fail "podman run: $c"
    fi
  fi
  containers+=("$c")
  wait_started "$c" || fail "corelink did not start within ${WAIT_SECS}s"
  pid=$(pm inspect --format '{{.State.Pid}}' "$c")
  uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")
  filter=$(awk '/^Seccomp:/ { print $2 }' "/proc/$pid/status")
  echo "process uid $uid, seccomp mode $filter (0 none, 2 filter)"
  [ "$uid" = 65532 ] || fail "corelink runs as uid $uid, want 65532"
  pm logs "$c" 2>&1 | grep -E "io_uring unavailable|corelink started" | sed 's/^[^ ]* *//'
  backend=$(pm logs "$c" 2>&1 | sed -n 's/.*corelink started io=\([a-z]*\).*/\1/p')
  if [ "$seccomp" = default ] && [ "$backend" = epoll ]; then
    pm logs "$c" 2>&1 | grep -q "io_uring unavailable, using epoll" || fail "fell back to epoll without saying why"
  fi
  echo "I/O backend under seccomp $seccomp: $backend"
  if [ "${network[0]}" = -p ]; then
    port=$(pm port "$c" 9990 | sed 's/.*://')
    ready=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/admin/ready")
    ping=$(curl -s -m 5 "http://127.0.0.1:$port/admin/ping")
    echo "GET /admin/ready: $ready; GET /admin/ping: $ping"
    if [ "$ready" != 200 ] || [ "$ping" != pong ]; then fail "admin endpoints did not answer as expected"; fi
  fi
  timeout 60 podman "${podman_flags[@]}" stop -t 20 "$c" >/dev/null
  code=$(pm inspect --format '{{.State.ExitCode}}' "$c")
  echo "after SIGTERM: exit $code; $(pm logs "$c" 2>&1 | tail -n 1 | sed 's/^[^ ]* *//')"
  [ "$code" = 0 ] || fail "corelink exited $code after SIGTERM"
done

step "CORELINK_IO=uring under the default seccomp profile"
c=$(timeout 60 podman "${podman_flags[@]}" run -d --network none -e CORELINK_IO=uring -v "$work/config:/config:ro" "$IMAGE")
containers+=("$c")
for ((i = 0; i < WAIT_SECS * 10; i++)); do
  [ "$(pm inspect --format '{{.State.Running}}' "$c")" = true ] || break
  pm logs "$c" 2>&1 | grep -q "corelink started" && break
  sleep 0.1
done
if [ "$(pm inspect --format '{{.State.Running}}' "$c")" = true ]; then
  pm logs "$c" 2>&1 | grep "corelink started" | sed 's/^[^ ]* *//'
  echo "notice: this podman's default seccomp profile allows io_uring"
else
  out=$(pm logs "$c" 2>&1)
  echo "exit $(pm inspect --format '{{.State.ExitCode}}' "$c"): $(echo "$out" | grep error)"
  echo "$out" | grep -q "io_uring was asked for (io: uring) but is unavailable" || fail "no clear error for CORELINK_IO=uring: $out"
fi

echo "deploy/image/test.sh: PASS"
