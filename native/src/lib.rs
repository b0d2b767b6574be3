//! strata-native: strata on native platforms — the embedded persistent MVCC store, storage over
//! `object_store`, and the `strata` CLI.
#![warn(missing_docs)]

mod embedded;
mod storage;
pub mod workload;

pub use embedded::EmbeddedStore;
pub use storage::{NativeOpener, ObjectStorage};
