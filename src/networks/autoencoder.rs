//! The convolutional autoencoders of ClinicaDL: `AE_Conv5_FC3` and
//! `AE_Conv4_FC3`, which are identical (both derive from the `convolutions` of the CNNs), in 2D
//! and 3D. The encoder is the CNN's five blocks with `PadMaxPool` returning indices and padding;
//! the decoder mirrors it with `CropMaxUnpool` and transposed convolutions, in an order that
//! differs between 2D and 3D (a quirk of ClinicaDL's generator, reproduced here). The prediction
//! output is the reconstruction, of the input's shape.
//!
//! ClinicaDL: `clinicadl.utils.network.autoencoder.models` (`AE_Conv5_FC3`, `AE_Conv4_FC3`),
//! `autoencoder.cnn_transformer.CNN_Transformer` (`construct_inv_layers`, `replace_relu`) and
//! `sub_network.AutoEncoder.forward`.

use tch::{TchError, Tensor};

use super::layers::{
    BatchNorm, Conv, ConvTranspose, Dim, crop_max_unpool, pad_max_pool_with_indices,
};
use super::state_dict::StateDict;

/// Channels after each encoder block (as the CNNs).
const CHANNELS: [i64; 5] = [8, 16, 32, 64, 128];

#[derive(Debug)]
struct EncoderBlock {
    conv: Conv,
    norm: BatchNorm,
}

/// One decoder block: unpool, then (3D) transposed conv → BN(c_in) → ReLU, or (2D) ReLU →
/// BN(c_out) → transposed conv.
#[derive(Debug)]
struct DecoderBlock {
    conv: ConvTranspose,
    norm: BatchNorm,
}

/// A built autoencoder with its weights.
#[derive(Debug)]
pub struct Autoencoder {
    dim: Dim,
    encoder: Vec<EncoderBlock>,
    decoder: Vec<DecoderBlock>,
}

impl Autoencoder {
    /// Builds the autoencoder for `input_size` (`[C, spatial…]`), loading `encoder.*` and
    /// `decoder.*` by their state_dict keys.
    pub fn load(sd: &StateDict, dim: Dim, input_size: &[usize]) -> Self {
        let mut widths = vec![input_size[0] as i64];
        widths.extend(CHANNELS);
        let encoder = (0..5)
            .map(|b| EncoderBlock {
                conv: Conv::load(
                    sd,
                    &format!("encoder.{}", 4 * b),
                    dim,
                    widths[b],
                    widths[b + 1],
                    3,
                    1,
                    1,
                    true,
                ),
                norm: BatchNorm::load(sd, &format!("encoder.{}", 4 * b + 1), widths[b + 1]),
            })
            .collect();
        // Decoder block r undoes encoder block 4 − r: channels widths[b+1] → widths[b].
        let decoder = (0..5)
            .map(|r| {
                let b = 4 - r;
                let (c_in, c_out) = (widths[b + 1], widths[b]);
                let (conv_index, norm_index, norm_channels) = match dim {
                    Dim::Three => (4 * r + 1, 4 * r + 2, c_out),
                    Dim::Two => (4 * r + 3, 4 * r + 2, c_in),
                };
                DecoderBlock {
                    conv: ConvTranspose::load(
                        sd,
                        &format!("decoder.{conv_index}"),
                        dim,
                        c_in,
                        c_out,
                        3,
                        1,
                        1,
                        &vec![0; dim.axes()],
                        true,
                    ),
                    norm: BatchNorm::load(sd, &format!("decoder.{norm_index}"), norm_channels),
                }
            })
            .collect();
        Autoencoder {
            dim,
            encoder,
            decoder,
        }
    }

    /// `[B, C, spatial…] → [B, C, spatial…]`: the reconstruction (the code, the encoder's
    /// output, is not kept).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut states = Vec::with_capacity(self.encoder.len());
        let mut h = x.shallow_clone();
        for block in &self.encoder {
            h = block.norm.forward(&block.conv.forward(&h)?)?.f_relu()?;
            let (pooled, state) = pad_max_pool_with_indices(&h, self.dim)?;
            states.push(state);
            h = pooled;
        }
        for block in &self.decoder {
            let Some(state) = states.pop() else {
                break;
            };
            h = crop_max_unpool(&h, &state, self.dim)?;
            h = match self.dim {
                Dim::Three => block.norm.forward(&block.conv.forward(&h)?)?.f_relu()?,
                Dim::Two => block.conv.forward(&block.norm.forward(&h.f_relu()?)?)?,
            };
        }
        Ok(h)
    }
}
