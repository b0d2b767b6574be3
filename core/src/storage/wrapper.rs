//! [`StorageWrapper`]: the one place where a view or decorator of a storage forwards calls.

use std::borrow::Cow;

use async_trait::async_trait;
use bytes::Bytes;

use super::{ExternalStorage, GetOptions, GetResult, ListResult, ObjectMeta, PutOptions};
use crate::error::Result;
use crate::kv::MaybeSendSync;

/// A storage that passes its calls on to another, changing only what it overrides: a view of a
/// subdirectory ([`super::Prefixed`]), the locations of a locality-aware backup
/// ([`crate::Locations`]), fault injection (the conformance kit's `Hooked`), counters.
///
/// Every type that implements it is an [`ExternalStorage`] (a blanket implementation calls the
/// methods below). Each method forwards to [`StorageWrapper::inner`] by default, with paths
/// mapped by [`StorageWrapper::inner_path`] and listed paths mapped back by
/// [`StorageWrapper::outer_path`]; a method added to [`ExternalStorage`] gets a forwarding
/// default here, so no wrapper can forget to pass a call on.
///
/// ```
/// use std::sync::Arc;
/// use std::sync::atomic::{AtomicUsize, Ordering};
/// use strata_core::{ExternalStorage, ExternalStorageExt, MemoryStorage, PutOptions, Result, StorageWrapper};
///
/// /// Counts writes; everything else passes through untouched.
/// struct Counting { inner: Arc<dyn ExternalStorage>, puts: AtomicUsize }
///
/// // On wasm32 the traits drop `Send`: `async_trait(?Send)` there.
/// #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
/// #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
/// impl StorageWrapper for Counting {
///     fn inner(&self) -> &dyn ExternalStorage {
///         self.inner.as_ref()
///     }
///     async fn put_opts(&self, path: &str, data: bytes::Bytes, options: PutOptions) -> Result<()> {
///         self.puts.fetch_add(1, Ordering::Relaxed);
///         self.inner.put_opts(path, data, options).await
///     }
/// }
///
/// # futures::executor::block_on(async {
/// let counting = Counting { inner: Arc::new(MemoryStorage::new("m")), puts: AtomicUsize::new(0) };
/// counting.put_if_absent("a", "1".into()).await.unwrap();
/// assert_eq!(counting.get("a").await.unwrap(), "1");
/// assert_eq!(counting.puts.load(Ordering::Relaxed), 1);
/// // Both traits name `describe`: say which when both are in scope.
/// assert_eq!(ExternalStorage::describe(&counting), "memory://m");
/// # });
/// ```
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait StorageWrapper: MaybeSendSync {
    /// The storage calls go to.
    fn inner(&self) -> &dyn ExternalStorage;

    /// The inner storage's path for this storage's `path` (or list prefix). Default: the same.
    fn inner_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        Cow::Borrowed(path)
    }

    /// This storage's path for a path (or common prefix) the inner storage listed under
    /// `inner_path(prefix)`. Default: the same.
    fn outer_path(&self, inner_path: String) -> String {
        inner_path
    }

    /// See [`ExternalStorage::describe`]. Default: the inner storage's.
    fn describe(&self) -> String {
        self.inner().describe()
    }

    /// See [`ExternalStorage::put_opts`].
    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        self.inner().put_opts(&self.inner_path(path), data, options).await
    }

    /// See [`ExternalStorage::get_opts`].
    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        self.inner().get_opts(&self.inner_path(path), options).await
    }

    /// See [`ExternalStorage::list`].
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let listed = self.inner().list(&self.inner_path(prefix)).await?;
        Ok(listed.into_iter().map(|o| ObjectMeta { path: self.outer_path(o.path), size: o.size }).collect())
    }

    /// See [`ExternalStorage::list_with_delimiter`].
    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        let listed = self.inner().list_with_delimiter(&self.inner_path(prefix)).await?;
        Ok(ListResult {
            objects: listed
                .objects
                .into_iter()
                .map(|o| ObjectMeta { path: self.outer_path(o.path), size: o.size })
                .collect(),
            common_prefixes: listed.common_prefixes.into_iter().map(|p| self.outer_path(p)).collect(),
        })
    }

    /// See [`ExternalStorage::delete`].
    async fn delete(&self, path: &str) -> Result<()> {
        self.inner().delete(&self.inner_path(path)).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl<W: StorageWrapper> ExternalStorage for W {
    fn describe(&self) -> String {
        StorageWrapper::describe(self)
    }
    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        StorageWrapper::put_opts(self, path, data, options).await
    }
    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        StorageWrapper::get_opts(self, path, options).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        StorageWrapper::list(self, prefix).await
    }
    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        StorageWrapper::list_with_delimiter(self, prefix).await
    }
    async fn delete(&self, path: &str) -> Result<()> {
        StorageWrapper::delete(self, path).await
    }
}
