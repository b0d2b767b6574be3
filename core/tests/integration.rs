//! The core's integration tests, in one test binary (each file below was a binary of its own:
//! linking eleven binaries, twice with wasm32's, cost more CI time than running them). Run one
//! file's tests with a filter: `cargo test -p strata-core --test integration resume::`.
//!
//! They run natively and under Node (`scripts/test-all.sh`, steps test and wasm-test-core).

mod common;

#[path = "encryption.rs"]
mod encryption;
#[path = "faults.rs"]
mod faults;
#[path = "format_fixtures.rs"]
mod format_fixtures;
#[path = "incremental_errors.rs"]
mod incremental_errors;
#[path = "incremental_model.rs"]
mod incremental_model;
#[path = "jobs.rs"]
mod jobs;
#[path = "model.rs"]
mod model;
#[path = "progress.rs"]
mod progress;
#[path = "restore_pipeline.rs"]
mod restore_pipeline;
#[path = "resume.rs"]
mod resume;
#[path = "schedules.rs"]
mod schedules;
