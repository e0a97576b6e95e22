//! Per-element results of the inference, as plain data (no I/O): what one line of a
//! `<group>_<mode>_level_prediction.tsv` holds (docs/ARCHITECTURE.md, "Inference, rows and
//! losses").

/// The task-specific values of one row.
#[derive(Debug, Clone, PartialEq)]
pub enum RowValues {
    /// `true_label, predicted_label, proba0…`: probabilities are float32 softmax values widened to
    /// double, as `.item()` gives them in ClinicaDL.
    Classification {
        /// Label code, or -1 without labels.
        true_label: i64,
        /// Index of the first maximum of the logits.
        predicted_label: i64,
        /// Softmax of the logits.
        probabilities: Vec<f64>,
    },
    /// `true_label, predicted_label`: float32 values widened to double.
    Regression {
        /// The target; `None` without labels (written as the integer -1, as ClinicaDL does).
        true_label: Option<f64>,
        /// The network output.
        predicted_label: f64,
    },
    /// `MAE, RMSE, PSNR, SSIM` between the input element and its reconstruction (MAE and RMSE
    /// are float32 as numpy computes them).
    Reconstruction {
        /// Mean absolute error.
        mae: f32,
        /// Root mean squared error.
        rmse: f32,
        /// Peak signal-to-noise ratio.
        psnr: f64,
        /// Structural similarity.
        ssim: f64,
    },
}

/// One element's result.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// `participant_id`.
    pub participant_id: String,
    /// `session_id`.
    pub session_id: String,
    /// `<mode>_id`.
    pub element_id: usize,
    /// The values.
    pub values: RowValues,
}

/// Index of the first maximum (a later equal value does not win; NaN never wins, unless all
/// are NaN): the predicted label of logits, and of soft-voted probabilities (Python's
/// `list.index(max(list))`, which never meets NaN there).
pub fn first_argmax<T: PartialOrd + Copy>(values: &[T]) -> usize {
    let mut best = 0;
    for (i, &v) in values.iter().enumerate() {
        // Only NaN does not compare with itself.
        let is_nan = |x: T| x.partial_cmp(&x).is_none();
        if v > values[best] || (is_nan(values[best]) && !is_nan(v)) {
            best = i;
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argmax_takes_the_first_maximum() {
        assert_eq!(first_argmax(&[0.1, 0.7, 0.7]), 1);
        assert_eq!(first_argmax(&[2.0, 1.0]), 0);
        assert_eq!(first_argmax(&[f32::NAN, 1.0]), 1);
        assert_eq!(first_argmax(&[0.25f64, 0.5, 0.25]), 1);
    }
}
