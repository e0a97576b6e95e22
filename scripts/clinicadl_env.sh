#!/usr/bin/env bash
# Sets up (once) ClinicaDL 1.6.1, the reference implementation, in a virtual environment outside
# the repository, and exports CLINICADL_RS_CLINICADL_PYTHON (its python). Source it:
#     source scripts/clinicadl_env.sh
# Used by the tests that build networks with ClinicaDL's own classes (the fixed-size networks,
# whose fixtures are too large to commit) and by the benchmark. Venv:
# $CLINICADL_RS_CLINICADL_VENV (default ~/.cache/clinicadl-rs/clinicadl-1.6.1); scipy is pinned to
# 1.14.1 (ClinicaDL 1.6.1's confidence intervals crash at random with scipy >= 1.17).
# Idempotent and quick on a second run. Leaves the caller's shell options alone.

_clinicadl_rs_clinicadl_setup() {
    local venv="${CLINICADL_RS_CLINICADL_VENV:-$HOME/.cache/clinicadl-rs/clinicadl-1.6.1}"
    local python="$venv/bin/python"
    if ! "$python" -c "import clinicadl, torch, scipy; assert scipy.__version__ == '1.14.1' and torch.__version__.startswith('2.11.0')" 2>/dev/null; then
        command -v python3 >/dev/null || { echo "setup: python3 is needed to install ClinicaDL" >&2; return 1; }
        echo "setup: installing clinicadl==1.6.1 (torch 2.11.0, scipy 1.14.1) into $venv (once)" >&2
        python3 -m venv "$venv" || return 1
        "$python" -m pip install --quiet --upgrade pip || return 1
        "$python" -m pip install --quiet clinicadl==1.6.1 torch==2.11.0 scipy==1.14.1 || return 1
    fi
    export CLINICADL_RS_CLINICADL_VENV="$venv"
    export CLINICADL_RS_CLINICADL_PYTHON="$python"
}
_clinicadl_rs_clinicadl_setup
