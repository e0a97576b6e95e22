//! The networks of ClinicaDL, rebuilt on libtorch with their weights loaded strictly from a
//! checkpoint by PyTorch state_dict key. [`architecture`] is the registry of names; one `match`
//! on the [`Architecture`] turns `maps.json` into a checked [`Spec`] (before any file is read),
//! [`Model::resolve`] adds its [`Criterion`] (`loss.rs`), and one `match` on the spec builds the
//! [`Network`]; forward passes run in evaluation mode.
//!
//! One file per family: `cnn.rs` (Conv5_FC3, Conv4_FC3, Stride_Conv5_FC3), `resnet.rs`
//! (resnet18, ResNet3D, SqueezeExcitationCNN), `random.rs` (RandomArchitecture),
//! `autoencoder.rs` (AE_Conv5_FC3, AE_Conv4_FC3), `vae.rs` (Vanilla3DdenseVAE, CVAE_3D,
//! CVAE_3D_half, CVAE_3D_final_conv), `unet.rs` (GeneratorUNet).
//!
//! ClinicaDL: `clinicadl.utils.network` (the classes) and
//! `clinicadl.utils.maps_manager.MapsManager._init_model` (constructor arguments from maps.json).

pub mod architecture;
pub mod autoencoder;
pub mod cnn;
pub mod layers;
pub mod loss;
pub mod random;
pub mod resnet;
pub mod state_dict;
pub mod unet;
pub mod vae;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod parity_tests;

use std::path::Path;

use anyhow::{Context, Result, bail};
use tch::{Device, TchError, Tensor};

pub use architecture::{Architecture, Family};
pub use loss::Criterion;

use crate::maps::json::{MapsJson, Task};
use crate::torchfile::FileStamp;
use autoencoder::Autoencoder;
use cnn::{Cnn, CnnKind};
use layers::Dim;
use random::{RandomArchitecture, RandomSpec};
use resnet::{ResNet3D, ResNet3DKind, ResNet18};
use state_dict::StateDict;
use unet::GeneratorUNet;
use vae::{Cvae, CvaeKind, DenseVaeSpec, Vanilla3DdenseVae};

/// A network described by `maps.json`, checked, before any tensor exists.
#[derive(Debug, Clone, PartialEq)]
pub enum Spec {
    /// Conv5_FC3, Conv4_FC3, Stride_Conv5_FC3.
    Cnn {
        /// Which one.
        kind: CnnKind,
        /// 2D or 3D.
        dim: Dim,
        /// `input_size`.
        input_size: Vec<usize>,
        /// `output_size`.
        output_size: usize,
    },
    /// resnet18 (2D, 3 channels).
    ResNet18 {
        /// `input_size` (`[3, H, W]`).
        input_size: Vec<usize>,
        /// `output_size`.
        output_size: usize,
    },
    /// ResNet3D, SqueezeExcitationCNN (fixed sizes).
    ResNet3D(ResNet3DKind),
    /// RandomArchitecture.
    Random(RandomSpec),
    /// AE_Conv5_FC3, AE_Conv4_FC3 (the same network).
    Autoencoder {
        /// Which name `maps.json` gives it.
        architecture: Architecture,
        /// 2D or 3D.
        dim: Dim,
        /// `input_size`.
        input_size: Vec<usize>,
    },
    /// Vanilla3DdenseVAE.
    DenseVae(DenseVaeSpec),
    /// CVAE_3D, CVAE_3D_half, CVAE_3D_final_conv.
    Cvae {
        /// Which one.
        kind: CvaeKind,
        /// The fixed input size.
        input_size: [usize; 4],
        /// `latent_space_size`.
        latent_space_size: i64,
    },
    /// GeneratorUNet.
    UNet,
}

impl Spec {
    /// The family of the network.
    pub fn family(&self) -> Family {
        match self {
            Spec::Cnn { .. } | Spec::ResNet18 { .. } | Spec::ResNet3D(_) | Spec::Random(_) => {
                Family::Cnn
            }
            Spec::Autoencoder { .. } => Family::Autoencoder,
            Spec::DenseVae(_) | Spec::Cvae { .. } => Family::Vae,
            Spec::UNet => Family::UNet,
        }
    }

    /// The architecture described.
    pub fn architecture(&self) -> Architecture {
        match self {
            Spec::Cnn { kind, .. } => match kind {
                CnnKind::Conv5Fc3 => Architecture::Conv5Fc3,
                CnnKind::Conv4Fc3 => Architecture::Conv4Fc3,
                CnnKind::StrideConv5Fc3 => Architecture::StrideConv5Fc3,
            },
            Spec::ResNet18 { .. } => Architecture::ResNet18,
            Spec::ResNet3D(ResNet3DKind::ResNet3D) => Architecture::ResNet3D,
            Spec::ResNet3D(ResNet3DKind::SqueezeExcitation) => Architecture::SqueezeExcitationCnn,
            Spec::Random(_) => Architecture::RandomArchitecture,
            Spec::Autoencoder { architecture, .. } => *architecture,
            Spec::DenseVae(_) => Architecture::Vanilla3DdenseVae,
            Spec::Cvae { kind, .. } => match kind {
                CvaeKind::Full => Architecture::Cvae3D,
                CvaeKind::Half => Architecture::Cvae3DHalf,
                CvaeKind::FinalConv => Architecture::Cvae3DFinalConv,
            },
            Spec::UNet => Architecture::GeneratorUNet,
        }
    }
}

/// The network of `maps.json`, checked: what to build, and the loss of its batches.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    /// The network.
    pub spec: Spec,
    /// Its criterion.
    pub criterion: Criterion,
}

impl Model {
    /// Checks that clinicadl-rs can run the network of `maps.json` with its loss, before any
    /// file is read.
    pub fn resolve(maps: &MapsJson) -> Result<Model> {
        let spec = spec(maps)?;
        let criterion = Criterion::resolve(maps, &spec)?;
        Ok(Model { spec, criterion })
    }
}

#[derive(Debug)]
enum Inner {
    Cnn(Cnn),
    ResNet18(ResNet18),
    ResNet3D(ResNet3D),
    Random(RandomArchitecture),
    Autoencoder(Autoencoder),
    DenseVae(Box<Vanilla3DdenseVae>),
    Cvae(Box<Cvae>),
    UNet(GeneratorUNet),
}

/// A network ready for inference.
#[derive(Debug)]
pub struct Network {
    architecture: Architecture,
    family: Family,
    inner: Inner,
}

/// Everything a forward pass gives: the prediction output and, for VAEs, the latent
/// distribution (`mu`, `logvar`, `[B, latent_space_size]`).
#[derive(Debug)]
pub struct Forward {
    /// Logits `[B, output_size]` (CNNs) or the reconstruction, of the input's shape.
    pub output: Tensor,
    /// The latent mean (VAEs only).
    pub mu: Option<Tensor>,
    /// The latent log-variance (VAEs only).
    pub logvar: Option<Tensor>,
}

impl Network {
    /// The prediction output: logits `[B, output_size]` for the CNN family, the
    /// reconstruction (same shape as `x`) for autoencoders, VAEs (deterministic, `z = mu`) and
    /// the U-Net.
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        self.forward_full(x).map(|f| f.output)
    }

    /// The forward pass with, for VAEs, `mu` and `logvar`.
    pub fn forward_full(&self, x: &Tensor) -> Result<Forward, TchError> {
        let plain = |output| Forward {
            output,
            mu: None,
            logvar: None,
        };
        let (output, mu, logvar) = match &self.inner {
            Inner::Cnn(n) => return n.forward(x).map(plain),
            Inner::ResNet18(n) => return n.forward(x).map(plain),
            Inner::ResNet3D(n) => return n.forward(x).map(plain),
            Inner::Random(n) => return n.forward(x).map(plain),
            Inner::Autoencoder(n) => return n.forward(x).map(plain),
            Inner::UNet(n) => return n.forward(x).map(plain),
            Inner::DenseVae(n) => n.forward(x)?,
            Inner::Cvae(n) => n.forward(x)?,
        };
        Ok(Forward {
            output,
            mu: Some(mu),
            logvar: Some(logvar),
        })
    }

    /// What `--save_latent_tensor` saves from a forward pass (`[B, latent_space_size]`): `mu`
    /// for Vanilla3DdenseVAE, `logvar` for the CVAE_3D family (ClinicaDL saves the second value
    /// the class's forward returns); `None` for other networks, which ClinicaDL cannot save.
    pub fn latent(&self, f: &Forward) -> Option<Tensor> {
        match &self.inner {
            Inner::DenseVae(_) => f.mu.as_ref().map(Tensor::shallow_clone),
            Inner::Cvae(_) => f.logvar.as_ref().map(Tensor::shallow_clone),
            _ => None,
        }
    }

    /// The family of the network.
    pub fn family(&self) -> Family {
        self.family
    }

    /// Whether the network reconstructs its input (autoencoders, VAEs, U-Net).
    pub fn is_reconstruction(&self) -> bool {
        self.family() != Family::Cnn
    }

    /// The architecture.
    pub fn architecture(&self) -> Architecture {
        self.architecture
    }

    /// The loss of a reconstruction batch, as ClinicaDL's `compute_outputs_and_loss` reports
    /// it: `[("loss", l)]` for autoencoders and the U-Net (a plain criterion applied to
    /// `(reconstruction, input)`, mean reduction); `loss`, `recon_loss`, `kl_loss` for VAEs.
    /// Each value is a float32 scalar tensor. The criterion suits the network: [`Model::resolve`]
    /// checked it.
    pub fn reconstruction_loss(
        &self,
        f: &Forward,
        input: &Tensor,
        criterion: &Criterion,
    ) -> Result<Vec<(String, Tensor)>> {
        let architecture = self.architecture;
        let latent = || -> Result<(&Tensor, &Tensor)> {
            match (&f.mu, &f.logvar) {
                (Some(mu), Some(logvar)) => Ok((mu, logvar)),
                _ => bail!("the forward pass of {architecture} gave no latent distribution"),
            }
        };
        if !self.is_reconstruction() {
            bail!("{architecture} is not a reconstruction network");
        }
        match *criterion {
            Criterion::Cvae3D => {
                let (mu, logvar) = latent()?;
                vae::cvae_3d_loss(input, &f.output, mu, logvar)
            }
            Criterion::Vae {
                loss,
                combination,
                recons_weight,
                kl_weight,
            } => {
                let (mu, logvar) = latent()?;
                let components = loss.components(input, &f.output, mu, logvar)?;
                vae::combine(components, combination, recons_weight, kl_weight)
            }
            Criterion::Plain(loss) => {
                Ok(vec![("loss".to_owned(), loss.compute(&f.output, input)?)])
            }
        }
    }
}

fn dim_of(maps: &MapsJson) -> Result<Dim> {
    Dim::from_input_size(&maps.input_size).with_context(|| {
        format!(
            "maps.json `input_size` {:?} must have 3 (2D: C, H, W) or 4 (3D: C, D, H, W) entries",
            maps.input_size
        )
    })
}

fn output_size_of(maps: &MapsJson) -> Result<usize> {
    maps.output_size.with_context(|| {
        format!(
            "architecture `{}` needs an integer `output_size` in maps.json",
            maps.architecture
        )
    })
}

/// Bound on the integer constructor arguments (sizes, counts), far above any real network, so
/// that the size arithmetic cannot overflow.
const MAX_ARG: i64 = 1 << 24;

/// An integer constructor argument of `maps.json` in `[min, 2^24]` (defaults already
/// completed).
fn int_arg(maps: &MapsJson, key: &str, min: i64) -> Result<i64> {
    let value = maps.raw.get(key).with_context(|| {
        format!(
            "architecture `{}` needs `{key}` in maps.json",
            maps.architecture
        )
    })?;
    value
        .as_i64()
        .filter(|n| (min..=MAX_ARG).contains(n))
        .with_context(|| {
            format!("maps.json `{key}` must be an integer from {min} to {MAX_ARG}, found {value}")
        })
}

/// The input size fixed by `size_reduction_factor`, which must also be `maps.json`'s.
fn reduced_input_size(maps: &MapsJson) -> Result<[usize; 4]> {
    let factor = maps.size_reduction_factor;
    let Some(size) = vae::reduced_input_size(factor) else {
        bail!(
            "maps.json `size_reduction_factor` is {factor}: {} only exists in ClinicaDL 1.6.1 for size_reduction_factor 2, 3, 4 or 5",
            maps.architecture
        );
    };
    check_input_size(maps, &size, &format!("size_reduction_factor {factor}"))?;
    Ok(size)
}

/// A fixed-size network's input size must be `maps.json`'s, the size of the data.
fn check_input_size(maps: &MapsJson, expected: &[usize], why: &str) -> Result<()> {
    if maps.input_size != expected {
        bail!(
            "{} is built for inputs of size {expected:?} ({why}), but maps.json `input_size` is {:?}",
            maps.architecture,
            maps.input_size
        );
    }
    Ok(())
}

/// Turns `maps.json` into the checked description of its network.
pub fn spec(maps: &MapsJson) -> Result<Spec> {
    let name = maps.architecture.as_str();
    let Some(architecture) = Architecture::from_name(name) else {
        bail!(
            "unknown architecture `{name}` in maps.json: ClinicaDL 1.6.1 has no network of this name"
        );
    };
    if let Some(family) = architecture.family() {
        let reconstruction = family != Family::Cnn;
        if reconstruction != (maps.task == Task::Reconstruction) {
            bail!(
                "architecture `{name}` is a {} network, but maps.json `network_task` is {}",
                if reconstruction {
                    "reconstruction"
                } else {
                    "classification/regression"
                },
                maps.task.name()
            );
        }
    }
    use Architecture as A;
    let spec = match architecture {
        A::Conv5Fc3 | A::Conv4Fc3 | A::StrideConv5Fc3 => Spec::Cnn {
            kind: match architecture {
                A::Conv5Fc3 => CnnKind::Conv5Fc3,
                A::Conv4Fc3 => CnnKind::Conv4Fc3,
                _ => CnnKind::StrideConv5Fc3,
            },
            dim: dim_of(maps)?,
            input_size: maps.input_size.clone(),
            output_size: output_size_of(maps)?,
        },
        A::ResNet18 => {
            if maps.input_size.len() != 3 || maps.input_size[0] != 3 {
                bail!(
                    "resnet18 takes 2D inputs with 3 channels (slice_mode rgb), but maps.json `input_size` is {:?}",
                    maps.input_size
                );
            }
            Spec::ResNet18 {
                input_size: maps.input_size.clone(),
                output_size: output_size_of(maps)?,
            }
        }
        A::ResNet3D | A::SqueezeExcitationCnn => {
            let kind = if architecture == A::ResNet3D {
                ResNet3DKind::ResNet3D
            } else {
                ResNet3DKind::SqueezeExcitation
            };
            let fits = maps.input_size.len() == 4
                && maps.input_size[0] == 1
                && resnet::stages_output(&maps.input_size[1..]).as_deref() == Some(&[4, 5, 4]);
            if !fits {
                bail!(
                    "{name} is built for inputs of size {:?} (ClinicaDL ignores maps.json `input_size`), but maps.json `input_size` is {:?}, which its layers cannot take",
                    resnet::FIXED_INPUT_SIZE,
                    maps.input_size
                );
            }
            if maps.output_size != Some(2) {
                bail!(
                    "{name} always has 2 outputs (ClinicaDL ignores maps.json `output_size`), so it can only serve a binary classification, but maps.json `output_size` is {}",
                    maps.output_size
                        .map_or("absent".to_owned(), |n| n.to_string())
                );
            }
            Spec::ResNet3D(kind)
        }
        A::RandomArchitecture => Spec::Random(RandomSpec::from_maps(maps)?),
        A::AeConv5Fc3 | A::AeConv4Fc3 => Spec::Autoencoder {
            architecture,
            dim: dim_of(maps)?,
            input_size: maps.input_size.clone(),
        },
        A::Vanilla3DdenseVae => {
            let input_size = reduced_input_size(maps)?;
            let n_conv = int_arg(maps, "n_conv", 1)? as usize;
            if input_size[1..]
                .iter()
                .any(|&n| n.checked_shr(n_conv as u32).unwrap_or(0) == 0)
            {
                bail!(
                    "maps.json `n_conv` is {n_conv}: too many convolutions for inputs of size {input_size:?}"
                );
            }
            Spec::DenseVae(DenseVaeSpec {
                input_size,
                latent_space_size: int_arg(maps, "latent_space_size", 1)?,
                feature_size: int_arg(maps, "feature_size", 0)?,
                n_conv,
                io_layer_channels: int_arg(maps, "io_layer_channels", 1)?,
            })
        }
        A::Cvae3D => {
            check_input_size(maps, &vae::CVAE_3D_INPUT_SIZE, "fixed by the class")?;
            Spec::Cvae {
                kind: CvaeKind::Full,
                input_size: vae::CVAE_3D_INPUT_SIZE,
                latent_space_size: int_arg(maps, "latent_space_size", 1)?,
            }
        }
        A::Cvae3DHalf | A::Cvae3DFinalConv => Spec::Cvae {
            kind: if architecture == A::Cvae3DHalf {
                CvaeKind::Half
            } else {
                CvaeKind::FinalConv
            },
            input_size: reduced_input_size(maps)?,
            latent_space_size: int_arg(maps, "latent_space_size", 1)?,
        },
        A::GeneratorUNet => {
            let fits = maps.input_size.len() == 4
                && maps.input_size[0] == 1
                && maps.input_size[1..].iter().all(|&n| n % 32 == 0);
            if !fits {
                bail!(
                    "GeneratorUNet takes 3D single-channel inputs whose sizes are multiples of 32, but maps.json `input_size` is {:?}",
                    maps.input_size
                );
            }
            if maps.input_size[1..].iter().all(|&n| n == 32) {
                bail!(
                    "GeneratorUNet cannot take inputs of size {:?}: its innermost feature map would be a single voxel, which PyTorch's InstanceNorm refuses",
                    maps.input_size
                );
            }
            Spec::UNet
        }
        A::CaeHalf
        | A::Vanilla3DspacialVae
        | A::VanillaDenseVae
        | A::VanillaSpatialVae
        | A::Conv5Fc3Ssda => bail!(
            "architecture `{name}` cannot be used: {}",
            architecture
                .refusal()
                .unwrap_or("clinicadl-rs does not run it")
        ),
    };
    Ok(spec)
}

/// Builds the network of `maps.json` and loads the checkpoint at `checkpoint` onto `device`.
/// Its values are checked against their CRC-32s unless `checked` is the stamp that
/// [`check_checkpoint`] returned and the file still has it.
pub fn load_network(
    spec: &Spec,
    checkpoint: &Path,
    device: Device,
    checked: Option<&FileStamp>,
) -> Result<Network> {
    let started = std::time::Instant::now();
    let sd = StateDict::open(checkpoint, device, checked)?;
    let network = build(spec, &sd);
    sd.finish(spec.architecture().name())?;
    crate::ui::debug(&format!(
        "model loaded: {:.1} ms ({}, {device:?}, from `{}`)",
        started.elapsed().as_secs_f64() * 1e3,
        spec.architecture(),
        checkpoint.display()
    ));
    Ok(network)
}

/// Checks that the checkpoint decodes and fits the network of `maps.json` (every key, every
/// shape, every storage entry big enough) from its headers, and that its values are intact
/// (CRC-32s), without keeping them nor creating the network's tensors. Returns the stamp of the
/// file checked, for [`load_network`].
pub fn check_checkpoint(spec: &Spec, checkpoint: &Path) -> Result<FileStamp> {
    // The errors of `torchfile` name the file.
    let (headers, stamp) = crate::torchfile::read_checkpoint_header(checkpoint)
        .context("cannot load the checkpoint")?;
    let sd = StateDict::check_only(headers, checkpoint);
    build(spec, &sd);
    sd.finish(spec.architecture().name())?;
    Ok(stamp)
}

fn build(spec: &Spec, sd: &StateDict) -> Network {
    let inner = match spec {
        Spec::Cnn {
            kind,
            dim,
            input_size,
            output_size,
        } => Inner::Cnn(Cnn::load(sd, *kind, *dim, input_size, *output_size)),
        Spec::ResNet18 {
            input_size,
            output_size,
        } => Inner::ResNet18(ResNet18::load(sd, input_size, *output_size)),
        Spec::ResNet3D(kind) => Inner::ResNet3D(ResNet3D::load(sd, *kind)),
        Spec::Random(random) => Inner::Random(RandomArchitecture::load(sd, random)),
        Spec::Autoencoder {
            dim, input_size, ..
        } => Inner::Autoencoder(Autoencoder::load(sd, *dim, input_size)),
        Spec::DenseVae(dense) => Inner::DenseVae(Box::new(Vanilla3DdenseVae::load(sd, *dense))),
        Spec::Cvae {
            kind,
            input_size,
            latent_space_size,
        } => Inner::Cvae(Box::new(Cvae::load(
            sd,
            *kind,
            *input_size,
            *latent_space_size,
        ))),
        Spec::UNet => Inner::UNet(GeneratorUNet::load(sd)),
    };
    Network {
        architecture: spec.architecture(),
        family: spec.family(),
        inner,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::maps::json::parse_maps_json;
    use serde_json::{Value, json};

    fn maps(architecture: &str, task: &str, input_size: &[usize], extra: Value) -> MapsJson {
        let mut v = json!({
            "architecture": architecture, "network_task": task, "mode": "image",
            "input_size": input_size, "output_size": 2, "label_code": {"AD": 0, "CN": 1},
            "preprocessing_dict": {"preprocessing": "t1-linear", "mode": "image"},
        });
        for (k, value) in extra.as_object().unwrap() {
            v[k] = value.clone();
        }
        parse_maps_json(&v.to_string(), Path::new("/m/maps.json")).unwrap()
    }

    fn refused(m: &MapsJson, needle: &str) {
        let text = format!("{:#}", Model::resolve(m).unwrap_err());
        assert!(text.contains(needle), "{text}");
    }

    #[test]
    fn every_supported_architecture_is_accepted() {
        let c = "classification";
        let r = "reconstruction";
        let random = json!({"n_fcblocks": 2, "network_normalization": "BatchNorm",
            "convolutions_dict": {"conv0": {"in_channels": null, "out_channels": 8, "n_conv": 2,
            "d_reduction": "MaxPooling"}}});
        let vae = json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 5});
        let cases: Vec<(&str, &str, Vec<usize>, Value)> = vec![
            ("Conv5_FC3", c, vec![1, 30, 30, 30], json!({})),
            ("Conv4_FC3", c, vec![1, 30, 30], json!({})),
            ("Stride_Conv5_FC3", c, vec![1, 30, 30, 30], json!({})),
            ("resnet18", c, vec![3, 64, 64], json!({})),
            ("ResNet3D", c, vec![1, 169, 208, 179], json!({})),
            ("SqueezeExcitationCNN", c, vec![1, 169, 208, 179], json!({})),
            ("RandomArchitecture", c, vec![1, 30, 30, 30], random),
            ("AE_Conv5_FC3", r, vec![1, 30, 30, 30], json!({})),
            ("AE_Conv4_FC3", r, vec![1, 30, 30], json!({})),
            ("Vanilla3DdenseVAE", r, vec![1, 32, 40, 32], vae.clone()),
            ("CVAE_3D", r, vec![1, 169, 208, 179], json!({})),
            ("CVAE_3D_half", r, vec![1, 32, 40, 32], vae.clone()),
            ("CVAE_3D_final_conv", r, vec![1, 32, 40, 32], vae),
            ("GeneratorUNet", r, vec![1, 128, 128, 128], json!({})),
        ];
        let supported = architecture::ALL.iter().filter(|a| a.refusal().is_none());
        assert_eq!(cases.len(), supported.count());
        for (name, task, size, extra) in cases {
            let m = maps(name, task, &size, extra);
            let model = Model::resolve(&m).unwrap_or_else(|e| panic!("{name}: {e:#}"));
            let architecture = Architecture::from_name(name).unwrap();
            assert_eq!(model.spec.architecture(), architecture);
            assert_eq!(Some(model.spec.family()), architecture.family());
        }
    }

    #[test]
    fn bad_configurations_are_refused() {
        let c = "classification";
        let r = "reconstruction";
        refused(
            &maps("CAE_half", r, &[1, 30, 30, 30], json!({})),
            "constructor always fails",
        );
        refused(
            &maps("Conv9_FC9", c, &[1, 30, 30, 30], json!({})),
            "unknown architecture `Conv9_FC9`",
        );
        refused(
            &maps("Conv5_FC3", c, &[1, 2, 30, 30, 30], json!({})),
            "must have 3 (2D: C, H, W) or 4",
        );
        refused(
            &maps("AE_Conv5_FC3", c, &[1, 30, 30, 30], json!({})),
            "is a reconstruction network, but maps.json `network_task` is classification",
        );
        refused(
            &maps("Conv5_FC3", r, &[1, 30, 30, 30], json!({})),
            "is a classification/regression network",
        );
        refused(&maps("resnet18", c, &[1, 64, 64], json!({})), "3 channels");
        refused(
            &maps("ResNet3D", c, &[1, 80, 96, 80], json!({})),
            "built for inputs of size [1, 169, 208, 179]",
        );
        refused(
            &maps(
                "SqueezeExcitationCNN",
                c,
                &[1, 169, 208, 179],
                json!({"output_size": 3}),
            ),
            "always has 2 outputs",
        );
        let vae = |extra: Value| maps("Vanilla3DdenseVAE", r, &[1, 32, 40, 32], extra);
        refused(
            &vae(json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 6})),
            "size_reduction_factor 2, 3, 4 or 5",
        );
        refused(
            &vae(json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 2})),
            "built for inputs of size [1, 80, 96, 80]",
        );
        refused(
            &vae(json!({"size_reduction_factor": 5})),
            "needs a VAE loss",
        );
        refused(
            &vae(
                json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 5,
                "kl_weight": "high"}),
            ),
            "`kl_weight` must be a number",
        );
        refused(
            &vae(json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 5, "n_conv": 6})),
            "too many convolutions",
        );
        refused(
            &maps("CVAE_3D", r, &[1, 80, 96, 80], json!({})),
            "built for inputs of size [1, 169, 208, 179]",
        );
        refused(
            &maps(
                "AE_Conv4_FC3",
                r,
                &[1, 30, 30],
                json!({"loss": "VAEBernoulliLoss"}),
            ),
            "is not a VAE",
        );
        refused(
            &maps("GeneratorUNet", r, &[1, 48, 64, 64], json!({})),
            "multiples of 32",
        );
        refused(
            &maps("GeneratorUNet", r, &[1, 32, 32, 32], json!({})),
            "single voxel",
        );
        let random = |dict: Value| {
            maps(
                "RandomArchitecture",
                c,
                &[1, 30, 30],
                json!({"n_fcblocks": 2, "network_normalization": null, "convolutions_dict": dict}),
            )
        };
        refused(
            &random(
                json!({"conv0": {"in_channels": null, "out_channels": 8, "n_conv": 1,
                "d_reduction": "AvgPooling"}}),
            ),
            "Dimension reduction is not supported",
        );
        refused(
            &random(
                json!({"conv0": {"in_channels": null, "out_channels": 8, "n_conv": 1,
                "d_reduction": "stride"}, "conv1": {"in_channels": 4, "out_channels": 8,
                "n_conv": 1, "d_reduction": "stride"}}),
            ),
            "previous block gives 8 channels",
        );
        refused(
            &random(
                json!({"block": {"in_channels": null, "out_channels": 8, "n_conv": 1,
                "d_reduction": "stride"}}),
            ),
            "no key `conv0`",
        );
        let mut tiny = maps(
            "RandomArchitecture",
            c,
            &[1, 2, 2],
            json!({"n_fcblocks": 1, "network_normalization": "InstanceNorm",
                "convolutions_dict": {"conv0": {"in_channels": null, "out_channels": 4,
                "n_conv": 1, "d_reduction": "stride"}}}),
        );
        refused(&tiny, "InstanceNorm to a single voxel");
        tiny.raw["convolutions_dict"]["conv0"]["d_reduction"] = json!("MaxPooling");
        Model::resolve(&tiny).unwrap();
        refused(
            &vae(
                json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 5,
                "n_conv": 100}),
            ),
            "too many convolutions",
        );
        refused(
            &vae(
                json!({"loss": "VAEGaussianLoss", "size_reduction_factor": 5,
                "io_layer_channels": 1_i64 << 40}),
            ),
            "io_layer_channels` must be an integer from 1",
        );
    }
}
