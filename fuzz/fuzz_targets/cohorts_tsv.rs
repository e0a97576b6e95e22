//! The two TSVs of a multi-cohort data group: the CAPS list (`cohort, path`) and the
//! participants list (`cohort, diagnoses, path`), parsed from bytes (the participants files
//! they list are not read). `caps_mapping` reads its file with `Table::read` and goes through
//! the same code as `parse_caps_mapping`.

#![no_main]

use std::path::Path;

use clinicadl_rs::caps::cohorts::{parse_caps_mapping, parse_cohort_list};
use clinicadl_rs_fuzz as _;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let origin = Path::new("cohorts.tsv");
    if let Ok(mapping) = parse_caps_mapping(data, origin) {
        assert!(!mapping.is_empty());
        for (i, (cohort, _)) in mapping.iter().enumerate() {
            assert!(
                mapping[..i].iter().all(|(other, _)| other != cohort),
                "cohort listed twice"
            );
        }
    }
    let diagnoses = ["AD".to_owned(), "CN".to_owned()];
    if let Ok(list) = parse_cohort_list(data, origin, &diagnoses) {
        for (_, kept, _) in &list {
            assert!(kept.iter().all(|d| diagnoses.contains(d)));
        }
    }
});
