//! The reconstruction metrics of ClinicaDL's table: the pandas means of the rows' MAE, RMSE, PSNR
//! and SSIM columns and their bootstrap confidence intervals.
//!
//! This module owns these formulas and the float32/double typing of the table cells. The values
//! of each row are the engine's (`crate::predict::measures`, `crate::predict::ssim`); the
//! reductions are `crate::numpy`'s, the resampling `bootstrap`'s, the text of the values the
//! metrics TSV writer's.

use super::bootstrap::confidence_intervals;
use super::{ConfidenceInterval, MetricValue, RECONSTRUCTION_METRICS};
use crate::numpy::{column_mean_f32, column_mean_f64};

/// Means of the per-element reconstruction columns in the order `MAE, RMSE, PSNR, SSIM`
/// (MAE/RMSE float32 pandas means, PSNR/SSIM double).
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.compute_metrics
pub fn reconstruction_metrics(
    mae: &[f32],
    rmse: &[f32],
    psnr: &[f64],
    ssim: &[f64],
) -> Vec<(String, MetricValue)> {
    let values = [
        MetricValue::F32(column_mean_f32(mae)),
        MetricValue::F32(column_mean_f32(rmse)),
        MetricValue::F64(column_mean_f64(psnr)),
        MetricValue::F64(column_mean_f64(ssim)),
    ];
    RECONSTRUCTION_METRICS
        .iter()
        .map(|name| (*name).to_owned())
        .zip(values)
        .collect()
}

/// Bootstrap confidence intervals of the four reconstruction column means, in the order of
/// [`reconstruction_metrics`].
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.compute_metrics
pub fn reconstruction_ci(
    mae: &[f32],
    rmse: &[f32],
    psnr: &[f64],
    ssim: &[f64],
) -> Vec<ConfidenceInterval> {
    vec![
        mean_ci_f32(mae),
        mean_ci_f32(rmse),
        mean_ci_f64(psnr),
        mean_ci_f64(ssim),
    ]
}

/// Non-paired bootstrap of the mean of a float32 column. Each resample's mean is a float32
/// pandas mean; the bounds are doubles and the SE is float32, the types 1.6.1 writes (e.g.
/// `0.17336021214723588` and `0.005084861`).
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.compute_metrics
pub fn mean_ci_f32(values: &[f32]) -> ConfidenceInterval {
    let interval = mean_ci(values, |sample| MetricValue::F32(column_mean_f32(sample)));
    if values.is_empty() {
        // The undefined interval: every cell a double NaN.
        return interval;
    }
    ConfidenceInterval {
        // The SE is computed in double and stored as the float32 scipy would return.
        se: MetricValue::F32(interval.se.as_f64() as f32),
        ..interval
    }
}

/// Non-paired bootstrap of the mean of a float64 column (bounds and SE are doubles).
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.compute_metrics
pub fn mean_ci_f64(values: &[f64]) -> ConfidenceInterval {
    mean_ci(values, |sample| MetricValue::F64(column_mean_f64(sample)))
}

/// Non-paired bootstrap of `mean` over a column (all cells NaN for an empty column).
fn mean_ci<T: Copy>(values: &[T], mean: impl Fn(&[T]) -> MetricValue) -> ConfidenceInterval {
    let mut sample = Vec::with_capacity(values.len());
    let intervals = confidence_intervals(values.len(), 1, |indices| {
        sample.clear();
        sample.extend(indices.iter().map(|&row| values[row]));
        [mean(&sample)]
    });
    intervals
        .first()
        .copied()
        .unwrap_or_else(ConfidenceInterval::undefined)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::numpy::fixtures::unit;

    #[test]
    fn mean_bootstrap_types_and_bounds() {
        let values = unit(5, 40);
        let interval = mean_ci_f32(&values);
        let mean = f64::from(column_mean_f32(&values));
        let (MetricValue::F64(lower), MetricValue::F64(upper), MetricValue::F32(se)) =
            (interval.lower, interval.upper, interval.se)
        else {
            panic!("unexpected types {interval:?}");
        };
        assert!(lower < mean && mean < upper, "{lower} < {mean} < {upper}");
        // The SE of a mean of 40 uniform values is about (1/√12)/√40 ≈ 0.046.
        assert!((0.03..0.06).contains(&se), "se {se}");
        let doubles: Vec<f64> = values.iter().map(|&v| f64::from(v)).collect();
        let interval = mean_ci_f64(&doubles);
        assert!(matches!(interval.se, MetricValue::F64(se) if (0.03..0.06).contains(&se)));
        assert_eq!(interval, mean_ci_f64(&doubles));
    }
}
