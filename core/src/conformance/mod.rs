//! Conformance suites: the tests every implementation of strata's traits passes, and the fault
//! injection strata's own tests use. Plugin authors enable the `conformance` feature and call
//! these from their own tests.

pub mod faults;
pub mod kv;
mod kv_tests;
pub mod storage;
pub mod workqueue;

/// Runs a future to completion on the current thread: what the tests
/// [`crate::kv_conformance_tests!`] makes without a test attribute run their checks with.
#[doc(hidden)]
pub use futures::executor::block_on;
