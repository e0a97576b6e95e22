//! Files written by clinicadl-rs's `.pt` writer are read by real PyTorch
//! (`torch.load(weights_only=True)`), through `scripts/fixtures/check_torchfile_written.py` run
//! with the set-up's Python (`CLINICADL_RS_PYTHON`, exported by `scripts/env.sh`).

use std::process::Command;

use crate::harness::repo;

#[test]
fn torch_loads_what_we_write() {
    let Some(python) = std::env::var_os("CLINICADL_RS_PYTHON") else {
        if std::env::var_os("CLINICADL_RS_REQUIRE_REFERENCE").is_some() {
            panic!("CLINICADL_RS_PYTHON is not set (source scripts/env.sh)");
        }
        eprintln!("SKIPPED: CLINICADL_RS_PYTHON is not set");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sub-01_ses-M000_image-0_output.pt");
    let data: Vec<f32> = (0..60).map(|i| i as f32 * 0.5).collect();
    clinicadl_rs::torchfile::write_tensor(&path, &[1, 5, 4, 3], &data, false).unwrap();
    let out = Command::new(python)
        .arg(repo().join("scripts/fixtures/check_torchfile_written.py"))
        .arg(&path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "torch.load failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("shape=[1, 5, 4, 3]") && stdout.contains("sum=885.0"),
        "{stdout}"
    );
}
