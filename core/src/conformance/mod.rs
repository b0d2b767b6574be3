//! Conformance suites: the tests every implementation of strata's traits passes. Plugin authors
//! enable the `conformance` feature and call these from their own tests.

pub mod kv;
pub mod storage;
