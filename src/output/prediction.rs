//! Writer of `<group>_<mode>_level_prediction.tsv` (docs/ARCHITECTURE.md, "Inference, rows and
//! losses"), numbers formatted as pandas writes them (docs/ARCHITECTURE.md, "description.log and
//! number formatting").

use std::io::Write;

use crate::maps::json::Task;
use crate::pyrepr::{tsv_f32, tsv_f64};
use crate::rows::{Row, RowValues};
use crate::tsv::write_row;

/// The header of a prediction TSV.
/// `level` names the id column (`<level>_id`).
pub fn prediction_header(level: &str, task: Task, n_classes: usize) -> Vec<String> {
    let mut header: Vec<String> = vec![
        "participant_id".into(),
        "session_id".into(),
        format!("{level}_id"),
    ];
    match task {
        Task::Regression => {
            header.extend(["true_label".into(), "predicted_label".into()]);
        }
        Task::Classification => {
            header.extend(["true_label".into(), "predicted_label".into()]);
            header.extend((0..n_classes).map(|i| format!("proba{i}")));
        }
        Task::Reconstruction => {
            header.extend(["MAE", "RMSE", "PSNR", "SSIM"].map(String::from));
        }
    }
    header
}

/// Writes the header and the rows.
pub fn write_prediction_tsv<W: Write>(
    mut w: W,
    level: &str,
    task: Task,
    rows: &[Row],
    n_classes: usize,
) -> std::io::Result<()> {
    write_row(
        &mut w,
        prediction_header(level, task, n_classes)
            .iter()
            .map(String::as_str),
    )?;
    for row in rows {
        let mut fields = vec![
            row.participant_id.clone(),
            row.session_id.clone(),
            row.element_id.to_string(),
        ];
        match &row.values {
            RowValues::Classification {
                true_label,
                predicted_label,
                probabilities,
            } => {
                fields.push(true_label.to_string());
                fields.push(predicted_label.to_string());
                fields.extend(probabilities.iter().map(|&p| tsv_f64(p)));
            }
            RowValues::Regression {
                true_label,
                predicted_label,
            } => {
                fields.push(true_label.map_or_else(|| "-1".to_owned(), tsv_f64));
                fields.push(tsv_f64(*predicted_label));
            }
            RowValues::Reconstruction {
                mae,
                rmse,
                psnr,
                ssim,
            } => {
                fields.push(tsv_f32(*mae));
                fields.push(tsv_f32(*rmse));
                fields.push(tsv_f64(*psnr));
                fields.push(tsv_f64(*ssim));
            }
        }
        write_row(&mut w, fields.iter().map(String::as_str))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_clinicadl_layout() {
        let rows = vec![Row {
            participant_id: "sub-09".into(),
            session_id: "ses-M000".into(),
            element_id: 0,
            values: RowValues::Classification {
                true_label: 0,
                predicted_label: 1,
                probabilities: vec![0.479420930147171, 0.5205790400505066],
            },
        }];
        let mut out = Vec::new();
        write_prediction_tsv(&mut out, "image", Task::Classification, &rows, 2).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "participant_id\tsession_id\timage_id\ttrue_label\tpredicted_label\tproba0\tproba1\nsub-09\tses-M000\t0\t0\t1\t0.479420930147171\t0.5205790400505066\n"
        );
        let rows = vec![Row {
            participant_id: "sub-09".into(),
            session_id: "ses-M000".into(),
            element_id: 0,
            values: RowValues::Regression {
                true_label: Some(69.0),
                predicted_label: f64::from(72.3f32),
            },
        }];
        let mut out = Vec::new();
        write_prediction_tsv(&mut out, "image", Task::Regression, &rows, 0).unwrap();
        assert!(
            String::from_utf8(out)
                .unwrap()
                .ends_with("sub-09\tses-M000\t0\t69.0\t72.30000305175781\n")
        );
    }
}
