#!/usr/bin/env bash
# Builds every corelink fuzz target and runs each for a bounded time with a
# fixed seed, on stable Rust (no sanitizer: `-s none`).
#
#   fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]     (default: 30, all targets)
#
# For each target: first the known-bug inputs in fuzz/regressions/<target>/
# are replayed, then the committed seeds (fuzz/corpus/<target>/seed-*) are
# copied into a scratch corpus (so the committed corpus is never written to),
# replayed, and fuzzed from for SECONDS_PER_TARGET seconds. Prints each
# target's executions and time; on a crash, hang or OOM prints the input as
# hex with its path, carries on with the other targets, and exits 1 at the end.
#
# Environment:
#   CARGO_TARGET_DIR   build directory (default: fuzz/target)
#   FUZZ_WORK_DIR      scratch directory for corpora and logs (default: mktemp)
#   FUZZ_SEED          libFuzzer -seed (default: 1)
#   FUZZ_SKIP_REGRESSIONS=1   do not replay fuzz/regressions/
#   FUZZ_ARGS          extra libFuzzer flags (e.g. "-max_len=65536")
set -uo pipefail

FUZZ_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$FUZZ_DIR")"
SECONDS_PER_TARGET="${1:-30}"
shift $(($# > 0 ? 1 : 0))
ALL_TARGETS=(request_head response_head chunked rechunk request_framing dtab path config tls_name cert_name)
if (($# > 0)); then TARGETS=("$@"); else TARGETS=("${ALL_TARGETS[@]}"); fi
SEED="${FUZZ_SEED:-1}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$FUZZ_DIR/target}"
WORK="${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/corelink-fuzz.XXXXXX")}"
mkdir -p "$WORK"

if ! [[ "$SECONDS_PER_TARGET" =~ ^[0-9]+$ ]] || ((SECONDS_PER_TARGET < 1)); then
    echo "usage: $0 [SECONDS_PER_TARGET] [TARGET...]" >&2
    exit 2
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "cargo-fuzz is missing: cargo install cargo-fuzz" >&2
    exit 2
fi

# libFuzzer flags per target: the HTTP dictionary, and for the request
# targets room past the default 4 KiB input cap so the head limits (4 KiB
# request line, 12 KiB head) are reached.
flags_for() {
    case "$1" in
    request_head | request_framing) echo "-dict=$FUZZ_DIR/dict/http.dict -max_len=16384" ;;
    response_head | chunked | rechunk) echo "-dict=$FUZZ_DIR/dict/http.dict" ;;
    *) echo "" ;;
    esac
}

# The targets that need corelink itself (tokio, io_uring, aws-lc) are built
# with the `full` feature; the others depend only on the pure crates.
features_for() {
    case "$1" in
    config | tls_name | cert_name) echo "--features full" ;;
    *) echo "" ;;
    esac
}

show_input() {
    local f="$1"
    echo "    input: $f ($(wc -c <"$f") bytes)"
    xxd -g1 "$f" | head -n 16 | sed 's/^/      /'
    if (($(wc -c <"$f") > 256)); then echo "      ... (truncated)"; fi
}

start_all=$(date +%s)
cd "$REPO" || exit 2
echo "== building fuzz targets (CARGO_TARGET_DIR=$CARGO_TARGET_DIR)"
if ! cargo fuzz build -s none --fuzz-dir "$FUZZ_DIR" >"$WORK/build.log" 2>&1; then
    cat "$WORK/build.log" >&2
    exit 2
fi
echo "   pure targets (crates/http1, crates/naming) built in $(($(date +%s) - start_all)) s"
if ! cargo fuzz build -s none --fuzz-dir "$FUZZ_DIR" --features full >"$WORK/build-full.log" 2>&1; then
    cat "$WORK/build-full.log" >&2
    exit 2
fi
echo "   all targets built in $(($(date +%s) - start_all)) s"

failed=()
summary=()
for t in "${TARGETS[@]}"; do
    flags="$(flags_for "$t")"
    features="$(features_for "$t")"
    artifacts="$WORK/artifacts/$t/"
    rm -rf "$artifacts" "$WORK/artifacts/$t-regressions"
    mkdir -p "$artifacts" "$WORK/artifacts/$t-regressions"

    # 1. Known bugs kept as regressions: they fail until fixed.
    reg_dir="$FUZZ_DIR/regressions/$t"
    if [[ "${FUZZ_SKIP_REGRESSIONS:-0}" != 1 && -d "$reg_dir" ]]; then
        for f in "$reg_dir"/*; do
            [[ -f "$f" ]] || continue
            [[ "$f" == *.md ]] && continue
            # shellcheck disable=SC2086
            if ! cargo fuzz run -s none --fuzz-dir "$FUZZ_DIR" $features "$t" "$f" -- \
                -timeout=10 -rss_limit_mb=2048 -artifact_prefix="$WORK/artifacts/$t-regressions/" \
                >"$WORK/$t.regression.log" 2>&1; then
                echo "!! $t: regression input still fails (see $WORK/$t.regression.log)"
                grep -m1 -E "panicked at|ERROR: libFuzzer" -A3 "$WORK/$t.regression.log" | sed 's/^/    /'
                show_input "$f"
                failed+=("$t(regression $(basename "$f"))")
            fi
        done
    fi

    # 2. Seeds into a scratch corpus, replayed, then fuzzed from.
    corpus="$WORK/corpus/$t"
    mkdir -p "$corpus"
    cp "$FUZZ_DIR/corpus/$t"/seed-* "$corpus"/ 2>/dev/null || true
    nseeds=$(find "$corpus" -type f | wc -l)
    log="$WORK/$t.log"
    # Make sure the binary is fresh before the clock starts (the library may
    # have changed since the build above).
    # shellcheck disable=SC2086
    if ! cargo fuzz build -s none --fuzz-dir "$FUZZ_DIR" $features "$t" >"$WORK/$t.build.log" 2>&1; then
        echo "!! $t: BUILD FAILED (log $WORK/$t.build.log)"
        grep -m3 -E "^error" -A4 "$WORK/$t.build.log" | sed 's/^/    /'
        failed+=("$t(build)")
        continue
    fi
    t0=$(date +%s.%N)
    # shellcheck disable=SC2086
    cargo fuzz run -s none --fuzz-dir "$FUZZ_DIR" $features "$t" "$corpus" -- \
        $flags -max_total_time="$SECONDS_PER_TARGET" -seed="$SEED" -timeout=10 \
        -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$artifacts" \
        ${FUZZ_ARGS:-} >"$log" 2>&1
    rc=$?
    t1=$(date +%s.%N)
    secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
    execs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+$')
    if [[ -z "$execs" ]]; then
        execs=$(grep -oE '^#[0-9]+' "$log" | tail -n1 | tr -d '#')
    fi
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -n1 | grep -oE '[0-9]+')
    ncorpus=$(find "$corpus" -type f | wc -l)
    line=$(printf '%-16s execs %10s  %6s s  %8s exec/s  cov %5s  corpus %d -> %d' \
        "$t" "${execs:-?}" "$secs" \
        "$(awk -v e="${execs:-0}" -v s="$secs" 'BEGIN { printf "%d", (s > 0 ? e / s : 0) }')" \
        "${cov:-?}" "$nseeds" "$ncorpus")
    summary+=("$line")
    crash_files=$(find "$artifacts" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'timeout-*' -o -name 'oom-*' -o -name 'leak-*' \) 2>/dev/null)
    if ((rc != 0)) && ! grep -q "INFO: Seed:" "$log"; then
        # The library changed under us and no longer builds, or similar.
        echo "!! $t: did not start (exit $rc, log $log)"
        grep -m3 -E "^error" -A4 "$log" | sed 's/^/    /'
        failed+=("$t(start)")
    elif ((rc != 0)) || [[ -n "$crash_files" ]]; then
        echo "!! $t: FAILED (exit $rc, log $log)"
        grep -m1 -E "panicked at|ERROR: libFuzzer|==[0-9]+== ERROR" -A6 "$log" | sed 's/^/    /'
        for f in $crash_files; do show_input "$f"; done
        failed+=("$t")
    else
        echo "ok $line"
    fi
done

echo
echo "== summary (seed $SEED, ${SECONDS_PER_TARGET}s per target, work dir $WORK)"
printf '%s\n' "${summary[@]}"
echo "total time: $(($(date +%s) - start_all)) s"
if ((${#failed[@]} > 0)); then
    echo "FAILED: ${failed[*]}"
    exit 1
fi
echo "all targets passed"
