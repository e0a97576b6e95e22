//! The one comparison of the parity tests: a results folder written by clinicadl-rs against the
//! one ClinicaDL 1.6.1 wrote, file by file, with the tolerances of `tolerance`
//! (src/tolerance.rs, which explains each of them):
//!
//! - prediction TSVs: identifiers and true labels exactly; probabilities within their softmax
//!   tolerance, regression outputs within the network's error at the scale of the outputs,
//!   reconstruction MAE/RMSE/PSNR/SSIM within what the reconstruction's error gives them; a
//!   predicted label may differ only in a near-tie;
//! - metrics TSVs: every metric of the `Values` row within its first-order bound from the rows'
//!   tolerances (label metrics exactly, recomputed from the labels given where a near-tie
//!   flipped one; `loss`, a sum of batch means, from the batches' bounds), the layout of the
//!   confidence-interval rows (their values are random in ClinicaDL);
//! - saved tensors and NIfTI images: inputs to a few roundings, outputs within the network's
//!   error at the scale of the tensor.
//!
//! The network's error comes from the checkpoints of the results folder's selection metric
//! (`split-<k>/best-<m>/*.pth.tar`).

use std::path::Path;

use clinicadl_rs::metrics;
use clinicadl_rs::metrics::classification::classification_metrics;
use clinicadl_rs::metrics::regression::regression_metrics;

use crate::tolerance;

/// What a parity comparison needs besides the two folders.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The `--batch_size` of both runs (the loss is a sum of batch means).
    pub batch_size: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { batch_size: 8 }
    }
}

/// Relative error of the network whose checkpoints (`*.pth.tar`) are in `metric_dir`
/// (`split-<k>/best-<m>/`).
pub fn network_error(metric_dir: &Path) -> f64 {
    let mut terms = 0;
    for entry in std::fs::read_dir(metric_dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".pth.tar") {
            let (checkpoint, _) =
                clinicadl_rs::torchfile::read_checkpoint_header(&entry.path()).unwrap();
            let shapes = checkpoint
                .state_dict
                .iter()
                .map(|(_, t)| t.shape.as_slice());
            terms = usize::max(terms, tolerance::summed_terms(shapes));
        }
    }
    assert!(terms > 0, "no checkpoint in `{}`", metric_dir.display());
    tolerance::network_relative_error(terms)
}

/// Compares every file ClinicaDL wrote in `expected` (a results folder) with ours in `actual`:
/// the same file names, and each file within tolerance.
pub fn results_folder(actual: &Path, expected: &Path, settings: Settings) {
    let relative = network_error(expected.parent().expect("a results folder has a parent"));
    let names = |dir: &Path| -> Vec<String> {
        // `run.json` is clinicadl-rs's record, which ClinicaDL does not write.
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|name| name != "run.json")
            .collect();
        names.sort();
        names
    };
    assert_eq!(names(actual), names(expected), "{}", actual.display());
    let files = names(expected);
    let prediction = |level: &str| {
        files
            .iter()
            .find(|n| n.ends_with(&format!("_{level}_level_prediction.tsv")))
    };
    // The element level first: its rows give the tolerances of the image level derived from them.
    let mode_level = ["patch", "roi", "slice"]
        .into_iter()
        .find_map(|level| prediction(level).map(|name| (level, name)));
    let (element_level, element_file) = mode_level.unwrap_or_else(|| {
        (
            "image",
            prediction("image").expect("an image-level prediction TSV"),
        )
    });
    let read = |dir: &Path, name: &str| std::fs::read_to_string(dir.join(name)).unwrap();
    let expected_rows = Predictions::parse(&read(expected, element_file));
    let allowance = Allowance::of(&expected_rows, relative);
    for level in [element_level, "image"] {
        let Some(name) = prediction(level) else {
            continue;
        };
        let what = format!("{}", expected.join(name).display());
        let (ours, theirs) = (read(actual, name), read(expected, name));
        let flipped = compare_predictions(&ours, &theirs, &allowance, &what);
        let metrics_name = name.replace("_prediction.tsv", "_metrics.tsv");
        if files.contains(&metrics_name) {
            compare_metrics(
                &read(actual, &metrics_name),
                &read(expected, &metrics_name),
                (
                    &Predictions::parse(&ours),
                    &Predictions::parse(&theirs),
                    &flipped,
                ),
                &allowance,
                settings,
                &format!("{}", expected.join(&metrics_name).display()),
            );
        }
        if element_level == "image" {
            break;
        }
    }
    for name in &files {
        let (ours, theirs) = (actual.join(name), expected.join(name));
        if theirs.is_dir() {
            for file in names(&theirs) {
                saved_file(&ours.join(&file), &theirs.join(&file), relative);
            }
        }
    }
}

/// The rows of a prediction TSV.
#[derive(Debug)]
pub struct Predictions {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

/// The kind of a prediction TSV, from its columns.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    Classification,
    Regression,
    Reconstruction,
}

impl Predictions {
    /// Parses a TSV (header, then rows).
    pub fn parse(text: &str) -> Predictions {
        let mut lines = text
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect::<Vec<_>>());
        let header = lines.next().expect("a header line");
        Predictions {
            header,
            rows: lines.collect(),
        }
    }

    fn kind(&self) -> Kind {
        if self.header.iter().any(|c| c == "SSIM") {
            Kind::Reconstruction
        } else if self.header.iter().any(|c| c.starts_with("proba")) {
            Kind::Classification
        } else {
            Kind::Regression
        }
    }

    fn column(&self, name: &str) -> usize {
        self.header
            .iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column `{name}` in {:?}", self.header))
    }

    fn number(&self, row: usize, column: usize) -> f64 {
        number(&self.rows[row][column])
    }

    /// The probabilities of a classification row.
    fn probabilities(&self, row: usize) -> Vec<f64> {
        (0..self.header.len())
            .filter(|&c| self.header[c].starts_with("proba"))
            .map(|c| self.number(row, c))
            .collect()
    }

    /// The class index of the row's true label (classification).
    fn true_class(&self, row: usize) -> i64 {
        self.rows[row][self.column("true_label")].parse().unwrap()
    }

    /// The element id of a row (third column: `<mode>_id`).
    fn element(&self, row: usize) -> &str {
        &self.rows[row][2]
    }
}

fn number(cell: &str) -> f64 {
    cell.parse::<f64>()
        .unwrap_or_else(|_| panic!("`{cell}` is not a number"))
}

/// How far the values of a results folder may lie from ClinicaDL's (see `tolerance`).
#[derive(Debug, Clone, Copy)]
pub enum Allowance {
    /// Each logit may be off by this much.
    Classification { logit_error: f64 },
    /// Each output may be off by this much.
    Regression { output_error: f64 },
    /// Each voxel of a reconstruction may be off by this much times the data range of its image.
    Reconstruction { relative: f64 },
}

impl Allowance {
    /// From ClinicaDL's element-level rows and the network's relative error.
    pub fn of(expected: &Predictions, relative: f64) -> Allowance {
        match expected.kind() {
            Kind::Classification => {
                let rows: Vec<Vec<f64>> = (0..expected.rows.len())
                    .map(|r| expected.probabilities(r))
                    .collect();
                Allowance::Classification {
                    logit_error: relative * tolerance::logit_scale(rows.iter().map(Vec::as_slice)),
                }
            }
            Kind::Regression => {
                let column = expected.column("predicted_label");
                let scale =
                    tolerance::scale((0..expected.rows.len()).map(|r| expected.number(r, column)));
                Allowance::Regression {
                    output_error: relative * scale,
                }
            }
            Kind::Reconstruction => Allowance::Reconstruction { relative },
        }
    }

    /// The largest change of a voxel of the reconstruction of `row`: the network's error times
    /// the data range of the image, which PSNR = 10·log10(range²/MSE) gives back.
    fn voxel_error(&self, rows: &Predictions, row: usize) -> f64 {
        let Allowance::Reconstruction { relative } = *self else {
            unreachable!()
        };
        let rmse = rows.number(row, rows.column("RMSE"));
        let psnr = rows.number(row, rows.column("PSNR"));
        relative * rmse * 10f64.powf(psnr / 20.0)
    }

    /// The tolerance of the cell `(row, column)` of ClinicaDL's `rows`.
    fn cell(&self, rows: &Predictions, row: usize, column: usize) -> f64 {
        let value = rows.number(row, column);
        let name = rows.header[column].as_str();
        match (*self, name) {
            (Allowance::Classification { logit_error }, _) => {
                tolerance::probability_tolerance(value, logit_error)
            }
            (Allowance::Regression { output_error }, _) => output_error,
            (Allowance::Reconstruction { .. }, "MAE" | "RMSE") => {
                self.voxel_error(rows, row) + tolerance::REDUCTION * value.abs()
            }
            (Allowance::Reconstruction { .. }, "PSNR") => {
                let rmse = rows.number(row, rows.column("RMSE"));
                20.0 / std::f64::consts::LN_10 * self.voxel_error(rows, row) / rmse
                    + tolerance::REDUCTION * value.abs()
            }
            (Allowance::Reconstruction { .. }, "SSIM") => {
                tolerance::SSIM_LIPSCHITZ * self.voxel_error(rows, row)
                    + tolerance::REDUCTION * value.abs()
            }
            (Allowance::Reconstruction { .. }, _) => panic!("no tolerance for column `{name}`"),
        }
    }

    /// The first-order bound of one element's loss term (`loss` is a sum over batches of the
    /// mean of these terms): cross-entropy moves by at most 2·(1 − p_true)·max|dz|; a
    /// regression or reconstruction loss (MSE, L1, Huber, smooth L1) by at most (1 + 2|r|)·δ
    /// for a residual r known to δ.
    fn loss_term(&self, rows: &Predictions, row: usize) -> f64 {
        match *self {
            Allowance::Classification { logit_error } => {
                let p = rows.probabilities(row)[rows.true_class(row) as usize];
                2.0 * (1.0 - p) * logit_error
            }
            Allowance::Regression { output_error } => {
                let residual = rows.number(row, rows.column("predicted_label"))
                    - rows.number(row, rows.column("true_label"));
                (1.0 + 2.0 * residual.abs()) * output_error
            }
            Allowance::Reconstruction { .. } => {
                let mae = rows.number(row, rows.column("MAE"));
                (1.0 + 2.0 * mae) * self.voxel_error(rows, row)
            }
        }
    }
}

/// Compares two prediction TSVs cell by cell; returns, per row, whether the predicted label
/// differs (a near-tie, the only case allowed).
pub fn compare_predictions(
    actual: &str,
    expected: &str,
    allowance: &Allowance,
    what: &str,
) -> Vec<bool> {
    let (ours, theirs) = (Predictions::parse(actual), Predictions::parse(expected));
    assert_eq!(ours.header, theirs.header, "{what}: columns");
    assert_eq!(ours.rows.len(), theirs.rows.len(), "{what}: number of rows");
    let kind = theirs.kind();
    let identifiers = ["participant_id", "session_id", "true_label"];
    let mut flipped = vec![false; theirs.rows.len()];
    for (r, (a, e)) in ours.rows.iter().zip(&theirs.rows).enumerate() {
        let line = r + 2;
        assert_eq!(a.len(), e.len(), "{what}: line {line}: number of cells");
        for (c, (x, y)) in a.iter().zip(e).enumerate() {
            let name = theirs.header[c].as_str();
            if c == 2
                || identifiers.contains(&name)
                    && !(kind == Kind::Regression && name == "true_label")
            {
                assert_eq!(x, y, "{what}: line {line}: `{name}`");
            } else if name == "true_label" {
                assert_eq!(number(x), number(y), "{what}: line {line}: `{name}`");
            } else if name == "predicted_label" && kind == Kind::Classification {
                if x != y {
                    let Allowance::Classification { logit_error } = *allowance else {
                        unreachable!()
                    };
                    let probabilities = theirs.probabilities(r);
                    assert!(
                        tolerance::is_near_tie(&probabilities, logit_error),
                        "{what}: line {line}: predicted label {x}, ClinicaDL {y}, without a near-tie (probabilities {probabilities:?})"
                    );
                    flipped[r] = true;
                }
            } else {
                let allowed = allowance.cell(&theirs, r, c);
                assert!(
                    tolerance::within(number(x), number(y), allowed),
                    "{what}: line {line}: `{name}` is {x}, ClinicaDL {y}: they differ by more than {allowed:e}"
                );
            }
        }
    }
    flipped
}

/// One block of a metrics TSV: metric names and the `Values` cells (a multi-network MAPS
/// writes one block per network).
struct Block {
    names: Vec<String>,
    values: Vec<String>,
}

fn metric_blocks(text: &str) -> Vec<Block> {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut blocks = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.first() == Some(&"Metrics") {
            blocks.push(Block {
                names: line[1..].iter().map(|s| (*s).to_owned()).collect(),
                values: lines[i + 1][1..].iter().map(|s| (*s).to_owned()).collect(),
            });
        }
    }
    if blocks.is_empty() {
        // Image-level metrics of a vote: a header of names and one row of values.
        blocks.push(Block {
            names: lines[0].iter().map(|s| (*s).to_owned()).collect(),
            values: lines[1].iter().map(|s| (*s).to_owned()).collect(),
        });
    }
    blocks
}

/// Compares two metrics TSVs: the layout, and each value within its bound.
fn compare_metrics(
    actual: &str,
    expected: &str,
    (ours, theirs, flipped): (&Predictions, &Predictions, &[bool]),
    allowance: &Allowance,
    settings: Settings,
    what: &str,
) {
    let shape = |t: &str| t.lines().map(|l| l.split('\t').count()).collect::<Vec<_>>();
    assert_eq!(shape(actual), shape(expected), "{what}: layout");
    let (our_blocks, their_blocks) = (metric_blocks(actual), metric_blocks(expected));
    assert_eq!(our_blocks.len(), their_blocks.len(), "{what}: blocks");
    let several = their_blocks.len() > 1;
    for (k, (a, e)) in our_blocks.iter().zip(&their_blocks).enumerate() {
        assert_eq!(a.names, e.names, "{what}: metric names");
        // The rows of this block: those of network k when there are several.
        let rows: Vec<usize> = (0..theirs.rows.len())
            .filter(|&r| !several || theirs.element(r) == k.to_string())
            .collect();
        let bounds = MetricBounds::new(theirs, ours, &rows, flipped, allowance, settings);
        for (i, name) in e.names.iter().enumerate() {
            let (x, y) = (number(&a.values[i]), number(&e.values[i]));
            let (want, allowed) = bounds.of(name, y);
            assert!(
                tolerance::within(x, want, allowed),
                "{what}: block {k}: `{name}` is {x}, expected {want} (ClinicaDL {y}): they differ by more than {allowed:e}"
            );
        }
    }
}

/// The expected value and tolerance of each metric of one block.
struct MetricBounds<'a> {
    theirs: &'a Predictions,
    ours: &'a Predictions,
    rows: &'a [usize],
    any_flipped: bool,
    allowance: &'a Allowance,
    settings: Settings,
}

impl<'a> MetricBounds<'a> {
    fn new(
        theirs: &'a Predictions,
        ours: &'a Predictions,
        rows: &'a [usize],
        flipped: &[bool],
        allowance: &'a Allowance,
        settings: Settings,
    ) -> Self {
        MetricBounds {
            theirs,
            ours,
            rows,
            any_flipped: rows.iter().any(|&r| flipped[r]),
            allowance,
            settings,
        }
    }

    /// `(expected value, tolerance)` of the metric `name` whose ClinicaDL value is `theirs`.
    fn of(&self, name: &str, theirs: f64) -> (f64, f64) {
        let rounding = tolerance::DOUBLE_ROUNDING * theirs.abs();
        if name == "loss" {
            return (
                theirs,
                self.loss_bound() + tolerance::REDUCTION * theirs.abs(),
            );
        }
        match *self.allowance {
            Allowance::Classification { .. } => {
                // Labels are exact: where a near-tie flipped one, the metric follows from ours.
                if self.any_flipped {
                    let recomputed = self.classification(self.ours, name);
                    let formula = self.classification(self.theirs, name);
                    assert!(
                        tolerance::within(formula, theirs, rounding),
                        "`{name}`: ClinicaDL's {theirs} is not the metric of its own rows ({formula})"
                    );
                    (recomputed, tolerance::DOUBLE_ROUNDING * recomputed.abs())
                } else {
                    (theirs, rounding)
                }
            }
            Allowance::Regression { output_error } => {
                let (truth, predicted) = self.regression_columns();
                let index = metrics::REGRESSION_METRICS
                    .iter()
                    .position(|m| *m == name)
                    .unwrap_or_else(|| panic!("no tolerance rule for the metric `{name}`"));
                let metric = |p: &[f64]| regression_metrics(&truth, p)[index].1.as_f64();
                let deltas = vec![output_error; predicted.len()];
                (
                    theirs,
                    tolerance::first_order_bound(metric, &predicted, &deltas) + rounding,
                )
            }
            Allowance::Reconstruction { .. } => {
                // Means of the columns: the mean of the rows' tolerances.
                let column = self.theirs.column(name);
                let total: f64 = self
                    .rows
                    .iter()
                    .map(|&r| self.allowance.cell(self.theirs, r, column))
                    .sum();
                (
                    theirs,
                    total / self.rows.len() as f64 + tolerance::REDUCTION * theirs.abs(),
                )
            }
        }
    }

    /// A classification metric of the labels of `rows`.
    fn classification(&self, rows: &Predictions, name: &str) -> f64 {
        let (truth, predicted): (Vec<i64>, Vec<i64>) = self
            .rows
            .iter()
            .map(|&r| {
                (
                    rows.true_class(r),
                    rows.rows[r][rows.column("predicted_label")]
                        .parse::<i64>()
                        .unwrap(),
                )
            })
            .unzip();
        let classes = rows.probabilities(0).len();
        classification_metrics(&truth, &predicted, classes)
            .into_iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no tolerance rule for the metric `{name}`"))
            .1
            .as_f64()
    }

    /// ClinicaDL's true labels and predictions (regression).
    fn regression_columns(&self) -> (Vec<f64>, Vec<f64>) {
        let (t, p) = (
            self.theirs.column("true_label"),
            self.theirs.column("predicted_label"),
        );
        self.rows
            .iter()
            .map(|&r| (self.theirs.number(r, t), self.theirs.number(r, p)))
            .unzip()
    }

    /// `loss` is Σ over the batches of the mean of the elements' losses: at most the number
    /// of batches times the largest element bound.
    fn loss_bound(&self) -> f64 {
        let batches = self.rows.len().div_ceil(self.settings.batch_size.max(1));
        let largest = self
            .rows
            .iter()
            .map(|&r| self.allowance.loss_term(self.theirs, r))
            .fold(0.0, f64::max);
        batches as f64 * largest
    }
}

/// Compares a saved tensor (`.pt`) or NIfTI image (`.nii.gz`) with ClinicaDL's: an input
/// within a few float32 roundings of the scale, an output within the network's error.
pub fn saved_file(actual: &Path, expected: &Path, relative: f64) {
    let what = expected.display().to_string();
    let (a, e, shape_a, shape_e) = if what.ends_with(".pt") {
        let (a, e) = (
            clinicadl_rs::torchfile::read_tensor(actual).unwrap(),
            clinicadl_rs::torchfile::read_tensor(expected).unwrap(),
        );
        assert_eq!(a.requires_grad, e.requires_grad, "{what}: requires_grad");
        (
            a.to_f32_vec().unwrap(),
            e.to_f32_vec().unwrap(),
            a.shape.clone(),
            e.shape.clone(),
        )
    } else if what.ends_with(".nii.gz") {
        let read = |p: &Path| {
            let v = crate::harness::read_nifti_f32(p);
            (v.iter().copied().collect::<Vec<f32>>(), v.shape().to_vec())
        };
        let ((a, sa), (e, se)) = (read(actual), read(expected));
        (a, e, sa, se)
    } else {
        panic!("{what}: unexpected saved file");
    };
    assert_eq!(shape_a, shape_e, "{what}: shape");
    let is_input = what.ends_with("_input.pt") || what.ends_with("_input.nii.gz");
    let scale = tolerance::scale(e.iter().map(|&v| f64::from(v)));
    let allowed = if is_input {
        tolerance::ELEMENTWISE * scale
    } else {
        relative * scale
    };
    for (i, (x, y)) in a.iter().zip(&e).enumerate() {
        assert!(
            tolerance::within(f64::from(*x), f64::from(*y), allowed),
            "{what}: value {i}: {x}, ClinicaDL {y}: they differ by more than {allowed:e}"
        );
    }
}

/// The comparison itself: what it lets through and what it stops.
mod self_tests {
    use super::*;

    const HEADER: &str =
        "participant_id\tsession_id\timage_id\ttrue_label\tpredicted_label\tproba0\tproba1";

    fn classification(rows: &[(&str, f64)]) -> String {
        let mut text = HEADER.to_owned();
        for (i, (label, p)) in rows.iter().enumerate() {
            text.push_str(&format!(
                "\nsub-{i}\tses-M000\t0\t0\t{label}\t{p}\t{}",
                1.0 - p
            ));
        }
        text
    }

    const LOGITS: Allowance = Allowance::Classification { logit_error: 1e-6 };

    #[test]
    fn probabilities_within_the_softmax_tolerance_pass() {
        let flipped = compare_predictions(
            &classification(&[("0", 0.8 + 2e-7)]),
            &classification(&[("0", 0.8)]),
            &LOGITS,
            "t",
        );
        assert_eq!(flipped, [false]);
    }

    #[test]
    #[should_panic(expected = "they differ by more than")]
    fn probabilities_beyond_it_fail() {
        compare_predictions(
            &classification(&[("0", 0.8 + 1e-6)]),
            &classification(&[("0", 0.8)]),
            &LOGITS,
            "t",
        );
    }

    #[test]
    fn a_label_may_flip_in_a_near_tie() {
        let flipped = compare_predictions(
            &classification(&[("1", 0.5 - 1e-7)]),
            &classification(&[("0", 0.5 + 1e-7)]),
            &LOGITS,
            "t",
        );
        assert_eq!(flipped, [true]);
    }

    #[test]
    #[should_panic(expected = "without a near-tie")]
    fn and_nowhere_else() {
        compare_predictions(
            &classification(&[("1", 0.6)]),
            &classification(&[("0", 0.6)]),
            &LOGITS,
            "t",
        );
    }

    fn regression(predictions: &[f64]) -> String {
        let mut text =
            "participant_id\tsession_id\timage_id\ttrue_label\tpredicted_label".to_owned();
        for (i, p) in predictions.iter().enumerate() {
            text.push_str(&format!("\nsub-{i}\tses-M000\t0\t{}\t{p}", 70.0 + i as f64));
        }
        text
    }

    fn r2_within(ours: &[f64], theirs: &[f64], output_error: f64) {
        let allowance = Allowance::Regression { output_error };
        compare_predictions(&regression(ours), &regression(theirs), &allowance, "t");
        let metrics = |p: &[f64]| {
            let truth: Vec<f64> = (0..p.len()).map(|i| 70.0 + i as f64).collect();
            let r2 = regression_metrics(&truth, p)[0].1.as_f64();
            format!("Metrics\tR2_score\nValues\t{r2}\n")
        };
        compare_metrics(
            &metrics(ours),
            &metrics(theirs),
            (
                &Predictions::parse(&regression(ours)),
                &Predictions::parse(&regression(theirs)),
                &vec![false; ours.len()],
            ),
            &allowance,
            Settings::default(),
            "t",
        );
    }

    #[test]
    fn an_r2_near_zero_is_compared_at_its_inputs_error() {
        // R2 close to 0: a relative comparison would fail on float32 noise of the outputs.
        let theirs = [71.1, 69.9, 73.1, 71.85];
        let ours = [71.1 + 9e-6, 69.9 - 9e-6, 73.1, 71.85 + 9e-6];
        r2_within(&ours, &theirs, 1e-5);
    }

    #[test]
    #[should_panic(expected = "`R2_score`")]
    fn an_r2_off_by_more_fails() {
        let theirs = [71.1, 69.9, 73.1, 71.85];
        let ours = [71.1 + 9e-6, 69.9, 73.1, 71.85];
        // Within the outputs' tolerance, but the R2 given is another one.
        let allowance = Allowance::Regression { output_error: 1e-5 };
        let rows = |p: &[f64]| Predictions::parse(&regression(p));
        compare_metrics(
            "Metrics\tR2_score\nValues\t0.0301\n",
            "Metrics\tR2_score\nValues\t0.03\n",
            (&rows(&ours), &rows(&theirs), &[false; 4]),
            &allowance,
            Settings::default(),
            "t",
        );
    }
}
