#!/usr/bin/env bash
# Validates the fixtures, and objects made by the builders (`k8s-testapi
# --dump`), against the Kubernetes OpenAPI schemas with the PyPI package
# kubernetes-validate (offline; it ships the schemas). Fails on any error.
#
#   crates/k8s-testapi/validate-fixtures.sh            # Kubernetes 1.34.0
#   K8S_VERSION=1.37.0 crates/k8s-testapi/validate-fixtures.sh
#
# Checked with kubernetes-validate 1.37.0, `--strict` (unknown fields fail).
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION=${K8S_VERSION:-1.34.0}

if command -v kubernetes-validate >/dev/null 2>&1; then
  kv=(kubernetes-validate)
elif python3 -c 'import kubernetes_validate' 2>/dev/null; then
  kv=(python3 -m kubernetes_validate)   # installed, its script not on PATH
else
  echo "kubernetes-validate is missing: pip install kubernetes-validate==1.37.0" >&2
  exit 1
fi

generated=$(mktemp -d)
trap 'rm -rf "$generated"' EXIT
cargo run --quiet -p corelink-k8s-testapi --bin k8s-testapi -- --dump "$generated"

files=(fixtures/*.json "$generated"/*.json)
echo "validating ${#files[@]} objects against Kubernetes ${K8S_VERSION} (kubernetes-validate $("${kv[@]}" --version))"
# kubernetes-validate exits non-zero when any file fails.
"${kv[@]}" --strict -k "$K8S_VERSION" "${files[@]}"
