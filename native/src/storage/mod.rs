//! Where backups live on native platforms: [`ObjectStorage`], strata's `ExternalStorage` over
//! any `object_store` backend, and [`NativeOpener`], which turns `nodelocal://`, `file://` and
//! `memory://` URIs into one.
//!
//! ```text
//!   "nodelocal://1/backups" ──NativeOpener::open──▶ ObjectStorage ──▶ LocalFileSystem (<root>/backups)
//!   "file:///var/backups"   ──────────────────────▶ ObjectStorage ──▶ LocalFileSystem (/var/backups)
//!   "memory://name/path"    ──────────────────────▶ ObjectStorage ──▶ InMemory "name", under path/
//! ```

mod object;
mod opener;

pub use object::ObjectStorage;
pub use opener::NativeOpener;
