#!/usr/bin/env bash
# Runs every fuzz target (or the ones named) for SECONDS each, one after another.
#
#   fuzz/run.sh SECONDS [TARGET...]
#
# Builds the targets first (release, with debug assertions and overflow checks, under
# AddressSanitizer), seeds each from fixtures/fuzz/<target>/ (read only) and keeps its
# working corpus and any crash under $CARGO_TARGET_DIR/fuzz-run/ (target/fuzz-run/
# without it), so later runs start from what earlier ones found. Prints the executions
# per target (libFuzzer's final stats) and exits non-zero if any target crashed, hit
# the memory limits, or timed out on one input.
#
# Needs only a stable Rust toolchain and a C++ compiler: cargo-fuzz is installed if
# missing, and RUSTC_BOOTSTRAP lets the stable compiler take the sanitizer flags.
#
# For a long campaign: FUZZ_SANITIZER=none builds without AddressSanitizer (several
# times more inputs a second; panics, overflow checks and the allocation limits still
# apply), and FUZZ_RUNS=N stops each target after N inputs, SECONDS still its cap.
set -euo pipefail

if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: $0 SECONDS [TARGET...]" >&2
    exit 2
fi
seconds=$1
shift

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export RUSTC_BOOTSTRAP=1
target_dir=${CARGO_TARGET_DIR:-$root/target}
export CARGO_TARGET_DIR=$target_dir
triple=$(rustc -vV | sed -n 's/^host: //p')
work=$target_dir/fuzz-run

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi

if [[ $# -gt 0 ]]; then
    targets=("$@")
else
    targets=()
    for f in fuzz/fuzz_targets/*.rs; do
        targets+=("$(basename "$f" .rs)")
    done
fi

start=$(date +%s)
# -O: optimised; -a: debug assertions and overflow checks on, as in tests.
sanitizer=${FUZZ_SANITIZER:-address}
runs=${FUZZ_RUNS:--1}
cargo fuzz build -O -a -s "$sanitizer"
built=$(date +%s)
echo "built ${#targets[@]} targets in $((built - start))s"

failed=()
summary=()
for t in "${targets[@]}"; do
    bin=$target_dir/$triple/release/$t
    if [[ ! -x $bin ]]; then
        echo "no fuzz target $t ($bin)" >&2
        exit 2
    fi
    mkdir -p "$work/corpus/$t" "$work/artifacts/$t"
    seeds=()
    [[ -d fixtures/fuzz/$t ]] && seeds=("fixtures/fuzz/$t")
    log=$work/$t.log
    touch "$log.start"
    # Corpus first (written to), then the seeds (only read). A single allocation over
    # 512 MiB, 2 GiB resident, or 10 s on one input is a failure, as is any panic.
    set +e
    "$bin" "$work/corpus/$t" "${seeds[@]}" \
        -max_total_time="$seconds" -runs="$runs" -print_final_stats=1 \
        -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
        -artifact_prefix="$work/artifacts/$t/" >"$log" 2>&1
    status=$?
    set -e
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    execs=${execs:-?}
    if [[ $status -ne 0 ]]; then
        failed+=("$t")
        summary+=("$(printf '%-16s %12s  FAILED (exit %d, see %s)' "$t" "$execs" "$status" "$log")")
        echo "---- $t failed; the end of its log:"
        tail -n 40 "$log"
        # The input that failed; rerun it alone with: $bin ARTIFACT
        find "$work/artifacts/$t" -type f -newer "$log.start" | sed 's|^|artifact: |'
    else
        summary+=("$(printf '%-16s %12s  ok' "$t" "$execs")")
    fi
done

echo
printf '%-16s %12s\n' target executions
printf '%s\n' "${summary[@]}"
echo "fuzzed ${#targets[@]} targets for ${seconds}s each; total $(($(date +%s) - start))s"
echo "fuzz: $((${#targets[@]} - ${#failed[@]})) passed, ${#failed[@]} failed"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "crashed: ${failed[*]}" >&2
    exit 1
fi
