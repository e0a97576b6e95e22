//! Which engine runs: `--no-gpu` runs go to the engine without CUDA (CUDA's libraries are never
//! loaded: faster start-up, less memory), others to the engine with CUDA.

use crate::harness::{Case, repo, stderr};

#[test]
fn cpu_runs_do_not_load_cuda_and_gpu_runs_do() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    // The example's command has --no-gpu.
    let out = case.predict(&["-v", "--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("(process start to engine ready; libtorch without CUDA)"),
        "{}",
        stderr(&out)
    );
    // --gpu given after --no-gpu wins (the last flag counts, as with click): the CUDA engine
    // starts, whether or not this machine has a GPU.
    let out = case.predict(&["-v", "--dry-run", "--gpu"]);
    assert!(
        stderr(&out).contains("(process start to engine ready; libtorch with CUDA)"),
        "{}",
        stderr(&out)
    );
}
