//! Problems found by the up-front checks, reported together: each once, in the order found,
//! each with its kind, so that a list with a usage problem exits as a usage error (2) and one
//! of runtime problems as a runtime error (1), whatever path found them (see `error.rs`).

use anyhow::Result;

use crate::error::{UsageError, exit_code};

/// What kind of problem: decides the exit code of the whole list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An option is wrong or not allowed (exit 2).
    Usage,
    /// A file or its content is wrong (exit 1).
    Runtime,
}

/// One problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Its kind.
    pub kind: Kind,
    /// What is wrong and where.
    pub message: String,
}

/// Problems found so far.
#[derive(Debug, Default)]
pub struct Problems(Vec<Problem>);

impl Problems {
    /// A runtime problem (a file or its content).
    pub fn push(&mut self, message: String) {
        self.add(Kind::Runtime, message);
    }

    /// A problem with how the command was called.
    pub fn push_usage(&mut self, message: String) {
        self.add(Kind::Usage, message);
    }

    /// An error with its causes, on one line (its own lists indented below it), of the kind its
    /// chain says (a [`UsageError`] in it makes a usage problem).
    pub fn push_error(&mut self, error: &anyhow::Error) {
        let kind = if exit_code(error) == crate::error::EXIT_USAGE {
            Kind::Usage
        } else {
            Kind::Runtime
        };
        self.add(kind, crate::ui::one_line(error));
    }

    fn add(&mut self, kind: Kind, message: String) {
        if !self.0.iter().any(|p| p.message == message) {
            self.0.push(Problem { kind, message });
        }
    }

    /// The problems found so far.
    pub fn all(&self) -> &[Problem] {
        &self.0
    }

    /// Fails with every problem, when there is one: as a usage error if one of them is.
    pub fn check(self) -> Result<()> {
        let usage = self.0.iter().any(|p| p.kind == Kind::Usage);
        let messages: Vec<String> = self.0.into_iter().map(|p| p.message).collect();
        let text = match messages.as_slice() {
            [] => return Ok(()),
            [one] => one.clone(),
            all => format!(
                "{} found before anything was written:\n{}",
                crate::ui::count_problems(all.len()),
                crate::ui::bullet_list(all)
            ),
        };
        if usage {
            Err(UsageError::new(text).into())
        } else {
            Err(anyhow::anyhow!(text))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_usage_problem_makes_the_list_a_usage_error() {
        let mut problems = Problems::default();
        problems.push("a missing file".to_owned());
        problems.push("a missing file".to_owned());
        assert_eq!(problems.all().len(), 1, "each problem once");
        let wrapped = anyhow::Error::new(UsageError::new("not a TSV")).context("cohort A");
        problems.push_error(&wrapped);
        assert_eq!(problems.all()[1].kind, Kind::Usage);
        let error = problems.check().unwrap_err();
        assert_eq!(exit_code(&error), crate::error::EXIT_USAGE);
        assert!(error.to_string().starts_with("2 problems found"), "{error}");
        let mut runtime = Problems::default();
        runtime.push_error(&anyhow::anyhow!("no such file").context("cannot read `x`"));
        let error = runtime.check().unwrap_err();
        assert_eq!(exit_code(&error), crate::error::EXIT_FAILURE);
        assert_eq!(error.to_string(), "cannot read `x`: no such file");
        assert!(Problems::default().check().is_ok());
    }
}
