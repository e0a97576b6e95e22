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

/// The engine starts with OpenMP threads that sleep between parallel regions (spinning ones made
/// small networks many times slower beside the reader threads) and glibc keeping freed memory in
/// one heap for every thread, unless the user set these variables.
#[test]
fn the_engine_gets_the_tuned_environment_unless_the_user_set_it() {
    let tmp = tempfile::tempdir().unwrap();
    let engine = crate::harness::stand_in_engine(
        tmp.path(),
        "echo \"omp=$OMP_WAIT_POLICY mmap=$MALLOC_MMAP_MAX_ arenas=$MALLOC_ARENA_MAX\" >&2\n",
    );
    let run = |vars: &[(&str, &str)]| {
        let mut command = std::process::Command::new(crate::harness::binary());
        command
            .args(["predict", "maps", "test", "--no-gpu"])
            .env("CLINICADL_RS_ENGINE", &engine)
            .env_remove("OMP_WAIT_POLICY")
            .env_remove("MALLOC_MMAP_MAX_")
            .env_remove("MALLOC_TRIM_THRESHOLD_")
            .env_remove("MALLOC_ARENA_MAX");
        for (k, v) in vars {
            command.env(k, v);
        }
        stderr(&command.output().unwrap())
    };
    assert_eq!(run(&[]).trim(), "omp=PASSIVE mmap=0 arenas=1");
    assert_eq!(
        run(&[("OMP_WAIT_POLICY", "ACTIVE")]).trim(),
        "omp=ACTIVE mmap=0 arenas=1"
    );
    assert_eq!(
        run(&[("MALLOC_ARENA_MAX", "4")]).trim(),
        "omp=PASSIVE mmap=0 arenas=4"
    );
    assert_eq!(
        run(&[("CLINICADL_RS_MALLOC", "default")]).trim(),
        "omp=PASSIVE mmap= arenas="
    );
}
