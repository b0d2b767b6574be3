//! Conformance suites: the tests every implementation of strata's traits passes, and the fault
//! injection strata's own tests use. Plugin authors enable the `conformance` feature and call
//! these from their own tests.

pub mod faults;
pub mod kv;
pub mod storage;
pub mod workqueue;
