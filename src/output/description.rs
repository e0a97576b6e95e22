//! Writer of `description.log` (docs/ARCHITECTURE.md, "description.log and number formatting"):
//! four lines, Python's `str(datetime.now())` timestamp and the CAPS mapping printed as a Python
//! dict of `PosixPath`s.

use std::io::Write;

use crate::pyrepr::repr_str;

/// Python `str(datetime)`: `YYYY-MM-DD HH:MM:SS.ffffff`, the fraction omitted when zero.
pub fn python_timestamp(t: &chrono::DateTime<chrono::Local>) -> String {
    let micros = t.timestamp_subsec_micros() % 1_000_000;
    if micros == 0 {
        t.format("%Y-%m-%d %H:%M:%S").to_string()
    } else {
        format!("{}.{micros:06}", t.format("%Y-%m-%d %H:%M:%S"))
    }
}

/// Writes the four lines of `description.log`.
pub fn write_description<W: Write>(
    mut w: W,
    group: &str,
    when: &chrono::DateTime<chrono::Local>,
    caps: &[(String, std::path::PathBuf)],
    participants: usize,
    sessions: usize,
) -> std::io::Result<()> {
    let mapping: Vec<String> = caps
        .iter()
        .map(|(cohort, path)| {
            format!(
                "{}: PosixPath({})",
                repr_str(cohort),
                repr_str(&path.to_string_lossy())
            )
        })
        .collect();
    write!(
        w,
        "Prediction {group} group - {}\nData loaded from CAPS directories: {{{}}}\nNumber of participants: {participants}\nNumber of sessions: {sessions}\n",
        python_timestamp(when),
        mapping.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn matches_the_verified_example() {
        let when = chrono::Local
            .with_ymd_and_hms(2026, 11, 27, 18, 2, 16)
            .unwrap()
            + chrono::Duration::microseconds(718922);
        let mut out = Vec::new();
        write_description(
            &mut out,
            "test",
            &when,
            &[("single".into(), "caps".into())],
            3,
            4,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "Prediction test group - 2026-11-27 18:02:16.718922\nData loaded from CAPS directories: {'single': PosixPath('caps')}\nNumber of participants: 3\nNumber of sessions: 4\n"
        );
        let whole = chrono::Local.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(python_timestamp(&whole), "2026-01-02 03:04:05");
        assert_eq!(repr_str("it's"), "\"it's\"");
    }
}
