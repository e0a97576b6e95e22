//! Structural similarity of a reconstruction (docs/ARCHITECTURE.md, "Inference, rows and losses"):
//! Gaussian window of size 11 and σ 1.5, zero padding of 5, constants C1 = 0.01², C2 = 0.03², mean
//! of the SSIM map; computed with libtorch in float32 as ClinicaDL does. Elements with 3 channels
//! use the 2D window, others the 3D one; 2D single-channel elements (where 1.6.1 crashes) use the
//! 2D window.
//!
//! ClinicaDL: `clinicadl.utils.metric_module` (`ssim`, `ssim3D`, `_ssim`, `_ssim_3D`,
//! `create_window`, `create_window_3D`, `gaussian`).

use tch::{Kind, TchError, Tensor};

const WINDOW: i64 = 11;
const SIGMA: f64 = 1.5;

/// The normalised 1D Gaussian `[11]` (float32 values, float32 normalisation).
fn gaussian() -> Result<Tensor, TchError> {
    let values: Vec<f32> = (0..WINDOW)
        .map(|x| {
            let d = (x - WINDOW / 2) as f64;
            (-(d * d) / (2.0 * SIGMA * SIGMA)).exp() as f32
        })
        .collect();
    let g = Tensor::f_from_slice(&values)?;
    let sum = g.f_sum(Kind::Float)?;
    g.f_div(&sum)
}

/// SSIM between an element `x` (`[C, …]`) and its reconstruction `y`, both float32 on any device.
pub fn ssim(x: &Tensor, y: &Tensor) -> Result<f64, TchError> {
    let size = x.size();
    let channels = size[0];
    let spatial = size.len() - 1;
    let two_d = channels == 3 || spatial == 2;
    let g = gaussian()?.f_unsqueeze(1)?.f_to_device(x.device())?; // [11, 1]
    let window_2d = g.f_mm(&g.f_transpose(0, 1)?)?; // [11, 11]
    let (x, y) = (x.f_unsqueeze(0)?, y.f_unsqueeze(0)?);
    let conv = |input: &Tensor, window: &Tensor| -> Result<Tensor, TchError> {
        if two_d {
            input.f_conv2d(
                window,
                None::<&Tensor>,
                [1, 1],
                [WINDOW / 2; 2],
                [1, 1],
                channels,
            )
        } else {
            input.f_conv3d(
                window,
                None::<&Tensor>,
                [1, 1, 1],
                [WINDOW / 2; 3],
                [1, 1, 1],
                channels,
            )
        }
    };
    let window = if two_d {
        window_2d
            .f_expand([channels, 1, WINDOW, WINDOW], false)?
            .f_contiguous()?
    } else {
        g.f_mm(&window_2d.f_reshape([1, -1])?)?
            .f_reshape([1, 1, WINDOW, WINDOW, WINDOW])?
            .f_expand([channels, 1, WINDOW, WINDOW, WINDOW], false)?
            .f_contiguous()?
    };
    let mu1 = conv(&x, &window)?;
    let mu2 = conv(&y, &window)?;
    let mu1_sq = mu1.f_mul(&mu1)?;
    let mu2_sq = mu2.f_mul(&mu2)?;
    let mu1_mu2 = mu1.f_mul(&mu2)?;
    let sigma1_sq = conv(&x.f_mul(&x)?, &window)?.f_sub(&mu1_sq)?;
    let sigma2_sq = conv(&y.f_mul(&y)?, &window)?.f_sub(&mu2_sq)?;
    let sigma12 = conv(&x.f_mul(&y)?, &window)?.f_sub(&mu1_mu2)?;
    let (c1, c2) = (0.01f64 * 0.01, 0.03f64 * 0.03);
    let numerator = (mu1_mu2.f_mul_scalar(2.0)? + c1).f_mul(&(sigma12.f_mul_scalar(2.0)? + c2))?;
    let denominator = (mu1_sq.f_add(&mu2_sq)? + c1).f_mul(&(sigma1_sq.f_add(&sigma2_sq)? + c2))?;
    numerator
        .f_div(&denominator)?
        .f_mean(Kind::Float)?
        .f_double_value(&[])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::predict::measures::reconstruction_mae_rmse_psnr;
    use crate::tolerance;

    #[test]
    fn identical_images_have_ssim_one() {
        let x = Tensor::rand([1, 12, 13, 14], (Kind::Float, tch::Device::Cpu));
        assert!((ssim(&x, &x).unwrap() - 1.0).abs() < 1e-5);
        let x2 = Tensor::rand([3, 20, 21], (Kind::Float, tch::Device::Cpu));
        assert!((ssim(&x2, &x2).unwrap() - 1.0).abs() < 1e-5);
        let y2 = Tensor::rand([3, 20, 21], (Kind::Float, tch::Device::Cpu));
        assert!(ssim(&x2, &y2).unwrap() < 0.5);
    }

    /// The per-image metrics of ClinicaDL's reconstruction reference case, recomputed from the
    /// input and output tensors it saved (`--save_tensor`).
    #[test]
    fn reference_reconstruction_metrics() {
        let Some(reference) = crate::reference_cases::reference_dir() else {
            return;
        };
        let dir = reference.join("image_reconstruction/maps/split-0/best-loss/test");
        let tsv = std::fs::read_to_string(dir.join("test_image_level_prediction.tsv")).unwrap();
        for line in tsv.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            let load = |kind: &str| {
                let t = crate::torchfile::read_tensor(
                    &dir.join(format!("tensors/{}_{}_image-0_{kind}.pt", f[0], f[1])),
                )
                .unwrap();
                (
                    t.to_f32_vec().unwrap(),
                    t.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
                )
            };
            let ((x, shape), (y, _)) = (load("input"), load("output"));
            let (mae, rmse, psnr) = reconstruction_mae_rmse_psnr(&x, &y).unwrap();
            let tx = Tensor::from_slice(&x).reshape(shape.as_slice());
            let ty = Tensor::from_slice(&y).reshape(shape.as_slice());
            let s = ssim(&tx, &ty).unwrap();
            // The same inputs: MAE, RMSE and PSNR are the same reductions, up to their
            // rounding; SSIM is evaluated by other float32 kernels (see `tolerance`).
            let close = |a: f64, b: &str, allowed: f64| {
                tolerance::within(
                    a,
                    b.parse().unwrap(),
                    allowed + tolerance::REDUCTION * a.abs(),
                )
            };
            assert!(
                close(f64::from(mae), f[3], 0.0) && close(f64::from(rmse), f[4], 0.0),
                "{line}: {mae} {rmse}"
            );
            assert!(close(psnr, f[5], 0.0), "{line}: psnr {psnr}");
            let allowed = tolerance::ssim_evaluation_error(1.0);
            assert!(close(s, f[6], allowed), "{line}: ssim {s}");
        }
    }
}
