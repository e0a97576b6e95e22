//! How the command hands a run to its engine: `--no-gpu` runs go to the engine without CUDA
//! (CUDA's libraries are never loaded: faster start-up, less memory), others to the engine with
//! CUDA; a run that libtorch could not start is stopped with a clear error first.

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

/// In a current folder that no longer exists (a scratch folder removed under a shell), the run
/// stops with a clear error before libtorch starts (it would die with a cryptic MKL error).
#[test]
fn a_deleted_current_folder_is_a_clear_error() {
    let case = Case::prepare(&repo().join("examples/image_classification"), "test");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"mkdir gone && cd gone && rmdir ../gone && exec "$0" predict "$@""#)
        .arg(crate::harness::binary())
        .args(&case.args)
        .current_dir(&case.dir)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: cannot use the current folder (")
            && stderr(&out).contains("hint: `cd` to an existing folder"),
        "{}",
        stderr(&out)
    );
    assert!(!case.maps().join("groups/test").exists());
}
