//! Fuzzes `strata_native::fuzzing::store_layout`: a store file holding arbitrary rows, opened and
//! read back (each input creates a store in a temporary directory: expect hundreds of execs per
//! second, not thousands).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| strata_native::fuzzing::store_layout(data));
