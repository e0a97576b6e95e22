//! Build script: makes the binary find libtorch at run time and see CUDA.
//!
//! tch's own link arguments do not reach a dependent crate's binaries, so without this the
//! binary neither starts without `LD_LIBRARY_PATH` nor links `libtorch_cuda` (the linker drops
//! it as "not needed" and CUDA is never initialised). We read where torch-sys found libtorch
//! (`DEP_TCH_LIBTORCH_LIB`, exported through its `links = "tch"` key), add an rpath to it and
//! link `torch_cuda`/`torch` with `--no-as-needed`.

use std::path::Path;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    println!("cargo:rerun-if-changed=build.rs");
    let Ok(lib) = std::env::var("DEP_TCH_LIBTORCH_LIB") else {
        return;
    };
    println!("cargo:rustc-link-arg=-Wl,-rpath,{lib}");
    println!("cargo:rustc-link-arg=-L{lib}");
    println!("cargo:rustc-link-arg=-Wl,--no-as-needed");
    if Path::new(&lib).join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-ltorch_cuda");
    }
    println!("cargo:rustc-link-arg=-ltorch");
    println!("cargo:rustc-link-arg=-Wl,--as-needed");
}
