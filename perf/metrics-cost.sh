#!/usr/bin/env bash
# What per-request metrics cost, in instructions (callgrind), since timings on
# a shared 2-core box are too noisy for a 3 % budget (issue 8).
#
#   perf/metrics-cost.sh [REQUESTS]        (default 10000)
#
# Builds corelink twice (release): with the default `metrics` feature and with
# `--no-default-features` (recording compiled out). Runs each under callgrind
# (epoll, one worker) in front of nginx, twice: with 1,000 requests and with
# 1,000 + REQUESTS, over 10 keep-alive connections. The difference of the two
# totals divided by REQUESTS is the user-space instructions per proxied
# request (start-up and shutdown cancel out). Needs valgrind, nginx.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
N="${1:-10000}"
BASE=1000
WORK="$(mktemp -d "${TMPDIR:-/tmp}/corelink-metrics-cost.XXXXXX")"
PORT_BACKEND=18391
PORT_PROXY=18392
cd "$REPO"
echo "== building (release, with and without metrics)"
cargo build --release -q -p corelink --bin corelink
cargo build --release -q -p corelink-load
cargo build --release -q --bin corelink --no-default-features --target-dir "$REPO/target/no-metrics"
WITH="$REPO/target/release/corelink"
WITHOUT="$REPO/target/no-metrics/release/corelink"

LOAD="$REPO/target/release/corelink-load"
source "$REPO/perf/callgrind-lib.sh"
start_backend

echo "== callgrind, $BASE and $((BASE + N)) requests, each binary"
declare -A per
for variant in with without; do
    bin=$WITH
    [[ $variant == without ]] && bin=$WITHOUT
    per[$variant]=$(per_request "$bin")
    echo "metrics $variant: ${per[$variant]} instructions per request"
done
awk -v a="${per[with]}" -v b="${per[without]}" \
    'BEGIN { printf "metrics cost: %d instructions per request, %.1f %% of the request\n", a - b, 100 * (a - b) / a }'
