#!/usr/bin/env python3
"""Derives corelink's seccomp profiles: a container runtime's default seccomp
profile plus one rule that allows io_uring_setup, io_uring_enter and
io_uring_register (which the defaults of containerd 2.0+, Docker 25+ and
containers/common refuse), and nothing else.

The source is Docker's default, moby/profiles seccomp/v0.2.3 (commit
836ae4d37ef2ec995c77c99fc55f5b5f3af3a897, seccomp/default.json, the file
moby vendors). Two kinds of output:

  corelink-io-uring.json          the source as it is, in moby's format, with
                                  the rule appended as the last entry of
                                  "syscalls"; for Docker, podman and CRI-O,
                                  which resolve its conditional rules
                                  ("includes"/"excludes": capabilities,
                                  architecture, kernel) per container.
  corelink-io-uring-oci-ARCH.json the same resolved, as moby does it for a
                                  container, into a plain OCI runtime-spec
                                  profile: for one architecture (amd64,
                                  arm64), a container with no capabilities
                                  (the manifests drop ALL) and a kernel of at
                                  least 6.0 (what the io_uring backend needs).
                                  For containerd, whose Localhost profiles are
                                  read as plain OCI: it ignores "archMap",
                                  "includes" and "excludes", so the moby file
                                  there would allow every capability-gated
                                  rule (mount, unshare, setns, bpf, ...).

Written as moby writes its file (tab-indented, no final newline), so `diff`
against the source shows only the added rule.

  deploy/seccomp/make-profile.py --from default.json   # regenerate from a local copy
  deploy/seccomp/make-profile.py                 # the same, fetching the pinned source
  deploy/seccomp/make-profile.py --check [--from ...]  # the committed files are what it writes
  deploy/seccomp/make-profile.py --verify        # offline: each committed file minus the
                                                 # rule is the pinned source (resolved)
  deploy/seccomp/make-profile.py --from /usr/share/containers/seccomp.json \\
      -o podman-io-uring.json                    # one moby-format profile from another
                                                 # runtime's default (podman, CRI-O)
  deploy/seccomp/make-profile.py --from ... --resolve arm64 -o out.json
                                                 # one resolved profile

Exit status: 0 done or matches, 1 differs or the source does not fit.
"""

import argparse
import copy
import hashlib
import json
import os
import sys
import urllib.request

PINNED_URL = (
    "https://raw.githubusercontent.com/moby/profiles/"
    "836ae4d37ef2ec995c77c99fc55f5b5f3af3a897/seccomp/default.json"
)
# sha256 of that file as published (seccomp/v0.2.3).
PINNED_SHA256 = "536529b665dd0972c37bfb569f5d4ac8a53592e7b00752bc39ff063ca9864c74"

IO_URING = ["io_uring_setup", "io_uring_enter", "io_uring_register"]
COMMENT = (
    "corelink: allow io_uring (deploy/seccomp/make-profile.py); the runtime "
    "defaults refuse it since containerd 2.0 (containerd#9320) and Docker 25 "
    "(moby#46762)"
)
RULE = {"names": IO_URING, "action": "SCMP_ACT_ALLOW", "comment": COMMENT}
# The OCI format has no comments.
OCI_RULE = {"names": IO_URING, "action": "SCMP_ACT_ALLOW"}

# Resolving: GOARCH => the architecture names moby's rules use, and the
# libseccomp architecture its archMap is keyed by (moby/profiles
# seccomp_linux.go).
ARCHES = {"amd64": ("amd64", "SCMP_ARCH_X86_64"), "arm64": ("arm64", "SCMP_ARCH_AARCH64")}
# The container's bounding capabilities: the manifests drop ALL.
CAPS = []
# minKernel conditions are decided for this kernel (the io_uring backend's
# ring flags need Linux 6.0).
KERNEL = (6, 0)

HERE = os.path.dirname(os.path.abspath(__file__))
MOBY_OUT = os.path.join(HERE, "corelink-io-uring.json")
OCI_OUT = {arch: os.path.join(HERE, f"corelink-io-uring-oci-{arch}.json") for arch in ARCHES}


def fail(msg):
    print(f"make-profile.py: {msg}", file=sys.stderr)
    sys.exit(1)


def dump(profile):
    # Byte-identical to moby's and containers/common's files for the same
    # data: Go's json.MarshalIndent with a tab, no final newline.
    return json.dumps(profile, indent="\t")


def read_source(source):
    if source.startswith(("https://", "http://")):
        try:
            with urllib.request.urlopen(source, timeout=30) as r:
                raw = r.read()
        except OSError as e:
            fail(f"cannot fetch {source}: {e} (pass --from PATH to a local copy)")
    else:
        with open(source, "rb") as f:
            raw = f.read()
    if source == PINNED_URL and hashlib.sha256(raw).hexdigest() != PINNED_SHA256:
        fail(f"{source} is not the pinned file (sha256 differs)")
    return json.loads(raw.decode("utf-8"))


def names_of(rule):
    return rule.get("names") or ([rule["name"]] if rule.get("name") else [])


def add_rule(profile, source):
    """The source profile (moby format) plus the io_uring rule."""
    profile = copy.deepcopy(profile)
    if not isinstance(profile, dict) or not isinstance(profile.get("syscalls"), list):
        fail(f"{source}: not a seccomp profile (no \"syscalls\" list)")
    if profile.get("defaultAction") == "SCMP_ACT_ALLOW":
        fail(f"{source}: defaultAction is SCMP_ACT_ALLOW; nothing to allow")
    for rule in profile["syscalls"]:
        found = sorted(set(names_of(rule)) & set(IO_URING))
        if found:
            fail(
                f"{source}: already has a rule for {', '.join(found)} "
                f"(action {rule.get('action')}); this runtime's default needs no change"
            )
    profile["syscalls"].append(RULE)
    return profile


def kernel_at_least(version):
    major, minor = (int(x) for x in version.split(".")[:2])
    return KERNEL >= (major, minor)


def resolve(profile, goarch):
    """moby's setupSeccomp for one container: its architecture, CAPS and
    KERNEL. The io_uring rule (unconditional) comes through as it is, minus
    its comment."""
    arch, seccomp_arch = ARCHES[goarch]
    out = {k: v for k, v in profile.items() if k not in ("archMap", "syscalls")}
    if "architectures" in profile and "archMap" in profile:
        fail("both 'architectures' and 'archMap' in the source")
    for a in profile.get("archMap") or []:
        if a["architecture"] == seccomp_arch:
            out["architectures"] = [a["architecture"]] + (a.get("subArchitectures") or [])
            break
    # The OCI struct's field order (runtime-spec LinuxSeccomp).
    order = ["defaultAction", "defaultErrnoRet", "architectures", "flags", "listenerPath", "listenerMetadata"]
    out = {k: out[k] for k in order if k in out} | {k: v for k, v in out.items() if k not in order}
    calls = []
    for rule in profile["syscalls"]:
        exc, inc = rule.get("excludes") or {}, rule.get("includes") or {}
        if arch in (exc.get("arches") or []):
            continue
        if any(c in CAPS for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and kernel_at_least(exc["minKernel"]):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if any(c not in CAPS for c in inc.get("caps") or []):
            continue
        if inc.get("minKernel") and not kernel_at_least(inc["minKernel"]):
            continue
        call = {"names": names_of(rule), "action": rule["action"]}
        for k in ("errnoRet", "args"):
            if rule.get(k) is not None:
                call[k] = rule[k]
        calls.append(call)
    out["syscalls"] = calls
    return out


def strip_rule(profile, rule):
    found = [r for r in profile["syscalls"] if r == rule]
    if len(found) != 1:
        fail(f"expected exactly one corelink io_uring rule, found {len(found)}")
    rest = dict(profile, syscalls=[r for r in profile["syscalls"] if r != rule])
    for r in rest["syscalls"]:
        if set(names_of(r)) & set(IO_URING):
            fail("another rule names an io_uring syscall")
    return rest


def outputs(source_profile, source):
    with_rule = add_rule(source_profile, source)
    out = {MOBY_OUT: dump(with_rule)}
    for arch, path in OCI_OUT.items():
        out[path] = dump(resolve(with_rule, arch))
    return out


def verify():
    """Offline: each committed file minus the rule is the pinned source
    (as it is, or resolved: then the resolved pinned source is rebuilt from
    the moby-format file minus its rule, whose hash is checked first)."""
    with open(MOBY_OUT, encoding="utf-8") as f:
        moby = json.load(f)
    source = strip_rule(moby, RULE)
    digest = hashlib.sha256(dump(source).encode("utf-8")).hexdigest()
    if digest != PINNED_SHA256:
        fail(f"{MOBY_OUT} minus the io_uring rule is not moby/profiles seccomp/v0.2.3 (sha256 {digest})")
    rel = lambda p: os.path.relpath(p)
    print(f"{rel(MOBY_OUT)}: moby/profiles seccomp/v0.2.3 default.json + allow {', '.join(IO_URING)}")
    for arch, path in OCI_OUT.items():
        with open(path, encoding="utf-8") as f:
            oci = json.load(f)
        want = resolve(source, arch)
        if strip_rule(oci, OCI_RULE) != want:
            fail(f"{path} minus the io_uring rule is not the pinned source resolved for {arch}")
        print(f"{rel(path)}: the same resolved (OCI) for {arch}, no capabilities, Linux >= 6.0")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--from", dest="source", default=PINNED_URL, help="default profile in moby's format: a path or URL (default: the pinned moby file)")
    ap.add_argument("-o", "--output", help="write one profile here instead of the committed set")
    ap.add_argument("--resolve", choices=sorted(ARCHES), help="with -o: resolve for this architecture (OCI format)")
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare the committed files with what would be written")
    mode.add_argument("--verify", action="store_true", help="offline: the committed files minus the rule are the pinned source")
    args = ap.parse_args()

    if args.verify:
        verify()
        return
    profile = read_source(args.source)
    if args.output:
        out = add_rule(profile, args.source)
        if args.resolve:
            out = resolve(out, args.resolve)
        files = {args.output: dump(out)}
    else:
        if args.resolve:
            fail("--resolve needs -o")
        files = outputs(profile, args.source)
    stale = []
    for path, text in files.items():
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    current = f.read()
            except FileNotFoundError:
                current = None
            if current != text:
                stale.append(path)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote {os.path.relpath(path)} from {args.source}")
    if stale:
        fail(f"{', '.join(stale)} differ from what {args.source} gives; run make-profile.py")
    if args.check:
        print(f"{', '.join(os.path.relpath(p) for p in files)}: up to date with {args.source}")


if __name__ == "__main__":
    main()
