#!/usr/bin/env bash
# Run every fuzz target (fuzz/fuzz_targets/*.rs, cargo-fuzz + libFuzzer) for SECONDS each
# (default 60), one after the other, starting from the committed corpus fuzz/corpus/NAME/.
#
#   scripts/fuzz.sh [SECONDS] [TARGET...]
#
# Needs a nightly toolchain and cargo-fuzz (installed with `cargo install --locked cargo-fuzz`
# when missing). Without nightly it says so and replays the corpus on stable instead (the
# `anode-fuzz` replay test), exiting 0 only if the replay passes.
#
# Builds go to ANODE_FUZZ_TARGET_DIR (default ~/.cache/anode-fuzz-target), never the main
# target directory: the instrumented nightly build would invalidate it. New inputs libFuzzer
# finds go to fuzz/runs/NAME/ (not committed); findings (crash-*, timeout-*, oom-*) to
# fuzz/artifacts/NAME/. The script exits non-zero when any target found something.
# Environment: ANODE_FUZZ_JOBS (parallel targets, default 1), ANODE_FUZZ_RSS_MB (default 2048).
# See docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
secs="${1:-60}"
shift || true
main_target_dir="${CARGO_TARGET_DIR:-}"
export CARGO_TARGET_DIR="${ANODE_FUZZ_TARGET_DIR:-$HOME/.cache/anode-fuzz-target}"
jobs="${ANODE_FUZZ_JOBS:-1}"
rss_mb="${ANODE_FUZZ_RSS_MB:-2048}"

replay() {
    echo "== fuzz: corpus replay on stable (cargo test -p anode-fuzz --test replay)"
    # The stable build goes where the caller's builds go (the main target directory).
    if [ -n "$main_target_dir" ]; then
        CARGO_TARGET_DIR="$main_target_dir" cargo test -p anode-fuzz --test replay
    else
        (unset CARGO_TARGET_DIR; cargo test -p anode-fuzz --test replay)
    fi
}

if ! rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    echo "fuzz: no nightly toolchain (rustup toolchain install nightly); libFuzzer runs need" \
        "one. Falling back to the corpus replay." >&2
    replay
    exit $?
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== fuzz: installing cargo-fuzz"
    cargo install --locked cargo-fuzz
fi

if [ "$#" -gt 0 ]; then
    targets=("$@")
else
    mapfile -t targets < <(ls fuzz/fuzz_targets | sed -n 's/\.rs$//p' | sort)
fi

# -a: debug assertions (integer overflow panics); -s none: no ASan (the code under test is
# safe Rust; coverage-guided mutation is what finds its bugs, ASan would halve the speed).
build_flags=(-a -s none)
echo "== fuzz: build (${#targets[@]} targets, target dir $CARGO_TARGET_DIR)"
start=$(date +%s)
(cd fuzz && cargo +nightly fuzz build "${build_flags[@]}")
echo "== fuzz: built in $(($(date +%s) - start)) s"

# Per-target libFuzzer options: inputs longer than the default 4096 bytes where a bug needs
# them (aws-chunked lines are capped at 4096 bytes; request sequences are long).
max_len() {
    case "$1" in
        aws_chunked | gateway_request | chunkserver_rpc | master_apply | parquet_footer) echo 16384 ;;
        authz_policy) echo 24576 ;; # past the 20 KiB policy limit
        parquet_predicate) echo 5120 ;; # past the 4 KiB predicate limit
        *) echo 4096 ;;
    esac
}

run_one() {
    local t=$1 log="fuzz/runs/$1.log"
    local rc=0
    mkdir -p "fuzz/runs/$t" "fuzz/artifacts/$t"
    (cd fuzz && cargo +nightly fuzz run "${build_flags[@]}" "$t" "runs/$t" "corpus/$t" -- \
        -max_total_time="$secs" -max_len="$(max_len "$t")" -rss_limit_mb="$rss_mb" \
        -timeout=30 -print_final_stats=1 -artifact_prefix="artifacts/$t/") \
        >"$root/$log" 2>&1 || rc=$?
    local execs
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$root/$log" | grep -o '[0-9]*$' || true)
    local cov
    cov=$(grep -o 'cov: [0-9]*' "$root/$log" | tail -1 || true)
    if [ "$rc" -eq 0 ]; then
        echo "fuzz: $t ok: ${execs:-?} execs in ${secs} s, ${cov:-cov ?} (log $log)"
    else
        echo "fuzz: $t FOUND SOMETHING (exit $rc): see $log and fuzz/artifacts/$t/" >&2
        grep -m5 -E 'panicked|ERROR|SUMMARY' "$root/$log" >&2 || true
    fi
    return "$rc"
}

failed=0
pids=()
for t in "${targets[@]}"; do
    run_one "$t" &
    pids+=($!)
    if [ "${#pids[@]}" -ge "$jobs" ]; then
        wait "${pids[0]}" || failed=1
        pids=("${pids[@]:1}")
    fi
done
for p in "${pids[@]}"; do
    wait "$p" || failed=1
done
echo "== fuzz: done in $(($(date +%s) - start)) s"
exit "$failed"
