//! ClinicaDL's evaluation metrics as pure functions: from prediction rows to the named, ordered
//! and int/float-typed values of a metrics table, with their bootstrap confidence intervals.
//!
//! This module owns the value types ([`MetricValue`], [`ConfidenceInterval`]), the metric names
//! in ClinicaDL's order, and [`of_rows`], the one entry point of the run driver. The formulas
//! are in `classification`, `regression` and `reconstruction` (which also holds the per-element
//! MAE/RMSE/PSNR of the inference), the confidence intervals in `bootstrap`. It does no I/O and
//! no formatting: the numpy reductions come from `crate::numpy`, the text of the metrics TSV is
//! written by `crate::output::metrics`, and SSIM (which needs torch) by `crate::predict::ssim`.

pub mod bootstrap;
pub mod classification;
pub mod reconstruction;
pub mod regression;

use crate::maps::json::Task;
use crate::rows::{Row, RowValues};

/// Classification metrics in ClinicaDL's evaluation order.
// ClinicaDL: clinicadl.utils.task_manager.classification.ClassificationManager.evaluation_metrics
pub const CLASSIFICATION_METRICS: [&str; 11] = [
    "BA",
    "accuracy",
    "F1_score",
    "sensitivity",
    "specificity",
    "PPV",
    "NPV",
    "MCC",
    "MK",
    "LR_plus",
    "LR_minus",
];

/// Regression metrics in ClinicaDL's evaluation order.
// ClinicaDL: clinicadl.utils.task_manager.regression.RegressionManager.evaluation_metrics
pub const REGRESSION_METRICS: [&str; 3] = ["R2_score", "MAE", "RMSE"];

/// Reconstruction metrics in ClinicaDL's evaluation order.
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.evaluation_metrics
pub const RECONSTRUCTION_METRICS: [&str; 4] = ["MAE", "RMSE", "PSNR", "SSIM"];

/// One metric value with the Python type that decides its text (`0` vs `0.0`, float32 digits).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricValue {
    /// A Python `int` (the edge-case `0` of F1_score, MCC, LR_plus, LR_minus, R2_score).
    Int(i64),
    /// A double (numpy float64 or Python float).
    F64(f64),
    /// A numpy float32 (reconstruction MAE/RMSE means and their SE).
    F32(f32),
    /// A cell written `N/A` (the CI rows of loss columns).
    NotAvailable,
}

impl MetricValue {
    /// The value as a double (`NotAvailable` is NaN).
    pub fn as_f64(&self) -> f64 {
        match *self {
            // Metric integers are tiny (0), far below 2^53: the conversion is exact.
            MetricValue::Int(value) => value as f64,
            MetricValue::F64(value) => value,
            MetricValue::F32(value) => f64::from(value),
            MetricValue::NotAvailable => f64::NAN,
        }
    }
}

/// Bootstrap result of one metric: the `Lower bound CI`, `Upper bound CI` and `SE` cells.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfidenceInterval {
    /// 2.5th percentile of the resampled statistic.
    pub lower: MetricValue,
    /// 97.5th percentile of the resampled statistic.
    pub upper: MetricValue,
    /// Standard deviation (ddof = 1) of the resampled statistic.
    pub se: MetricValue,
}

impl ConfidenceInterval {
    /// The interval of an empty column: every cell NaN (written empty).
    fn undefined() -> Self {
        Self {
            lower: MetricValue::F64(f64::NAN),
            upper: MetricValue::F64(f64::NAN),
            se: MetricValue::F64(f64::NAN),
        }
    }
}

/// The named metric values of a set of rows, in output order, and one confidence interval per
/// metric in the same order.
pub type MetricTable = (Vec<(String, MetricValue)>, Vec<ConfidenceInterval>);

/// Metrics and confidence intervals of the rows of one task (`n_classes`: the network's output
/// size, which names the per-class classification metrics). Rows of another task are skipped;
/// a regression row without label counts with the label -1, as ClinicaDL writes it.
// ClinicaDL: clinicadl.utils.task_manager.task_manager.TaskManager.test (compute_metrics of the
// results frame) and <Task>Manager.ensemble_prediction (of the image-level frame)
pub fn of_rows(task: Task, rows: &[Row], n_classes: usize) -> MetricTable {
    match task {
        Task::Classification => {
            let (y, p): (Vec<i64>, Vec<i64>) = rows
                .iter()
                .filter_map(|r| match r.values {
                    RowValues::Classification {
                        true_label,
                        predicted_label,
                        ..
                    } => Some((true_label, predicted_label)),
                    _ => None,
                })
                .unzip();
            (
                classification::classification_metrics(&y, &p, n_classes),
                classification::classification_ci(&y, &p, n_classes),
            )
        }
        Task::Reconstruction => {
            let (mut mae, mut rmse, mut psnr, mut ssim) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for r in rows {
                if let RowValues::Reconstruction {
                    mae: a,
                    rmse: b,
                    psnr: c,
                    ssim: d,
                } = r.values
                {
                    mae.push(a);
                    rmse.push(b);
                    psnr.push(c);
                    ssim.push(d);
                }
            }
            (
                reconstruction::reconstruction_metrics(&mae, &rmse, &psnr, &ssim),
                reconstruction::reconstruction_ci(&mae, &rmse, &psnr, &ssim),
            )
        }
        Task::Regression => {
            let (y, p): (Vec<f64>, Vec<f64>) = rows
                .iter()
                .filter_map(|r| match r.values {
                    RowValues::Regression {
                        true_label,
                        predicted_label,
                    } => Some((true_label.unwrap_or(-1.0), predicted_label)),
                    _ => None,
                })
                .unzip();
            (
                regression::regression_metrics(&y, &p),
                regression::regression_ci(&y, &p),
            )
        }
    }
}

/// What the tests of the metric modules compare: the values as Python prints them.
#[cfg(test)]
mod testing {
    use super::MetricValue;

    /// The value as Python prints it: `0` for an int, the shortest round-trip digits of a float
    /// (Rust's `{:?}`, which equals Python's repr for the magnitudes of these tests: no
    /// exponent), `NaN` for NaN.
    pub(super) fn cell(value: &MetricValue) -> String {
        match *value {
            MetricValue::Int(value) => value.to_string(),
            MetricValue::F64(value) => format!("{value:?}"),
            MetricValue::F32(value) => format!("{value:?}"),
            MetricValue::NotAvailable => "N/A".to_owned(),
        }
    }

    /// The printed values of named metrics.
    pub(super) fn cells(metrics: &[(String, MetricValue)]) -> Vec<String> {
        metrics.iter().map(|(_, value)| cell(value)).collect()
    }

    /// The names of named metrics.
    pub(super) fn names(metrics: &[(String, MetricValue)]) -> Vec<&str> {
        metrics.iter().map(|(name, _)| name.as_str()).collect()
    }
}
