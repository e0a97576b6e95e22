//! The regression metrics of ClinicaDL: `R2_score` (the int `0` when the labels are constant),
//! `MAE` and `RMSE` with numpy's summation, and their paired bootstrap confidence intervals.
//!
//! This module owns the formulas; the reductions are `crate::numpy`'s, the resampling
//! `bootstrap`'s, the text of the values the metrics TSV writer's.

use super::bootstrap::confidence_intervals;
use super::{ConfidenceInterval, MetricValue, REGRESSION_METRICS};
use crate::numpy::{numpy_mean_f64, numpy_sum};

/// R2_score, MAE and RMSE of paired slices of equal length, as numpy computes them.
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.r2_score_fn, mae_fn, rmse_fn
fn regression_values(y_true: &[f64], y_pred: &[f64]) -> [MetricValue; 3] {
    let rows = y_true.len();
    let mean = numpy_mean_f64(y_true);
    let total_sum_squares = numpy_sum(rows, &|row| {
        let deviation = y_true[row] - mean;
        deviation * deviation
    });
    let residual_sum_squares = numpy_sum(rows, &|row| {
        let residual = y_true[row] - y_pred[row];
        residual * residual
    });
    let absolute_sum = numpy_sum(rows, &|row| (y_true[row] - y_pred[row]).abs());
    // `1 - (rss / tss) if tss != 0 else 0`: NaN != 0, so NaN labels give a NaN score.
    let r2_score = if total_sum_squares != 0.0 {
        MetricValue::F64(1.0 - residual_sum_squares / total_sum_squares)
    } else {
        MetricValue::Int(0)
    };
    [
        r2_score,
        MetricValue::F64(absolute_sum / rows as f64),
        MetricValue::F64((residual_sum_squares / rows as f64).sqrt()),
    ]
}

/// Regression metrics `R2_score, MAE, RMSE` over all rows; pairs beyond the shorter
/// slice are ignored.
// ClinicaDL: clinicadl.utils.task_manager.regression.RegressionManager.compute_metrics
pub fn regression_metrics(y_true: &[f64], y_pred: &[f64]) -> Vec<(String, MetricValue)> {
    let rows = y_true.len().min(y_pred.len());
    REGRESSION_METRICS
        .iter()
        .map(|name| (*name).to_owned())
        .zip(regression_values(&y_true[..rows], &y_pred[..rows]))
        .collect()
}

/// Paired bootstrap confidence intervals of `R2_score, MAE, RMSE`.
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.apply (scipy.stats.bootstrap, paired)
pub fn regression_ci(y_true: &[f64], y_pred: &[f64]) -> Vec<ConfidenceInterval> {
    let rows = y_true.len().min(y_pred.len());
    let mut true_sample = Vec::with_capacity(rows);
    let mut predicted_sample = Vec::with_capacity(rows);
    confidence_intervals(rows, REGRESSION_METRICS.len(), |indices| {
        true_sample.clear();
        predicted_sample.clear();
        true_sample.extend(indices.iter().map(|&row| y_true[row]));
        predicted_sample.extend(indices.iter().map(|&row| y_pred[row]));
        regression_values(&true_sample, &predicted_sample)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{cells, names};

    #[test]
    fn regression_values_and_edge_cases() {
        let y_true = [10.5, 20.25, 30.0, 41.0, 7.75];
        let y_pred = [12.0, 19.0, 33.5, 40.0, 9.0];
        let metrics = regression_metrics(&y_true, &y_pred);
        assert_eq!(names(&metrics), REGRESSION_METRICS.to_vec());
        // numpy: r2 by MetricModule.r2_score_fn, mae_fn, rmse_fn.
        assert_eq!(
            cells(&metrics).join(" "),
            "0.9756001703075361 1.7 1.9300259065618783"
        );
        // Constant labels: total sum of squares 0 → int 0.
        let metrics = regression_metrics(&[3.0, 3.0], &[1.0, 5.0]);
        assert_eq!(cells(&metrics).join(" "), "0 2.0 2.0");
        // A single row is constant too.
        let metrics = regression_metrics(&[69.0], &[0.028267331421375275]);
        assert_eq!(
            cells(&metrics).join(" "),
            "0 68.97173266857862 68.97173266857862"
        );
        // NaN labels propagate (NaN != 0, so R2 is computed, as NaN).
        let metrics = regression_metrics(&[1.0, f64::NAN], &[1.0, 2.0]);
        assert_eq!(cells(&metrics).join("|"), "NaN|NaN|NaN");
        let ci = regression_ci(&[1.0, 2.0, 4.0], &[1.5, 2.0, 3.0]);
        assert_eq!(ci.len(), 3);
        assert_eq!(ci, regression_ci(&[1.0, 2.0, 4.0], &[1.5, 2.0, 3.0]));
    }
}
