#!/usr/bin/env bash
# Builds corelink's container image with buildah FROM scratch, pulling
# nothing: the release binary, the shared libraries `ldd` lists for it on this
# (Debian) machine and the dynamic loader, a minimal /etc (passwd and group
# with the non-root user 65532, as distroless's `nonroot`; nsswitch.conf; the
# CA bundle, which corelink reads for client TLS without caCertPath/trustCerts),
# and a writable /tmp. User, entrypoint, cmd, env, ports and labels are the
# Dockerfile's.
#
#   deploy/image/build.sh                 # image localhost/corelink:dev
#   IMAGE=corelink:0.1.0 deploy/image/build.sh
#   BINARY=/path/to/corelink deploy/image/build.sh
#
# BINARY defaults to target/release/corelink, built with
# `cargo build --release --locked` when it is missing. Prints the image name.
set -euo pipefail
cd "$(dirname "$0")/../.."

IMAGE=${IMAGE:-localhost/corelink:dev}
BINARY=${BINARY:-target/release/corelink}
VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)
REVISION=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

die() { echo "deploy/image/build.sh: $*" >&2; exit 1; }

command -v buildah >/dev/null || die "buildah is missing (Debian: apt-get install -y buildah)"
command -v ldd >/dev/null || die "ldd is missing"
[ -r "$CA_BUNDLE" ] || die "$CA_BUNDLE is missing (Debian: apt-get install -y ca-certificates)"
if [ ! -x "$BINARY" ]; then
  echo "building $BINARY (cargo build --release --locked)" >&2
  cargo build --release --locked --bin corelink
fi
[ -x "$BINARY" ] || die "$BINARY is not an executable"

work=$(mktemp -d)
ctr=""
cleanup() {
  if [ -n "$ctr" ]; then buildah rm "$ctr" >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
root=$work/rootfs

# The binary, without its DWARF line tables (as the Dockerfile does).
install -D -m 0755 "$BINARY" "$root/usr/local/bin/corelink"
strip --strip-debug "$root/usr/local/bin/corelink"

# Shared libraries and the loader, at the paths the binary asks for (the
# loader's path is written in the ELF header; libraries are found in
# /lib/x86_64-linux-gnu as on the build machine). `cp -L` copies the files
# the symlinks point to.
libs=$(ldd "$BINARY" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }')
[ -n "$libs" ] || die "ldd listed no libraries for $BINARY (a static binary needs none: remove this check)"
for lib in $libs; do
  install -d "$root$(dirname "$lib")"
  cp -L "$lib" "$root$lib"
done

# /etc: users, name service, CA certificates. Kubernetes and podman mount
# /etc/hosts and /etc/resolv.conf themselves.
install -d "$root/etc/ssl/certs" "$root/home/nonroot" "$root/tmp"
cat >"$root/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
cat >"$root/etc/group" <<'EOF'
root:x:0:
nobody:x:65534:
nonroot:x:65532:
EOF
echo "hosts: files dns" >"$root/etc/nsswitch.conf"
cp -L "$CA_BUNDLE" "$root/etc/ssl/certs/ca-certificates.crt"
chmod 1777 "$root/tmp"

ctr=$(buildah from scratch)
buildah copy --quiet "$ctr" "$root/" / >/dev/null
# buildah copy makes files root-owned; the user's home is its own.
buildah copy --quiet --chown 65532:65532 "$ctr" "$root/home/nonroot" /home/nonroot >/dev/null
buildah config \
  --user 65532:65532 \
  --workingdir /home/nonroot \
  --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --env TMPDIR=/tmp \
  --port 4140/tcp --port 4141/tcp --port 4143/tcp --port 9990/tcp \
  --entrypoint '["/usr/local/bin/corelink"]' \
  --cmd '["run", "--config", "/config/linkerd.yaml"]' \
  --label org.opencontainers.image.title=corelink \
  --label "org.opencontainers.image.description=A thread-per-core sidecar proxy for linker-to-linker TLS (linkerd 1.x model)" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label "org.opencontainers.image.version=$VERSION" \
  --label "org.opencontainers.image.revision=$REVISION" \
  --label org.opencontainers.image.base.name=scratch \
  "$ctr"
buildah commit --quiet --format oci --rm "$ctr" "$IMAGE" >/dev/null
ctr=""
echo "$IMAGE"
