//! The residual CNNs of ClinicaDL: `resnet18` (2D, 3-channel input,
//! torchvision's ResNet-18 trunk whose ImageNet weights are replaced by the checkpoint, so
//! nothing is downloaded), and the two fixed-size 3D networks `ResNet3D` and
//! `SqueezeExcitationCNN` (built for `[1, 169, 208, 179]` inputs and 2 outputs whatever
//! `maps.json` says). Structure `convolutions` → `fc`; the prediction output is the raw logits.
//! The checks that `maps.json` fits these networks live in `mod.rs`.
//!
//! ClinicaDL: `clinicadl.utils.network.cnn.models` (`resnet18`, `ResNet3D`,
//! `SqueezeExcitationCNN`), `cnn.resnet.ResNetDesigner` (with torchvision's `BasicBlock`),
//! `cnn.resnet3D.ResNetDesigner3D` / `ResBlock`, `cnn.SECNN.SECNNDesigner3D` / `ResBlock_SE` /
//! `SE_Blocks`.

use tch::{TchError, Tensor};

use super::layers::{BatchNorm, Conv, Dim, Linear};
use super::state_dict::StateDict;

/// torchvision's `BasicBlock(in, out, stride)` with its optional `downsample`.
#[derive(Debug)]
struct BasicBlock {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    downsample: Option<(Conv, BatchNorm)>,
}

impl BasicBlock {
    fn load(sd: &StateDict, prefix: &str, c_in: i64, c_out: i64, stride: i64) -> Self {
        let two = Dim::Two;
        BasicBlock {
            conv1: Conv::load(
                sd,
                &format!("{prefix}.conv1"),
                two,
                c_in,
                c_out,
                3,
                stride,
                1,
                false,
            ),
            bn1: BatchNorm::load(sd, &format!("{prefix}.bn1"), c_out),
            conv2: Conv::load(
                sd,
                &format!("{prefix}.conv2"),
                two,
                c_out,
                c_out,
                3,
                1,
                1,
                false,
            ),
            bn2: BatchNorm::load(sd, &format!("{prefix}.bn2"), c_out),
            downsample: (stride != 1 || c_in != c_out).then(|| {
                (
                    Conv::load(
                        sd,
                        &format!("{prefix}.downsample.0"),
                        two,
                        c_in,
                        c_out,
                        1,
                        stride,
                        0,
                        false,
                    ),
                    BatchNorm::load(sd, &format!("{prefix}.downsample.1"), c_out),
                )
            }),
        }
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let out = self.bn1.forward(&self.conv1.forward(x)?)?.f_relu()?;
        let out = self.bn2.forward(&self.conv2.forward(&out)?)?;
        let identity = match &self.downsample {
            Some((conv, bn)) => bn.forward(&conv.forward(x)?)?,
            None => x.shallow_clone(),
        };
        out.f_add(&identity)?.f_relu()
    }
}

/// ClinicaDL's `resnet18` (2D): `[B, 3, H, W] → [B, output_size]` logits.
#[derive(Debug)]
pub struct ResNet18 {
    conv1: Conv,
    bn1: BatchNorm,
    layers: Vec<BasicBlock>,
    avgpool_kernel: [i64; 2],
    fc1: Linear,
    fc_out: Linear,
}

/// `n → floor((n − 1)/2) + 1`: a stride-2 step of the trunk (conv1, maxpool, layer2..4).
fn halved(n: i64) -> i64 {
    (n - 1).div_euclid(2) + 1
}

impl ResNet18 {
    /// Builds the network for a `[3, H, W]` input_size; the average pooling kernel is the size
    /// of layer4's output for that input, as ClinicaDL computes it at construction.
    pub fn load(sd: &StateDict, input_size: &[usize], output_size: usize) -> Self {
        let mut blocks = Vec::new();
        let mut c_in = 64;
        for (layer, c_out) in [(4, 64), (5, 128), (6, 256), (7, 512)] {
            let stride = if layer == 4 { 1 } else { 2 };
            blocks.push(BasicBlock::load(
                sd,
                &format!("convolutions.{layer}.0"),
                c_in,
                c_out,
                stride,
            ));
            blocks.push(BasicBlock::load(
                sd,
                &format!("convolutions.{layer}.1"),
                c_out,
                c_out,
                1,
            ));
            c_in = c_out;
        }
        let spatial = |n: usize| (0..5).fold(n as i64, |n, _| halved(n));
        ResNet18 {
            conv1: Conv::load(sd, "convolutions.0", Dim::Two, 3, 64, 7, 2, 3, false),
            bn1: BatchNorm::load(sd, "convolutions.1", 64),
            layers: blocks,
            avgpool_kernel: [spatial(input_size[1]), spatial(input_size[2])],
            fc1: Linear::load(sd, "fc.1", 512, 1000),
            fc_out: Linear::load(sd, "fc.fc_out", 1000, output_size as i64),
        }
    }

    /// `[B, 3, H, W] → [B, output_size]` (eval mode: dropout is the identity).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut h = self.bn1.forward(&self.conv1.forward(x)?)?.f_relu()?;
        h = h.f_max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false)?;
        for block in &self.layers {
            h = block.forward(&h)?;
        }
        h = h.f_avg_pool2d(self.avgpool_kernel, [1, 1], [0, 0], false, true, None)?;
        h = h.f_flatten(1, -1)?;
        self.fc_out.forward(&self.fc1.forward(&h)?)
    }
}

/// Which of the two fixed-size 3D residual networks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResNet3DKind {
    /// `ResNet3D`: ELU activations, head 10240 → 256 (ELU) → 2.
    ResNet3D,
    /// `SqueezeExcitationCNN`: ReLU activations and a squeeze-excitation step in every block,
    /// head 10240 → 256 (ReLU) → 2.
    SqueezeExcitation,
}

/// The input size both networks are built for (ClinicaDL ignores `maps.json` `input_size`).
pub const FIXED_INPUT_SIZE: [usize; 4] = [1, 169, 208, 179];

/// Channels after each of the five stages.
const STAGE_CHANNELS: [i64; 5] = [8, 16, 32, 64, 128];

/// ClinicaDL's `SE_Blocks(C, 8)`: `x · sigmoid(fc2(relu(fc1(mean over D·H·W of x))))`.
#[derive(Debug)]
struct SqueezeExcitation {
    fc1: Linear,
    fc2: Linear,
}

impl SqueezeExcitation {
    fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let size = x.size();
        let (batch, channels) = (size[0], size[1]);
        let squeeze = x
            .f_adaptive_avg_pool3d([1, 1, 1])?
            .f_view([batch, channels])?;
        let weights = self
            .fc2
            .forward(&self.fc1.forward(&squeeze)?.f_relu()?)?
            .f_sigmoid()?;
        x.f_mul(&weights.f_view([batch, channels, 1, 1, 1])?)
    }
}

/// ClinicaDL's `ResBlock` / `ResBlock_SE`.
#[derive(Debug)]
struct ResBlock3D {
    conv1: Conv,
    bn1: BatchNorm,
    conv2: Conv,
    bn2: BatchNorm,
    se_block: Option<SqueezeExcitation>,
    shortcut: Conv,
}

/// A fixed-size 3D residual network: `[B, 1, 169, 208, 179] → [B, 2]` logits (any input
/// whose five stages end at 4×5×4 voxels).
#[derive(Debug)]
pub struct ResNet3D {
    kind: ResNet3DKind,
    blocks: Vec<ResBlock3D>,
    fc1: Linear,
    fc2: Linear,
}

/// `n → floor((n − 3)/2) + 1`: `MaxPool3d(3, stride=2)`; `None` when the axis is too short.
pub fn pooled_3_2(n: usize) -> Option<usize> {
    n.checked_sub(3).map(|m| m / 2 + 1)
}

/// The spatial size after the five stages, `None` if an axis vanishes on the way.
pub fn stages_output(spatial: &[usize]) -> Option<Vec<usize>> {
    spatial
        .iter()
        .map(|&n| (0..5).try_fold(n, |n, _| pooled_3_2(n)))
        .collect()
}

impl ResNet3D {
    /// Builds the network (its sizes are fixed: 1 input channel, 10240 flattened features,
    /// 2 outputs).
    pub fn load(sd: &StateDict, kind: ResNet3DKind) -> Self {
        let three = Dim::Three;
        let mut c_in = 1;
        let blocks = STAGE_CHANNELS
            .iter()
            .enumerate()
            .map(|(s, &c_out)| {
                let p = format!("convolutions.{s}.0");
                let block = ResBlock3D {
                    conv1: Conv::load(
                        sd,
                        &format!("{p}.conv1"),
                        three,
                        c_in,
                        c_out,
                        3,
                        1,
                        1,
                        false,
                    ),
                    bn1: BatchNorm::load(sd, &format!("{p}.bn1"), c_out),
                    conv2: Conv::load(
                        sd,
                        &format!("{p}.conv2"),
                        three,
                        c_out,
                        c_out,
                        3,
                        1,
                        1,
                        false,
                    ),
                    bn2: BatchNorm::load(sd, &format!("{p}.bn2"), c_out),
                    se_block: (kind == ResNet3DKind::SqueezeExcitation).then(|| {
                        SqueezeExcitation {
                            fc1: Linear::load(sd, &format!("{p}.se_block.fc1"), c_out, c_out / 8),
                            fc2: Linear::load(sd, &format!("{p}.se_block.fc2"), c_out / 8, c_out),
                        }
                    }),
                    shortcut: Conv::load(
                        sd,
                        &format!("{p}.shortcut.0"),
                        three,
                        c_in,
                        c_out,
                        1,
                        1,
                        0,
                        false,
                    ),
                };
                c_in = c_out;
                block
            })
            .collect();
        let flat = 128
            * stages_output(&FIXED_INPUT_SIZE[1..])
                .unwrap_or_default()
                .iter()
                .product::<usize>() as i64;
        let (fc1, fc2) = match kind {
            ResNet3DKind::ResNet3D => ("fc.1", "fc.4"),
            ResNet3DKind::SqueezeExcitation => ("fc.2", "fc.4"),
        };
        ResNet3D {
            kind,
            blocks,
            fc1: Linear::load(sd, fc1, flat, 256),
            fc2: Linear::load(sd, fc2, 256, 2),
        }
    }

    fn activation(&self, x: &Tensor) -> Result<Tensor, TchError> {
        match self.kind {
            ResNet3DKind::ResNet3D => x.f_elu(),
            ResNet3DKind::SqueezeExcitation => x.f_relu(),
        }
    }

    /// `[B, 1, D, H, W] → [B, 2]` (eval mode: dropout is the identity).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut h = x.shallow_clone();
        for block in &self.blocks {
            let mut out = self.activation(&block.bn1.forward(&block.conv1.forward(&h)?)?)?;
            out = block.bn2.forward(&block.conv2.forward(&out)?)?;
            if let Some(se) = &block.se_block {
                out = se.forward(&out)?;
            }
            out = self.activation(&out.f_add(&block.shortcut.forward(&h)?)?)?;
            h = out.f_max_pool3d([3; 3], [2; 3], [0; 3], [1; 3], false)?;
        }
        h = h.f_flatten(1, -1)?;
        self.fc2.forward(&self.activation(&self.fc1.forward(&h)?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_networks_md() {
        assert_eq!(stages_output(&[169, 208, 179]), Some(vec![4, 5, 4]));
        assert_eq!(stages_output(&[40, 40, 40]), None);
        // resnet18 on [3, 169, 179]: average pooling kernel (6, 6).
        let spatial = |n: i64| (0..5).fold(n, |n, _| halved(n));
        assert_eq!((spatial(169), spatial(179)), (6, 6));
    }
}
