//! ClinicaDL's `RandomArchitecture`, the CNN of random search, in 2D or 3D:
//! rebuilt from `maps.json` `convolutions_dict` (its key order preserved), `n_fcblocks`,
//! `network_normalization`, `input_size` and `output_size`. This file owns reading and checking
//! that description ([`RandomSpec::from_maps`]), the fully connected sizes (numpy's rounding)
//! and the forward pass; the prediction output is the raw logits `[B, output_size]`.
//!
//! ClinicaDL: `clinicadl.utils.network.cnn.random.RandomArchitecture`
//! (`define_convolutional_block`, `append_normalization_layer`, `fc_dict_design`).

use anyhow::{Context, Result, bail};
use serde_json::Value;
use tch::{TchError, Tensor};

use super::layers::{BatchNorm, Conv, Dim, Linear, instance_norm, leaky_relu, pad_max_pool};
use super::state_dict::StateDict;
use crate::maps::json::MapsJson;

/// `network_normalization`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalization {
    /// `"BatchNorm"`: keys, running statistics.
    Batch,
    /// `"InstanceNorm"`: no keys, per-sample statistics.
    Instance,
    /// `null`: no normalisation layer.
    None,
}

/// How a convolutional block reduces the spatial size (`d_reduction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    /// `"MaxPooling"`: last convolution with stride 1, then `PadMaxPool(2, 2)`.
    MaxPooling,
    /// `"stride"`: last convolution with stride 2.
    Stride,
}

/// One entry of `convolutions_dict`.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockSpec {
    /// Its key (`conv0`, `conv1`, …): the module name under `convolutions`.
    pub name: String,
    /// `in_channels` (null in the file: `input_size[0]`).
    pub in_channels: i64,
    /// `out_channels`.
    pub out_channels: i64,
    /// `n_conv` (at least 1).
    pub n_conv: usize,
    /// `d_reduction`.
    pub reduction: Reduction,
}

/// The architecture described by `maps.json`, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct RandomSpec {
    /// The convolutional blocks, in file order.
    pub blocks: Vec<BlockSpec>,
    /// `(in_features, out_features)` of `FC0`, `FC1`, …
    pub fc: Vec<(i64, i64)>,
    /// `network_normalization`.
    pub normalization: Normalization,
    /// 2D or 3D, from the length of `input_size`.
    pub dim: Dim,
}

/// Bound on channel and layer counts, far above any real network, so that the size
/// arithmetic cannot overflow.
const MAX_COUNT: i64 = 1 << 24;

fn positive(value: &Value, what: &str) -> Result<i64> {
    value
        .as_i64()
        .filter(|n| (1..=MAX_COUNT).contains(n))
        .with_context(|| {
            format!("maps.json `{what}` must be an integer from 1 to {MAX_COUNT}, found {value}")
        })
}

impl RandomSpec {
    /// Reads `convolutions_dict`, `n_fcblocks` and `network_normalization` of `maps.json` and
    /// checks that they describe a network ClinicaDL can build and run.
    pub fn from_maps(maps: &MapsJson) -> Result<RandomSpec> {
        let dim = Dim::from_input_size(&maps.input_size).with_context(|| {
            format!(
                "maps.json `input_size` {:?} must have 3 (2D: C, H, W) or 4 (3D: C, D, H, W) entries",
                maps.input_size
            )
        })?;
        let output_size = maps
            .output_size
            .context("RandomArchitecture needs an integer `output_size` in maps.json")?;
        let normalization = match maps.raw.get("network_normalization") {
            Some(Value::String(s)) if s == "BatchNorm" => Normalization::Batch,
            Some(Value::String(s)) if s == "InstanceNorm" => Normalization::Instance,
            None | Some(Value::Null) => Normalization::None,
            Some(other) => bail!(
                "maps.json `network_normalization` is {other}: The network normalization value must be in ['BatchNorm', 'InstanceNorm', None]"
            ),
        };
        let n_fcblocks = positive(
            maps.raw
                .get("n_fcblocks")
                .context("RandomArchitecture needs `n_fcblocks` in maps.json")?,
            "n_fcblocks",
        )? as usize;
        let Some(Value::Object(dict)) = maps.raw.get("convolutions_dict") else {
            bail!("RandomArchitecture needs the object `convolutions_dict` in maps.json");
        };
        if dict.is_empty() {
            bail!("maps.json `convolutions_dict` is empty");
        }
        let mut blocks = Vec::new();
        let mut channels = maps.input_size[0] as i64;
        for (name, entry) in dict {
            let field = |key: &str| {
                entry
                    .get(key)
                    .with_context(|| format!("maps.json `convolutions_dict.{name}` has no `{key}`"))
            };
            let in_channels = match field("in_channels")? {
                Value::Null => maps.input_size[0] as i64,
                v => positive(v, &format!("convolutions_dict.{name}.in_channels"))?,
            };
            if in_channels != channels {
                bail!(
                    "maps.json `convolutions_dict.{name}.in_channels` is {in_channels} but the previous block gives {channels} channels"
                );
            }
            let out_channels = positive(
                field("out_channels")?,
                &format!("convolutions_dict.{name}.out_channels"),
            )?;
            let n_conv = positive(
                field("n_conv")?,
                &format!("convolutions_dict.{name}.n_conv"),
            )? as usize;
            let reduction = match field("d_reduction")?.as_str() {
                Some("MaxPooling") => Reduction::MaxPooling,
                Some("stride") => Reduction::Stride,
                _ => bail!(
                    "maps.json `convolutions_dict.{name}.d_reduction` is {}: Dimension reduction is not supported, only 'MaxPooling' or 'stride'",
                    entry["d_reduction"]
                ),
            };
            channels = out_channels;
            blocks.push(BlockSpec {
                name: name.clone(),
                in_channels,
                out_channels,
                n_conv,
                reduction,
            });
        }
        // ClinicaDL reads the last block as `conv{n−1}` (fc_dict_design).
        let last = format!("conv{}", blocks.len() - 1);
        if !dict.contains_key(&last) {
            bail!(
                "maps.json `convolutions_dict` has no key `{last}`: ClinicaDL names the blocks conv0, conv1, … and reads the last one by that name"
            );
        }
        if normalization == Normalization::Instance {
            check_instance_norm_sizes(&maps.input_size[1..], &blocks)?;
        }
        let fc = fc_sizes(
            &maps.input_size,
            blocks.len(),
            dict[&last]["out_channels"].as_i64().unwrap_or(channels),
            n_fcblocks,
            output_size,
        );
        Ok(RandomSpec {
            blocks,
            fc,
            normalization,
            dim,
        })
    }
}

/// PyTorch's `instance_norm` refuses a feature map of a single voxel (even in evaluation mode),
/// so ClinicaDL cannot run such a network: refuse it too rather than output zeros.
fn check_instance_norm_sizes(spatial: &[usize], blocks: &[BlockSpec]) -> Result<()> {
    let mut size: Vec<usize> = spatial.to_vec();
    for block in blocks {
        let halved: Vec<usize> = size.iter().map(|n| n.div_ceil(2)).collect();
        let last = match block.reduction {
            Reduction::Stride => &halved,
            Reduction::MaxPooling => &size,
        };
        let single = |s: &[usize]| s.iter().all(|&n| n <= 1);
        if single(last) || (block.n_conv > 1 && single(&size)) {
            bail!(
                "RandomArchitecture block `{}` would apply InstanceNorm to a single voxel for maps.json `input_size`, which PyTorch refuses",
                block.name
            );
        }
        size = halved;
    }
    Ok(())
}

/// `fc_dict_design`: the flattened size `Π ceil(input_size / 2^blocks)` (channel entry
/// replaced by the last block's `out_channels`), divided `n_fcblocks` times by
/// `ratio = (flat / output_size)^(1/n_fcblocks)`; each layer's sizes are the running values
/// rounded half to even (numpy's `round`), the unrounded value carried on.
pub fn fc_sizes(
    input_size: &[usize],
    n_blocks: usize,
    out_channels: i64,
    n_fcblocks: usize,
    output_size: usize,
) -> Vec<(i64, i64)> {
    let divisor = 2f64.powi(n_blocks as i32);
    let mut flat: Vec<f64> = input_size
        .iter()
        .map(|&n| (n as f64 / divisor).ceil())
        .collect();
    flat[0] = out_channels as f64;
    let mut in_features: f64 = flat.iter().product();
    let ratio = (in_features / output_size as f64).powf(1.0 / n_fcblocks as f64);
    (0..n_fcblocks)
        .map(|_| {
            let out_features = in_features / ratio;
            let layer = (
                in_features.round_ties_even() as i64,
                out_features.round_ties_even() as i64,
            );
            in_features = out_features;
            layer
        })
        .collect()
}

#[derive(Debug)]
struct ConvLayer {
    conv: Conv,
    norm: Option<BatchNorm>,
}

#[derive(Debug)]
struct Block {
    layers: Vec<ConvLayer>,
    pool: bool,
}

/// A built `RandomArchitecture` with its weights.
#[derive(Debug)]
pub struct RandomArchitecture {
    dim: Dim,
    normalization: Normalization,
    blocks: Vec<Block>,
    fc: Vec<Linear>,
}

impl RandomArchitecture {
    /// Builds the network of `spec`, loading its weights by state_dict key
    /// (`convolutions.<name>.<index>.*`, `fc.FC<i>.0.*`).
    pub fn load(sd: &StateDict, spec: &RandomSpec) -> Self {
        // Modules per convolution: conv, [norm], LeakyReLU.
        let step = if spec.normalization == Normalization::None {
            2
        } else {
            3
        };
        let blocks = spec
            .blocks
            .iter()
            .map(|b| {
                let layers = (0..b.n_conv)
                    .map(|i| {
                        let last = i + 1 == b.n_conv;
                        let c_out = if last { b.out_channels } else { b.in_channels };
                        let stride = if last && b.reduction == Reduction::Stride {
                            2
                        } else {
                            1
                        };
                        let index = i * step;
                        let prefix = format!("convolutions.{}", b.name);
                        let mut conv = Conv::load(
                            sd,
                            &format!("{prefix}.{index}"),
                            spec.dim,
                            b.in_channels,
                            c_out,
                            3,
                            stride,
                            1,
                            true,
                        );
                        // Inference only: fold the batch normalisation into the convolution.
                        let norm = (spec.normalization == Normalization::Batch)
                            .then(|| BatchNorm::load(sd, &format!("{prefix}.{}", index + 1), c_out))
                            .and_then(|norm| conv.fold_or_keep(sd, norm));
                        ConvLayer { conv, norm }
                    })
                    .collect();
                Block {
                    layers,
                    pool: b.reduction == Reduction::MaxPooling,
                }
            })
            .collect();
        let fc = spec
            .fc
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out))| Linear::load(sd, &format!("fc.FC{i}.0"), c_in, c_out))
            .collect();
        RandomArchitecture {
            dim: spec.dim,
            normalization: spec.normalization,
            blocks,
            fc,
        }
    }

    /// `[B, C, spatial…] → [B, output_size]` logits (eval mode: dropout is the identity).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut h = x.shallow_clone();
        for block in &self.blocks {
            for layer in &block.layers {
                h = layer.conv.forward(&h)?;
                h = match (&layer.norm, self.normalization) {
                    (Some(norm), _) => norm.forward(&h)?,
                    (None, Normalization::Instance) => instance_norm(&h)?,
                    (None, _) => h,
                };
                h = leaky_relu(&h, 0.01)?;
            }
            if block.pool {
                h = pad_max_pool(&h, self.dim)?;
            }
        }
        h = h.f_flatten(1, -1)?;
        let last = self.fc.len() - 1;
        for (i, layer) in self.fc.iter().enumerate() {
            h = layer.forward(&h)?;
            if i < last {
                h = leaky_relu(&h, 0.01)?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fc_sizes_of_networks_md() {
        assert_eq!(
            fc_sizes(&[1, 30, 30, 30], 2, 16, 3, 2),
            [(8192, 512), (512, 32), (32, 2)]
        );
    }

    #[test]
    fn fc_sizes_carry_the_unrounded_value() {
        // flat = 5 (channels) · 1 · 1, one block to 2 outputs → (5, 2).
        assert_eq!(fc_sizes(&[1, 2, 2], 1, 5, 1, 2), [(5, 2)]);
        // flat 8 → ratio 8^(1/2) ≈ 2.83: 8 → 2.83 (rounded to 3) → 1.
        assert_eq!(fc_sizes(&[3, 1, 1], 0, 8, 2, 1), [(8, 3), (3, 1)]);
    }
}
