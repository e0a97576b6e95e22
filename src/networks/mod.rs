//! The networks of ClinicaDL, rebuilt on libtorch with their weights loaded strictly from a
//! checkpoint by PyTorch state_dict key (networks.md). One `match` on the architecture name
//! chooses the network; forward passes run in evaluation mode, without gradients.

pub mod autoencoder;
pub mod cnn;
pub mod layers;
pub mod random;
pub mod resnet;
pub mod state_dict;
pub mod unet;
pub mod vae;

use std::path::Path;

use anyhow::{Context, Result, bail};
use tch::{Device, TchError, Tensor};

use crate::maps::json::MapsJson;
use cnn::{Cnn, CnnKind};
use layers::Dim;
use state_dict::StateDict;

/// Architectures ClinicaDL 1.6.1 defines but that cannot be used for prediction.
const UNUSABLE: &[(&str, &str)] = &[
    (
        "CAE_half",
        "its constructor always fails in ClinicaDL 1.6.1, so no MAPS can contain a trained one",
    ),
    (
        "Vanilla3DspacialVAE",
        "its constructor always fails in ClinicaDL 1.6.1",
    ),
    (
        "VanillaDenseVAE",
        "its constructor always fails in ClinicaDL 1.6.1",
    ),
    (
        "VanillaSpatialVAE",
        "its constructor always fails in ClinicaDL 1.6.1",
    ),
    (
        "Conv5_FC3_SSDA",
        "semi-supervised domain adaptation networks are not supported by predict",
    ),
];

/// Architectures ClinicaDL 1.6.1 can train that clinicadl-rs does not run yet.
const NOT_YET: &[&str] = &[
    "resnet18",
    "ResNet3D",
    "SqueezeExcitationCNN",
    "RandomArchitecture",
    "AE_Conv5_FC3",
    "AE_Conv4_FC3",
    "Vanilla3DdenseVAE",
    "CVAE_3D",
    "CVAE_3D_half",
    "CVAE_3D_final_conv",
    "GeneratorUNet",
];

/// A network ready for inference.
#[derive(Debug)]
pub enum Network {
    /// Conv5_FC3, Conv4_FC3, Stride_Conv5_FC3.
    Cnn(Cnn),
}

impl Network {
    /// The forward pass used at prediction time.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        match self {
            Network::Cnn(n) => n.forward(x),
        }
    }
}

/// Checks that clinicadl-rs can run the architecture of `maps.json`, before anything is read.
pub fn check_architecture(maps: &MapsJson) -> Result<()> {
    let name = maps.architecture.as_str();
    if let Some((_, why)) = UNUSABLE.iter().find(|(n, _)| *n == name) {
        bail!("architecture `{name}` cannot be used: {why}");
    }
    if NOT_YET.contains(&name) {
        bail!(
            "architecture `{name}` is not supported yet by clinicadl-rs (supported: Conv5_FC3, Conv4_FC3, Stride_Conv5_FC3)"
        );
    }
    cnn_kind(name)?;
    if Dim::from_input_size(&maps.input_size).is_none() {
        bail!(
            "maps.json `input_size` {:?} must have 3 (2D: C, H, W) or 4 (3D: C, D, H, W) entries",
            maps.input_size
        );
    }
    if maps.output_size.is_none() {
        bail!("architecture `{name}` needs an integer `output_size` in maps.json");
    }
    Ok(())
}

fn cnn_kind(name: &str) -> Result<CnnKind> {
    Ok(match name {
        "Conv5_FC3" => CnnKind::Conv5Fc3,
        "Conv4_FC3" => CnnKind::Conv4Fc3,
        "Stride_Conv5_FC3" => CnnKind::StrideConv5Fc3,
        other => bail!(
            "unknown architecture `{other}` in maps.json: ClinicaDL 1.6.1 has no network of this name"
        ),
    })
}

/// Builds the network of `maps.json` and loads the checkpoint at `checkpoint` onto `device`.
pub fn load_network(maps: &MapsJson, checkpoint: &Path, device: Device) -> Result<Network> {
    let sd = StateDict::new(read_checkpoint(checkpoint)?, checkpoint, device);
    let network = build(maps, &sd)?;
    sd.finish(&maps.architecture)?;
    Ok(network)
}

/// Checks that the checkpoint decodes and fits the network of `maps.json` (every key, every
/// shape), without creating the network's tensors.
pub fn check_checkpoint(maps: &MapsJson, checkpoint: &Path) -> Result<()> {
    let sd = StateDict::check_only(read_checkpoint(checkpoint)?, checkpoint);
    build(maps, &sd)?;
    sd.finish(&maps.architecture)
}

fn read_checkpoint(checkpoint: &Path) -> Result<crate::torchfile::Checkpoint> {
    crate::torchfile::read_checkpoint(checkpoint)
        .with_context(|| format!("cannot load the checkpoint `{}`", checkpoint.display()))
}

fn build(maps: &MapsJson, sd: &StateDict) -> Result<Network> {
    check_architecture(maps)?;
    let dim = Dim::from_input_size(&maps.input_size).context("invalid input_size")?;
    let output_size = maps.output_size.context("missing output_size")?;
    Ok(Network::Cnn(Cnn::load(
        sd,
        cnn_kind(&maps.architecture)?,
        dim,
        &maps.input_size,
        output_size,
    )))
}
