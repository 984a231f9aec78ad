#!/usr/bin/env bash
# Makes the certificates of the write-up's scenario with `corelink certs` and
# prints them as Kubernetes Secrets (namespace prod) on stdout:
#
#   deploy/kubernetes/make-secrets.sh ~/corelink-certs | kubectl apply -f -
#
#   servicea-tls, serviceb-tls   one per service, for the sidecar variant
#                                (name = the Service's name, which the
#                                outgoing router's boundPath TLS checks)
#   corelink-node-tls            one per node, name "corelink", for the
#                                DaemonSet variant
#
# Each Secret holds cacertificate.pem, certificate.pem and key.pem, the names
# the configs read under /certificates. The CA is made in OUT_DIR/ca on the
# first run and reused afterwards; its key (OUT_DIR/ca/cakey.pem) stays
# there: never deploy it. Running again issues new certificates (renewal);
# corelink serves the new files within 2 s of the Secret's update, without a
# restart.
#
# Environment: CORELINK (the binary; default `corelink` on PATH, else
# target/release/corelink), NAMESPACE (default prod), DAYS (validity,
# default 365).
set -euo pipefail

usage() { echo "usage: $0 OUT_DIR   (certificates and the CA key are written there; Secrets go to stdout)" >&2; exit 2; }
[ $# -eq 1 ] || usage
out=$1
namespace=${NAMESPACE:-prod}
days=${DAYS:-365}

repo=$(cd "$(dirname "$0")/../.." && pwd)
if [ -n "${CORELINK:-}" ]; then
  corelink=$CORELINK
elif command -v corelink >/dev/null; then
  corelink=corelink
elif [ -x "$repo/target/release/corelink" ]; then
  corelink=$repo/target/release/corelink
else
  echo "make-secrets.sh: no corelink binary: put it on PATH, set CORELINK, or run cargo build --release" >&2
  exit 1
fi

mkdir -p "$out"
if [ -f "$out/ca/cakey.pem" ]; then
  echo "make-secrets.sh: reusing the CA in $out/ca" >&2
else
  "$corelink" certs ca --out "$out/ca"
fi

# corelink prints the Secret without a namespace; the manifests all name
# theirs, so add it under metadata.
first=1
issue() {
  local name=$1 secret=$2
  [ "$first" = 1 ] || echo "---"
  first=0
  "$corelink" certs issue --ca "$out/ca" --name "$name" --out "$out/$name" --days "$days" --force \
    --k8s-secret "$secret" |
    awk -v ns="$namespace" '{ print } /^metadata:$/ { print "  namespace: " ns }'
}
issue servicea servicea-tls
issue serviceb serviceb-tls
issue corelink corelink-node-tls
