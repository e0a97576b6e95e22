#!/usr/bin/env bash
# Sets everything up (libtorch) and runs the whole test suite: unit tests, parity with the
# ClinicaDL 1.6.1 reference cases (../shared/reference, when present) and the bundled example,
# error paths, formatting and lints. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
cargo fmt --check
cargo clippy --release --all-targets --quiet -- -D warnings
cargo test --release
