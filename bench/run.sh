#!/usr/bin/env bash
# Benchmark: clinicadl-rs predict against ClinicaDL 1.6.1 predict, on this machine, in one run.
#
#     bash bench/run.sh [--n 40] [--quick] [--patch-images 8] [--small-images 400]
#                       [--small-shape 32 40 32] [--help-runs 20]
#
# From a clean clone it:
#  1. sets up libtorch and builds the release binary (scripts/env.sh, cargo build --release);
#  2. creates, or reuses, ClinicaDL 1.6.1 in its own virtual environment OUTSIDE the repository,
#     ${CLINICADL_RS_BENCH_VENV:-~/.cache/clinicadl-rs/clinicadl-1.6.1}:
#     pip install clinicadl==1.6.1 torch==2.11.0 scipy==1.14.1
#     (scipy pinned: ClinicaDL 1.6.1's bootstrap confidence intervals crash at random with
#     scipy >= 1.17); needs GNU time (/usr/bin/time; installed with apt-get when missing) and, for
#     the model-load timing, strace (optional);
#  3. runs bench/bench.py in target/bench/ (or $CLINICADL_RS_BENCH_WORK): three workloads (image:
#     N full-size images; patch: pre-extracted 50^3 patches; small: 400 small images), each a
#     synthetic CAPS and a Conv5_FC3 MAPS made by bench/make_workload.py (reused on later runs with
#     the same sizes), predicted by both tools with the same options; outputs compared (labels,
#     probabilities within 1e-4); floors (tensor reading, forward pass in memory) measured in the
#     same run; a Markdown report printed and written to target/bench/results.md.
# --quick: tiny sizes (2 images, 1 patch image, 16 small images), a smoke test of the script, in
# target/bench/quick/.
# Exits 1 when the two tools' predictions differ, 0 otherwise (targets are reported, not enforced).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"

source scripts/env.sh
echo "[bench] building the release binary" >&2
cargo build --release --quiet

venv="${CLINICADL_RS_BENCH_VENV:-$HOME/.cache/clinicadl-rs/clinicadl-1.6.1}"
check='import importlib.metadata as m, sys
want = {"clinicadl": "1.6.1", "torch": "2.11.0", "scipy": "1.14.1"}
sys.exit(0 if all(m.version(p).split("+")[0] == v for p, v in want.items()) else 1)'
if ! "$venv/bin/python" -c "$check" 2>/dev/null; then
    command -v python3 >/dev/null || { echo "bench: python3 (3.10 to 3.12) is needed for ClinicaDL" >&2; exit 1; }
    echo "[bench] installing clinicadl==1.6.1 torch==2.11.0 scipy==1.14.1 into $venv (several GB, once)" >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet clinicadl==1.6.1 torch==2.11.0 scipy==1.14.1
    "$venv/bin/python" -c "$check" || { echo "bench: $venv does not hold the pinned versions" >&2; exit 1; }
fi

if [ ! -x /usr/bin/time ]; then
    echo "[bench] installing GNU time" >&2
    if [ "$(id -u)" = 0 ]; then apt-get install -y time >&2; else sudo apt-get install -y time >&2; fi
fi

work="${CLINICADL_RS_BENCH_WORK:-$repo/target/bench}"
exec "$venv/bin/python" bench/bench.py --work "$work" --bin "$repo/target/release/clinicadl-rs" \
    --clinicadl-venv "$venv" "$@"
