//! The variational autoencoders of ClinicaDL, all 3D: `Vanilla3DdenseVAE`
//! (the one working member of the `BaseVAE` family) and the convolutional `CVAE_3D`,
//! `CVAE_3D_half` and `CVAE_3D_final_conv`, with their input sizes fixed by
//! `size_reduction_factor` (or, for `CVAE_3D`, by the class). This file also owns the VAE losses
//! (`VAEGaussianLoss`, `VAEBernoulliLoss`, `VAEContinuousBernoulliLoss`, CVAE_3D's own loss) and
//! how each class combines their components into `loss`, `recon_loss`, `kl_loss`.
//!
//! Deliberate difference: prediction here is deterministic, `z = mu`, for every VAE. ClinicaDL's
//! `Vanilla3DdenseVAE` samples `z = mu + eps·exp(logvar/2)` even in evaluation mode, and
//! `CVAE_3D` switches itself to training mode (sampling) in its loss routine, so their
//! ClinicaDL outputs are random; the other two already use `mu` in evaluation mode.
//!
//! ClinicaDL: `clinicadl.utils.network.vae.vanilla_vae.Vanilla3DdenseVAE`,
//! `vae.base_vae.BaseVAE`, `vae.vae_layers` (`EncoderLayer3D`, `DecoderLayer3D`),
//! `vae.convolutional_VAE` (`CVAE_3D`, `CVAE_3D_half`), `vae.advanced_CVAE.CVAE_3D_final_conv`,
//! `vae.vae_utils` (the losses, `sumlogC`).

use anyhow::{Result, bail};
use tch::{Kind, Reduction, TchError, Tensor};

use super::layers::{BatchNorm, Conv, ConvTranspose, Dim, Linear, instance_norm, leaky_relu};
use super::state_dict::StateDict;

/// The input size (`[C, D, H, W]`) that `size_reduction_factor` fixes for the VAEs; `None` for
/// the factors ClinicaDL 1.6.1 does not know (its constructors then fail).
pub fn reduced_input_size(factor: i64) -> Option<[usize; 4]> {
    match factor {
        2 => Some([1, 80, 96, 80]),
        3 => Some([1, 56, 64, 56]),
        4 => Some([1, 40, 48, 40]),
        5 => Some([1, 32, 40, 32]),
        _ => None,
    }
}

/// The constructor arguments of `Vanilla3DdenseVAE`, from `maps.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseVaeSpec {
    /// The input size fixed by `size_reduction_factor`.
    pub input_size: [usize; 4],
    /// `latent_space_size`.
    pub latent_space_size: i64,
    /// `feature_size` (0: no intermediate dense layer).
    pub feature_size: i64,
    /// `n_conv`.
    pub n_conv: usize,
    /// `io_layer_channels`.
    pub io_layer_channels: i64,
}

impl DenseVaeSpec {
    /// `n_pix`: the flattened size after the convolutions, `c0·2^(n_conv−1)·Π(n // 2^n_conv)`.
    pub fn n_pix(&self) -> i64 {
        self.deepest_channels()
            * self
                .bottom_size()
                .iter()
                .map(|&n| n as i64)
                .product::<i64>()
    }

    fn deepest_channels(&self) -> i64 {
        self.io_layer_channels << (self.n_conv - 1)
    }

    /// The spatial size after the encoder's convolutions (`n // 2^n_conv`).
    pub fn bottom_size(&self) -> Vec<usize> {
        self.input_size[1..]
            .iter()
            .map(|&n| n >> self.n_conv)
            .collect()
    }
}

/// `EncoderLayer3D` / `DecoderLayer3D`: a (transposed) convolution without bias and a
/// BatchNorm3d, under `<prefix>.layer.0` and `<prefix>.layer.1`.
#[derive(Debug)]
struct DenseDecoderLayer {
    conv: ConvTranspose,
    norm: BatchNorm,
}

/// ClinicaDL's `Vanilla3DdenseVAE`, with deterministic prediction (`z = mu`).
#[derive(Debug)]
pub struct Vanilla3DdenseVae {
    spec: DenseVaeSpec,
    encoder: Vec<(Conv, BatchNorm)>,
    encoder_dense: Option<Linear>,
    mu_layer: Linear,
    var_layer: Linear,
    decoder_dense: Vec<Linear>,
    decoder: Vec<DenseDecoderLayer>,
    output_layer: ConvTranspose,
}

impl Vanilla3DdenseVae {
    /// Builds the network of `spec`, loading its weights by state_dict key.
    pub fn load(sd: &StateDict, spec: DenseVaeSpec) -> Self {
        let three = Dim::Three;
        let c0 = spec.io_layer_channels;
        let n_conv = spec.n_conv;
        // Output paddings: the parity of the size entering each encoder layer.
        let mut size: Vec<usize> = spec.input_size[1..].to_vec();
        let mut output_padding = Vec::with_capacity(n_conv);
        let mut encoder = Vec::with_capacity(n_conv);
        for i in 0..n_conv {
            let (c_in, c_out) = if i == 0 {
                (spec.input_size[0] as i64, c0)
            } else {
                (c0 << (i - 1), c0 << i)
            };
            encoder.push((
                Conv::load(
                    sd,
                    &format!("encoder.{i}.layer.0"),
                    three,
                    c_in,
                    c_out,
                    4,
                    2,
                    1,
                    false,
                ),
                BatchNorm::load(sd, &format!("encoder.{i}.layer.1"), c_out),
            ));
            output_padding.push(size.iter().map(|&n| (n % 2) as i64).collect::<Vec<_>>());
            size = size.iter().map(|&n| n / 2).collect();
        }
        let n_pix = spec.n_pix();
        let feature_space = if spec.feature_size == 0 {
            n_pix
        } else {
            spec.feature_size
        };
        let encoder_dense = (spec.feature_size != 0).then(|| {
            Linear::load(
                sd,
                &format!("encoder.{}.0", n_conv + 1),
                n_pix,
                spec.feature_size,
            )
        });
        let latent = spec.latent_space_size;
        let decoder_dense = if spec.feature_size == 0 {
            vec![Linear::load(sd, "decoder.0.0", latent, n_pix)]
        } else {
            vec![
                Linear::load(sd, "decoder.0.0", latent, spec.feature_size),
                Linear::load(sd, "decoder.0.2", spec.feature_size, n_pix),
            ]
        };
        let decoder = (1..n_conv)
            .rev()
            .enumerate()
            .map(|(k, i)| DenseDecoderLayer {
                conv: ConvTranspose::load(
                    sd,
                    &format!("decoder.{}.layer.0", k + 2),
                    three,
                    c0 << i,
                    c0 << (i - 1),
                    4,
                    2,
                    1,
                    &output_padding[i],
                    false,
                ),
                norm: BatchNorm::load(sd, &format!("decoder.{}.layer.1", k + 2), c0 << (i - 1)),
            })
            .collect();
        let output_layer = ConvTranspose::load(
            sd,
            &format!("decoder.{}.0", n_conv + 1),
            three,
            c0,
            spec.input_size[0] as i64,
            4,
            2,
            1,
            &output_padding[0],
            false,
        );
        Vanilla3DdenseVae {
            spec,
            encoder,
            encoder_dense,
            mu_layer: Linear::load(sd, "mu_layer", feature_space, latent),
            var_layer: Linear::load(sd, "var_layer", feature_space, latent),
            decoder_dense,
            decoder,
            output_layer,
        }
    }

    /// `[B, 1, D, H, W] → (reconstruction [B, 1, D, H, W], mu [B, latent], logvar [B, latent])`
    /// with `z = mu`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor), TchError> {
        let mut h = x.shallow_clone();
        for (conv, norm) in &self.encoder {
            h = leaky_relu(&norm.forward(&conv.forward(&h)?)?, 0.2)?;
        }
        h = h.f_flatten(1, -1)?;
        if let Some(dense) = &self.encoder_dense {
            h = dense.forward(&h)?.f_relu()?;
        }
        let mu = self.mu_layer.forward(&h)?;
        let logvar = self.var_layer.forward(&h)?;
        let mut y = mu.shallow_clone();
        for dense in &self.decoder_dense {
            y = dense.forward(&y)?.f_relu()?;
        }
        let mut shape = vec![y.size()[0], self.spec.deepest_channels()];
        shape.extend(self.spec.bottom_size().iter().map(|&n| n as i64));
        y = y.f_view(shape.as_slice())?;
        for layer in &self.decoder {
            y = layer.norm.forward(&layer.conv.forward(&y)?)?.f_relu()?;
        }
        let reconstruction = self.output_layer.forward(&y)?.f_sigmoid()?;
        Ok((reconstruction, mu, logvar))
    }
}

/// Which convolutional VAE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CvaeKind {
    /// `CVAE_3D`: fixed `[1, 169, 208, 179]` input, ReLU, final ReLU, its own loss.
    Full,
    /// `CVAE_3D_half`: BatchNorm, LeakyReLU(0.2) encoder, sigmoid output.
    Half,
    /// `CVAE_3D_final_conv`: InstanceNorm, LeakyReLU, a final convolution and a sigmoid.
    FinalConv,
}

/// The input size of `CVAE_3D`.
pub const CVAE_3D_INPUT_SIZE: [usize; 4] = [1, 169, 208, 179];

/// ClinicaDL's `CVAE_3D`, `CVAE_3D_half` and `CVAE_3D_final_conv` (evaluation mode: `z = mu`).
#[derive(Debug)]
pub struct Cvae {
    kind: CvaeKind,
    convs: [Conv; 3],
    /// bn1..bn3 (bn4 is loaded but unused, as in ClinicaDL); empty for FinalConv.
    encoder_norms: Vec<BatchNorm>,
    fc10: Linear,
    fc11: Linear,
    fc2: Linear,
    upconvs: [ConvTranspose; 3],
    /// bn5, bn6 (bn7 is loaded but unused); empty for FinalConv.
    decoder_norms: Vec<BatchNorm>,
    final_conv: Option<Conv>,
    /// `[256, d, h, w]`: the decoder's first feature map.
    bottom: [i64; 4],
}

impl Cvae {
    /// Builds the network for its input size (`[1, D, H, W]`, each divisible by 8 except for
    /// `CVAE_3D`), loading its weights by state_dict key.
    pub fn load(sd: &StateDict, kind: CvaeKind, input_size: [usize; 4], latent: i64) -> Self {
        let three = Dim::Three;
        let bottom: [i64; 4] = match kind {
            CvaeKind::Full => [256, 22, 26, 23],
            _ => [
                256,
                (input_size[1] / 8) as i64,
                (input_size[2] / 8) as i64,
                (input_size[3] / 8) as i64,
            ],
        };
        let feature = 128 * bottom[1] * bottom[2] * bottom[3];
        let conv =
            |name: &str, c_in, c_out| Conv::load(sd, name, three, c_in, c_out, 3, 2, 1, true);
        let output_paddings: [[i64; 3]; 3] = match kind {
            CvaeKind::Full => [[0, 1, 0], [0, 1, 1], [0, 1, 0]],
            _ => [[1; 3]; 3],
        };
        let upconv = |name: &str, c_in, c_out, op: &[i64; 3]| {
            ConvTranspose::load(sd, name, three, c_in, c_out, 3, 2, 1, op, true)
        };
        let batch_norm = kind != CvaeKind::FinalConv;
        let encoder_norms = if batch_norm {
            let norms = vec![
                BatchNorm::load(sd, "bn1", 32),
                BatchNorm::load(sd, "bn2", 64),
                BatchNorm::load(sd, "bn3", 128),
            ];
            BatchNorm::load(sd, "bn4", 128);
            norms
        } else {
            Vec::new()
        };
        let decoder_norms = if batch_norm {
            let norms = vec![
                BatchNorm::load(sd, "bn5", 128),
                BatchNorm::load(sd, "bn6", 64),
            ];
            BatchNorm::load(sd, "bn7", 32);
            norms
        } else {
            Vec::new()
        };
        Cvae {
            kind,
            convs: [
                conv("conv1", 1, 32),
                conv("conv2", 32, 64),
                conv("conv3", 64, 128),
            ],
            encoder_norms,
            fc10: Linear::load(sd, "fc10", feature, latent),
            fc11: Linear::load(sd, "fc11", feature, latent),
            fc2: Linear::load(sd, "fc2", latent, 2 * feature),
            upconvs: [
                upconv("upconv1", 256, 128, &output_paddings[0]),
                upconv("upconv2", 128, 64, &output_paddings[1]),
                upconv("upconv4", 64, 1, &output_paddings[2]),
            ],
            decoder_norms,
            final_conv: (kind == CvaeKind::FinalConv)
                .then(|| Conv::load(sd, "final", three, 1, 1, 3, 1, 1, true)),
            bottom,
        }
    }

    /// The kind of network.
    pub fn kind(&self) -> CvaeKind {
        self.kind
    }

    fn normalized(&self, norms: &[BatchNorm], i: usize, x: &Tensor) -> Result<Tensor, TchError> {
        match norms.get(i) {
            Some(norm) => norm.forward(x),
            None => instance_norm(x),
        }
    }

    /// `[B, 1, D, H, W] → (reconstruction [B, 1, D, H, W], mu [B, latent], logvar [B, latent])`
    /// with `z = mu`.
    pub fn forward(&self, x: &Tensor) -> Result<(Tensor, Tensor, Tensor), TchError> {
        let mut h = x.shallow_clone();
        for (i, conv) in self.convs.iter().enumerate() {
            h = self.normalized(&self.encoder_norms, i, &conv.forward(&h)?)?;
            h = match self.kind {
                CvaeKind::Full => h.f_relu()?,
                _ => leaky_relu(&h, 0.2)?,
            };
        }
        h = h.f_flatten(1, -1)?;
        let mu = self.fc10.forward(&h)?.f_tanh()?;
        let logvar = self.fc11.forward(&h)?;
        let decoder_activation = |t: &Tensor| match self.kind {
            CvaeKind::FinalConv => leaky_relu(t, 0.01),
            _ => t.f_relu(),
        };
        let mut y = decoder_activation(&self.fc2.forward(&mu)?)?;
        let shape = [
            y.size()[0],
            self.bottom[0],
            self.bottom[1],
            self.bottom[2],
            self.bottom[3],
        ];
        y = y.f_reshape(shape)?;
        for (i, upconv) in self.upconvs[..2].iter().enumerate() {
            y = self.normalized(&self.decoder_norms, i, &upconv.forward(&y)?)?;
            y = decoder_activation(&y)?;
        }
        y = self.upconvs[2].forward(&y)?;
        let reconstruction = match (&self.final_conv, self.kind) {
            (Some(final_conv), _) => final_conv
                .forward(&leaky_relu(&instance_norm(&y)?, 0.01)?)?
                .f_sigmoid()?,
            (None, CvaeKind::Full) => y.f_relu()?,
            (None, _) => y.f_sigmoid()?,
        };
        Ok((reconstruction, mu, logvar))
    }
}

/// A criterion of the VAE family (`maps.json` `loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VaeLoss {
    /// `VAEGaussianLoss`: `(Σ (reconstruction − input)², kl)`.
    Gaussian,
    /// `VAEBernoulliLoss`: `(BCE summed, kl)`.
    Bernoulli,
    /// `VAEContinuousBernoulliLoss`: `(kl, BCE summed, Σ log C(reconstruction))`.
    ContinuousBernoulli,
}

/// The names of the VAE criteria, as in `maps.json`.
pub const VAE_LOSSES: [&str; 3] = [
    "VAEGaussianLoss",
    "VAEBernoulliLoss",
    "VAEContinuousBernoulliLoss",
];

impl VaeLoss {
    /// The criterion named `name`, if it is a VAE one.
    pub fn from_name(name: &str) -> Option<VaeLoss> {
        match name {
            "VAEGaussianLoss" => Some(VaeLoss::Gaussian),
            "VAEBernoulliLoss" => Some(VaeLoss::Bernoulli),
            "VAEContinuousBernoulliLoss" => Some(VaeLoss::ContinuousBernoulli),
            _ => None,
        }
    }

    /// The values the ClinicaDL function returns, in its order (2 or 3 scalars).
    pub fn components(
        self,
        input: &Tensor,
        reconstruction: &Tensor,
        mu: &Tensor,
        logvar: &Tensor,
    ) -> Result<Vec<Tensor>, TchError> {
        let kl = kl_divergence(mu, logvar)?;
        Ok(match self {
            VaeLoss::Gaussian => vec![reconstruction.f_mse_loss(input, Reduction::Sum)?, kl],
            VaeLoss::Bernoulli => vec![bce_sum(reconstruction, input)?, kl],
            VaeLoss::ContinuousBernoulli => vec![
                kl,
                bce_sum(reconstruction, input)?,
                sum_log_c(reconstruction)?,
            ],
        })
    }
}

/// `0.5 · Σ(−1 − logvar + mu² + exp(logvar)) / batch`.
pub fn kl_divergence(mu: &Tensor, logvar: &Tensor) -> Result<Tensor, TchError> {
    let batch = mu.size().first().copied().unwrap_or(1);
    let terms = logvar
        .f_neg()?
        .f_sub_scalar(1.0)?
        .f_add(&mu.f_pow_tensor_scalar(2)?)?
        .f_add(&logvar.f_exp()?)?;
    terms
        .f_sum(Kind::Float)?
        .f_mul_scalar(0.5)?
        .f_div_scalar(batch as f64)
}

fn bce_sum(reconstruction: &Tensor, input: &Tensor) -> Result<Tensor, TchError> {
    reconstruction.f_binary_cross_entropy::<Tensor>(input, None, Reduction::Sum)
}

/// `sumlogC`: the sum of the log normalising constants of the continuous Bernoulli
/// distribution at `x` (clamped to [1e-5, 1 − 1e-5]), with a Taylor expansion near 0.5.
pub fn sum_log_c(x: &Tensor) -> Result<Tensor, TchError> {
    let eps = 1e-5;
    let x = x.f_clamp(eps, 1.0 - eps)?;
    let mask = x.f_sub_scalar(0.5)?.f_abs()?.f_ge(eps)?;
    let far = x.f_masked_select(&mask)?;
    let close = x.f_masked_select(&mask.f_logical_not()?)?;
    let far_values = far
        .f_rsub_scalar(1.0)?
        .f_log()?
        .f_sub(&far.f_log()?)?
        .f_div(&far.f_mul_scalar(2.0)?.f_rsub_scalar(1.0)?)?
        .f_log()?;
    let close_values = close
        .f_mul_scalar(2.0)?
        .f_rsub_scalar(1.0)?
        .f_pow_tensor_scalar(2)?
        .f_div_scalar(3.0)?
        .f_add_scalar(1.0)?
        .f_log()?
        .f_add_scalar(2f64.ln() as f32 as f64)?;
    far_values
        .f_sum(Kind::Float)?
        .f_add(&close_values.f_sum(Kind::Float)?)
}

/// How a VAE class combines the criterion's components (`compute_outputs_and_loss`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combination {
    /// `BaseVAE`: `recons_weight·L0 + kl_weight·L1 (+ L2)`.
    BaseVae,
    /// `CVAE_3D_half`, `CVAE_3D_final_conv`: `L0 + kl_weight·L1`, or
    /// `recons_weight·L0 + kl_weight·L1 + L2` with three components.
    Cvae,
}

/// `loss`, `recon_loss`, `kl_loss` from the criterion's components (`recon_loss = L0`,
/// `kl_loss = L1`, whatever they are).
pub fn combine(
    components: Vec<Tensor>,
    combination: Combination,
    recons_weight: f64,
    kl_weight: f64,
) -> Result<Vec<(String, Tensor)>> {
    let [l0, l1, rest @ ..] = components.as_slice() else {
        bail!("a VAE criterion returned fewer than two values");
    };
    let weighted_l1 = l1.f_mul_scalar(kl_weight)?;
    let total = match (combination, rest) {
        (Combination::Cvae, []) => l0.f_add(&weighted_l1)?,
        (_, []) => l0.f_mul_scalar(recons_weight)?.f_add(&weighted_l1)?,
        (_, [l2, ..]) => l0
            .f_mul_scalar(recons_weight)?
            .f_add(&weighted_l1)?
            .f_add(l2)?,
    };
    Ok(vec![
        ("loss".to_owned(), total),
        ("recon_loss".to_owned(), l0.shallow_clone()),
        ("kl_loss".to_owned(), l1.shallow_clone()),
    ])
}

/// `CVAE_3D.loss` as its `compute_outputs_and_loss` uses it (the configured criterion is
/// ignored): `recon = Σ(reconstruction − input)² / batch`, `loss = recon + 5·kl`.
pub fn cvae_3d_loss(
    input: &Tensor,
    reconstruction: &Tensor,
    mu: &Tensor,
    logvar: &Tensor,
) -> Result<Vec<(String, Tensor)>> {
    let kl = kl_divergence(mu, logvar)?;
    let batch = reconstruction.size().first().copied().unwrap_or(1);
    // ClinicaDL passes (input, reconstruction) swapped into `loss`: Σ(input − recon)²/B.
    let recon = input
        .f_sub(reconstruction)?
        .f_pow_tensor_scalar(2)?
        .f_sum(Kind::Float)?
        .f_div_scalar(batch as f64)?;
    let total = recon.f_add(&kl.f_mul_scalar(5.0)?)?;
    Ok(vec![
        ("loss".to_owned(), total),
        ("recon_loss".to_owned(), recon),
        ("kl_loss".to_owned(), kl),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_sizes_match_networks_md() {
        let spec = DenseVaeSpec {
            input_size: [1, 80, 96, 80],
            latent_space_size: 128,
            feature_size: 1024,
            n_conv: 4,
            io_layer_channels: 8,
        };
        assert_eq!(spec.n_pix(), 9600);
        let small = DenseVaeSpec {
            input_size: [1, 32, 40, 32],
            latent_space_size: 16,
            feature_size: 64,
            n_conv: 4,
            io_layer_channels: 4,
        };
        assert_eq!(small.n_pix(), 256);
    }

    #[test]
    fn kl_of_standard_normal_is_zero() {
        let zeros = Tensor::zeros([2, 3], (Kind::Float, tch::Device::Cpu));
        let kl = kl_divergence(&zeros, &zeros).unwrap().double_value(&[]);
        assert_eq!(kl, 0.0);
    }

    #[test]
    fn log_c_near_one_half() {
        // C(0.5) = 2 → log 2; far from 0.5 the exact formula.
        let x = Tensor::from_slice(&[0.5f32, 0.25]);
        let v = sum_log_c(&x).unwrap().double_value(&[]);
        let far = ((0.75f64.ln() - 0.25f64.ln()) / 0.5).ln();
        assert!((v - (2f64.ln() + far)).abs() < 1e-5, "{v}");
    }
}
