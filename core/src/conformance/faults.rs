//! Fault injection for storage tests: [`Hooked`] puts a [`Hook`] in front of every call of a real
//! storage, to fail the N-th call, hold calls at a gate, delay them or record them. Core's own
//! tests use it; plugin authors wrap their storage in it to test what strata does when their
//! backend fails.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicUsize, Ordering};
//! use strata_core::conformance::faults::{Call, Hook, Hooked};
//! use strata_core::{Error, ExternalStorageExt, MemoryStorage, Result, Status};
//!
//! /// Fails the third write.
//! struct FailThirdWrite(AtomicUsize);
//!
//! // On wasm32 the traits drop `Send`: `async_trait(?Send)` there.
//! #[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
//! #[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
//! impl Hook for FailThirdWrite {
//!     async fn before(&self, call: Call, path: &str) -> Result<()> {
//!         if matches!(call, Call::Put | Call::PutIfAbsent) && self.0.fetch_add(1, Ordering::SeqCst) == 2 {
//!             let message = "injected".to_string();
//!             return Err(Error::Storage { path: path.into(), message, status: Status::Temporary });
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # futures::executor::block_on(async {
//! let storage = Hooked { inner: Arc::new(MemoryStorage::new("m")), hook: Arc::new(FailThirdWrite(AtomicUsize::new(0))) };
//! storage.put("a", "1".into()).await.unwrap();
//! storage.put_if_absent("b", "2".into()).await.unwrap();
//! assert!(storage.put_volatile("c", "3".into()).await.is_err());
//! assert!(storage.get("c").await.is_err());
//! # });
//! ```

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::Result;
use crate::kv::MaybeSendSync;
use crate::storage::{
    ExternalStorage, GetOptions, GetResult, ListResult, MemoryOpener, ObjectMeta, PutMode, PutOptions, StorageOpener,
    StorageWrapper,
};

/// A storage call, as a [`Hook`] sees it: what the [`crate::ExternalStorageExt`] shortcut
/// that makes it is called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Call {
    /// `put_opts` in [`PutMode::Overwrite`] (`put`, `put_volatile`).
    Put,
    /// `put_opts` in [`PutMode::Create`] (`put_if_absent`).
    PutIfAbsent,
    /// `get_opts` of a whole object (`get`).
    Get,
    /// `get_opts` of a range (`get_range`), of `len` bytes.
    GetRange {
        /// Bytes asked for (0 for a reversed range).
        len: u64,
    },
    /// `get_opts` of the size only (`size`).
    Size,
    /// `list` (the path is the prefix).
    List,
    /// `list_with_delimiter` (the path is the prefix).
    ListWithDelimiter,
    /// `delete`.
    Delete,
}

/// Runs before every call of a [`Hooked`] storage: to fail it, delay it or record it.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait Hook: MaybeSendSync {
    /// Called before `call` on `path`; an error is the call's result (the call is not made).
    async fn before(&self, call: Call, path: &str) -> Result<()>;
}

/// A real storage with a [`Hook`] in front of each call: fault injection on top of a real
/// implementation.
pub struct Hooked {
    /// The storage underneath.
    pub inner: Arc<dyn ExternalStorage>,
    /// What runs before each call.
    pub hook: Arc<dyn Hook>,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl StorageWrapper for Hooked {
    fn inner(&self) -> &dyn ExternalStorage {
        self.inner.as_ref()
    }
    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        let call = if options.mode == PutMode::Create { Call::PutIfAbsent } else { Call::Put };
        self.hook.before(call, path).await?;
        self.inner.put_opts(path, data, options).await
    }
    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        let call = match &options.range {
            _ if options.head => Call::Size,
            Some(range) => Call::GetRange { len: range.end.saturating_sub(range.start) },
            None => Call::Get,
        };
        self.hook.before(call, path).await?;
        self.inner.get_opts(path, options).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.hook.before(Call::List, prefix).await?;
        self.inner.list(prefix).await
    }
    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        self.hook.before(Call::ListWithDelimiter, prefix).await?;
        self.inner.list_with_delimiter(prefix).await
    }
    async fn delete(&self, path: &str) -> Result<()> {
        self.hook.before(Call::Delete, path).await?;
        self.inner.delete(path).await
    }
}

/// Opens storages (`memory://` ones by default) with a [`Hook`] in front of each.
pub struct HookedOpener<O: StorageOpener = MemoryOpener> {
    /// The real opener.
    pub inner: O,
    /// What runs before each call of every storage it opens.
    pub hook: Arc<dyn Hook>,
}

impl<O: StorageOpener> StorageOpener for HookedOpener<O> {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        Ok(Arc::new(Hooked { inner: self.inner.open(uri)?, hook: self.hook.clone() }))
    }
}
