#!/usr/bin/env bash
# GPU check (issue "Performance"): run on a machine with an NVIDIA GPU and torch 2.11.0 (CUDA 13),
# with the release binaries built elsewhere and carried over (target/release/clinicadl-rs,
# clinicadl-rs-engine and clinicadl-rs-engine-cpu). It
#   1. confirms CUDA is seen by the engine (a --gpu run succeeds),
#   2. checks GPU results against CPU results: fp32 within 1e-4, --amp within 1e-2, same labels,
#   3. reports images per second on the GPU (fp32 and --amp) against the read floor (reading the
#      N tensor files), and writes everything to $OUT/gpu_check.md (or target/gpu_check.md).
# Usage: scripts/gpu/check.sh [N] [CPU_N]    (defaults: 64 full-size images, 8 of them on the CPU)
# GPU_CHECK_SELF_TEST=1 runs the "GPU" runs with --no-gpu (no --amp) on a machine without a GPU,
# to test this script itself; its report says so and proves nothing about a GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
N="${1:-64}"
CPU_N="${2:-8}"
PY="${PYTHON:-python3}"
TORCH_LIB="$("$PY" -c 'import torch, os; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
export LD_LIBRARY_PATH="$TORCH_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
OUTDIR="${OUT:-$PWD/target}"
mkdir -p "$OUTDIR"
REPORT="$OUTDIR/gpu_check.md"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
BIN="$PWD/target/release/clinicadl-rs"
"$PY" scripts/gpu/make_workload.py "$WORK" --n "$N" > /dev/null
head -n $((CPU_N + 1)) "$WORK/participants.tsv" > "$WORK/participants_cpu.tsv"
SELF_TEST="${GPU_CHECK_SELF_TEST:-}"
run() { # name, participants, extra args... (prints the wall time; a failed run stops the check)
    local name="$1" tsv="$2"; shift 2
    local start end args=("$@")
    if [ -n "$SELF_TEST" ]; then
        args=(--no-gpu)
    fi
    start=$(date +%s%N)
    if ! "$BIN" -v predict "$WORK/maps" "$name" --caps_directory "$WORK/caps" --participants_tsv "$tsv" --batch_size 8 -np 4 "${args[@]}" 2> "$WORK/$name.log"; then
        echo "GPU check: the $name run (${args[*]}) failed:" >&2
        tail -n 20 "$WORK/$name.log" >&2
        {
            echo "**The $name run (\`${args[*]}\`) failed**; the end of its log:"
            echo
            echo '```'
            tail -n 20 "$WORK/$name.log"
            echo '```'
        } >> "$REPORT"
        exit 1
    fi
    end=$(date +%s%N)
    "$PY" -c "print(($end - $start) / 1e9)"
}
{
    echo "# GPU check, $(date -u +%Y-%m-%d)"
    echo
    if [ -n "$SELF_TEST" ]; then
        echo "**SELF-TEST of the script (GPU_CHECK_SELF_TEST=1): every run is on the CPU; this is not a GPU check.**"
        echo
    fi
    echo "- GPU: $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'nvidia-smi not found')"
    echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
    echo "- torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())')"
    echo "- workload: $N images 1x169x208x179 float32, Conv5_FC3, batch 8, 4 reader threads"
    echo
} > "$REPORT"
read_floor=$("$PY" - "$WORK/caps" <<'PYEOF'
import pathlib, sys, time, torch
files = sorted(pathlib.Path(sys.argv[1]).rglob("*.pt"))
start = time.perf_counter()
for f in files:
    torch.load(f, weights_only=True).contiguous()
print(f"{time.perf_counter() - start:.3f}")
PYEOF
)
cpu_wall=$(run cpu "$WORK/participants_cpu.tsv" --no-gpu)
gpu_wall=$(run gpu "$WORK/participants.tsv" --gpu)
amp_wall=$(run amp "$WORK/participants.tsv" --gpu --amp)
"$PY" - "$WORK" "$N" "$CPU_N" "$read_floor" "$cpu_wall" "$gpu_wall" "$amp_wall" "$SELF_TEST" >> "$REPORT" <<'PYEOF'
import csv, pathlib, re, sys
work, n, cpu_n = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
read_floor, cpu_wall, gpu_wall, amp_wall = map(float, sys.argv[4:8])
self_test = bool(sys.argv[8])
def rows(group):
    path = work / "maps/split-0/best-loss" / group / f"{group}_image_level_prediction.tsv"
    return {(r["participant_id"], r["session_id"]): r for r in csv.DictReader(open(path), delimiter="\t")}
def forward(group):
    text = (work / f"{group}.log").read_text()
    return sum(float(m) for m in re.findall(r"forward passes: ([0-9.]+) s", text))
cpu, gpu, amp = rows("cpu"), rows("gpu"), rows("amp")
def compare(other, tol):
    worst, same = 0.0, True
    for key, r in cpu.items():
        o = other[key]
        same &= r["predicted_label"] == o["predicted_label"]
        worst = max(worst, max(abs(float(r[c]) - float(o[c])) for c in ("proba0", "proba1")))
    return worst, same, worst <= tol
w32, s32, ok32 = compare(gpu, 1e-4)
wamp, samp, okamp = compare(amp, 1e-2)
print("| check | result |\n|---|---|")
print(f"| CUDA seen (a --gpu run succeeded) | {'not checked (self-test on the CPU)' if self_test else 'yes'} |")
print(f"| fp32 GPU vs CPU, {cpu_n} images | max abs diff {w32:.2e}, same labels: {s32}, within 1e-4: {ok32} |")
print(f"| --amp GPU vs CPU, {cpu_n} images | max abs diff {wamp:.2e}, same labels: {samp}, within 1e-2: {okamp} |")
print(f"| read floor ({n} tensor files, torch.load) | {read_floor:.2f} s = {n / read_floor:.1f} images/s |")
for name, wall, group in (("GPU fp32", gpu_wall, "gpu"), ("GPU --amp", amp_wall, "amp")):
    print(f"| {name}: wall, forward, throughput | {wall:.2f} s, {forward(group):.2f} s, {n / wall:.1f} images/s = {100 * (n / wall) / (n / read_floor):.0f}% of the read floor |")
print(f"| CPU fp32 ({cpu_n} images) | {cpu_wall:.2f} s |")
PYEOF
cat "$REPORT"
