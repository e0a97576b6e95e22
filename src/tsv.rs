//! TSV tables read and written the way ClinicaDL does it through pandas 1.5
//! (`read_csv(sep="\t")` / `to_csv(sep="\t", index=False)`): column typing (int, float, bool,
//! string), pandas' missing-value markers, duplicate column names suffixed `.1`, `.2`, and the
//! writing dialect of formats.md §2.1. Used for participants TSVs, `data.tsv`,
//! `train+validation.tsv` and the prediction TSVs re-read for ensembling.
//!
//! This module knows nothing of MAPS or CAPS; it only turns text into typed cells and back.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pyrepr::repr_f64;

/// Errors of TSV reading.
#[derive(Debug, thiserror::Error)]
pub enum TsvError {
    /// The file could not be read.
    #[error("cannot read `{path}`: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a valid TSV table.
    #[error("`{path}` is not a valid TSV file: {message}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A required column is absent.
    #[error("`{path}` has no column `{column}` (columns: {columns})")]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The missing column.
        column: String,
        /// The columns present, comma separated.
        columns: String,
    },
}

/// One typed cell, as pandas would hold it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    /// A missing value (empty, `NA`, `nan`, …).
    Missing,
    /// A value of an integer column.
    Int(i64),
    /// A value of a float column (or an integer column with missing values).
    Float(f64),
    /// A value of a boolean column (`True`/`False`).
    Bool(bool),
    /// A value of a string column.
    Str(String),
}

impl Cell {
    /// Python `str()` of the value (`nan` for a missing value, `69.0` for a float), which is
    /// what ClinicaDL looks up in `label_code`.
    pub fn py_str(&self) -> String {
        match self {
            Cell::Missing => "nan".to_owned(),
            Cell::Int(i) => i.to_string(),
            Cell::Float(f) => repr_f64(*f),
            Cell::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            Cell::Str(s) => s.clone(),
        }
    }

    /// The value as written by `to_csv` (missing → empty).
    pub fn to_field(&self) -> String {
        match self {
            Cell::Missing => String::new(),
            Cell::Float(f) if f.is_nan() => String::new(),
            other => other.py_str(),
        }
    }

    /// The value as a float (`float()` in Python); `None` for strings that are not numbers.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Cell::Missing => Some(f64::NAN),
            Cell::Int(i) => Some(*i as f64),
            Cell::Float(f) => Some(*f),
            Cell::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
            Cell::Str(s) => parse_py_float(s),
        }
    }

    /// The value as text when it is a string cell or an integer (ids such as `sub-01`).
    pub fn as_text(&self) -> Option<String> {
        match self {
            Cell::Missing => None,
            other => Some(other.py_str()),
        }
    }
}

impl fmt::Display for Cell {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.py_str())
    }
}

/// pandas 1.5's default missing-value markers.
const NA_MARKERS: &[&str] = &[
    "", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
    "<NA>", "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null",
];

/// Whether pandas reads this field as missing.
pub fn is_na_marker(field: &str) -> bool {
    NA_MARKERS.contains(&field)
}

fn parse_py_float(s: &str) -> Option<f64> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    match lower.as_str() {
        "inf" | "+inf" | "infinity" | "+infinity" => return Some(f64::INFINITY),
        "-inf" | "-infinity" => return Some(f64::NEG_INFINITY),
        _ => {}
    }
    if t.is_empty()
        || !t
            .bytes()
            .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
    {
        return None;
    }
    t.parse::<f64>().ok()
}

fn parse_int(s: &str) -> Option<i64> {
    let t = s.trim();
    let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    t.parse::<i64>().ok()
}

/// A table with named columns of typed cells, rows in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column names (duplicates suffixed `.1`, `.2` as pandas does).
    pub columns: Vec<String>,
    /// Rows, each with one cell per column.
    pub rows: Vec<Vec<Cell>>,
}

impl Table {
    /// A new empty table with these columns.
    pub fn new(columns: Vec<String>) -> Self {
        Table {
            columns,
            rows: Vec::new(),
        }
    }

    /// Reads a TSV file with pandas' rules.
    pub fn read(path: &Path) -> Result<Table, TsvError> {
        let bytes = std::fs::read(path).map_err(|source| TsvError::Io {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&bytes, path)
    }

    /// Parses TSV bytes with pandas' rules; `path` is only used in messages.
    pub fn parse(bytes: &[u8], path: &Path) -> Result<Table, TsvError> {
        let format_error = |message: String| TsvError::Format {
            path: path.to_owned(),
            message,
        };
        let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(b'\t')
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        let mut records = reader.records();
        let header = match records.next() {
            None => {
                return Err(format_error(
                    "the file is empty (no header line)".to_owned(),
                ));
            }
            Some(r) => r.map_err(|e| format_error(e.to_string()))?,
        };
        // pandas: a name already taken gets the first free `.1`, `.2`… suffix. Each name's
        // next suffix to try is kept (the ones below it stay taken), so that a header of n
        // equal names takes O(n), not O(n³) (a hang on a hostile header).
        let mut columns: Vec<String> = Vec::new();
        let mut taken: HashSet<String> = HashSet::new();
        let mut next_suffix: HashMap<&str, usize> = HashMap::new();
        for name in header.iter() {
            let mut candidate = name.to_owned();
            if taken.contains(&candidate) {
                let k = next_suffix.entry(name).or_insert(1);
                loop {
                    candidate = format!("{name}.{k}");
                    *k += 1;
                    if !taken.contains(&candidate) {
                        break;
                    }
                }
            }
            taken.insert(candidate.clone());
            columns.push(candidate);
        }
        let mut raw: Vec<Vec<String>> = Vec::new();
        for (i, record) in records.enumerate() {
            let record = record.map_err(|e| format_error(e.to_string()))?;
            if record.len() == 1 && record.get(0) == Some("") {
                continue; // blank line, skipped by pandas
            }
            if record.len() > columns.len() {
                return Err(format_error(format!(
                    "line {} has {} fields but the header has {}",
                    i + 2,
                    record.len(),
                    columns.len()
                )));
            }
            let mut row: Vec<String> = record.iter().map(str::to_owned).collect();
            row.resize(columns.len(), String::new());
            raw.push(row);
        }
        let mut rows: Vec<Vec<Cell>> = vec![Vec::with_capacity(columns.len()); raw.len()];
        for c in 0..columns.len() {
            let column: Vec<&str> = raw.iter().map(|r| r[c].as_str()).collect();
            for (row, cell) in rows.iter_mut().zip(type_column(&column)) {
                row.push(cell);
            }
        }
        Ok(Table { columns, rows })
    }

    /// Index of a column, if present.
    pub fn column_index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// Index of a column, or an error naming the file and the columns that exist.
    pub fn require_column(&self, name: &str, path: &Path) -> Result<usize, TsvError> {
        self.column_index(name)
            .ok_or_else(|| TsvError::MissingColumn {
                path: path.to_owned(),
                column: name.to_owned(),
                columns: self.columns.join(", "),
            })
    }

    /// The cells of one column.
    pub fn column(&self, index: usize) -> impl Iterator<Item = &Cell> {
        self.rows.iter().map(move |r| &r[index])
    }

    /// Writes the table as pandas' `to_csv(sep="\t", index=False)` does.
    pub fn write<W: Write>(&self, mut w: W) -> std::io::Result<()> {
        write_row(&mut w, self.columns.iter().map(String::as_str))?;
        for row in &self.rows {
            let fields: Vec<String> = row.iter().map(Cell::to_field).collect();
            write_row(&mut w, fields.iter().map(String::as_str))?;
        }
        Ok(())
    }

    /// The table as TSV text.
    pub fn to_tsv_string(&self) -> String {
        let mut out = Vec::new();
        // Writing to a Vec cannot fail.
        let _ = self.write(&mut out);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Types a column as pandas does: int64 if every non-missing value is an integer, float64 if
/// every one is a number (ints with missing values too), bool for True/False, else strings.
fn type_column(fields: &[&str]) -> Vec<Cell> {
    let present: Vec<&str> = fields
        .iter()
        .copied()
        .filter(|f| !is_na_marker(f))
        .collect();
    let has_missing = present.len() < fields.len();
    let all_int = !present.is_empty() && present.iter().all(|f| parse_int(f).is_some());
    let all_float = !present.is_empty() && present.iter().all(|f| parse_py_float(f).is_some());
    let all_bool = !present.is_empty()
        && !has_missing
        && present
            .iter()
            .all(|f| matches!(*f, "True" | "False" | "TRUE" | "FALSE" | "true" | "false"));
    fields
        .iter()
        .map(|f| {
            if is_na_marker(f) {
                Cell::Missing
            } else if all_int && !has_missing {
                parse_int(f).map_or(Cell::Missing, Cell::Int)
            } else if all_int || all_float {
                parse_py_float(f).map_or(Cell::Missing, Cell::Float)
            } else if all_bool {
                Cell::Bool(f.eq_ignore_ascii_case("true"))
            } else {
                Cell::Str((*f).to_owned())
            }
        })
        .collect()
}

/// Writes one TSV row with pandas' quoting rules (quote only fields with a tab, quote or newline;
/// a row made of one empty field is written `""`).
pub fn write_row<'a, W: Write, I: IntoIterator<Item = &'a str>>(
    w: &mut W,
    fields: I,
) -> std::io::Result<()> {
    let fields: Vec<&str> = fields.into_iter().collect();
    if fields.len() == 1 && fields[0].is_empty() {
        return w.write_all(b"\"\"\n");
    }
    for (i, f) in fields.iter().enumerate() {
        if i > 0 {
            w.write_all(b"\t")?;
        }
        if f.contains(['\t', '"', '\n', '\r']) {
            write!(w, "\"{}\"", f.replace('"', "\"\""))?;
        } else {
            w.write_all(f.as_bytes())?;
        }
    }
    w.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Table {
        Table::parse(text.as_bytes(), Path::new("t.tsv")).unwrap()
    }

    #[test]
    fn types_columns_like_pandas() {
        let t = parse("a\tb\tc\td\te\n1\t1.5\tx\t\tTrue\n2\t69\ty\tNA\tFalse\n");
        assert_eq!(
            t.rows[0],
            vec![
                Cell::Int(1),
                Cell::Float(1.5),
                Cell::Str("x".into()),
                Cell::Missing,
                Cell::Bool(true)
            ]
        );
        assert_eq!(t.rows[1][1], Cell::Float(69.0));
        assert_eq!(t.rows[1][1].to_field(), "69.0");
    }

    #[test]
    fn int_column_with_missing_becomes_float() {
        let t = parse("a\n1\n\n2\nnan\n");
        // the blank line is skipped, `nan` is missing
        assert_eq!(
            t.rows,
            vec![
                vec![Cell::Float(1.0)],
                vec![Cell::Float(2.0)],
                vec![Cell::Missing]
            ]
        );
        assert_eq!(t.rows[0][0].py_str(), "1.0");
    }

    #[test]
    fn duplicate_columns_get_suffixes() {
        let t = parse("x\tx\tx\n1\t2\t3\n");
        assert_eq!(t.columns, ["x", "x.1", "x.2"]);
        // A suffixed name already present is skipped, and suffixes nest.
        let t = parse("a\ta.1\ta\ta\ta.2.1\ta.2\n");
        assert_eq!(t.columns, ["a", "a.1", "a.2", "a.3", "a.2.1", "a.2.2"]);
    }

    /// Found by the `cohorts_tsv` fuzz target: a header of many equal (here empty) names took
    /// cubic time to suffix (over a second for 800 names, hours for 100 000).
    #[test]
    fn many_duplicate_columns_take_linear_time() {
        let n = 100_000;
        let header = vec![""; n].join("\t");
        let t = parse(&format!("{header}\n"));
        assert_eq!(t.columns.len(), n);
        assert_eq!(t.columns[1], ".1");
        assert_eq!(t.columns[n - 1], format!(".{}", n - 1));
    }

    #[test]
    fn short_rows_are_padded_long_rows_refused() {
        let t = parse("a\tb\n1\n");
        assert_eq!(t.rows[0][1], Cell::Missing);
        assert!(Table::parse(b"a\n1\t2\n", Path::new("t.tsv")).is_err());
        assert!(Table::parse(b"", Path::new("t.tsv")).is_err());
    }

    #[test]
    fn round_trip_writes_pandas_dialect() {
        let text = "participant_id\tsession_id\tage\nsub-01\tses-M000\t72.3\nsub-02\tses-M006\t\n";
        assert_eq!(parse(text).to_tsv_string(), text);
        let mut out = Vec::new();
        write_row(&mut out, ["a\tb", "q\"", ""]).unwrap();
        assert_eq!(out, b"\"a\tb\"\t\"q\"\"\"\t\n");
    }

    #[test]
    fn missing_column_error_names_file_and_columns() {
        let t = parse("a\tb\n1\t2\n");
        let e = t
            .require_column("diagnosis", Path::new("/x/p.tsv"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("`/x/p.tsv`") && e.contains("`diagnosis`") && e.contains("a, b"),
            "{e}"
        );
    }
}
