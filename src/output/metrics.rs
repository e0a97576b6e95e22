//! The metrics TSV files: `<group>_<mode>_level_metrics.tsv` (the transposed table with the
//! confidence-interval rows and the loss columns, and the network-index row that follows each
//! network's block in a multi-network MAPS) and the two-line `<group>_image_level_metrics.tsv`
//! of soft voting, cell for cell as ClinicaDL writes them through pandas.
//!
//! This module owns the layout and the text of the cells ([`metric_cell`]: `0` vs `0.0`, float32
//! digits, NaN empty, `N/A`); the values come from `crate::metrics`, the float text from
//! `pyrepr`, the field quoting and line ends from `crate::tsv::write_row`. It writes to any
//! [`Write`]: the run driver chooses the file.

use std::io::{self, Write};
use std::iter::once;

use crate::metrics::{ConfidenceInterval, MetricValue};
use crate::pyrepr::{tsv_f32, tsv_f64};
use crate::tsv::write_row;

/// The cell text of a metric value as pandas writes it: `0`, `0.0`, float32 shortest digits,
/// NaN empty, `N/A`.
pub fn metric_cell(value: &MetricValue) -> String {
    match *value {
        MetricValue::Int(value) => value.to_string(),
        MetricValue::F64(value) => tsv_f64(value),
        MetricValue::F32(value) => tsv_f32(value),
        MetricValue::NotAvailable => "N/A".to_owned(),
    }
}

/// Picks one cell (lower bound, upper bound or SE) of an interval.
type CellOf = fn(&ConfidenceInterval) -> MetricValue;

/// Writes a metrics TSV. With `ci`, the transposed header-less table (rows `Metrics`, `Values`,
/// `Lower bound CI`, `Upper bound CI`, `SE`; loss columns last, `N/A` in their CI cells);
/// without, the two-line table of soft voting (metric names, then values). Losses are the
/// float32 sums widened to double; they follow the metrics in both layouts (soft voting passes
/// none). Fails with `InvalidInput` when `ci` does not have one interval per metric.
// ClinicaDL: clinicadl.utils.maps_manager.maps_manager.MapsManager._mode_level_to_tsv
// (with CI) and MapsManager._ensemble_to_tsv (soft voting, without CI and without loss).
pub fn write_metrics_table<W: Write>(
    mut w: W,
    metrics: &[(String, MetricValue)],
    ci: Option<&[ConfidenceInterval]>,
    losses: &[(String, f64)],
) -> io::Result<()> {
    let names: Vec<&str> = metrics
        .iter()
        .map(|(name, _)| name.as_str())
        .chain(losses.iter().map(|(name, _)| name.as_str()))
        .collect();
    let values: Vec<String> = metrics
        .iter()
        .map(|(_, value)| metric_cell(value))
        .chain(losses.iter().map(|(_, loss)| tsv_f64(*loss)))
        .collect();
    let Some(ci) = ci else {
        write_row(&mut w, names)?;
        return write_row(&mut w, values.iter().map(String::as_str));
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
    write_row(&mut w, once("Metrics").chain(names))?;
    write_row(
        &mut w,
        once("Values").chain(values.iter().map(String::as_str)),
    )?;
    let rows: [(&str, CellOf); 3] = [
        ("Lower bound CI", |interval| interval.lower),
        ("Upper bound CI", |interval| interval.upper),
        ("SE", |interval| interval.se),
    ];
    for (label, cell) in rows {
        let cells: Vec<String> = ci
            .iter()
            .map(|interval| metric_cell(&cell(interval)))
            .chain(
                losses
                    .iter()
                    .map(|_| metric_cell(&MetricValue::NotAvailable)),
            )
            .collect();
        write_row(&mut w, once(label).chain(cells.iter().map(String::as_str)))?;
    }
    Ok(())
}

/// Writes the sixth row that follows each network's block in a multi-network metrics file:
/// the network index in every one of the `n_columns` cells (label column included).
// ClinicaDL: clinicadl.utils.maps_manager.maps_manager.MapsManager._mode_level_to_tsv
// (the network index column of the appended frame)
pub fn write_network_separator_row<W: Write>(
    mut w: W,
    network: usize,
    n_columns: usize,
) -> io::Result<()> {
    let index = network.to_string();
    write_row(&mut w, std::iter::repeat_n(index.as_str(), n_columns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::CLASSIFICATION_METRICS;
    use crate::metrics::classification::{classification_ci, classification_metrics};
    use crate::metrics::reconstruction::{mean_ci_f32, reconstruction_ci, reconstruction_metrics};
    use crate::metrics::regression::{regression_ci, regression_metrics};
    use std::path::{Path, PathBuf};

    fn cells(metrics: &[(String, MetricValue)]) -> Vec<String> {
        metrics
            .iter()
            .map(|(_, value)| metric_cell(value))
            .collect()
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
    fn metric_values_keep_python_types() {
        assert_eq!(metric_cell(&MetricValue::Int(0)), "0");
        assert_eq!(metric_cell(&MetricValue::F64(0.0)), "0.0");
        assert_eq!(metric_cell(&MetricValue::F64(f64::NAN)), "");
        assert_eq!(metric_cell(&MetricValue::F32(0.182_729_51)), "0.18272951");
        assert_eq!(metric_cell(&MetricValue::NotAvailable), "N/A");
        assert_eq!(MetricValue::Int(0).as_f64(), 0.0);
        assert!(MetricValue::NotAvailable.as_f64().is_nan());
    }

    #[test]
    fn verified_binary_example() {
        // Never predicting class 0 on 3 rows of class 0 and 1 of class 1.
        let metrics = classification_metrics(&[0, 0, 0, 1], &[1, 1, 1, 1], 2);
        let names: Vec<&str> = metrics.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, CLASSIFICATION_METRICS.to_vec());
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
