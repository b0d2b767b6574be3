//! Running the real `strata` binary from tests, and checking how it ended.
#![allow(dead_code)] // each test binary uses a different part of this module

use std::path::Path;
use std::process::{Command, Output};

/// A finished `strata` process.
pub struct Run {
    /// The arguments it ran with (for messages).
    pub args: Vec<String>,
    /// What it printed, and its exit status.
    pub out: Output,
}

impl Run {
    /// Standard output, as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.out.stdout).into_owned()
    }

    /// Standard error, as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.out.stderr).into_owned()
    }

    /// Asserts the process succeeded.
    #[track_caller]
    pub fn ok(self) -> Self {
        assert!(
            self.out.status.success(),
            "strata {:?} failed:\nstdout: {}\nstderr: {}",
            self.args,
            self.stdout(),
            self.stderr()
        );
        self
    }

    /// Asserts the process failed with an `error: …` line containing `needle`.
    #[track_caller]
    pub fn fails_with(self, needle: &str) -> Self {
        assert!(!self.out.status.success(), "strata {:?} should have failed; stdout: {}", self.args, self.stdout());
        assert!(self.stderr().starts_with("error: "), "errors start with 'error: ': {}", self.stderr());
        assert!(self.stderr().contains(needle), "stderr should contain {needle:?}: {}", self.stderr());
        self
    }
}

/// Runs `strata --store STORE ARGS…` with no store or passphrase from the environment.
pub fn strata(store: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("STRATA_STORE")
        .env_remove("STRATA_PASSPHRASE")
        .output()
        .expect("run strata");
    Run { args: args.iter().map(|a| a.to_string()).collect(), out }
}

/// Runs one statement.
pub fn sql(store: &Path, statement: &str) -> Run {
    strata(store, &["sql", statement])
}

/// Every row of `table`, as `scan` prints them.
pub fn scan(store: &Path, table: &str) -> String {
    strata(store, &["scan", table]).ok().stdout()
}
