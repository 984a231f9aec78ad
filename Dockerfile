# syntax=docker/dockerfile:1
#
# corelink's container image:
#
#   docker build -t corelink .
#   docker run --rm corelink demo --check
#
# Two stages: the official Rust image builds the release binary; the runtime
# is distroless (glibc, libgcc, CA certificates, /tmp, no shell, no package
# manager) and runs as uid 65532. The builder is Debian 12 (bookworm) like
# the runtime, so the binary needs no newer glibc than the runtime has.
#
# deploy/image/build.sh builds the same image with buildah from scratch,
# without pulling anything (the release binary and the libraries `ldd` lists
# on the build machine); keep the two in step (user, entrypoint, cmd, env,
# ports, labels). docs/kubernetes.md describes both.

ARG RUST_VERSION=1.95

FROM docker.io/library/rust:${RUST_VERSION}-bookworm AS build
WORKDIR /src
COPY . .
# The repository's release profile keeps line tables (debug = 1) for perf;
# the image drops them (--strip-debug keeps the symbol table, so backtraces
# still name functions).
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin corelink \
 && install -D -m 0755 target/release/corelink /out/corelink \
 && strip --strip-debug /out/corelink

FROM gcr.io/distroless/cc-debian12:nonroot
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="corelink" \
      org.opencontainers.image.description="A thread-per-core sidecar proxy for linker-to-linker TLS (linkerd 1.x model)" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="gcr.io/distroless/cc-debian12:nonroot"
COPY --from=build /out/corelink /usr/local/bin/corelink
# `corelink demo` writes its CA and configs under TMPDIR (distroless's /tmp is
# mode 1777; mount an emptyDir there with readOnlyRootFilesystem).
ENV TMPDIR=/tmp
# linkerd's default server port, the scenario's outgoing (4141) and incoming
# (4143, TLS) routers, and the admin server.
EXPOSE 4140 4141 4143 9990
# Numeric, so Kubernetes' runAsNonRoot can check it.
USER 65532:65532
WORKDIR /home/nonroot
ENTRYPOINT ["/usr/local/bin/corelink"]
CMD ["run", "--config", "/config/linkerd.yaml"]
