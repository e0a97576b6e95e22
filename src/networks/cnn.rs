//! The CNN family of ClinicaDL: `Conv5_FC3`, `Conv4_FC3` and
//! `Stride_Conv5_FC3`, in 2D and 3D. Structure `convolutions` → `fc`; the prediction output is
//! the raw logits `[B, output_size]`.
//!
//! ClinicaDL: `clinicadl.utils.network.cnn.models` (`Conv5_FC3`, `Conv4_FC3`,
//! `Stride_Conv5_FC3`) and `clinicadl.utils.network.sub_network.CNN`.

use tch::{TchError, Tensor};

use super::layers::{BatchNorm, Conv, Dim, Linear, relu_pad_max_pool};
use super::state_dict::StateDict;

/// Which of the three CNNs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CnnKind {
    /// 5 × (conv 3/1/1, BN, ReLU, PadMaxPool); head 1300 → 50 → out.
    Conv5Fc3,
    /// Same convolutions as Conv5_FC3; head 50 → 40 → out.
    Conv4Fc3,
    /// 5 × (conv 3/2/1, BN, ReLU); head as Conv5_FC3.
    StrideConv5Fc3,
}

const CHANNELS: [i64; 5] = [8, 16, 32, 64, 128];

#[derive(Debug)]
struct Block {
    conv: Conv,
    /// The batch normalisation, unless folded into `conv`.
    norm: Option<BatchNorm>,
}

/// A built CNN with its weights.
#[derive(Debug)]
pub struct Cnn {
    kind: CnnKind,
    dim: Dim,
    blocks: Vec<Block>,
    fc: Vec<Linear>,
}

/// `n → ceil(n/2)` five times: the spatial size after the five blocks.
fn reduced(n: usize) -> usize {
    (0..5).fold(n, |n, _| n.div_ceil(2))
}

impl Cnn {
    /// Builds the network for `input_size` (`[C, spatial…]`) and `output_size`, loading its
    /// weights from `sd` by their state_dict keys.
    pub fn load(
        sd: &StateDict,
        kind: CnnKind,
        dim: Dim,
        input_size: &[usize],
        output_size: usize,
    ) -> Cnn {
        let (stride, step) = match kind {
            CnnKind::StrideConv5Fc3 => (2, 3),
            _ => (1, 4),
        };
        let mut c_in = input_size[0] as i64;
        let blocks = CHANNELS
            .iter()
            .enumerate()
            .map(|(b, &c_out)| {
                let mut conv = Conv::load(
                    sd,
                    &format!("convolutions.{}", b * step),
                    dim,
                    c_in,
                    c_out,
                    3,
                    stride,
                    1,
                    true,
                );
                let norm = BatchNorm::load(sd, &format!("convolutions.{}", b * step + 1), c_out);
                c_in = c_out;
                // Inference only: fold the batch normalisation into the convolution.
                let norm = conv.fold_or_keep(sd, norm);
                Block { conv, norm }
            })
            .collect();
        let flat = 128
            * input_size[1..]
                .iter()
                .map(|&n| reduced(n) as i64)
                .product::<i64>();
        let (h1, h2) = match kind {
            CnnKind::Conv4Fc3 => (50, 40),
            _ => (1300, 50),
        };
        let fc = vec![
            Linear::load(sd, "fc.2", flat, h1),
            Linear::load(sd, "fc.4", h1, h2),
            Linear::load(sd, "fc.6", h2, output_size as i64),
        ];
        Cnn {
            kind,
            dim,
            blocks,
            fc,
        }
    }

    /// `[B, C, spatial…] → [B, output_size]` logits (eval mode: dropout is the identity).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut h = x.shallow_clone();
        for block in &self.blocks {
            h = block.conv.forward(&h)?;
            if let Some(norm) = &block.norm {
                h = norm.forward(&h)?;
            }
            h = if self.kind == CnnKind::StrideConv5Fc3 {
                h.f_relu_()?
            } else {
                // ReLU then PadMaxPool, computed in the cheaper order.
                relu_pad_max_pool(h, self.dim)?
            };
        }
        h = h.f_flatten(1, -1)?;
        let last = self.fc.len() - 1;
        for (i, layer) in self.fc.iter().enumerate() {
            h = layer.forward(&h)?;
            if i < last {
                h = h.f_relu_()?;
            }
        }
        Ok(h)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flattened_sizes_match_networks_md() {
        let f = |s: &[usize]| 128 * s.iter().map(|&n| reduced(n)).product::<usize>();
        assert_eq!(f(&[169, 208, 179]), 32256);
        assert_eq!(f(&[80, 96, 80]), 3456);
        assert_eq!(f(&[169, 179]), 4608);
        assert_eq!(f(&[50, 50, 50]), 1024);
        assert_eq!(f(&[32, 40, 32]), 256);
    }
}
