#!/usr/bin/env bash
# Validates the Kubernetes manifests offline, with no cluster:
#  1. every YAML document under deploy/kubernetes, and the Secrets
#     make-secrets.sh prints, against the Kubernetes API schemas
#     (kubernetes-validate --strict: unknown fields are errors), for each
#     version in K8S_VERSIONS;
#  2. the wiring between them: each workload's corelink container mounts a
#     ConfigMap holding linkerd.yaml at /config (the image's CMD reads
#     /config/linkerd.yaml) and a Secret at /certificates, and both exist;
#  3. each embedded linkerd config with `corelink check`, its /certificates
#     paths pointing at the Secret's files (and POD_IP/NODE_NAME set, as the
#     downward API does). A config corelink rejects only for an io.l5d.k8s
#     part it does not have yet (today: the io.l5d.k8s.daemonset and
#     io.l5d.k8s.localnode transformers of the DaemonSet variant) is reported
#     as expected, and checked again without those parts (the io.l5d.k8s.*
#     transformers left out, an io.l5d.k8s.configMap interpreter replaced by
#     the default one), which must pass: that checks everything else
#     (namer, routers, ports, dtabs, TLS keys and files, boundPath names).
#     Any other error fails.
#
# Needs kubernetes-validate (pip install kubernetes-validate; it brings
# PyYAML) and a corelink binary (CORELINK, else target/release/corelink,
# else `corelink` on PATH). Installs nothing.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
K8S_VERSIONS=${K8S_VERSIONS:-1.30.0 1.37.0}

die() { echo "deploy/kubernetes/validate.sh: $*" >&2; exit 1; }

if command -v kubernetes-validate >/dev/null; then
  kv=(kubernetes-validate)
elif python3 -c 'import kubernetes_validate' 2>/dev/null; then
  kv=(python3 -m kubernetes_validate)   # installed, its script not on PATH
else
  die "kubernetes-validate is missing: pip install kubernetes-validate"
fi
python3 -c 'import yaml' 2>/dev/null || die "python3 with PyYAML is missing (pip install kubernetes-validate brings it)"
if [ -n "${CORELINK:-}" ]; then
  corelink=$CORELINK
elif [ -x "$repo/target/release/corelink" ]; then
  corelink=$repo/target/release/corelink
elif command -v corelink >/dev/null; then
  corelink=$(command -v corelink)
else
  die "no corelink binary (for make-secrets.sh and corelink check): cargo build --release, or set CORELINK"
fi
export CORELINK=$corelink

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "kubernetes-validate $("${kv[@]}" --version), $("$corelink" --version)"

# 1. Schemas.
mapfile -t files < <(cd "$here" && find . -type f \( -name '*.yaml' -o -name '*.yml' \) | sed 's|^\./||' | sort)
[ "${#files[@]}" -gt 0 ] || die "no manifests under $here"
"$here/make-secrets.sh" "$tmp/certs" >"$tmp/secrets.yaml" 2>"$tmp/make-secrets.log" ||
  { cat "$tmp/make-secrets.log" >&2; die "make-secrets.sh failed"; }
cp "$tmp/secrets.yaml" "$tmp/make-secrets.out.yaml"
docs=$(cd "$here" && python3 -c '
import sys, yaml
n = 0
for f in sys.argv[1:]:
    n += sum(1 for d in yaml.safe_load_all(open(f)) if d is not None)
print(n)' "${files[@]}" "$tmp/make-secrets.out.yaml")
for version in $K8S_VERSIONS; do
  if ! out=$(cd "$here" && "${kv[@]}" --strict --quiet -k "$version" "${files[@]}" "$tmp/make-secrets.out.yaml" 2>&1); then
    echo "$out"
    die "schema validation failed against Kubernetes $version"
  fi
  [ -z "$out" ] || echo "$out"
  echo "schemas: $docs documents in ${#files[@]} files and make-secrets.sh's output valid against Kubernetes $version (strict)"
done

# 2 and 3. Wiring, then corelink check. The Python part writes, per
# workload, the linkerd config with /certificates pointing at the decoded
# Secret, and the variant without the k8s parts corelink lacks; it prints
# one line per config:
# "<config>\t<stand-in config>\t<label>".
(cd "$here" && python3 - "$tmp" "${files[@]}" >"$tmp/configs.txt") <<'PY'
import base64, os, sys, yaml

tmp, files = sys.argv[1], sys.argv[2:]
objs = []  # (file, object)
for f in files:
    objs += [(f, d) for d in yaml.safe_load_all(open(f)) if d is not None]
objs += [("make-secrets.sh", d) for d in yaml.safe_load_all(open(os.path.join(tmp, "make-secrets.out.yaml"))) if d]

def fail(msg):
    sys.exit("deploy/kubernetes/validate.sh: " + msg)

def key(f, kind, name):
    return (os.path.dirname(f), kind, name)

by = {}
for f, d in objs:
    by.setdefault((d["kind"], d["metadata"]["name"]), []).append((f, d))
secrets = {d["metadata"]["name"]: d for f, d in objs if d["kind"] == "Secret"}

seen = set()
for f, d in objs:
    if d["kind"] not in ("Deployment", "DaemonSet"):
        continue
    spec = d["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec.get("volumes", [])}
    for c in spec["containers"]:
        if c["name"] != "corelink":
            continue
        mounts = {m["mountPath"]: volumes[m["name"]] for m in c.get("volumeMounts", [])}
        where = f"{f}: {d['kind']} {d['metadata']['name']}"
        cm_vol, secret_vol = mounts.get("/config"), mounts.get("/certificates")
        if not cm_vol or "configMap" not in cm_vol:
            fail(f"{where}: corelink does not mount a ConfigMap at /config")
        if not secret_vol or "secret" not in secret_vol:
            fail(f"{where}: corelink does not mount a Secret at /certificates")
        cm_name, secret_name = cm_vol["configMap"]["name"], secret_vol["secret"]["secretName"]
        # The ConfigMap from the same directory as the workload.
        cms = [(cf, cd) for cf, cd in by.get(("ConfigMap", cm_name), []) if os.path.dirname(cf) == os.path.dirname(f)]
        if not cms:
            fail(f"{where}: no ConfigMap {cm_name} beside it")
        cm_file, cm = cms[0]
        if "linkerd.yaml" not in cm.get("data", {}):
            fail(f"{cm_file}: ConfigMap {cm_name} has no linkerd.yaml (the image reads /config/linkerd.yaml)")
        if secret_name not in secrets:
            fail(f"{where}: Secret {secret_name} is not made by make-secrets.sh")
        label = f"{cm_file} (ConfigMap {cm_name}, as mounted by {d['kind']} {d['metadata']['name']} with Secret {secret_name})"
        if (cm_file, cm_name, secret_name) in seen:
            continue
        seen.add((cm_file, cm_name, secret_name))
        n = len(seen)
        certs = os.path.join(tmp, f"certificates-{n}")
        os.makedirs(certs)
        for k, v in secrets[secret_name]["data"].items():
            with open(os.path.join(certs, k), "wb") as out:
                out.write(base64.b64decode(v))
        text = cm["data"]["linkerd.yaml"].replace("/certificates/", certs + "/")
        config = os.path.join(tmp, f"config-{n}.yaml")
        open(config, "w").write(text)
        # The stand-in: the io.l5d.k8s.* transformers left out (of routers'
        # interpreters and of namers), an io.l5d.k8s.configMap interpreter
        # replaced by the default one. The namer stays.
        doc = yaml.safe_load(text)
        def keep(ts):
            return [t for t in ts if not str(t.get("kind", "")).startswith("io.l5d.k8s.")]
        for namer in doc.get("namers", []):
            if "transformers" in namer:
                namer["transformers"] = keep(namer["transformers"])
        for router in doc.get("routers", []):
            interp = router.get("interpreter")
            if not interp:
                continue
            if interp.get("kind") == "io.l5d.k8s.configMap":
                router["interpreter"] = interp = {"kind": "default", **({"transformers": interp["transformers"]} if "transformers" in interp else {})}
            if "transformers" in interp:
                interp["transformers"] = keep(interp["transformers"])
                if not interp["transformers"]:
                    del interp["transformers"]
        stand_in = os.path.join(tmp, f"config-{n}-stand-in.yaml")
        open(stand_in, "w").write(yaml.safe_dump(doc, sort_keys=False))
        print(f"{config}\t{stand_in}\t{label}")
if not seen:
    fail("no workload runs a corelink container")
PY

# The localnode transformer reads these (the downward API sets them).
export POD_IP=10.1.2.3 NODE_NAME=node-1
status=0
while IFS=$'\t' read -r config stand_in label; do
  echo "corelink check: $label"
  if out=$("$corelink" check --config "$config" 2>&1); then
    echo "$out" | sed "s|$tmp/||g; s/^/    /"
    echo "  as written: passes"
    continue
  fi
  errors=$(echo "$out" | grep "error" || true)
  echo "$out" | sed "s|$tmp/config-[0-9]*\.yaml|linkerd.yaml|g; s|$tmp/||g; s/^/    /"
  if [ -n "$errors" ] && ! echo "$errors" | grep -qv 'rejected: `io\.l5d\.k8s'; then
    echo "  as written: rejected for an io.l5d.k8s part corelink does not have yet (expected)"
  else
    echo "  as written: FAILED for a reason other than a missing io.l5d.k8s part"
    status=1
    continue
  fi
  if out=$("$corelink" check --config "$stand_in" 2>&1); then
    echo "$out" | sed "s|$tmp/||g; s/^/    /"
    echo "  without the parts corelink does not have yet: passes"
  else
    echo "$out" | sed "s|$tmp/||g; s/^/    /"
    echo "  without the parts corelink does not have yet: FAILED"
    status=1
  fi
done <"$tmp/configs.txt"
[ "$status" = 0 ] || die "corelink check failed"
echo "deploy/kubernetes/validate.sh: PASS"
