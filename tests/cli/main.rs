//! Integration tests: the real `clinicadl-rs` binary run on temporary copies of the reference
//! cases (ClinicaDL 1.6.1 runs in `../shared/reference`) and of the bundled example.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

mod clusters;
mod compare;
mod engines;
mod errors;
mod harness;
mod nifti;
mod parity;
mod reconstruction;
#[path = "../../src/reference_cases.rs"]
mod reference_cases;
mod safety;
mod supervision;
#[path = "../../src/tolerance.rs"]
mod tolerance;
mod torch_readback;
