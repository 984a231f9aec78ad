#!/usr/bin/env bash
# Builds the image with deploy/image/build.sh and checks it with podman:
#  1. the image config: user 65532:65532, entrypoint, cmd;
#  2. `corelink demo --check` inside it, under podman's default seccomp
#     profile, under deploy/seccomp/corelink-io-uring.json (the default plus
#     io_uring) and with seccomp=unconfined (its output is printed);
#  3. `corelink run` inside it under the same three and under
#     corelink-io-uring-oci-<arch>.json (the resolved profile for containerd
#     nodes): runs as uid 65532, /admin/ready and /admin/ping from outside
#     (with corelink/io/uring in /admin/metrics.json), SIGTERM drains and
#     exits 0, and which I/O backend corelink's own log says it picked: under
#     the default profile epoll with the one "io_uring unavailable" line
#     where that profile refuses io_uring (a notice where it does not), uring
#     under both corelink profiles (a notice, not a failure, where the host
#     refuses io_uring even unconfined: kernel.io_uring_disabled, old kernel);
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
PROFILE=$PWD/deploy/seccomp/corelink-io-uring.json
case $(uname -m) in
x86_64) OCI_PROFILE=$PWD/deploy/seccomp/corelink-io-uring-oci-amd64.json ;;
aarch64) OCI_PROFILE=$PWD/deploy/seccomp/corelink-io-uring-oci-arm64.json ;;
*) OCI_PROFILE= ;;
esac

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
# podman options for a seccomp setting: default, corelink-io-uring,
# corelink-io-uring-oci, unconfined.
seccomp_opts() {
  case $1 in
  default) sec=() ;;
  corelink-io-uring) sec=(--security-opt "seccomp=$PROFILE") ;;
  corelink-io-uring-oci) sec=(--cap-drop ALL --security-opt "seccomp=$OCI_PROFILE") ;;
  unconfined) sec=(--security-opt seccomp=unconfined) ;;
  esac
}

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

[ -r "$PROFILE" ] || fail "$PROFILE is missing"
if command -v python3 >/dev/null; then
  step "seccomp profile"
  deploy/seccomp/make-profile.py --verify || fail "deploy/seccomp: a profile is not the upstream default plus the io_uring rule"
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

for seccomp in default corelink-io-uring unconfined; do
  seccomp_opts "$seccomp"
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
declare -A backend_of reason_of
run_profiles=(default corelink-io-uring)
[ -n "$OCI_PROFILE" ] && run_profiles+=(corelink-io-uring-oci)
for seccomp in "${run_profiles[@]}" unconfined; do
  seccomp_opts "$seccomp"
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
  case $backend in
  uring) ;;
  epoll)
    reason_of[$seccomp]=$(pm logs "$c" 2>&1 | sed -n 's/.*io_uring unavailable, using epoll reason=//p')
    [ -n "${reason_of[$seccomp]}" ] || fail "fell back to epoll without saying why (seccomp: $seccomp)"
    ;;
  *) fail "no 'corelink started io=...' line in the log (seccomp: $seccomp)" ;;
  esac
  backend_of[$seccomp]=$backend
  echo "I/O backend under seccomp $seccomp: $backend"
  if [ "${network[0]}" = -p ]; then
    port=$(pm port "$c" 9990 | sed 's/.*://')
    ready=$(curl -s -m 5 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/admin/ready")
    ping=$(curl -s -m 5 "http://127.0.0.1:$port/admin/ping")
    echo "GET /admin/ready: $ready; GET /admin/ping: $ping"
    if [ "$ready" != 200 ] || [ "$ping" != pong ]; then fail "admin endpoints did not answer as expected"; fi
    gauge=$(curl -s -m 5 "http://127.0.0.1:$port/admin/metrics.json" | grep -o '"corelink/io/uring": *[01]' | grep -o '[01]$' || true)
    echo "GET /admin/metrics.json: corelink/io/uring $gauge"
    [ "$gauge" = "$([ "$backend" = uring ] && echo 1 || echo 0)" ] || fail "corelink/io/uring is '$gauge' with io=$backend"
  fi
  timeout 60 podman "${podman_flags[@]}" stop -t 20 "$c" >/dev/null
  code=$(pm inspect --format '{{.State.ExitCode}}' "$c")
  echo "after SIGTERM: exit $code; $(pm logs "$c" 2>&1 | tail -n 1 | sed 's/^[^ ]* *//')"
  [ "$code" = 0 ] || fail "corelink exited $code after SIGTERM"
done

step "I/O backend by seccomp profile (from corelink's log)"
if [ "${backend_of[unconfined]}" != uring ]; then
  echo "notice: io_uring is unavailable here even without seccomp (${reason_of[unconfined]}):"
  echo "  whether a profile lets it through cannot be checked on this host"
else
  if [ "${backend_of[default]}" = epoll ]; then
    echo "default profile: epoll (io_uring refused: ${reason_of[default]})"
  else
    echo "notice: this podman's default seccomp profile allows io_uring (default: ${backend_of[default]}):"
    echo "  corelink-io-uring.json has nothing to lift here"
  fi
  [ "${backend_of[corelink-io-uring]}" = uring ] ||
    fail "io_uring still refused under $PROFILE: ${reason_of[corelink-io-uring]}"
  echo "corelink-io-uring.json: uring"
  if [ -n "$OCI_PROFILE" ]; then
    [ "${backend_of[corelink-io-uring-oci]}" = uring ] ||
      fail "io_uring still refused under $OCI_PROFILE: ${reason_of[corelink-io-uring-oci]}"
    echo "$(basename "$OCI_PROFILE"): uring"
  fi
fi

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
