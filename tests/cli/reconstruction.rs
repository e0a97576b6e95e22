//! Reconstruction runs of a variational autoencoder through the whole program: the three loss
//! components of ClinicaDL's VAE loss (checked against ClinicaDL's own values for the same
//! deterministic forward pass), and `--save_latent_tensor`.

use std::path::Path;

use crate::harness::{repo, run, stderr};
use crate::tolerance;

/// The fixture of the Vanilla3DdenseVAE network.
fn vae_fixture() -> std::path::PathBuf {
    repo().join("tests/fixtures/networks/vanilla3ddensevae")
}

/// The relative error of the VAE's outputs (see `tolerance`).
fn vae_error() -> f64 {
    crate::compare::network_error(&vae_fixture())
}

/// The first-order bound of each loss component of ClinicaDL's `VAEGaussianLoss` from the
/// errors of the network's outputs (reconstruction, mu, logvar), by autograd at the forward
/// pass of the fixture's input, batch of 2 as in the run.
fn vae_loss_bounds() -> std::collections::HashMap<String, f64> {
    use clinicadl_rs::networks::{Criterion, Forward, Model, load_network};
    use tch::Tensor;
    let fixture = vae_fixture();
    let maps_path = fixture.join("maps.json");
    let maps = clinicadl_rs::maps::json::parse_maps_json(
        &std::fs::read_to_string(&maps_path).unwrap(),
        &maps_path,
    )
    .unwrap();
    let model = Model::resolve(&maps).unwrap();
    let network = load_network(
        &model.spec,
        &fixture.join("model.pth.tar"),
        tch::Device::Cpu,
        None,
    )
    .unwrap();
    let tensor = |name: &str| {
        let t = clinicadl_rs::torchfile::read_tensor(&fixture.join(name)).unwrap();
        let shape: Vec<i64> = t.shape.iter().map(|&d| d as i64).collect();
        Tensor::from_slice(&t.to_f32_vec().unwrap()).reshape(shape.as_slice())
    };
    let input = tensor("input.pt");
    let forward = tch::no_grad(|| network.forward_full(&input).unwrap());
    let leaf = |t: &Tensor| t.detach().set_requires_grad(true);
    let leaves = Forward {
        output: leaf(&forward.output),
        mu: forward.mu.as_ref().map(leaf),
        logvar: forward.logvar.as_ref().map(leaf),
    };
    let error = |t: &Tensor| {
        let values = Vec::<f32>::try_from(t.flatten(0, -1)).unwrap();
        vae_error() * tolerance::scale(values.iter().map(|&v| f64::from(v)))
    };
    let outputs = [
        (&leaves.output, error(&forward.output)),
        (
            leaves.mu.as_ref().unwrap(),
            error(forward.mu.as_ref().unwrap()),
        ),
        (
            leaves.logvar.as_ref().unwrap(),
            error(forward.logvar.as_ref().unwrap()),
        ),
    ];
    tch::with_grad(|| {
        network
            .reconstruction_loss(
                &leaves,
                &input,
                &Criterion::named(Some("VAEGaussianLoss"), &maps, &model.spec).unwrap(),
            )
            .unwrap()
            .iter()
            .map(|(name, value)| (name.clone(), tolerance::gradient_bound(value, &outputs)))
            .collect()
    })
}

/// A MAPS around the Vanilla3DdenseVAE network fixture (made with ClinicaDL 1.6.1's class by
/// scripts/fixtures/make_network_fixtures.py), with its two inputs as CAPS image tensors.
fn vae_maps(dir: &Path) {
    let fixture = vae_fixture();
    let maps = dir.join("maps");
    std::fs::create_dir_all(maps.join("split-0/best-loss")).unwrap();
    std::fs::create_dir_all(maps.join("groups")).unwrap();
    std::fs::copy(
        fixture.join("model.pth.tar"),
        maps.join("split-0/best-loss/model.pth.tar"),
    )
    .unwrap();
    std::fs::write(
        maps.join("groups/train+validation.tsv"),
        "participant_id\tsession_id\nsub-X\tses-M000\n",
    )
    .unwrap();
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fixture.join("maps.json")).unwrap()).unwrap();
    // The fixture's inputs are the network inputs: no transform.
    json["size_reduction"] = serde_json::json!(false);
    json["normalize"] = serde_json::json!(false);
    std::fs::write(maps.join("maps.json"), json.to_string()).unwrap();
    let input = clinicadl_rs::torchfile::read_tensor(&fixture.join("input.pt")).unwrap();
    let values = input.to_f32_vec().unwrap();
    let half = values.len() / 2;
    let mut tsv = String::from("participant_id\tsession_id\tdiagnosis\n");
    for (i, chunk) in [&values[..half], &values[half..]].into_iter().enumerate() {
        let (p, s) = (format!("sub-V{i}"), "ses-M000");
        let folder = dir.join(format!(
            "caps/subjects/{p}/{s}/deeplearning_prepare_data/image_based/t1_linear"
        ));
        std::fs::create_dir_all(&folder).unwrap();
        let file = folder.join(format!(
            "{p}_{s}_space-MNI152NLin2009cSym_desc-Crop_res-1x1x1_T1w.pt"
        ));
        clinicadl_rs::torchfile::write_tensor(&file, &[1, 32, 40, 32], chunk, false).unwrap();
        tsv.push_str(&format!("{p}\t{s}\tAD\n"));
    }
    std::fs::write(dir.join("participants.tsv"), tsv).unwrap();
}

#[test]
fn vae_losses_and_latent_tensors() {
    let tmp = tempfile::tempdir().unwrap();
    vae_maps(tmp.path());
    let maps = tmp.path().join("maps");
    let (caps, tsv) = (tmp.path().join("caps"), tmp.path().join("participants.tsv"));
    let out = run(
        &[
            "predict",
            maps.to_str().unwrap(),
            "test",
            "--caps_directory",
            caps.to_str().unwrap(),
            "--participants_tsv",
            tsv.to_str().unwrap(),
            "--no-gpu",
            "--batch_size",
            "2",
            "--save_latent_tensor",
            "--save_tensor",
        ],
        tmp.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let dir = maps.join("split-0/best-loss/test");
    let metrics = std::fs::read_to_string(dir.join("test_image_level_metrics.tsv")).unwrap();
    let lines: Vec<Vec<&str>> = metrics.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(
        lines[0],
        [
            "Metrics",
            "MAE",
            "RMSE",
            "PSNR",
            "SSIM",
            "loss",
            "recon_loss",
            "kl_loss"
        ]
    );
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            repo().join("tests/fixtures/networks/vanilla3ddensevae/expected.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let bounds = vae_loss_bounds();
    for (column, name) in [(5, "loss"), (6, "recon_loss"), (7, "kl_loss")] {
        let want = expected["losses"]["VAEGaussianLoss"][name]
            .as_f64()
            .unwrap();
        let got: f64 = lines[1][column].parse().unwrap();
        let allowed = bounds[name] + tolerance::REDUCTION * want.abs();
        assert!(
            tolerance::within(got, want, allowed),
            "{name}: {got} vs ClinicaDL {want} (allowed difference {allowed:e})"
        );
        assert_eq!(lines[2][column], "N/A");
    }
    // Latent tensors: mu of each image, [latent_space_size], requires_grad recorded as ClinicaDL does.
    let mu = clinicadl_rs::torchfile::read_tensor(
        &repo().join("tests/fixtures/networks/vanilla3ddensevae/mu.pt"),
    )
    .unwrap()
    .to_f32_vec()
    .unwrap();
    for i in 0..2 {
        let latent = clinicadl_rs::torchfile::read_tensor(&dir.join(format!(
            "latent_tensors/sub-V{i}_ses-M000_image-0_latent.pt"
        )))
        .unwrap();
        assert_eq!(latent.shape, [3]);
        assert!(latent.requires_grad);
        let allowed = vae_error() * tolerance::scale(mu.iter().map(|&v| f64::from(v)));
        for (a, b) in latent
            .to_f32_vec()
            .unwrap()
            .iter()
            .zip(&mu[3 * i..3 * i + 3])
        {
            assert!(
                tolerance::within(f64::from(*a), f64::from(*b), allowed),
                "latent {a} vs mu {b}"
            );
        }
        let output = clinicadl_rs::torchfile::read_tensor(
            &dir.join(format!("tensors/sub-V{i}_ses-M000_image-0_output.pt")),
        )
        .unwrap();
        assert_eq!(output.shape, [1, 32, 40, 32]);
    }
}

#[test]
fn latent_tensors_need_a_vae() {
    let case = crate::harness::Case::prepare(&repo().join("examples/image_classification"), "test");
    let out = case.predict(&["--save_latent_tensor"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--save_latent_tensor needs a variational autoencoder"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn dry_run_lists_the_saved_files() {
    let Some(reference) = crate::harness::reference_dir() else {
        return;
    };
    let case = crate::harness::Case::prepare(&reference.join("image_reconstruction"), "test");
    let out = case.predict(&["--dry-run"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let plan = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut planned: Vec<String> = plan
        .lines()
        .filter_map(|l| l.strip_prefix("  "))
        .map(str::to_owned)
        .collect();
    assert!(case.predict(&[]).status.success());
    let mut written: Vec<String> = crate::harness::tree_digest(&case.maps())
        .into_iter()
        .filter(|(p, c)| {
            c != b"<dir>"
                && (p.starts_with("groups/test") || p.to_string_lossy().contains("/test/"))
        })
        .map(|(p, _)| p.to_string_lossy().into_owned())
        .collect();
    planned.sort();
    written.sort();
    assert_eq!(planned, written);
}
