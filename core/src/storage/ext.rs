//! [`ExternalStorageExt`]: the shortcuts every [`ExternalStorage`] has and none implements.

use std::ops::Range;

use async_trait::async_trait;
use bytes::Bytes;

use super::{Durability, ExternalStorage, GetOptions, PutMode, PutOptions};
use crate::error::{Error, Result, Status};

/// Shortcuts over [`ExternalStorage`]'s full-option methods, implemented once here for every
/// storage (`dyn ExternalStorage` and `Arc<dyn ExternalStorage>` through deref included):
/// implementors never write them, so they cannot differ from one storage to another.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait ExternalStorageExt: ExternalStorage {
    /// Stores an object, replacing any existing one.
    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.put_opts(path, data, PutOptions::default()).await
    }

    /// Stores an object like [`ExternalStorageExt::put`], for an object that need not survive a
    /// crash of the machine ([`Durability::Volatile`]).
    async fn put_volatile(&self, path: &str, data: Bytes) -> Result<()> {
        self.put_opts(path, data, PutOptions::default().with_durability(Durability::Volatile)).await
    }

    /// Stores an object only if none exists at `path` ([`PutMode::Create`]): otherwise
    /// [`crate::Error::AlreadyExists`].
    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        self.put_opts(path, data, PutOptions::default().with_mode(PutMode::Create)).await
    }

    /// Reads a whole object.
    async fn get(&self, path: &str) -> Result<Bytes> {
        Ok(self.get_opts(path, GetOptions::default()).await?.bytes)
    }

    /// Reads bytes `range` of an object.
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        Ok(self.get_opts(path, GetOptions::default().with_range(range)).await?.bytes)
    }

    /// The size of an object.
    async fn size(&self, path: &str) -> Result<u64> {
        let result = self.get_opts(path, GetOptions::default().with_head(true)).await?;
        result.size.ok_or_else(|| Error::Storage {
            path: format!("{}/{path}", self.describe().trim_end_matches('/')),
            message: "the storage answered a head request without a size".into(),
            status: Status::Permanent,
        })
    }
}

impl<S: ExternalStorage + ?Sized> ExternalStorageExt for S {}
