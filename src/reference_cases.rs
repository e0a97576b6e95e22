//! Where the ClinicaDL 1.6.1 reference cases are, for the tests: `$CLINICADL_RS_REFERENCE`, else
//! `../shared/reference` beside the repository. Compiled into the library's unit tests and, by
//! path, into the integration tests (tests/cli), so that both find the cases the same way.

use std::path::PathBuf;

/// The reference cases folder, when present. CI sets `CLINICADL_RS_REQUIRE_REFERENCE=1` so that
/// its absence fails instead of skipping.
pub fn reference_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CLINICADL_RS_REFERENCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/reference"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var_os("CLINICADL_RS_REQUIRE_REFERENCE").is_some() {
        panic!(
            "reference cases not found at {} (CLINICADL_RS_REQUIRE_REFERENCE is set)",
            dir.display()
        );
    }
    #[allow(clippy::print_stderr)]
    {
        eprintln!("SKIPPED: reference cases not found at {}", dir.display());
    }
    None
}
