//! Build script: makes the binary find libtorch at run time and see CUDA.
//!
//! tch's own link arguments do not reach a dependent crate's binaries, so without this the
//! binary neither starts without `LD_LIBRARY_PATH` nor links `libtorch_cuda` (the linker drops
//! it as "not needed" and CUDA is never initialised). We read where torch-sys found libtorch
//! (`DEP_TCH_LIBTORCH_LIB`, exported through its `links = "tch"` key), add an rpath to it and
//! link `torch_cuda`/`torch` with `--no-as-needed` for the engine that may use the GPU and the
//! integration tests. `clinicadl-rs-engine-cpu` keeps the linker's default: it links
//! `libtorch_cpu` only, and starts without loading CUDA's libraries.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        println!("cargo:rustc-env=CLINICADL_RS_LIBTORCH_VERSION=unknown");
        return;
    };
    // The version of the libtorch linked, for run.json: PyTorch's `version.py` beside `lib/`.
    let version_py = Path::new(&lib).join("../version.py");
    println!("cargo:rerun-if-changed={}", version_py.display());
    let version = std::fs::read_to_string(&version_py)
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("__version__ = "))
                .map(|v| v.trim().trim_matches('\'').to_owned())
        })
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=CLINICADL_RS_LIBTORCH_VERSION={version}");
    // Every target may find libtorch (the rpath adds no dependency by itself)...
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    // ...but only the GPU engine and the integration tests link it whole, CUDA included. The
    // `clinicadl-rs` front binary does not link it, so `--help` and usage errors are instant.
    let mut args = vec![format!("-L{lib}"), "-Wl,--no-as-needed".to_owned()];
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        args.push("-ltorch_cuda".to_owned());
    }
    args.push("-ltorch".to_owned());
    args.push("-Wl,--as-needed".to_owned());
    for arg in &args {
        println!("cargo:rustc-link-arg-bin=clinicadl-rs-engine={arg}");
        println!("cargo:rustc-link-arg-tests={arg}");
    }
}
