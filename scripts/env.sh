#!/usr/bin/env bash
# Sets up (once) and exports the build environment of clinicadl-rs. Source it:
#     source scripts/env.sh
# - libtorch: PyTorch 2.11.0 from PyPI (the wheel carries libtorch; tch 0.24.0 binds exactly this
#   version) in a virtual environment OUTSIDE the repository, reused when present:
#   $CLINICADL_RS_TORCH_VENV (default ~/.cache/clinicadl-rs/torch-2.11.0). About 2.7 GB, once.
# - exports LIBTORCH (the torch package folder, with include/ and lib/) for torch-sys, and
#   CLINICADL_RS_PYTHON (that venv's python, used by tests to check files with real torch).
# Idempotent and quick on a second run. Leaves the caller's shell options alone.

_clinicadl_rs_setup() {
    local version=2.11.0
    local venv="${CLINICADL_RS_TORCH_VENV:-$HOME/.cache/clinicadl-rs/torch-$version}"
    local python="$venv/bin/python"
    if ! "$python" -c "import torch, sys; sys.exit(0 if torch.__version__.split('+')[0] == '$version' else 1)" 2>/dev/null; then
        command -v python3 >/dev/null || { echo "setup: python3 (3.10 to 3.13) is needed to install libtorch" >&2; return 1; }
        echo "setup: installing torch==$version into $venv (about 2.7 GB, once)" >&2
        python3 -m venv "$venv" || return 1
        "$python" -m pip install --quiet --upgrade pip || return 1
        "$python" -m pip install --quiet "torch==$version" numpy || return 1
    fi
    LIBTORCH="$("$python" -c 'import torch, os; print(os.path.dirname(torch.__file__))')" || return 1
    export LIBTORCH
    export CLINICADL_RS_TORCH_VENV="$venv"
    export CLINICADL_RS_PYTHON="$python"
    unset LIBTORCH_USE_PYTORCH
    command -v cargo >/dev/null || { echo "setup: cargo (Rust) is needed: see https://rustup.rs" >&2; return 1; }
}
_clinicadl_rs_setup
