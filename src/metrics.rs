//! ClinicaDL's evaluation metrics as pure functions, and the layout of the metrics TSV files.
//!
//! This module owns the formulas, names, order and int/float typing of the classification
//! (`BA`, `accuracy`, … `LR_minus`) and regression (`R2_score`, `MAE`, `RMSE`) metrics
//! (`predict.md` §8.1–8.2), the per-element reconstruction metrics MAE/RMSE/PSNR with numpy's
//! float32 reductions (§8.3, `formats.md` §2.4), the bootstrap confidence intervals (§8.4) and
//! the text of `<GROUP>_<mode>_level_metrics.tsv` / the soft-voting `_image_level_metrics.tsv`
//! (§8.4, §9.1 step 6). It does no file I/O: the writers take any [`std::io::Write`], and the
//! callers choose paths, read prediction rows and sum the losses. SSIM (which needs torch) lives
//! elsewhere.
//!
//! Deliberate differences from ClinicaDL 1.6.1, all about the confidence-interval rows, which
//! 1.6.1 itself cannot reproduce (unseeded `scipy.stats.bootstrap`):
//! * the resampling generator is seeded ([`BOOTSTRAP_SEED`]), so the CI rows are reproducible;
//! * every resample value is kept in double precision (scipy truncated all of them to integers
//!   when the first resample gave an int-typed 0);
//! * one index vector per resample serves all the metrics of a call (ClinicaDL draws new
//!   resamples for each metric); each metric's CI is still a paired percentile bootstrap;
//! * a single evaluated row gives the normal 5-row layout (1.6.1 writes a malformed file): its
//!   resamples all equal the value, so the CI bounds are the value and the SE is 0.0.

use std::io::{self, Write};

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use crate::output::pyrepr::{tsv_f32, tsv_f64};

/// Number of bootstrap resamples of the confidence intervals (scipy `n_resamples=3000`).
pub const BOOTSTRAP_RESAMPLES: usize = 3000;

/// Seed of the bootstrap generator (ClinicaDL does not seed it; a documented difference). The
/// CI cells depend on this seed and on rand's `Xoshiro256PlusPlus` / `random_range` algorithms.
pub const BOOTSTRAP_SEED: u64 = 42;

/// Classification metrics in ClinicaDL's evaluation order (`predict.md` §8.1).
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

/// Regression metrics in ClinicaDL's evaluation order (`predict.md` §8.1).
// ClinicaDL: clinicadl.utils.task_manager.regression.RegressionManager.evaluation_metrics
pub const REGRESSION_METRICS: [&str; 3] = ["R2_score", "MAE", "RMSE"];

/// Reconstruction metrics in ClinicaDL's evaluation order (`predict.md` §8.1).
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.evaluation_metrics
pub const RECONSTRUCTION_METRICS: [&str; 4] = ["MAE", "RMSE", "PSNR", "SSIM"];

/// Elements per chunk of numpy's buffered reductions (`NPY_BUFSIZE`).
const NUMPY_BUFFER_SIZE: usize = 8192;

/// Largest block that numpy's pairwise summation adds with 8 accumulators (`PW_BLOCKSIZE`).
const PAIRWISE_BLOCK_SIZE: usize = 128;

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
    /// The cell text as pandas writes it: `0`, `0.0`, float32 shortest digits, NaN empty, `N/A`.
    pub fn to_tsv(&self) -> String {
        match *self {
            MetricValue::Int(value) => value.to_string(),
            MetricValue::F64(value) => tsv_f64(value),
            MetricValue::F32(value) => tsv_f32(value),
            MetricValue::NotAvailable => "N/A".to_owned(),
        }
    }

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

// ---------------------------------------------------------------------------------------------
// numpy reductions
// ---------------------------------------------------------------------------------------------

/// numpy's pairwise summation of `count` values `get(start)…get(start + count − 1)`.
// numpy: pairwise_sum_@TYPE@ (numpy/core/src/umath/loops_utils.h.src)
fn pairwise_sum<T, F>(start: usize, count: usize, get: &F) -> T
where
    T: Copy + Default + std::ops::Add<Output = T>,
    F: Fn(usize) -> T,
{
    if count < 8 {
        let mut sum = T::default();
        for index in start..start + count {
            sum = sum + get(index);
        }
        sum
    } else if count <= PAIRWISE_BLOCK_SIZE {
        let mut partial = [T::default(); 8];
        for (offset, slot) in partial.iter_mut().enumerate() {
            *slot = get(start + offset);
        }
        let complete = count - count % 8;
        let mut index = 8;
        while index < complete {
            for (offset, slot) in partial.iter_mut().enumerate() {
                *slot = *slot + get(start + index + offset);
            }
            index += 8;
        }
        let mut sum = ((partial[0] + partial[1]) + (partial[2] + partial[3]))
            + ((partial[4] + partial[5]) + (partial[6] + partial[7]));
        while index < count {
            sum = sum + get(start + index);
            index += 1;
        }
        sum
    } else {
        let mut half = count / 2;
        half -= half % 8;
        pairwise_sum(start, half, get) + pairwise_sum(start + half, count - half, get)
    }
}

/// numpy 1.26's `add.reduce` of a 1-D array: pairwise sums of consecutive 8192-element chunks,
/// added in order into an accumulator starting at 0 (`formats.md` §2.4).
// numpy: PyUFunc_Reduce with the buffered iterator (NPY_BUFSIZE = 8192), numpy 1.26.
fn numpy_sum<T, F>(count: usize, get: &F) -> T
where
    T: Copy + Default + std::ops::Add<Output = T>,
    F: Fn(usize) -> T,
{
    let mut total = T::default();
    let mut start = 0;
    while start < count {
        let chunk = NUMPY_BUFFER_SIZE.min(count - start);
        total = total + pairwise_sum(start, chunk, get);
        start += chunk;
    }
    total
}

/// `np.sum` of a float32 array with numpy 1.26's chunked pairwise summation (float32 adds).
// numpy: np.add.reduce on float32 (numpy 1.26)
pub fn numpy_pairwise_sum_f32(values: &[f32]) -> f32 {
    numpy_sum(values.len(), &|index| values[index])
}

/// `np.sum` of a float64 array with numpy 1.26's chunked pairwise summation.
// numpy: np.add.reduce on float64 (numpy 1.26)
pub fn numpy_pairwise_sum_f64(values: &[f64]) -> f64 {
    numpy_sum(values.len(), &|index| values[index])
}

/// `np.mean` of a float32 array: the float32 pairwise sum divided by the count in float32
/// (NaN for an empty array, NaN values propagate).
// numpy: numpy.core._methods._mean
pub fn numpy_mean_f32(values: &[f32]) -> f32 {
    // numpy divides by the count converted to the array's float type.
    numpy_pairwise_sum_f32(values) / values.len() as f32
}

/// `np.mean` of a float64 array (NaN for an empty array, NaN values propagate).
// numpy: numpy.core._methods._mean
pub fn numpy_mean_f64(values: &[f64]) -> f64 {
    numpy_pairwise_sum_f64(values) / values.len() as f64
}

/// pandas `Series.mean()` of a float32 column: NaN values skipped (the sum runs with them
/// replaced by 0), float32 sum divided by the count of non-NaN values (NaN if none).
// pandas: pandas.core.nanops.nanmean (bottleneck is not used for means)
pub fn column_mean_f32(values: &[f32]) -> f32 {
    let sum = numpy_sum(values.len(), &|index| {
        let value = values[index];
        if value.is_nan() { 0.0 } else { value }
    });
    let count = values.iter().filter(|value| !value.is_nan()).count();
    sum / count as f32
}

/// pandas `Series.mean()` of a float64 column: NaN values skipped, NaN if none is left.
// pandas: pandas.core.nanops.nanmean (bottleneck is not used for means)
pub fn column_mean_f64(values: &[f64]) -> f64 {
    let sum = numpy_sum(values.len(), &|index| {
        let value = values[index];
        if value.is_nan() { 0.0 } else { value }
    });
    let count = values.iter().filter(|value| !value.is_nan()).count();
    sum / count as f64
}

/// `np.percentile(values, q)` with the default linear interpolation (NaN if a value is NaN or
/// the slice is empty).
// numpy: numpy.lib.function_base._quantile with method="linear" and _lerp
pub fn numpy_percentile(values: &[f64], q: f64) -> f64 {
    if values.is_empty() || values.iter().any(|value| value.is_nan()) {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let last = sorted.len() - 1;
    let virtual_index = (q / 100.0) * last as f64;
    let below = virtual_index.floor().clamp(0.0, last as f64);
    let gamma = virtual_index - below;
    // `below` is a whole number within 0..=last, so the conversion is exact.
    let below_index = below as usize;
    let above_index = (below_index + 1).min(last);
    let (a, b) = (sorted[below_index], sorted[above_index]);
    let difference = b - a;
    // numpy's _lerp: interpolate from the nearer end so that gamma = 1 gives b exactly.
    if gamma >= 0.5 {
        b - difference * (1.0 - gamma)
    } else {
        a + difference * gamma
    }
}

/// `np.std(values, ddof=ddof)`: square root of the pairwise sum of squared deviations from the
/// pairwise mean, divided by `n − ddof` (NaN when `n ≤ ddof`).
// numpy: numpy.core._methods._var / _std
pub fn numpy_std(values: &[f64], ddof: usize) -> f64 {
    let mean = numpy_mean_f64(values);
    let squares = numpy_sum(values.len(), &|index| {
        let deviation = values[index] - mean;
        deviation * deviation
    });
    let divisor = values.len().saturating_sub(ddof);
    if divisor == 0 {
        return f64::NAN;
    }
    (squares / divisor as f64).sqrt()
}

// ---------------------------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------------------------

/// Confusion counts of one class against the rest.
#[derive(Debug, Clone, Copy, Default)]
struct Confusion {
    true_positive: i64,
    false_negative: i64,
    false_positive: i64,
    true_negative: i64,
}

/// Counts over a set of rows: correct predictions, rows, and one confusion per class studied.
struct Tally {
    correct: i64,
    total: i64,
    per_class: Vec<Confusion>,
}

/// The class numbers studied: 0..C when C > 2, else only class 0 (`predict.md` §8.1).
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.apply (class_number loop)
fn studied_classes(n_classes: usize) -> Vec<i64> {
    if n_classes > 2 {
        (0..n_classes)
            .filter_map(|class| i64::try_from(class).ok())
            .collect()
    } else {
        vec![0]
    }
}

/// Counts the (true, predicted) pairs against every studied class.
fn tally(pairs: impl Iterator<Item = (i64, i64)>, classes: &[i64]) -> Tally {
    let mut counts = Tally {
        correct: 0,
        total: 0,
        per_class: vec![Confusion::default(); classes.len()],
    };
    for (truth, predicted) in pairs {
        counts.total += 1;
        counts.correct += i64::from(truth == predicted);
        for (confusion, &class) in counts.per_class.iter_mut().zip(classes) {
            match (predicted == class, truth == class) {
                (true, true) => confusion.true_positive += 1,
                (false, true) => confusion.false_negative += 1,
                (true, false) => confusion.false_positive += 1,
                (false, false) => confusion.true_negative += 1,
            }
        }
    }
    counts
}

/// `numerator / denominator` of two counts, or the float `0.0` when the denominator is 0.
fn count_ratio(numerator: i64, denominator: i64) -> f64 {
    if denominator != 0 {
        // Row counts are far below 2^53: exact conversions, then one double division (numpy).
        numerator as f64 / denominator as f64
    } else {
        0.0
    }
}

/// The one-vs-rest metric `name` of one class from its confusion counts.
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.<metric>_fn
fn class_metric(name: &str, confusion: &Confusion) -> MetricValue {
    let Confusion {
        true_positive,
        false_negative,
        false_positive,
        true_negative,
    } = *confusion;
    let sensitivity = count_ratio(true_positive, true_positive + false_negative);
    let specificity = count_ratio(true_negative, false_positive + true_negative);
    let ppv = count_ratio(true_positive, true_positive + false_positive);
    let npv = count_ratio(true_negative, true_negative + false_negative);
    match name {
        "BA" => MetricValue::F64((sensitivity + specificity) / 2.0),
        "sensitivity" => MetricValue::F64(sensitivity),
        "specificity" => MetricValue::F64(specificity),
        "PPV" => MetricValue::F64(ppv),
        "NPV" => MetricValue::F64(npv),
        "F1_score" => {
            if ppv + sensitivity != 0.0 {
                MetricValue::F64(2.0 * (ppv * sensitivity) / (ppv + sensitivity))
            } else {
                MetricValue::Int(0)
            }
        }
        "MCC" => {
            // numpy multiplies the int64 counts and takes the square root of the product as a
            // double; i128 avoids the int64 overflow numpy would hit beyond ~55,000 rows.
            let product = i128::from(true_positive + false_positive)
                * i128::from(true_positive + false_negative)
                * i128::from(true_negative + false_positive)
                * i128::from(true_negative + false_negative);
            let denominator = (product as f64).sqrt();
            if denominator != 0.0 {
                let numerator = i128::from(true_positive) * i128::from(true_negative)
                    - i128::from(false_positive) * i128::from(false_negative);
                MetricValue::F64(numerator as f64 / denominator)
            } else {
                MetricValue::Int(0)
            }
        }
        "MK" => MetricValue::F64(ppv + npv - 1.0),
        "LR_plus" => {
            if 1.0 - specificity != 0.0 {
                MetricValue::F64(sensitivity / (1.0 - specificity))
            } else {
                MetricValue::Int(0)
            }
        }
        "LR_minus" => {
            if specificity != 0.0 {
                MetricValue::F64((1.0 - sensitivity) / specificity)
            } else {
                MetricValue::Int(0)
            }
        }
        // Only names of CLASSIFICATION_METRICS reach this function.
        _ => MetricValue::NotAvailable,
    }
}

/// All classification values of a tally, in output order (metric-major, `accuracy` once).
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.apply
fn classification_values(counts: &Tally) -> Vec<MetricValue> {
    let mut values = Vec::with_capacity(CLASSIFICATION_METRICS.len() * counts.per_class.len());
    for name in CLASSIFICATION_METRICS {
        if name == "accuracy" {
            // np.sum(y_pred == y) / len(y): NaN for no rows.
            values.push(MetricValue::F64(
                counts.correct as f64 / counts.total as f64,
            ));
        } else {
            values.extend(
                counts
                    .per_class
                    .iter()
                    .map(|confusion| class_metric(name, confusion)),
            );
        }
    }
    values
}

/// Column names of the classification metrics for `n_classes` outputs (`BA` or `BA-0, BA-1, …`).
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.apply
pub fn classification_metric_names(n_classes: usize) -> Vec<String> {
    let classes = studied_classes(n_classes);
    let mut names = Vec::new();
    for name in CLASSIFICATION_METRICS {
        if name == "accuracy" || classes.len() == 1 {
            names.push(name.to_owned());
        } else {
            names.extend(classes.iter().map(|class| format!("{name}-{class}")));
        }
    }
    names
}

/// Classification metrics of §8.1–8.2 over all rows, named and ordered as ClinicaDL writes them.
/// Pairs beyond the shorter slice are ignored.
// ClinicaDL: clinicadl.utils.task_manager.classification.ClassificationManager.compute_metrics
pub fn classification_metrics(
    y_true: &[i64],
    y_pred: &[i64],
    n_classes: usize,
) -> Vec<(String, MetricValue)> {
    let classes = studied_classes(n_classes);
    let counts = tally(y_true.iter().copied().zip(y_pred.iter().copied()), &classes);
    classification_metric_names(n_classes)
        .into_iter()
        .zip(classification_values(&counts))
        .collect()
}

/// Paired bootstrap confidence intervals of the classification metrics, in the order of
/// [`classification_metrics`].
// ClinicaDL: clinicadl.utils.metric_module.MetricModule.apply (scipy.stats.bootstrap, paired)
pub fn classification_ci(
    y_true: &[i64],
    y_pred: &[i64],
    n_classes: usize,
) -> Vec<ConfidenceInterval> {
    let classes = studied_classes(n_classes);
    let rows = y_true.len().min(y_pred.len());
    let columns = classification_metric_names(n_classes).len();
    let resampled = bootstrap(rows, columns, |indices| {
        let counts = tally(
            indices.iter().map(|&row| (y_true[row], y_pred[row])),
            &classes,
        );
        classification_values(&counts)
            .iter()
            .map(MetricValue::as_f64)
            .collect()
    });
    resampled
        .iter()
        .map(|values| percentile_interval(values, rows))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Regression
// ---------------------------------------------------------------------------------------------

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

/// Regression metrics `R2_score, MAE, RMSE` (§8.2) over all rows; pairs beyond the shorter
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
    let resampled = bootstrap(rows, REGRESSION_METRICS.len(), |indices| {
        true_sample.clear();
        predicted_sample.clear();
        true_sample.extend(indices.iter().map(|&row| y_true[row]));
        predicted_sample.extend(indices.iter().map(|&row| y_pred[row]));
        regression_values(&true_sample, &predicted_sample)
            .iter()
            .map(MetricValue::as_f64)
            .collect()
    });
    resampled
        .iter()
        .map(|values| percentile_interval(values, rows))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reconstruction
// ---------------------------------------------------------------------------------------------

/// MAE and RMSE (float32, numpy reductions) and PSNR (double) between an input `x` and its
/// reconstruction `y`, both flattened in C order (`predict.md` §8.3).
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
    let rows = values.len();
    let mut sample = Vec::with_capacity(rows);
    let resampled = bootstrap(rows, 1, |indices| {
        sample.clear();
        sample.extend(indices.iter().map(|&row| values[row]));
        vec![f64::from(column_mean_f32(&sample))]
    });
    let Some(means) = resampled.first() else {
        return ConfidenceInterval::undefined();
    };
    let interval = percentile_interval(means, rows);
    ConfidenceInterval {
        // The SE is computed in double and stored as the float32 scipy would return.
        se: MetricValue::F32(interval.se.as_f64() as f32),
        ..interval
    }
}

/// Non-paired bootstrap of the mean of a float64 column (bounds and SE are doubles).
// ClinicaDL: clinicadl.utils.task_manager.reconstruction.ReconstructionManager.compute_metrics
pub fn mean_ci_f64(values: &[f64]) -> ConfidenceInterval {
    let rows = values.len();
    let mut sample = Vec::with_capacity(rows);
    let resampled = bootstrap(rows, 1, |indices| {
        sample.clear();
        sample.extend(indices.iter().map(|&row| values[row]));
        vec![column_mean_f64(&sample)]
    });
    match resampled.first() {
        Some(means) => percentile_interval(means, rows),
        None => ConfidenceInterval::undefined(),
    }
}

// ---------------------------------------------------------------------------------------------
// Bootstrap
// ---------------------------------------------------------------------------------------------

/// Draws [`BOOTSTRAP_RESAMPLES`] index vectors of `rows` indices (uniform, with replacement,
/// seeded with [`BOOTSTRAP_SEED`]) and evaluates `statistic` on each. Returns, for each of the
/// `columns` statistics, its resampled values (none when `rows` is 0).
// scipy: scipy.stats.bootstrap(method="percentile", n_resamples=3000), as called by ClinicaDL
fn bootstrap<F>(rows: usize, columns: usize, mut statistic: F) -> Vec<Vec<f64>>
where
    F: FnMut(&[usize]) -> Vec<f64>,
{
    let mut resampled = vec![Vec::with_capacity(BOOTSTRAP_RESAMPLES); columns];
    if rows == 0 {
        return resampled;
    }
    let mut generator = Xoshiro256PlusPlus::seed_from_u64(BOOTSTRAP_SEED);
    let mut indices = vec![0; rows];
    for _ in 0..BOOTSTRAP_RESAMPLES {
        for index in indices.iter_mut() {
            *index = generator.random_range(0..rows);
        }
        for (column, value) in resampled.iter_mut().zip(statistic(&indices)) {
            column.push(value);
        }
    }
    resampled
}

/// The 95% percentile interval and standard error (ddof = 1) of resampled values; all NaN when
/// there were no rows to resample.
// scipy: scipy.stats.bootstrap confidence_interval and standard_error
fn percentile_interval(values: &[f64], rows: usize) -> ConfidenceInterval {
    if rows == 0 || values.is_empty() {
        return ConfidenceInterval::undefined();
    }
    ConfidenceInterval {
        lower: MetricValue::F64(numpy_percentile(values, 2.5)),
        upper: MetricValue::F64(numpy_percentile(values, 97.5)),
        se: MetricValue::F64(numpy_std(values, 1)),
    }
}

// ---------------------------------------------------------------------------------------------
// Metrics TSV layout
// ---------------------------------------------------------------------------------------------

/// Picks one cell (lower bound, upper bound or SE) of an interval.
type CellOf = fn(&ConfidenceInterval) -> MetricValue;

/// Writes one TAB-separated line ending with `\n`.
fn write_line<W: Write>(w: &mut W, cells: &[String]) -> io::Result<()> {
    let mut line = cells.join("\t");
    line.push('\n');
    w.write_all(line.as_bytes())
}

/// Writes a metrics TSV. With `ci`, the transposed header-less table of §8.4 (rows `Metrics`,
/// `Values`, `Lower bound CI`, `Upper bound CI`, `SE`; loss columns last, `N/A` in their CI
/// cells); without, the two-line table of §9.1 step 6 (metric names, then values). Losses are
/// the float32 sums widened to double; they follow the metrics in both layouts (soft voting
/// passes none). Fails with `InvalidInput` when `ci` does not have one interval per metric.
// ClinicaDL: clinicadl.utils.maps_manager.maps_manager.MapsManager._mode_level_to_tsv
// (with CI) and MapsManager._ensemble_to_tsv (soft voting, without CI and without loss).
pub fn write_metrics_table<W: Write>(
    mut w: W,
    metrics: &[(String, MetricValue)],
    ci: Option<&[ConfidenceInterval]>,
    losses: &[(String, f64)],
) -> io::Result<()> {
    let names = metrics
        .iter()
        .map(|(name, _)| name.clone())
        .chain(losses.iter().map(|(name, _)| name.clone()));
    let values = metrics
        .iter()
        .map(|(_, value)| value.to_tsv())
        .chain(losses.iter().map(|(_, loss)| tsv_f64(*loss)));
    let Some(ci) = ci else {
        write_line(&mut w, &names.collect::<Vec<_>>())?;
        return write_line(&mut w, &values.collect::<Vec<_>>());
    };
    if ci.len() != metrics.len() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{} confidence intervals for {} metrics",
                ci.len(),
                metrics.len()
            ),
        ));
    }
    let labelled = |label: &str, cells: Vec<String>| {
        std::iter::once(label.to_owned())
            .chain(cells)
            .collect::<Vec<_>>()
    };
    write_line(&mut w, &labelled("Metrics", names.collect()))?;
    write_line(&mut w, &labelled("Values", values.collect()))?;
    let rows: [(&str, CellOf); 3] = [
        ("Lower bound CI", |interval| interval.lower),
        ("Upper bound CI", |interval| interval.upper),
        ("SE", |interval| interval.se),
    ];
    for (label, cell) in rows {
        let cells = ci
            .iter()
            .map(|interval| cell(interval).to_tsv())
            .chain(losses.iter().map(|_| MetricValue::NotAvailable.to_tsv()))
            .collect();
        write_line(&mut w, &labelled(label, cells))?;
    }
    Ok(())
}

/// Writes the sixth row that follows each network's block in a multi-network metrics file:
/// the network index in every one of the `n_columns` cells (label column included).
// ClinicaDL: clinicadl.utils.maps_manager.maps_manager.MapsManager._mode_level_to_tsv
// (the network index column of the appended frame, verified in §8.4)
pub fn write_network_separator_row<W: Write>(
    mut w: W,
    network: usize,
    n_columns: usize,
) -> io::Result<()> {
    write_line(&mut w, &vec![network.to_string(); n_columns])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::pyrepr::{repr_f32, repr_f64};
    use std::path::{Path, PathBuf};

    // Fixture generator shared with Python (numpy 1.26.4, the version of the reference venv).
    // The expected values below were printed by this script (`str()` of float32 scalars,
    // `repr(float(..))` of doubles):
    //
    //   import numpy as np
    //   def draws(seed, n):
    //       s = seed; out = []
    //       for _ in range(n):
    //           s = (s * 6364136223846793005 + 1442695040888963407) % 2**64
    //           out.append(s >> 40)
    //       return np.array(out, dtype=np.float32)
    //   def unit(seed, n): return draws(seed, n) / np.float32(16777216)
    //   def signed(seed, n): return draws(seed, n) / np.float32(8388608) - np.float32(1)
    //   # sums:   a = unit(seed, n) * np.float32(3); str(np.sum(a)), str(np.mean(a))
    //   # f64:    a = unit(n + 1000, n).astype(np.float64) * 0.1; repr(float(np.sum(a)))
    //   # recon:  v = (signed or unit)(seed, 2 * n); x, y = v[:n], v[n:]
    //   #         mae = np.mean(np.abs(x - y)); rmse = np.sqrt(np.mean(np.square(x - y)))
    //   #         psnr = 10 * np.log10(R ** 2 / np.mean((x - y) ** 2, dtype=np.float64))

    /// 24-bit draws of the 64-bit LCG above, as float32.
    fn draws(seed: u64, count: usize) -> Vec<f32> {
        let mut state = seed;
        (0..count)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (state >> 40) as f32
            })
            .collect()
    }

    /// Uniform float32 values in [0, 1).
    fn unit(seed: u64, count: usize) -> Vec<f32> {
        draws(seed, count)
            .into_iter()
            .map(|value| value / 16_777_216.0)
            .collect()
    }

    /// Uniform float32 values in [−1, 1).
    fn signed(seed: u64, count: usize) -> Vec<f32> {
        draws(seed, count)
            .into_iter()
            .map(|value| value / 8_388_608.0 - 1.0)
            .collect()
    }

    fn cells(metrics: &[(String, MetricValue)]) -> Vec<String> {
        metrics.iter().map(|(_, value)| value.to_tsv()).collect()
    }

    fn names(metrics: &[(String, MetricValue)]) -> Vec<&str> {
        metrics.iter().map(|(name, _)| name.as_str()).collect()
    }

    fn table(
        metrics: &[(String, MetricValue)],
        ci: Option<&[ConfidenceInterval]>,
        losses: &[(String, f64)],
    ) -> String {
        let mut buffer = Vec::new();
        write_metrics_table(&mut buffer, metrics, ci, losses).expect("writing to a Vec");
        String::from_utf8(buffer).expect("utf-8 table")
    }

    #[test]
    fn numpy_float32_sums_match_numpy_1_26() {
        let cases: &[(u64, usize, &str, &str)] = &[
            (0, 0, "0.0", "nan"),
            (1, 1, "1.2696273", "1.2696273"),
            (7, 7, "10.30764", "1.47252"),
            (8, 8, "12.213209", "1.5266511"),
            (9, 9, "12.238161", "1.3597957"),
            (127, 127, "199.01318", "1.5670329"),
            (128, 128, "173.78554", "1.3576995"),
            (129, 129, "182.26907", "1.4129386"),
            (1000, 1000, "1490.7983", "1.4907984"),
            (8191, 8191, "12328.932", "1.5051802"),
            (8192, 8192, "12422.545", "1.516424"),
            (8193, 8193, "12193.071", "1.4882303"),
            (10000, 10000, "15000.359", "1.5000359"),
            (16384, 16384, "24455.398", "1.4926391"),
            (20000, 20000, "30086.328", "1.5043164"),
            (50000, 50000, "75302.79", "1.5060558"),
            (100_003, 100_003, "149867.23", "1.4986274"),
            // Cases where the 8192-element chunks matter: plain pairwise summation (numpy 2.4)
            // gives 14977.531, 30129.074, 74898.61 and 150311.28.
            (10005, 10000, "14977.53", "1.497753"),
            (20014, 20000, "30129.072", "1.5064536"),
            (50010, 50000, "74898.6", "1.497972"),
            (100_004, 100_003, "150311.3", "1.5030679"),
        ];
        for &(seed, count, sum, mean) in cases {
            let values: Vec<f32> = unit(seed, count).into_iter().map(|v| v * 3.0).collect();
            assert_eq!(
                repr_f32(numpy_pairwise_sum_f32(&values)),
                sum,
                "sum of {count}"
            );
            assert_eq!(repr_f32(numpy_mean_f32(&values)), mean, "mean of {count}");
            assert_eq!(
                repr_f32(column_mean_f32(&values)),
                mean,
                "pandas mean of {count}"
            );
        }
    }

    #[test]
    fn numpy_float64_sums_match_numpy_1_26() {
        let cases: &[(usize, &str)] = &[
            (0, "0.0"),
            (5, "0.3730554044246674"),
            (100, "5.354769337177276"),
            (129, "6.720523387193681"),
            // numpy 2.4 (no chunking) gives 405.8751096010208.
            (8193, "405.8751096010209"),
            (20000, "1006.0661941289902"),
            (50000, "2497.2239357173444"),
        ];
        for &(count, sum) in cases {
            let values: Vec<f64> = unit(count as u64 + 1000, count)
                .into_iter()
                .map(|v| f64::from(v) * 0.1)
                .collect();
            assert_eq!(
                repr_f64(numpy_pairwise_sum_f64(&values)),
                sum,
                "sum of {count}"
            );
        }
        assert!(numpy_mean_f64(&[]).is_nan());
    }

    #[test]
    fn pairwise_sum_differs_from_a_plain_loop() {
        // The eight accumulators change the rounding: 1 + 8 × 2^-24 is 1 + 2^-21 with partial
        // sums, but stays 1 when added one by one left to right.
        let mut values = vec![1.0_f32];
        values.extend(std::iter::repeat_n(2.0_f32.powi(-24), 8));
        let sequential = values.iter().fold(0.0_f32, |sum, &value| sum + value);
        assert_eq!(sequential, 1.0);
        assert_eq!(numpy_pairwise_sum_f32(&values), 1.0 + 2.0_f32.powi(-21));
    }

    #[test]
    fn column_means_skip_nan_like_pandas() {
        assert_eq!(column_mean_f32(&[1.0, f32::NAN, 2.0]), 1.5);
        assert_eq!(column_mean_f64(&[f64::NAN, 4.0, 2.0]), 3.0);
        assert!(column_mean_f64(&[f64::NAN]).is_nan());
        assert!(numpy_mean_f32(&[1.0, f32::NAN]).is_nan());
    }

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
            assert_eq!(repr_f32(got_mae), mae, "MAE of seed {seed}");
            assert_eq!(repr_f32(got_rmse), rmse, "RMSE of seed {seed}");
            assert_eq!(repr_f64(got_psnr), psnr, "PSNR of seed {seed}");
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
        assert_eq!(repr_f64(psnr), "6.020599913279624");
        let (_, _, psnr) = reconstruction_mae_rmse_psnr(&[-0.5, 0.5], &[0.0, 0.0]).expect("ok");
        assert_eq!(repr_f64(psnr), "12.041199826559248");

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

    #[test]
    fn percentile_and_std_match_numpy() {
        let values: Vec<f64> = unit(99, 3000).into_iter().map(f64::from).collect();
        assert_eq!(
            repr_f64(numpy_percentile(&values, 2.5)),
            "0.033093415200710304"
        );
        assert_eq!(
            repr_f64(numpy_percentile(&values, 97.5)),
            "0.9755618020892144"
        );
        assert_eq!(repr_f64(numpy_std(&values, 1)), "0.2887713278461503");

        let small = [4.0, 2.0, 1.0, 3.0];
        assert_eq!(repr_f64(numpy_percentile(&small, 2.5)), "1.075");
        assert_eq!(repr_f64(numpy_percentile(&small, 97.5)), "3.925");
        assert_eq!(repr_f64(numpy_std(&small, 1)), "1.2909944487358056");

        let mixed = [0.3, -1.7, 2.9, 0.1, 5.5, 0.2, 0.2];
        assert_eq!(repr_f64(numpy_percentile(&mixed, 2.5)), "-1.43");
        assert_eq!(
            repr_f64(numpy_percentile(&mixed, 97.5)),
            "5.109999999999999"
        );
        assert_eq!(repr_f64(numpy_percentile(&mixed, 50.0)), "0.2");
        assert_eq!(repr_f64(numpy_std(&mixed, 1)), "2.369749836103863");
        assert_eq!(repr_f64(numpy_std(&mixed, 0)), "2.1939620296976656");

        assert_eq!(numpy_percentile(&[7.0], 2.5), 7.0);
        assert_eq!(numpy_percentile(&small, 0.0), 1.0);
        assert_eq!(numpy_percentile(&small, 100.0), 4.0);
        assert!(numpy_percentile(&[], 50.0).is_nan());
        assert!(numpy_percentile(&[1.0, f64::NAN], 50.0).is_nan());
        assert!(numpy_std(&[1.0], 1).is_nan());
    }

    #[test]
    fn metric_values_keep_python_types() {
        assert_eq!(MetricValue::Int(0).to_tsv(), "0");
        assert_eq!(MetricValue::F64(0.0).to_tsv(), "0.0");
        assert_eq!(MetricValue::F64(f64::NAN).to_tsv(), "");
        assert_eq!(MetricValue::F32(0.182_729_51).to_tsv(), "0.18272951");
        assert_eq!(MetricValue::NotAvailable.to_tsv(), "N/A");
        assert_eq!(MetricValue::Int(0).as_f64(), 0.0);
        assert!(MetricValue::NotAvailable.as_f64().is_nan());
    }

    #[test]
    fn verified_binary_example_of_section_8_4() {
        // Never predicting class 0 on 3 rows of class 0 and 1 of class 1.
        let metrics = classification_metrics(&[0, 0, 0, 1], &[1, 1, 1, 1], 2);
        assert_eq!(names(&metrics), CLASSIFICATION_METRICS.to_vec());
        assert_eq!(
            cells(&metrics).join(" "),
            "0.5 0.25 0 0.0 1.0 0.0 0.25 0 -0.75 0 1.0"
        );
        let ci = classification_ci(&[0, 0, 0, 1], &[1, 1, 1, 1], 2);
        let text = table(
            &metrics,
            Some(&ci),
            &[("loss".to_owned(), 1.4291268587112427)],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 5);
        assert!(text.ends_with('\n'));
        assert_eq!(
            lines[0],
            "Metrics\tBA\taccuracy\tF1_score\tsensitivity\tspecificity\tPPV\tNPV\tMCC\tMK\t\
             LR_plus\tLR_minus\tloss"
        );
        assert_eq!(
            lines[1],
            "Values\t0.5\t0.25\t0\t0.0\t1.0\t0.0\t0.25\t0\t-0.75\t0\t1.0\t1.4291268587112427"
        );
        for (line, label) in lines[2..]
            .iter()
            .zip(["Lower bound CI", "Upper bound CI", "SE"])
        {
            let fields: Vec<&str> = line.split('\t').collect();
            assert_eq!(fields.len(), 13);
            assert_eq!(fields[0], label);
            assert_eq!(fields[12], "N/A");
        }
        // Constant metrics over every resample: sensitivity, PPV, specificity, LR_plus (int 0
        // in Values, but the CI cells are doubles).
        let lower: Vec<&str> = lines[2].split('\t').collect();
        let upper: Vec<&str> = lines[3].split('\t').collect();
        let se: Vec<&str> = lines[4].split('\t').collect();
        for column in [4, 6, 10] {
            assert_eq!(
                (lower[column], upper[column], se[column]),
                ("0.0", "0.0", "0.0")
            );
        }
        // Accuracy of a resample is k/4: bounds on that grid, within [0, 1].
        assert!(
            ["0.0", "0.25"].contains(&lower[2]),
            "lower accuracy {}",
            lower[2]
        );
        assert!(
            ["0.5", "0.75", "1.0"].contains(&upper[2]),
            "upper accuracy {}",
            upper[2]
        );
        // Deterministic: a second run gives the same rows.
        assert_eq!(ci, classification_ci(&[0, 0, 0, 1], &[1, 1, 1, 1], 2));
    }

    #[test]
    fn soft_voting_table_has_two_lines() {
        let metrics = classification_metrics(&[0, 0, 0, 1], &[1, 1, 1, 1], 2);
        assert_eq!(
            table(&metrics, None, &[]),
            "BA\taccuracy\tF1_score\tsensitivity\tspecificity\tPPV\tNPV\tMCC\tMK\tLR_plus\t\
             LR_minus\n0.5\t0.25\t0\t0.0\t1.0\t0.0\t0.25\t0\t-0.75\t0\t1.0\n"
        );
    }

    #[test]
    fn classification_edge_cases_keep_int_and_float_types() {
        // All predictions right and all of class 0: specificity has no negatives (0.0 float),
        // MCC's denominator is 0 (int 0), 1 − specificity = 1 so LR_plus is a float.
        let metrics = classification_metrics(&[0, 0, 0], &[0, 0, 0], 2);
        assert_eq!(
            cells(&metrics).join(" "),
            "0.5 1.0 1.0 1.0 0.0 1.0 0.0 0 0.0 1.0 0"
        );

        // All predictions the same class, wrong: PPV and sensitivity 0 → F1 int 0.
        let metrics = classification_metrics(&[1, 1], &[0, 0], 2);
        assert_eq!(
            cells(&metrics).join(" "),
            "0.0 0.0 0 0.0 0.0 0.0 0.0 0 -1.0 0.0 0"
        );

        // A single row.
        let metrics = classification_metrics(&[1], &[1], 2);
        assert_eq!(
            cells(&metrics).join(" "),
            "0.5 1.0 0 0.0 1.0 0.0 1.0 0 0.0 0 1.0"
        );

        // Empty: accuracy 0/0 is NaN (written empty); the ratio metrics fall back to 0.0.
        let metrics = classification_metrics(&[], &[], 2);
        assert_eq!(
            cells(&metrics).join(" "),
            "0.0  0 0.0 0.0 0.0 0.0 0 -1.0 0.0 0"
        );
    }

    #[test]
    fn three_classes_are_metric_major() {
        let metrics = classification_metrics(&[0, 1, 2, 2], &[0, 2, 2, 1], 3);
        let expected_names: Vec<String> = ["BA-0", "BA-1", "BA-2", "accuracy"]
            .iter()
            .map(|name| (*name).to_owned())
            .chain(
                CLASSIFICATION_METRICS[2..]
                    .iter()
                    .flat_map(|metric| (0..3).map(move |class| format!("{metric}-{class}"))),
            )
            .collect();
        assert_eq!(names(&metrics), expected_names);
        assert_eq!(metrics.len(), 31);
        let value = |name: &str| {
            metrics
                .iter()
                .find(|(metric, _)| metric == name)
                .map(|(_, value)| value.to_tsv())
                .unwrap_or_default()
        };
        assert_eq!(value("accuracy"), "0.5");
        // Class 0: TP 1, FN 0, FP 0, TN 3.
        assert_eq!(value("BA-0"), "1.0");
        assert_eq!(value("MCC-0"), "1.0");
        assert_eq!(value("LR_plus-0"), "0");
        assert_eq!(value("LR_minus-0"), "0.0");
        // Class 1: TP 0, FN 1, FP 1, TN 2.
        assert_eq!(value("F1_score-1"), "0");
        assert_eq!(value("MCC-1"), "-0.3333333333333333");
        assert_eq!(value("MK-1"), "-0.33333333333333337");
        assert_eq!(value("LR_plus-1"), "0.0");
        assert_eq!(value("LR_minus-1"), "1.5");
        // Class 2: TP 1, FN 1, FP 1, TN 1.
        assert_eq!(value("F1_score-2"), "0.5");
        assert_eq!(value("MCC-2"), "0.0");
        assert_eq!(value("LR_plus-2"), "1.0");
        assert_eq!(classification_ci(&[0, 1, 2, 2], &[0, 2, 2, 1], 3).len(), 31);
        // Two outputs behave as binary: no suffix.
        assert_eq!(
            classification_metric_names(2),
            CLASSIFICATION_METRICS.to_vec()
        );
        assert_eq!(
            classification_metric_names(1),
            CLASSIFICATION_METRICS.to_vec()
        );
    }

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
        // NaN labels propagate (NaN != 0, so R2 is computed, as NaN); written empty.
        let metrics = regression_metrics(&[1.0, f64::NAN], &[1.0, 2.0]);
        assert_eq!(cells(&metrics).join("|"), "||");
        let ci = regression_ci(&[1.0, 2.0, 4.0], &[1.5, 2.0, 3.0]);
        assert_eq!(ci.len(), 3);
        assert_eq!(ci, regression_ci(&[1.0, 2.0, 4.0], &[1.5, 2.0, 3.0]));
    }

    #[test]
    fn single_row_bootstrap_is_degenerate() {
        let metrics = classification_metrics(&[1], &[1], 2);
        let ci = classification_ci(&[1], &[1], 2);
        for ((_, value), interval) in metrics.iter().zip(&ci) {
            assert_eq!(interval.lower, MetricValue::F64(value.as_f64()));
            assert_eq!(interval.upper, MetricValue::F64(value.as_f64()));
            assert_eq!(interval.se, MetricValue::F64(0.0));
        }
        let text = table(&metrics, Some(&ci), &[("loss".to_owned(), 0.5)]);
        assert_eq!(
            text,
            "Metrics\tBA\taccuracy\tF1_score\tsensitivity\tspecificity\tPPV\tNPV\tMCC\tMK\t\
             LR_plus\tLR_minus\tloss\n\
             Values\t0.5\t1.0\t0\t0.0\t1.0\t0.0\t1.0\t0\t0.0\t0\t1.0\t0.5\n\
             Lower bound CI\t0.5\t1.0\t0.0\t0.0\t1.0\t0.0\t1.0\t0.0\t0.0\t0.0\t1.0\tN/A\n\
             Upper bound CI\t0.5\t1.0\t0.0\t0.0\t1.0\t0.0\t1.0\t0.0\t0.0\t0.0\t1.0\tN/A\n\
             SE\t0.0\t0.0\t0.0\t0.0\t0.0\t0.0\t0.0\t0.0\t0.0\t0.0\t0.0\tN/A\n"
        );
        let interval = mean_ci_f32(&[0.25]);
        assert_eq!(interval.lower, MetricValue::F64(0.25));
        assert_eq!(interval.se, MetricValue::F32(0.0));
    }

    #[test]
    fn empty_columns_give_nan_intervals() {
        for interval in classification_ci(&[], &[], 2)
            .into_iter()
            .chain(regression_ci(&[], &[]))
            .chain([mean_ci_f32(&[]), mean_ci_f64(&[])])
        {
            assert_eq!(interval.lower.to_tsv(), "");
            assert_eq!(interval.se.to_tsv(), "");
        }
    }

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

    #[test]
    fn table_rejects_mismatched_intervals() {
        let metrics = regression_metrics(&[1.0, 2.0], &[1.0, 2.0]);
        let mut buffer = Vec::new();
        let error = write_metrics_table(&mut buffer, &metrics, Some(&[]), &[])
            .expect_err("no interval for 3 metrics");
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn table_writes_several_loss_components() {
        let metrics = regression_metrics(&[1.0, 2.0], &[1.0, 3.0]);
        let ci = regression_ci(&[1.0, 2.0], &[1.0, 3.0]);
        let losses = [
            ("loss".to_owned(), 3.5),
            ("recon_loss".to_owned(), f64::from(72.3_f32)),
            ("kl_loss".to_owned(), 1e-5),
        ];
        let text = table(&metrics, Some(&ci), &losses);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "Metrics\tR2_score\tMAE\tRMSE\tloss\trecon_loss\tkl_loss"
        );
        assert_eq!(
            lines[1],
            "Values\t-1.0\t0.5\t0.7071067811865476\t3.5\t72.30000305175781\t1e-05"
        );
        assert!(lines[4].starts_with("SE\t") && lines[4].ends_with("\tN/A\tN/A\tN/A"));
    }

    #[test]
    fn network_separator_row_repeats_the_index() {
        let mut buffer = Vec::new();
        write_network_separator_row(&mut buffer, 0, 13).expect("writing to a Vec");
        assert_eq!(
            String::from_utf8_lossy(&buffer),
            format!("0{}\n", "\t0".repeat(12))
        );
        let mut buffer = Vec::new();
        write_network_separator_row(&mut buffer, 26, 3).expect("writing to a Vec");
        assert_eq!(String::from_utf8_lossy(&buffer), "26\t26\t26\n");
    }

    // -----------------------------------------------------------------------------------------
    // Parity with the reference MAPS of ClinicaDL 1.6.1
    // -----------------------------------------------------------------------------------------

    /// These tests need the reference cases: their absence fails them.
    fn reference_root() -> PathBuf {
        crate::reference_cases::reference_dir()
            .expect("the metrics parity tests need the reference cases")
    }

    /// All `*_metrics.tsv` files under `dir`, sorted.
    fn metrics_files(dir: &Path, found: &mut Vec<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                metrics_files(&path, found);
            } else if path.to_string_lossy().ends_with("_metrics.tsv") {
                found.push(path);
            }
        }
    }

    /// A TSV file as its header and rows of cells.
    fn read_tsv(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
        let text = std::fs::read_to_string(path).expect("reference TSV is readable");
        let mut lines = text
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect());
        let header: Vec<String> = lines.next().unwrap_or_default();
        (header, lines.collect())
    }

    fn column<T: std::str::FromStr>(header: &[String], rows: &[Vec<String>], name: &str) -> Vec<T>
    where
        T::Err: std::fmt::Debug,
    {
        let index = header
            .iter()
            .position(|cell| cell == name)
            .expect("column exists");
        rows.iter()
            .map(|row| row[index].parse().expect("number"))
            .collect()
    }

    /// Recomputes one reference metrics file from the prediction file beside it; returns the
    /// file's first two lines as written by 1.6.1 and as written here, plus our whole text.
    fn recompute(metrics_path: &Path) -> (String, String, String) {
        let prediction_path = PathBuf::from(
            metrics_path
                .to_string_lossy()
                .replace("_metrics.tsv", "_prediction.tsv"),
        );
        let (header, rows) = read_tsv(&prediction_path);
        let reference = std::fs::read_to_string(metrics_path).expect("readable");
        let reference_lines: Vec<&str> = reference.lines().collect();
        let with_ci = reference_lines[0].starts_with("Metrics\t");

        let (metrics, ci) = if header.iter().any(|cell| cell == "proba0") {
            let n_classes = header
                .iter()
                .filter(|cell| cell.starts_with("proba"))
                .count();
            let y_true: Vec<i64> = column(&header, &rows, "true_label");
            let y_pred: Vec<i64> = column(&header, &rows, "predicted_label");
            (
                classification_metrics(&y_true, &y_pred, n_classes),
                classification_ci(&y_true, &y_pred, n_classes),
            )
        } else if header.iter().any(|cell| cell == "MAE") {
            let mae: Vec<f32> = column(&header, &rows, "MAE");
            let rmse: Vec<f32> = column(&header, &rows, "RMSE");
            let psnr: Vec<f64> = column(&header, &rows, "PSNR");
            let ssim: Vec<f64> = column(&header, &rows, "SSIM");
            (
                reconstruction_metrics(&mae, &rmse, &psnr, &ssim),
                reconstruction_ci(&mae, &rmse, &psnr, &ssim),
            )
        } else {
            let y_true: Vec<f64> = column(&header, &rows, "true_label");
            let y_pred: Vec<f64> = column(&header, &rows, "predicted_label");
            (
                regression_metrics(&y_true, &y_pred),
                regression_ci(&y_true, &y_pred),
            )
        };

        let text = if with_ci {
            // The loss columns follow the metrics; their totals come from the reference.
            let names: Vec<&str> = reference_lines[0].split('\t').collect();
            let values: Vec<&str> = reference_lines[1].split('\t').collect();
            let losses: Vec<(String, f64)> = names[1 + metrics.len()..]
                .iter()
                .zip(&values[1 + metrics.len()..])
                .map(|(name, value)| ((*name).to_owned(), value.parse().expect("loss")))
                .collect();
            table(&metrics, Some(&ci), &losses)
        } else {
            table(&metrics, None, &[])
        };
        let ours: Vec<&str> = text.lines().collect();
        (
            reference_lines[..2].join("\n"),
            ours[..2].join("\n"),
            text.clone(),
        )
    }

    #[test]
    fn reference_metrics_rows_are_reproduced() {
        let mut files = Vec::new();
        metrics_files(&reference_root(), &mut files);
        files.sort();
        assert!(
            files.len() >= 28,
            "reference metrics files found: {}",
            files.len()
        );
        for path in &files {
            let (reference, ours, text) = recompute(path);
            assert_eq!(ours, reference, "{}", path.display());
            let reference_text = std::fs::read_to_string(path).expect("readable");
            let reference_lines: Vec<&str> = reference_text.lines().collect();
            let our_lines: Vec<&str> = text.lines().collect();
            assert_eq!(our_lines.len(), reference_lines.len(), "{}", path.display());
            for (our_line, reference_line) in our_lines.iter().zip(&reference_lines) {
                let our_fields: Vec<&str> = our_line.split('\t').collect();
                let reference_fields: Vec<&str> = reference_line.split('\t').collect();
                assert_eq!(
                    our_fields.len(),
                    reference_fields.len(),
                    "{}",
                    path.display()
                );
                assert_eq!(our_fields[0], reference_fields[0], "{}", path.display());
                // N/A cells, and the float typing of the CI rows, are in the same places.
                for (ours, theirs) in our_fields.iter().zip(&reference_fields) {
                    assert_eq!(*ours == "N/A", *theirs == "N/A", "{}", path.display());
                }
            }
        }
    }

    #[test]
    fn reference_reconstruction_values() {
        let path = reference_root()
            .join("image_reconstruction/maps/split-0/best-loss/test/test_image_level_metrics.tsv");
        let (reference, ours, text) = recompute(&path);
        assert_eq!(ours, reference);
        assert!(reference.ends_with(
            "Values\t0.18272951\t0.26676992\t11.499741926498151\t0.1066778376698494\t\
             0.0715329647064209"
        ));
        // SE of the float32 columns is float32 (short digits), of the double columns double.
        let se: Vec<&str> = text
            .lines()
            .nth(4)
            .unwrap_or_default()
            .split('\t')
            .collect();
        assert!(se[1].len() <= 12 && se[2].len() <= 12, "float32 SE: {se:?}");
    }
}
