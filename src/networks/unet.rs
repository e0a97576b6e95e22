//! ClinicaDL's `GeneratorUNet`, a 3D U-Net used for reconstruction: five
//! stride-2 convolutions down (InstanceNorm, LeakyReLU 0.2), four transposed convolutions up
//! (InstanceNorm, ReLU) each fed the previous output concatenated with the matching skip, and a
//! final nearest-neighbour upsampling, convolution and tanh. No size parameter: any input whose
//! spatial sizes are multiples of 32; the prediction output is the reconstruction.
//!
//! ClinicaDL: `clinicadl.utils.network.unet.unet` (`GeneratorUNet`, `UNetDown`, `UNetUp`,
//! `FinalLayer`).

use tch::{TchError, Tensor};

use super::layers::{Conv, ConvTranspose, Dim, instance_norm, leaky_relu};
use super::state_dict::StateDict;

/// A built `GeneratorUNet` with its weights.
#[derive(Debug)]
pub struct GeneratorUNet {
    downs: Vec<Conv>,
    ups: Vec<ConvTranspose>,
    final_conv: Conv,
}

impl GeneratorUNet {
    /// Builds the network, loading `down{1..5}.model.0`, `up{1..4}.model.0` and
    /// `final.model.1` by their state_dict keys.
    pub fn load(sd: &StateDict) -> Self {
        let three = Dim::Three;
        let downs = [(1, 64), (64, 128), (128, 256), (256, 512), (512, 512)]
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out))| {
                Conv::load(
                    sd,
                    &format!("down{}.model.0", i + 1),
                    three,
                    c_in,
                    c_out,
                    3,
                    2,
                    1,
                    true,
                )
            })
            .collect();
        let ups = [(512, 512), (1024, 256), (512, 128), (256, 64)]
            .iter()
            .enumerate()
            .map(|(i, &(c_in, c_out))| {
                ConvTranspose::load(
                    sd,
                    &format!("up{}.model.0", i + 1),
                    three,
                    c_in,
                    c_out,
                    4,
                    2,
                    1,
                    &[0; 3],
                    true,
                )
            })
            .collect();
        GeneratorUNet {
            downs,
            ups,
            final_conv: Conv::load(sd, "final.model.1", three, 128, 1, 3, 1, 1, true),
        }
    }

    /// `[B, 1, D, H, W] → [B, 1, D, H, W]` (D, H, W multiples of 32).
    pub fn forward(&self, x: &Tensor) -> Result<Tensor, TchError> {
        let mut skips = Vec::with_capacity(self.downs.len());
        let mut h = x.shallow_clone();
        for down in &self.downs {
            h = leaky_relu(&instance_norm(&down.forward(&h)?)?, 0.2)?;
            skips.push(h.shallow_clone());
        }
        // d5 is h; the ups take d4, d3, d2 as skips, the final layer d1.
        skips.pop();
        for (i, up) in self.ups.iter().enumerate() {
            if i > 0 {
                let skip = skips.pop().ok_or_else(missing_skip)?;
                h = Tensor::f_cat(&[&h, &skip], 1)?;
            }
            h = instance_norm(&up.forward(&h)?)?.f_relu()?;
        }
        let d1 = skips.pop().ok_or_else(missing_skip)?;
        h = Tensor::f_cat(&[&h, &d1], 1)?;
        let size = h.size();
        let doubled: Vec<i64> = size[2..].iter().map(|&n| 2 * n).collect();
        h = h.f_upsample_nearest3d(doubled.as_slice(), 2.0, 2.0, 2.0)?;
        self.final_conv.forward(&h)?.f_tanh()
    }
}

fn missing_skip() -> TchError {
    TchError::Shape("GeneratorUNet: missing skip connection".to_owned())
}
