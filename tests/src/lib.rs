//! strata-tests.
