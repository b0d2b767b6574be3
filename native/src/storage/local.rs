//! [`LocalDir`]: a local directory (`nodelocal://`, `file://`) that is created by the first
//! write into it, never by opening it or reading from it.
//!
//! Opening a URI must not change anything: `RESTORE`, `SHOW BACKUP(S)` and `strata verify` of a
//! mistyped path read nothing and create nothing, and `BACKUP … WITH detached` can check its
//! destination before queuing. So until the directory exists, reads answer as for an empty
//! directory (missing objects are [`Error::NotFound`] naming the directory that does not
//! exist, listings are empty, deletes succeed), and the first write creates it.

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::ObjectStore;
use strata_core::{
    redact_uri, Error, ExternalStorage, GetOptions, GetResult, ListResult, ObjectMeta, PutOptions, Result, Status,
};

use super::object::ObjectStorage;

/// A local directory served by object_store's `LocalFileSystem` once it exists (see the
/// module's documentation).
pub(crate) struct LocalDir {
    /// The URI as given (secrets are redacted by `ObjectStorage` and in messages).
    uri: String,
    dir: PathBuf,
    fsync: bool,
    storage: OnceLock<ObjectStorage>,
}

impl LocalDir {
    /// The directory `dir`, named `uri`; nothing is created or read yet.
    pub(crate) fn new(uri: &str, dir: PathBuf, fsync: bool) -> LocalDir {
        LocalDir { uri: uri.to_string(), dir, fsync, storage: OnceLock::new() }
    }

    fn failed(&self, what: &str, e: &dyn std::fmt::Display) -> Error {
        Error::Storage {
            path: redact_uri(&self.uri),
            message: format!("cannot {what} {}: {e}", self.dir.display()),
            status: Status::Permanent,
        }
    }

    /// The storage over the directory, which exists.
    fn build(&self) -> Result<&ObjectStorage> {
        if let Some(storage) = self.storage.get() {
            return Ok(storage);
        }
        let open = |fsync: bool| -> Result<Arc<dyn ObjectStore>> {
            let store = LocalFileSystem::new_with_prefix(&self.dir)
                .map_err(|e| self.failed("open directory", &e))?
                .with_automatic_cleanup(true)
                .with_fsync(fsync);
            Ok(Arc::new(store))
        };
        let storage = ObjectStorage::new(open(self.fsync)?, &self.uri).with_local_dir(self.dir.clone());
        let storage = if self.fsync { storage.with_volatile_store(open(false)?) } else { storage };
        Ok(self.storage.get_or_init(|| storage))
    }

    /// The storage if the directory exists (it may have been created since the URI was opened).
    fn existing(&self) -> Result<Option<&ObjectStorage>> {
        if let Some(storage) = self.storage.get() {
            return Ok(Some(storage));
        }
        match std::fs::metadata(&self.dir) {
            Ok(m) if m.is_dir() => self.build().map(Some),
            Ok(_) => Err(self.failed("open directory", &"it is not a directory")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.failed("open directory", &e)),
        }
    }

    /// The storage, creating the directory first if it is missing (for writes).
    fn for_write(&self) -> Result<&ObjectStorage> {
        if let Some(storage) = self.existing()? {
            return Ok(storage);
        }
        std::fs::create_dir_all(&self.dir).map_err(|e| self.failed("create directory", &e))?;
        self.build()
    }

    /// A missing object of a directory that does not exist, naming both.
    fn missing(&self, path: &str) -> Error {
        let uri = redact_uri(&self.uri);
        let base = uri.split('?').next().unwrap_or_default().trim_end_matches('/');
        Error::NotFound {
            what: "file".into(),
            name: format!("{base}/{path} (the directory {} does not exist)", self.dir.display()),
        }
    }
}

#[async_trait]
impl ExternalStorage for LocalDir {
    fn describe(&self) -> String {
        redact_uri(&self.uri)
    }

    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        self.for_write()?.put_opts(path, data, options).await
    }

    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        match self.existing()? {
            Some(storage) => storage.get_opts(path, options).await,
            None => Err(self.missing(path)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        match self.existing()? {
            Some(storage) => storage.list(prefix).await,
            None => Ok(Vec::new()),
        }
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        match self.existing()? {
            Some(storage) => storage.list_with_delimiter(prefix).await,
            None => Ok(ListResult::default()),
        }
    }

    async fn delete(&self, path: &str) -> Result<()> {
        match self.existing()? {
            Some(storage) => storage.delete(path).await,
            None => Ok(()),
        }
    }
}
