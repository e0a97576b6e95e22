#!/usr/bin/env bash
# Coverage-guided fuzzing of every parser of untrusted bytes (fuzz/README.md says what each
# target covers). On the stable toolchain: cargo-fuzz builds with `--sanitizer none`.
#
#     bash scripts/fuzz.sh [SECONDS_PER_TARGET] [TARGET...]
#     bash scripts/fuzz.sh --smoke [TARGET...]      # 10 s per target, for CI
#
# - Sets up what it needs (libtorch through scripts/env.sh; cargo-fuzz into ~/.cargo if
#   missing), builds the targets, replays the inputs of fuzz/regressions/<target>/ (each once:
#   crashes found before, which must stay fixed), then fuzzes each target for the given seconds
#   (default 600: every target passes 10^6 executions on a 2-core machine), as many at a time
#   as there are cores (FUZZ_JOBS to change it).
# - Seeds: fuzz/corpus/<target>/ (committed, read only); what the fuzzer adds goes to
#   fuzz/corpus-run/<target>/ (git-ignored, kept between runs so that coverage accumulates).
# - Limits: no input may run over 1 s (-timeout=1) nor use over 2 GiB (-rss_limit_mb=2048),
#   and no single allocation may exceed 2 GiB (the targets' allocator aborts; fuzz/src/lib.rs).
# - Prints each target's executions; exits 1 on any crash, panic, timeout, out-of-memory or
#   over-size allocation, whose input is saved in fuzz/artifacts/<target>/ (the log beside it).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root="$PWD"

seconds=600
if [[ "${1:-}" == "--smoke" ]]; then
    seconds=10
    shift
elif [[ "${1:-}" =~ ^[0-9]+$ ]]; then
    seconds="$1"
    shift
elif [[ "${1:-}" == -* ]]; then
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
fi

# shellcheck source=scripts/env.sh
source scripts/env.sh
# The targets link the main crate, hence libtorch, without the main crate's rpath.
export LD_LIBRARY_PATH="$LIBTORCH/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

cargo_fuzz_version=0.13.2
if [[ "$(cargo fuzz --version 2>/dev/null)" != "cargo-fuzz $cargo_fuzz_version" ]]; then
    echo "fuzz: installing cargo-fuzz $cargo_fuzz_version into ~/.cargo (once)" >&2
    cargo install --quiet --locked cargo-fuzz --version "$cargo_fuzz_version"
fi

mapfile -t all_targets < <(cd fuzz && cargo fuzz list)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=("${all_targets[@]}")
for target in "${targets[@]}"; do
    if ! printf '%s\n' "${all_targets[@]}" | grep -qx -- "$target"; then
        echo "fuzz: no target \`$target\` (targets: ${all_targets[*]})" >&2
        exit 2
    fi
done

logs="$(mktemp -d "${TMPDIR:-/tmp}/clinicadl-rs-fuzz-logs.XXXXXX")"
scratch=
trap 'rm -rf "$logs" ${scratch:+"$scratch"}' EXIT
# Targets whose inputs go through the csv crate are built without comparison tracing: it would
# spend most of each run in csv's (instrumented) table construction; without it they run about
# 2.4 times as many inputs and reach more coverage in the same time. The others keep it (it
# finds magic numbers and type codes).
csv_targets=" participants_tsv cohorts_tsv prediction_tsv "
csv_target_dir=target/no-trace-compares
bin_of() {
    if [[ "$csv_targets" == *" $1 "* ]]; then
        echo "$root/fuzz/$csv_target_dir/x86_64-unknown-linux-gnu/release/$1"
    else
        echo "$root/fuzz/target/x86_64-unknown-linux-gnu/release/$1"
    fi
}
build() {
    local options=(--sanitizer none --codegen-units 16)
    (cd fuzz && cargo fuzz build "${options[@]}") || return
    for target in $csv_targets; do
        (cd fuzz && cargo fuzz build "${options[@]}" --no-trace-compares \
            --target-dir "$csv_target_dir" "$target") || return
    done
}
echo "fuzz: building the targets (cargo fuzz build --sanitizer none)" >&2
if ! build >"$logs/build.log" 2>&1; then
    tail -40 "$logs/build.log" >&2
    echo "fuzz: the build failed" >&2
    exit 1
fi

# Scratch files of the targets whose parsers take a path: in memory where possible, removed at
# the end (a target that crashes cannot remove its own).
scratch_parent=/dev/shm
[[ -d "$scratch_parent" && -w "$scratch_parent" ]] || scratch_parent="${TMPDIR:-/tmp}"
scratch="$(mktemp -d "$scratch_parent/clinicadl-rs-fuzz.XXXXXX")"
export TMPDIR="$scratch"
# Panics print their backtrace; errors (anyhow) capture none, which would slow every run.
export RUST_BACKTRACE=1 RUST_LIB_BACKTRACE=0

limits=(-timeout=1 -rss_limit_mb=2048)
failed=()

# Saves a failed run's log beside its input and reports both.
report_failure() {
    local target="$1" what="$2" log="$3"
    mkdir -p "fuzz/artifacts/$target"
    local kept
    kept="fuzz/artifacts/$target/$(date +%Y%m%d-%H%M%S)-$what.log"
    cp "$log" "$kept"
    echo "fuzz: $target: FAILED ($what); log: $kept" >&2
    grep -E '^(==[0-9]+== ERROR|==fuzz== ERROR|thread .* panicked)' -A2 "$log" | head -12 | sed 's/^/    /' >&2 || true
    grep -E '^(artifact_prefix|Test unit written to)' "$log" | sed 's/^/    /' >&2 || true
    failed+=("$target")
}

# 1. Regressions: every input that once failed must now pass.
for target in "${targets[@]}"; do
    inputs=()
    if [[ -d "fuzz/regressions/$target" ]]; then
        mapfile -t inputs < <(find "fuzz/regressions/$target" -type f ! -name '*.md' | sort)
    fi
    [[ ${#inputs[@]} -gt 0 ]] || continue
    log="$logs/$target-regressions.log"
    if "$(bin_of "$target")" "${limits[@]}" "${inputs[@]}" >"$log" 2>&1; then
        echo "fuzz: $target: ${#inputs[@]} regression inputs pass" >&2
    else
        report_failure "$target" regression "$log"
    fi
done

# 2. Fuzzing, as many targets at a time as there are cores.
jobs="${FUZZ_JOBS:-$(nproc)}"
echo "fuzz: running ${#targets[@]} targets for ${seconds} s each, $jobs at a time" >&2
run_target() {
    local target="$1" started status=0
    mkdir -p "fuzz/corpus-run/$target" "fuzz/artifacts/$target"
    started=$(date +%s)
    "$(bin_of "$target")" "fuzz/corpus-run/$target" "fuzz/corpus/$target" \
        "${limits[@]}" -max_total_time="$seconds" -print_final_stats=1 \
        -artifact_prefix="fuzz/artifacts/$target/" >"$logs/$target.log" 2>&1 || status=$?
    echo $(($(date +%s) - started)) >"$logs/$target.seconds"
    return $status
}
declare -A pid_of
for target in "${targets[@]}"; do
    while [[ $(jobs -rp | wc -l) -ge $jobs ]]; do
        wait -n || true
    done
    run_target "$target" &
    pid_of[$target]=$!
done

printf '%-18s %8s %14s %10s  %s\n' target seconds executions exec/s result
for target in "${targets[@]}"; do
    status=0
    wait "${pid_of[$target]}" || status=$?
    log="$logs/$target.log"
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    took=$(cat "$logs/$target.seconds" 2>/dev/null || echo 0)
    result=ok
    if [[ $status -ne 0 ]]; then
        if grep -q 'ERROR: libFuzzer: timeout' "$log"; then
            result=timeout
        elif grep -q 'ERROR: libFuzzer: out-of-memory' "$log"; then
            result=out-of-memory
        elif grep -q '==fuzz== ERROR: allocation of' "$log"; then
            result=over-size-allocation
        elif grep -q 'panicked at' "$log"; then
            result=panic
        else
            result="crash (exit $status)"
        fi
    fi
    rate=$((${runs:-0} / (took > 0 ? took : 1)))
    printf '%-18s %8s %14s %10s  %s\n' "$target" "$took" "${runs:-?}" "$rate" "$result"
    [[ $result == ok ]] || report_failure "$target" "${result// /-}" "$log"
done

if [[ ${#failed[@]} -gt 0 ]]; then
    echo "fuzz: FAILED: ${failed[*]} (inputs in fuzz/artifacts/<target>/; replay one with" \
        "\`LD_LIBRARY_PATH=\$LIBTORCH/lib $(bin_of "${failed[0]}") <input>\`)" >&2
    exit 1
fi
echo "fuzz: no crash, timeout, out-of-memory or over-size allocation" >&2
