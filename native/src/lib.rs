//! strata-native: strata on native platforms — the embedded persistent MVCC store, storage over
//! `object_store`, and the `strata` CLI.
#![warn(missing_docs)]

pub mod allocator;
mod cpu;
mod embedded;
mod kms;
mod lsm;
mod secrets;
mod storage;
mod store_changes;
mod store_common;
mod store_pending;
mod store_threads;
pub mod workload;

pub use cpu::TokioCpuPool;
pub use embedded::{EmbeddedStore, EmbeddedStoreOptions, StoreStats};
pub use lsm::{LsmStore, LsmStoreOptions};
/// Fuzzing entry points (see `fuzz/`); not part of the stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::embedded::fuzzing::store_layout;
}
pub use kms::{generate_key_file, os_entropy, FileKmsOpener, FILE_KMS_SCHEME};
pub use secrets::HostSecrets;
pub use storage::{install_tls_provider, NativeOpener, ObjectStorage, WebDavStorage};
