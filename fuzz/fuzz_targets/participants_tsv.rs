//! A participants TSV (`--participants_tsv`, a group's `data.tsv`): the table parser with
//! pandas' typing rules, the duplicate-session check, the group table built from it, the
//! participants loading (from a scratch file: it takes a path) and a write-read round trip.

#![no_main]

use std::path::Path;

use clinicadl_rs::caps::participants::{Diagnoses, check_unique_sessions, load_participants};
use clinicadl_rs::maps::group::group_data_table;
use clinicadl_rs::tsv::Table;
use clinicadl_rs_fuzz::scratch_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("participants.tsv");
    let Ok(table) = Table::parse(data, origin) else {
        return;
    };
    assert!(
        table
            .rows
            .iter()
            .all(|row| row.len() == table.columns.len())
    );
    let _ = check_unique_sessions(&table, origin);
    let group = group_data_table(&table, Some("diagnosis"), Some("age"));
    let _ = group.to_tsv_string();
    for (index, _) in table.columns.iter().enumerate() {
        for cell in table.column(index) {
            let _ = (cell.py_str(), cell.as_f64(), cell.as_text());
        }
    }
    // What the crate writes (a group's data.tsv), it reads back the same.
    if table.columns.len() >= 2 {
        let written = table.to_tsv_string();
        match Table::parse(written.as_bytes(), origin) {
            Ok(again) => assert_eq!(again, table, "round trip through {written:?}"),
            Err(e) => panic!("the written table {written:?} does not parse: {e}"),
        }
    }
    let path = scratch_file("participants.tsv", data);
    let diagnoses = ["AD".to_owned(), "CN".to_owned(), "MCI".to_owned()];
    // With a `diagnosis` column, every variant filters on it; without, `Given` refuses the
    // table and `Training` without labels keeps every row.
    let variant = if table.column_index("diagnosis").is_some() {
        Diagnoses::Given(&diagnoses)
    } else {
        Diagnoses::Training {
            diagnoses: &diagnoses,
            use_labels: false,
        }
    };
    let _ = load_participants(&path, variant);
});
