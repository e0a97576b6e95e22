//! The classification metrics of ClinicaDL: one-vs-rest confusion counts, then `BA`,
//! `accuracy`, `F1_score` … `LR_minus` for class 0 (one or two outputs) or for every class (more
//! outputs, names suffixed `-<class>`), with the int `0` where ClinicaDL returns a Python int,
//! and their paired bootstrap confidence intervals.
//!
//! This module owns the formulas and the metric-major column order; the resampling is
//! `bootstrap`'s, the text of the values the metrics TSV writer's.

use super::bootstrap::confidence_intervals;
use super::{CLASSIFICATION_METRICS, ConfidenceInterval, MetricValue};

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

/// The class numbers studied: 0..C when C > 2, else only class 0.
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

/// Classification metrics over all rows, named and ordered as ClinicaDL writes them.
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
    confidence_intervals(rows, columns, |indices| {
        let counts = tally(
            indices.iter().map(|&row| (y_true[row], y_pred[row])),
            &classes,
        );
        classification_values(&counts)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::testing::{cell, cells, names};

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

        // Empty: accuracy 0/0 is NaN; the ratio metrics fall back to 0.0.
        let metrics = classification_metrics(&[], &[], 2);
        assert_eq!(
            cells(&metrics).join(" "),
            "0.0 NaN 0 0.0 0.0 0.0 0.0 0 -1.0 0.0 0"
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
                .map(|(_, value)| cell(value))
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
}
