#!/usr/bin/env bash
# Sets everything up (libtorch; ClinicaDL 1.6.1 for the network parity tests that build their
# fixtures with ClinicaDL's own classes) and runs the whole test suite: unit tests, parity with
# the ClinicaDL 1.6.1 reference cases (../shared/reference, when present), the project's own
# ClinicaDL cases and the bundled example, error paths, formatting and lints. Idempotent.
# CLINICADL_RS_SKIP_CLINICADL=1 skips the ClinicaDL install (those tests then print SKIPPED).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ -z "${CLINICADL_RS_SKIP_CLINICADL:-}" ]; then
    source scripts/clinicadl_env.sh
fi
cargo fmt --check
cargo clippy --release --all-targets --quiet -- -D warnings
cargo test --release
