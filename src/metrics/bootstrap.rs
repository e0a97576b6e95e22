//! The bootstrap confidence intervals of the metrics: seeded resampling of the row indices, then
//! the 95% percentile interval and the standard error of each resampled metric, as
//! `scipy.stats.bootstrap(method="percentile")` computes them for ClinicaDL.
//!
//! This module owns the resampling and the interval; the statistics resampled are the metric
//! modules' closures, the percentile and standard deviation `crate::numpy`'s.
//!
//! Deliberate differences from ClinicaDL 1.6.1, which itself cannot reproduce its confidence
//! interval rows (unseeded `scipy.stats.bootstrap`):
//! * the resampling generator is seeded ([`BOOTSTRAP_SEED`]), so the CI rows are reproducible;
//! * every resample value is kept in double precision (scipy truncated all of them to integers
//!   when the first resample gave an int-typed 0);
//! * one index vector per resample serves all the metrics of a call (ClinicaDL draws new
//!   resamples for each metric); each metric's CI is still a paired percentile bootstrap;
//! * a single evaluated row gives the normal 5-row layout (1.6.1 writes a malformed file): its
//!   resamples all equal the value, so the CI bounds are the value and the SE is 0.0.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

use super::{ConfidenceInterval, MetricValue};
use crate::numpy::{numpy_percentile, numpy_std};

/// Number of bootstrap resamples of the confidence intervals (scipy `n_resamples=3000`).
pub const BOOTSTRAP_RESAMPLES: usize = 3000;

/// Seed of the bootstrap generator (ClinicaDL does not seed it; a documented difference). The
/// CI cells depend on this seed and on rand's `Xoshiro256PlusPlus` / `random_range` algorithms.
pub const BOOTSTRAP_SEED: u64 = 42;

/// The confidence intervals of `columns` statistics of `rows` rows: `statistic` maps the row
/// indices of a resample to the value of each statistic, kept as a double whatever its Python
/// type. All cells are NaN when `rows` is 0.
// scipy: scipy.stats.bootstrap(method="percentile", n_resamples=3000), as called by ClinicaDL
pub(super) fn confidence_intervals<F, I>(
    rows: usize,
    columns: usize,
    statistic: F,
) -> Vec<ConfidenceInterval>
where
    F: FnMut(&[usize]) -> I,
    I: IntoIterator<Item = MetricValue>,
{
    bootstrap(rows, columns, statistic)
        .iter()
        .map(|values| percentile_interval(values, rows))
        .collect()
}

/// Draws [`BOOTSTRAP_RESAMPLES`] index vectors of `rows` indices (uniform, with replacement,
/// seeded with [`BOOTSTRAP_SEED`]) and evaluates `statistic` on each. Returns, for each of the
/// `columns` statistics, its resampled values (none when `rows` is 0).
fn bootstrap<F, I>(rows: usize, columns: usize, mut statistic: F) -> Vec<Vec<f64>>
where
    F: FnMut(&[usize]) -> I,
    I: IntoIterator<Item = MetricValue>,
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
            column.push(value.as_f64());
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

#[cfg(test)]
mod tests {
    use crate::metrics::classification::classification_ci;
    use crate::metrics::reconstruction::{mean_ci_f32, mean_ci_f64};
    use crate::metrics::regression::regression_ci;
    use crate::metrics::testing::cell;

    #[test]
    fn empty_columns_give_nan_intervals() {
        for interval in classification_ci(&[], &[], 2)
            .into_iter()
            .chain(regression_ci(&[], &[]))
            .chain([mean_ci_f32(&[]), mean_ci_f64(&[])])
        {
            assert_eq!(cell(&interval.lower), "NaN");
            assert_eq!(cell(&interval.se), "NaN");
        }
    }
}
