//! The `clinicadl-rs-engine` binary, libtorch with CUDA (GPU runs): see `clinicadl_rs::entry`.

fn main() -> std::process::ExitCode {
    clinicadl_rs::entry::main()
}
