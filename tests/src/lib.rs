//! strata-tests: end-to-end scenarios and benchmarks.
//!
//! - [`mod@bench`]: the benchmark behind `cargo run --release -p strata-tests --bin bench`
//!   (full backup plain and encrypted, incremental backup, whole-database and one-table restore on
//!   the embedded store, side by side with restic on the same data), whose core [`bench::run`] a
//!   smoke test also runs on a tiny dataset.
#![warn(missing_docs)]

pub mod bench;

pub use bench::{BenchOptions, BenchReport, Figures, Phase};
