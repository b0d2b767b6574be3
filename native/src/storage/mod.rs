//! Where backups live on native platforms: [`ObjectStorage`], strata's `ExternalStorage` over
//! any `object_store` backend, [`WebDavStorage`] for `http(s)://` servers, and
//! [`NativeOpener`], which turns CockroachDB-style URIs into one.
//!
//! ```text
//!   "nodelocal://1/backups" ──NativeOpener::open──▶ LocalDir ──▶ ObjectStorage ──▶ LocalFileSystem (<root>/backups)
//!   "file:///var/backups"   ──────────────────────▶ LocalDir ──▶ ObjectStorage ──▶ LocalFileSystem (/var/backups)
//!                                  (LocalDir: the directory is created by the first write, never by a read)
//!   "memory://name/path"    ──────────────────────▶ ObjectStorage ──▶ InMemory "name", under path/
//!   "s3://bucket/path?…"    ──────────────────────▶ ObjectStorage ──▶ AmazonS3 (bucket), under path/
//!   "gs://bucket/path?…"    ──────────────────────▶ ObjectStorage ──▶ GoogleCloudStorage, under path/
//!   "azure://container/p?…" ──────────────────────▶ ObjectStorage ──▶ MicrosoftAzure, under p/
//!   "https://host/path"     ──────────────────────▶ WebDavStorage ──▶ HttpStore (reads) + PUT/MOVE (writes)
//! ```

mod cloud;
mod local;
mod object;
mod opener;
mod tls;
mod uri;
mod webdav;

pub use object::ObjectStorage;
pub use opener::NativeOpener;
pub use tls::install_tls_provider;
pub use webdav::WebDavStorage;
