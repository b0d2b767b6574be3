//! Fuzzes `strata_core::fuzzing::unit_record` (see its docs).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_core::fuzzing::unit_record(data));
