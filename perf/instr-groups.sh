#!/usr/bin/env bash
# Where a plaintext keep-alive request's instructions go, by what the code
# does (docs/engine.md, "Where a plaintext request's instructions go").
#
#   perf/instr-groups.sh [BINARY] [REQUESTS]   (default target/release/corelink, 10000)
#
# Runs BINARY (build it first: cargo build --release) under callgrind, one
# worker in front of nginx, with 1,000 and 1,000 + REQUESTS requests over 10
# keep-alive connections, and hands both profiles to perf/instr-groups.py,
# which attributes the difference per request. IO=uring measures the
# io_uring backend; FUNCTIONS=K lists each group's top K functions; KEEP=DIR
# keeps the two callgrind files (for callgrind_annotate); LOAD=PATH picks the
# corelink-load binary. Needs valgrind, nginx.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(realpath "${1:-$REPO/target/release/corelink}")"
N="${2:-10000}"
BASE=1000
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-instr-groups.XXXXXX")"
PORT_BACKEND=18395
PORT_PROXY=18396
LOAD="${LOAD:-$REPO/target/release/corelink-load}"
[ -x "$LOAD" ] || cargo build --release -q -p corelink-load --manifest-path "$REPO/Cargo.toml"
source "$REPO/perf/callgrind-lib.sh"
start_backend

echo "== callgrind ($BIN, io ${IO:-epoll}): $BASE and $((BASE + N)) requests"
small=$(callgrind_run "$BIN" "$BASE")
large=$(callgrind_run "$BIN" $((BASE + N)))
if [ -n "${KEEP:-}" ]; then
    mkdir -p "$KEEP" && cp "$small" "$large" "$KEEP"/
fi
python3 "$REPO/perf/instr-groups.py" "$small" "$large" "$N" --functions "${FUNCTIONS:-0}"
