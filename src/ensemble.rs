//! Image-level results from element-level rows: soft voting for classification, weighted by
//! each element's accuracy on the validation group, and the mean for regression. Pure functions
//! over rows; the sums are `crate::numpy`'s, the metrics of the voted rows `crate::metrics`'.
//!
//! ClinicaDL: `ClassificationManager.ensemble_prediction` and
//! `RegressionManager.ensemble_prediction` (`clinicadl.utils.task_manager`).

use std::collections::BTreeMap;

use anyhow::{Result, bail};

use crate::numpy::numpy_pairwise_sum_f64;
use crate::rows::{Row, RowValues, first_argmax};

/// Per-element weights of soft voting, by element id in increasing order: the validation
/// accuracy of each element (set to 0 below `selection_threshold`), normalised to sum 1.
pub fn soft_voting_weights(
    validation: &[Row],
    selection_threshold: Option<f64>,
) -> Vec<(usize, f64)> {
    let mut per_element: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
    for row in validation {
        if let RowValues::Classification {
            true_label,
            predicted_label,
            ..
        } = row.values
        {
            let entry = per_element.entry(row.element_id).or_insert((0.0, 0.0));
            entry.0 += if true_label == predicted_label {
                1.0
            } else {
                0.0
            };
            entry.1 += 1.0;
        }
    }
    let mut accuracies: Vec<(usize, f64)> = per_element
        .into_iter()
        .map(|(id, (ok, n))| (id, ok / n))
        .collect();
    if let Some(threshold) = selection_threshold {
        for (_, a) in accuracies.iter_mut() {
            if *a < threshold {
                *a = 0.0;
            }
        }
    }
    let total = numpy_pairwise_sum_f64(&accuracies.iter().map(|(_, a)| *a).collect::<Vec<_>>());
    accuracies
        .into_iter()
        .map(|(id, a)| (id, a / total))
        .collect()
}

/// Rows grouped by session, sessions in (participant_id, session_id) order, rows of a session
/// in element-id order.
fn by_session(rows: &[Row]) -> BTreeMap<(String, String), Vec<&Row>> {
    let mut sessions: BTreeMap<(String, String), Vec<&Row>> = BTreeMap::new();
    for row in rows {
        sessions
            .entry((row.participant_id.clone(), row.session_id.clone()))
            .or_default()
            .push(row);
    }
    for rows in sessions.values_mut() {
        rows.sort_by_key(|r| r.element_id);
    }
    sessions
}

/// `np.average(values, weights)`: Σ wᵢvᵢ / Σ wᵢ with numpy's summation.
fn weighted_average(values: &[f64], weights: &[f64]) -> f64 {
    let products: Vec<f64> = values.iter().zip(weights).map(|(v, w)| v * w).collect();
    numpy_pairwise_sum_f64(&products) / numpy_pairwise_sum_f64(weights)
}

/// Image-level classification rows by soft voting (element id 0 on every row).
pub fn soft_vote(rows: &[Row], weights: &[(usize, f64)], n_classes: usize) -> Result<Vec<Row>> {
    let w: Vec<f64> = weights.iter().map(|(_, w)| *w).collect();
    let mut out = Vec::new();
    for ((participant_id, session_id), elements) in by_session(rows) {
        if elements.len() != w.len() {
            bail!(
                "({participant_id} | {session_id}) has {} elements but the validation predictions have {} (soft voting needs the same elements)",
                elements.len(),
                w.len()
            );
        }
        let mut true_labels = Vec::new();
        let mut columns: Vec<Vec<f64>> = vec![Vec::with_capacity(elements.len()); n_classes];
        for row in &elements {
            let RowValues::Classification {
                true_label,
                probabilities,
                ..
            } = &row.values
            else {
                bail!("soft voting needs classification rows");
            };
            if !true_labels.contains(true_label) {
                true_labels.push(*true_label);
            }
            for (column, p) in columns.iter_mut().zip(probabilities) {
                column.push(*p);
            }
        }
        let [true_label] = true_labels[..] else {
            bail!("({participant_id} | {session_id}) has several true labels: {true_labels:?}");
        };
        let probabilities: Vec<f64> = columns.iter().map(|c| weighted_average(c, &w)).collect();
        // Python's `list.index(max(list))`: the first maximum.
        let predicted = first_argmax(&probabilities);
        out.push(Row {
            participant_id,
            session_id,
            element_id: 0,
            values: RowValues::Classification {
                true_label,
                predicted_label: predicted as i64,
                probabilities,
            },
        });
    }
    Ok(out)
}

/// Image-level regression rows: the mean of the session's element predictions.
pub fn mean_vote(rows: &[Row]) -> Result<Vec<Row>> {
    let mut out = Vec::new();
    for ((participant_id, session_id), elements) in by_session(rows) {
        let mut predictions = Vec::with_capacity(elements.len());
        let mut true_label = None;
        for row in &elements {
            let RowValues::Regression {
                true_label: t,
                predicted_label,
            } = row.values
            else {
                bail!("mean voting needs regression rows");
            };
            predictions.push(predicted_label);
            true_label = t;
        }
        let ones = vec![1.0; predictions.len()];
        out.push(Row {
            participant_id,
            session_id,
            element_id: 0,
            values: RowValues::Regression {
                true_label,
                predicted_label: weighted_average(&predictions, &ones),
            },
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cls(p: &str, s: &str, id: usize, t: i64, pred: i64, p0: f64) -> Row {
        Row {
            participant_id: p.into(),
            session_id: s.into(),
            element_id: id,
            values: RowValues::Classification {
                true_label: t,
                predicted_label: pred,
                probabilities: vec![p0, 1.0 - p0],
            },
        }
    }

    #[test]
    fn weights_from_validation_accuracy() {
        let v = vec![
            cls("a", "s", 0, 0, 0, 0.9),
            cls("a", "s", 1, 0, 1, 0.1),
            cls("b", "s", 0, 1, 1, 0.2),
            cls("b", "s", 1, 1, 1, 0.3),
        ];
        let w = soft_voting_weights(&v, Some(0.0));
        assert_eq!(w, vec![(0, 1.0 / 1.5), (1, 0.5 / 1.5)]);
        let w = soft_voting_weights(&v, Some(0.6));
        assert_eq!(w, vec![(0, 1.0), (1, 0.0)]);
    }

    #[test]
    fn soft_vote_sorts_sessions_and_weights_probabilities() {
        let rows = vec![
            cls("b", "s", 1, 1, 0, 0.8),
            cls("b", "s", 0, 1, 1, 0.2),
            cls("a", "s", 0, 0, 0, 0.6),
            cls("a", "s", 1, 0, 0, 0.9),
        ];
        let out = soft_vote(&rows, &[(0, 0.75), (1, 0.25)], 2).unwrap();
        assert_eq!(out[0].participant_id, "a");
        let RowValues::Classification {
            predicted_label,
            probabilities,
            ..
        } = &out[1].values
        else {
            panic!()
        };
        assert!((probabilities[0] - (0.75 * 0.2 + 0.25 * 0.8)).abs() < 1e-15);
        assert_eq!(*predicted_label, 1);
        assert!(
            soft_vote(&rows, &[(0, 1.0)], 2)
                .unwrap_err()
                .to_string()
                .contains("2 elements")
        );
    }

    #[test]
    fn mean_vote_averages() {
        let r = |id, v| Row {
            participant_id: "a".into(),
            session_id: "s".into(),
            element_id: id,
            values: RowValues::Regression {
                true_label: Some(70.0),
                predicted_label: v,
            },
        };
        let out = mean_vote(&[r(0, 60.0), r(1, 80.0), r(2, 73.0)]).unwrap();
        assert_eq!(
            out[0].values,
            RowValues::Regression {
                true_label: Some(70.0),
                predicted_label: 71.0
            }
        );
    }
}
