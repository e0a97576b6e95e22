//! The per-element measures of a reconstruction that its row holds: MAE and RMSE with numpy's
//! float32 reductions, and PSNR as skimage computes it (with its errors, [`MetricError`]). SSIM,
//! which needs libtorch, is `ssim.rs`; the means over the rows are `crate::metrics`'.

use crate::numpy::numpy_sum;

/// Errors of the per-element reconstruction metrics (messages of the Python exceptions).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricError {
    /// The input image has values outside [−1, 1] (1.6.1 raises `ValueError`; happens when
    /// `normalize` is false).
    // ClinicaDL: skimage.metrics.peak_signal_noise_ratio, called by MetricModule.psnr_fn
    #[error(
        "image_true has intensity values outside the range expected for its data type. Please manually specify the data_range."
    )]
    IntensityOutOfRange,
    /// Input and output do not have the same number of elements.
    // skimage: check_shape_equality
    #[error("Input images must have the same dimensions.")]
    ShapeMismatch {
        /// Number of elements of the input.
        input: usize,
        /// Number of elements of the output.
        output: usize,
    },
    /// The image has no element (numpy cannot take the minimum of an empty array).
    // numpy: np.min on a zero-size array
    #[error("zero-size array to reduction operation minimum which has no identity")]
    Empty,
}

/// MAE and RMSE (float32, numpy reductions) and PSNR (double) between an input `x` and its
/// reconstruction `y`, both flattened in C order.
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.mae_fn, rmse_fn, psnr_fn
// (psnr_fn is skimage.metrics.peak_signal_noise_ratio(x, y) with data_range=None)
pub fn reconstruction_mae_rmse_psnr(x: &[f32], y: &[f32]) -> Result<(f32, f32, f64), MetricError> {
    if x.len() != y.len() {
        return Err(MetricError::ShapeMismatch {
            input: x.len(),
            output: y.len(),
        });
    }
    if x.is_empty() {
        return Err(MetricError::Empty);
    }
    let count = x.len();
    // np.mean(np.abs(x - y)) and np.sqrt(np.mean(np.square(x - y))), all in float32.
    let absolute_sum: f32 = numpy_sum(count, &|index| (x[index] - y[index]).abs());
    let square_sum: f32 = numpy_sum(count, &|index| {
        let difference = x[index] - y[index];
        difference * difference
    });
    let mae = absolute_sum / count as f32;
    let rmse = (square_sum / count as f32).sqrt();

    // skimage: the data range comes from the float dtype range [-1, 1]; np.min/np.max
    // propagate NaN, and NaN fails every comparison below.
    let (minimum, maximum) = if x.iter().any(|value| value.is_nan()) {
        (f32::NAN, f32::NAN)
    } else {
        x.iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(low, high), &value| {
                (low.min(value), high.max(value))
            })
    };
    if maximum > 1.0 || minimum < -1.0 {
        return Err(MetricError::IntensityOutOfRange);
    }
    let data_range: f64 = if minimum >= 0.0 { 1.0 } else { 2.0 };
    // skimage mean_squared_error: np.mean((x - y) ** 2, dtype=np.float64): float32 squares,
    // accumulated in double with the same chunked pairwise scheme.
    let mse = numpy_sum(count, &|index| {
        let difference = x[index] - y[index];
        f64::from(difference * difference)
    }) / count as f64;
    // MSE = 0 gives +inf, as numpy's division does.
    let psnr = 10.0 * (data_range * data_range / mse).log10();
    Ok((mae, rmse, psnr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numpy::fixtures::{assert_float_is, signed, unit};

    #[test]
    fn reconstruction_metrics_match_numpy_and_skimage() {
        let cases: &[(u64, usize, bool, &str, &str, &str)] = &[
            (
                1,
                5000,
                false,
                "0.33095786",
                "0.40668797",
                "7.8147736630453455",
            ),
            (2, 8192, true, "0.6616484", "0.8102039", "7.848713078950704"),
            (
                3,
                20000,
                false,
                "0.33375725",
                "0.4078817",
                "7.789315706564427",
            ),
            // numpy 2.4 (no chunking) gives a MAE of 0.66915864 here.
            (
                4,
                20000,
                true,
                "0.6691587",
                "0.8182969",
                "7.762381773625398",
            ),
            (5, 7, false, "0.2717576", "0.3272235", "9.703109793925549"),
        ];
        for &(seed, count, is_signed, mae, rmse, psnr) in cases {
            let values = if is_signed {
                signed(seed, 2 * count)
            } else {
                unit(seed, 2 * count)
            };
            let (x, y) = values.split_at(count);
            let (got_mae, got_rmse, got_psnr) =
                reconstruction_mae_rmse_psnr(x, y).expect("values within [-1, 1]");
            assert_float_is(got_mae, mae, &format!("MAE of seed {seed}"));
            assert_float_is(got_rmse, rmse, &format!("RMSE of seed {seed}"));
            assert_float_is(got_psnr, psnr, &format!("PSNR of seed {seed}"));
        }
    }

    #[test]
    fn reconstruction_edge_cases() {
        let x = signed(11, 300);
        let (mae, rmse, psnr) = reconstruction_mae_rmse_psnr(&x, &x).expect("in range");
        assert_eq!((mae, rmse), (0.0, 0.0));
        assert_eq!(psnr, f64::INFINITY);

        // Data range 1 for non-negative inputs, 2 as soon as one value is negative:
        // MSE 0.25 gives 10·log10(1/0.25) and 10·log10(4/0.25).
        let (_, _, psnr) = reconstruction_mae_rmse_psnr(&[0.0, 1.0], &[0.5, 0.5]).expect("ok");
        assert_float_is(psnr, "6.020599913279624", "PSNR of range 1");
        let (_, _, psnr) = reconstruction_mae_rmse_psnr(&[-0.5, 0.5], &[0.0, 0.0]).expect("ok");
        assert_float_is(psnr, "12.041199826559248", "PSNR of range 2");

        let error = reconstruction_mae_rmse_psnr(&[0.0, 1.5], &[0.0, 1.0])
            .expect_err("1.5 is out of range");
        assert_eq!(error, MetricError::IntensityOutOfRange);
        assert_eq!(
            error.to_string(),
            "image_true has intensity values outside the range expected for its data type. \
             Please manually specify the data_range."
        );
        assert_eq!(
            reconstruction_mae_rmse_psnr(&[-1.5], &[0.0]),
            Err(MetricError::IntensityOutOfRange)
        );
        // Only the input is checked; the reconstruction may leave the range.
        assert!(reconstruction_mae_rmse_psnr(&[1.0], &[3.0]).is_ok());
        assert_eq!(
            reconstruction_mae_rmse_psnr(&[0.0; 3], &[0.0; 2]),
            Err(MetricError::ShapeMismatch {
                input: 3,
                output: 2
            })
        );
        assert_eq!(
            reconstruction_mae_rmse_psnr(&[], &[]),
            Err(MetricError::Empty)
        );
    }
}
