//! strata-wasm.
