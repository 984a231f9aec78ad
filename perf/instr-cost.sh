#!/usr/bin/env bash
# What a change costs per plaintext keep-alive request, in instructions
# (callgrind), since timing runs on this shared 2-core box spread ±15 %.
#
#   perf/instr-cost.sh REV [REQUESTS]     (default 10000)
#
# Builds corelink (release) from git revision REV and from the work tree, runs
# each under callgrind (epoll, one worker) in front of nginx with 1,000 and
# 1,000 + REQUESTS requests over 10 keep-alive connections, and prints the
# user-space instructions per proxied request of both and the difference.
# IO=uring measures the io_uring backend (default: epoll). Needs valgrind, nginx.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REV="${1:?usage: perf/instr-cost.sh REV [REQUESTS]}"
N="${2:-10000}"
BASE=1000
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-instr-cost.XXXXXX")"
PORT_BACKEND=18393
PORT_PROXY=18394
cd "$REPO"
echo "== building $REV and the work tree (release)"
mkdir "$WORK/rev"
git archive "$REV" | tar -x -C "$WORK/rev"
cargo build --release -q --bin corelink --manifest-path "$WORK/rev/Cargo.toml" --target-dir "$REPO/target/instr-rev"
cargo build --release -q -p corelink --bin corelink
cargo build --release -q -p corelink-load
LOAD="$REPO/target/release/corelink-load"
source "$REPO/perf/callgrind-lib.sh"
start_backend

echo "== callgrind, $BASE and $((BASE + N)) requests, each binary"
before=$(per_request "$REPO/target/instr-rev/release/corelink")
echo "$REV: $before instructions per request"
after=$(per_request "$REPO/target/release/corelink")
echo "work tree: $after instructions per request"
awk -v a="$after" -v b="$before" \
    'BEGIN { printf "difference: %+d instructions per request (%+.1f %%)\n", a - b, 100 * (a - b) / b }'
