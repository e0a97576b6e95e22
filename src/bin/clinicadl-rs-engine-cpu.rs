//! The `clinicadl-rs-engine-cpu` binary, libtorch without CUDA (`--no-gpu` runs): see `clinicadl_rs::entry`.

fn main() -> std::process::ExitCode {
    clinicadl_rs::entry::main()
}
