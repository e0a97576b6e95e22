//! The element-level validation predictions a patch, slice or ROI MAPS keeps from training
//! (`split-<k>/best-<m>/validation/validation_<mode>_level_prediction.tsv`), read back into
//! rows: each element's accuracy weights the soft vote of the image level.
//!
//! ClinicaDL: `MapsManager._ensemble_prediction` (`pd.read_csv` of the validation predictions).

use std::path::Path;

use anyhow::Result;

use crate::maps::json::Task;
use crate::rows::{Row, RowValues};
use crate::tsv::{Cell, Table};

/// Reads a prediction TSV back into rows (the columns soft voting needs).
pub fn read_prediction_rows(path: &Path, mode: &str, task: Task) -> Result<Vec<Row>> {
    let table = Table::read(path)?;
    let column = |name: &str| table.require_column(name, path);
    let (p, s, id) = (
        column("participant_id")?,
        column("session_id")?,
        column(&format!("{mode}_id"))?,
    );
    let (t, pred) = (column("true_label")?, column("predicted_label")?);
    let mut rows = Vec::with_capacity(table.rows.len());
    for (i, r) in table.rows.iter().enumerate() {
        let bad = |what: &str| {
            anyhow::anyhow!(
                "`{}` line {}: `{what}` is not a number",
                path.display(),
                i + 2
            )
        };
        let element_id = match &r[id] {
            Cell::Int(v) if *v >= 0 => *v as usize,
            _ => return Err(bad(&format!("{mode}_id"))),
        };
        let values = match task {
            Task::Classification => {
                let int = |c: &Cell, what: &str| match c {
                    Cell::Int(v) => Ok(*v),
                    _ => Err(bad(what)),
                };
                RowValues::Classification {
                    true_label: int(&r[t], "true_label")?,
                    predicted_label: int(&r[pred], "predicted_label")?,
                    probabilities: Vec::new(),
                }
            }
            _ => RowValues::Regression {
                true_label: r[t].as_f64(),
                predicted_label: r[pred].as_f64().ok_or_else(|| bad("predicted_label"))?,
            },
        };
        rows.push(Row {
            participant_id: r[p].py_str(),
            session_id: r[s].py_str(),
            element_id,
            values,
        });
    }
    Ok(rows)
}
