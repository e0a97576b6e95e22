//! Per-element results of the inference, as plain data (no I/O): what one line of a
//! `<group>_<mode>_level_prediction.tsv` holds (docs/ARCHITECTURE.md, "Inference, rows and
//! losses"). They serialise exactly (floats by their bits: NaN and infinities included), for the
//! shards and journals that keep rows between processes.

use serde::{Deserialize, Serialize};

/// The task-specific values of one row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum RowValues {
    /// `true_label, predicted_label, proba0…`: probabilities are float32 softmax values widened to
    /// double, as `.item()` gives them in ClinicaDL.
    Classification {
        /// Label code, or -1 without labels.
        true_label: i64,
        /// Index of the first maximum of the logits.
        predicted_label: i64,
        /// Softmax of the logits.
        #[serde(with = "bits::f64_vec")]
        probabilities: Vec<f64>,
    },
    /// `true_label, predicted_label`: float32 values widened to double.
    Regression {
        /// The target; `None` without labels (written as the integer -1, as ClinicaDL does).
        #[serde(with = "bits::f64_option")]
        true_label: Option<f64>,
        /// The network output.
        #[serde(with = "bits::f64")]
        predicted_label: f64,
    },
    /// `MAE, RMSE, PSNR, SSIM` between the input element and its reconstruction (MAE and RMSE
    /// are float32 as numpy computes them).
    Reconstruction {
        /// Mean absolute error.
        #[serde(with = "bits::f32")]
        mae: f32,
        /// Root mean squared error.
        #[serde(with = "bits::f32")]
        rmse: f32,
        /// Peak signal-to-noise ratio.
        #[serde(with = "bits::f64")]
        psnr: f64,
        /// Structural similarity.
        #[serde(with = "bits::f64")]
        ssim: f64,
    },
}

/// One element's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// Floats serialised by their bits, so that they come back exactly (NaN and infinities too,
/// which JSON numbers cannot hold).
pub mod bits {
    /// `f64` as its bits.
    pub mod f64 {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises the bits.
        pub fn serialize<S: Serializer>(value: &f64, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u64(value.to_bits())
        }

        /// Deserialises the bits.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
            u64::deserialize(d).map(f64::from_bits)
        }
    }

    /// `f32` as its bits.
    pub mod f32 {
        use serde::{Deserialize, Deserializer, Serializer};

        /// Serialises the bits.
        pub fn serialize<S: Serializer>(value: &f32, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_u32(value.to_bits())
        }

        /// Deserialises the bits.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f32, D::Error> {
            u32::deserialize(d).map(f32::from_bits)
        }
    }

    /// `Option<f64>` as its bits (or null).
    pub mod f64_option {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        /// Serialises the bits.
        pub fn serialize<S: Serializer>(value: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
            value.map(f64::to_bits).serialize(s)
        }

        /// Deserialises the bits.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
            Option::<u64>::deserialize(d).map(|bits| bits.map(f64::from_bits))
        }
    }

    /// `Vec<f64>` as their bits.
    pub mod f64_vec {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        /// Serialises the bits.
        pub fn serialize<S: Serializer>(values: &[f64], s: S) -> Result<S::Ok, S::Error> {
            let bits: Vec<u64> = values.iter().map(|v| v.to_bits()).collect();
            bits.serialize(s)
        }

        /// Deserialises the bits.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f64>, D::Error> {
            Vec::<u64>::deserialize(d).map(|bits| bits.into_iter().map(f64::from_bits).collect())
        }
    }
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

    #[test]
    fn rows_come_back_exactly_from_json() {
        let rows = vec![
            Row {
                participant_id: "sub-1".into(),
                session_id: "ses-M000".into(),
                element_id: 3,
                values: RowValues::Reconstruction {
                    mae: 0.1,
                    rmse: f32::NAN,
                    psnr: f64::INFINITY,
                    ssim: -0.0,
                },
            },
            Row {
                participant_id: "sub-2".into(),
                session_id: "ses-M000".into(),
                element_id: 0,
                values: RowValues::Regression {
                    true_label: None,
                    predicted_label: 0.1 + 0.2,
                },
            },
        ];
        let text = serde_json::to_string(&rows).unwrap();
        let back: Vec<Row> = serde_json::from_str(&text).unwrap();
        let bits = |r: &[Row]| format!("{r:?}");
        assert_eq!(bits(&back), bits(&rows));
        let RowValues::Reconstruction { ssim, .. } = back[0].values else {
            unreachable!()
        };
        assert!(ssim.is_sign_negative());
    }
}
