#!/usr/bin/env bash
# Sets everything up (libtorch, release build) and runs `clinicadl-rs predict` on the bundled
# example (a MAPS trained by ClinicaDL 1.6.1), then compares the results with ClinicaDL's own.
# Idempotent: the example is copied afresh to target/example/ at every run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo build --release --quiet
work="$PWD/target/example/image_classification"
mkdir -p target/example
python3 scripts/prepare_reference_case.py examples/image_classification "$work" > target/example/args.txt
mapfile -t args < target/example/args.txt
echo "\$ clinicadl-rs predict ${args[*]}" >&2
(cd "$work" && "$OLDPWD/target/release/clinicadl-rs" predict "${args[@]}")
echo
echo "== $work/maps/split-0/best-loss/test/test_image_level_prediction.tsv"
cat "$work/maps/split-0/best-loss/test/test_image_level_prediction.tsv"
echo
python3 scripts/compare_outputs.py examples/image_classification/maps "$work/maps" test
