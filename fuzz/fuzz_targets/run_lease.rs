//! Fuzzes `strata_core::fuzzing::run_lease` (see its docs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_core::fuzzing::run_lease(data));
