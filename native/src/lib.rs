//! strata-native: strata on native platforms — the embedded persistent MVCC store, storage over
//! `object_store`, and the `strata` CLI.
#![warn(missing_docs)]

mod embedded;
pub mod workload;
mod storage;

pub use embedded::EmbeddedStore;
pub use storage::{NativeOpener, ObjectStorage};
