//! Everything the user sees besides data: log lines in ClinicaDL's console format
//! (`HH:MM:SS - message`, `HH:MM:SS - WARNING: message`), progress (a bar on a terminal, plain
//! lines in a log file), and the one place where an error is printed (`error: …`, its causes,
//! then `hint: …`). All of it goes to stderr; stdout is left for data.
#![allow(clippy::print_stderr)]

use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

static VERBOSE: AtomicBool = AtomicBool::new(false);

/// Turns debug messages on (`-v`).
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, Ordering::Relaxed);
}

fn clock() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// An INFO line.
pub fn info(message: &str) {
    eprintln!("{} - {message}", clock());
}

/// A WARNING line.
pub fn warn(message: &str) {
    eprintln!("{} - WARNING: {message}", clock());
}

/// A DEBUG line, shown with `-v` only.
pub fn debug(message: &str) {
    if VERBOSE.load(Ordering::Relaxed) {
        eprintln!("{} - DEBUG: {message}", clock());
    }
}

/// The messages of an error and of its causes, each once: a cause whose text an earlier message
/// already holds (an error that prints its source, which the chain then lists again) is left out.
pub fn error_messages(error: &anyhow::Error) -> Vec<String> {
    let mut messages: Vec<String> = Vec::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if !messages.iter().any(|m| m.contains(&text)) {
            messages.push(text);
        }
    }
    messages
}

/// An error and its causes on one line, `a: b: c`, each message once.
pub fn one_line(error: &anyhow::Error) -> String {
    error_messages(error).join(": ")
}

/// Prints the `--json` document on stdout (the one print to stdout besides `--dry-run`'s plan).
#[allow(clippy::print_stdout)]
pub fn print_json(document: &serde_json::Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(document).unwrap_or_default()
    );
}

/// Prints an error and its chain of causes once, with a hint when one helps.
pub fn print_error(error: &anyhow::Error, hint: Option<&str>) {
    let messages = error_messages(error);
    eprintln!("error: {}", messages.join("\n  caused by: "));
    if let Some(hint) = hint {
        eprintln!("hint: {hint}");
    }
}

/// Progress over a known number of items.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    label: String,
    unit: String,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

impl Progress {
    /// A bar on a terminal (unless NO_COLOR/TERM=dumb asks for plain output), plain lines
    /// every few seconds otherwise.
    /// `unit` names the items in plain lines (e.g. `images`, `patches`).
    pub fn new(label: &str, unit: &str, total: u64) -> Self {
        let terminal =
            std::io::stderr().is_terminal() && std::env::var_os("TERM").is_none_or(|t| t != "dumb");
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            let template = if std::env::var_os("NO_COLOR").is_some() {
                "{msg} [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})"
            } else {
                "{msg} [{bar:30.cyan/blue}] {pos}/{len} ({per_sec}, eta {eta})"
            };
            if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_message(label.to_owned());
            bar
        });
        Progress {
            bar,
            label: label.to_owned(),
            unit: unit.to_owned(),
            total,
            done: 0,
            started: Instant::now(),
            last_line: Instant::now(),
        }
    }

    /// Records `n` more items done.
    pub fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => {
                if self.last_line.elapsed() >= Duration::from_secs(10)
                    || (self.done == self.total && self.total > 0)
                {
                    self.last_line = Instant::now();
                    let rate = self.done as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
                    info(&format!(
                        "{}: {}/{} {} ({rate:.1}/s)",
                        self.label, self.done, self.total, self.unit
                    ));
                }
            }
        }
    }

    /// Items done so far.
    pub fn done(&self) -> u64 {
        self.done
    }

    /// Ends the bar (or nothing for plain output).
    pub fn finish(self) {
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Most problems listed in one message; the rest are counted.
const MAX_LISTED_PROBLEMS: usize = 20;

/// "1 problem", "3 problems".
pub fn count_problems(n: usize) -> String {
    format!("{n} problem{}", if n == 1 { "" } else { "s" })
}

/// The problems as an indented bullet list (a problem's own lines indented under it), the
/// first [`MAX_LISTED_PROBLEMS`] of them, then how many more.
pub fn bullet_list(problems: &[String]) -> String {
    let mut lines: Vec<String> = problems
        .iter()
        .take(MAX_LISTED_PROBLEMS)
        .map(|p| format!("  * {}", p.replace('\n', "\n    ")))
        .collect();
    if problems.len() > MAX_LISTED_PROBLEMS {
        lines.push(format!(
            "  * … and {} more",
            problems.len() - MAX_LISTED_PROBLEMS
        ));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_problem_lists_are_cut_and_counted() {
        let problems: Vec<String> = (0..25).map(|i| format!("problem {i}")).collect();
        let text = bullet_list(&problems);
        assert_eq!(text.lines().count(), MAX_LISTED_PROBLEMS + 1);
        assert!(text.starts_with("  * problem 0\n  * problem 1\n"));
        assert!(text.ends_with("  * problem 19\n  * … and 5 more"), "{text}");
        assert_eq!(bullet_list(&problems[..2]), "  * problem 0\n  * problem 1");
        assert_eq!(count_problems(1), "1 problem");
        assert_eq!(count_problems(3), "3 problems");
    }

    #[derive(Debug, thiserror::Error)]
    #[error("`maps.json` is not valid JSON: {source}")]
    struct Parse {
        source: std::io::Error,
    }

    #[test]
    fn a_cause_already_in_its_error_is_printed_once() {
        let source = std::io::Error::other("EOF while parsing");
        let error = anyhow::Error::new(Parse { source }).context("cannot open the MAPS");
        assert_eq!(
            error_messages(&error),
            [
                "cannot open the MAPS",
                "`maps.json` is not valid JSON: EOF while parsing"
            ]
        );
        assert_eq!(
            one_line(&error),
            "cannot open the MAPS: `maps.json` is not valid JSON: EOF while parsing"
        );
        let plain = anyhow::anyhow!("no such file").context("cannot read `x`");
        assert_eq!(error_messages(&plain), ["cannot read `x`", "no such file"]);
    }

    #[test]
    fn a_problem_with_its_own_list_is_indented_under_its_bullet() {
        let problems = vec!["two problems:\n  * a\n  * b".to_owned(), "c".to_owned()];
        assert_eq!(
            bullet_list(&problems),
            "  * two problems:\n      * a\n      * b\n  * c"
        );
    }
}
