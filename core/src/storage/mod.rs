//! Where backups live: the [`ExternalStorage`] trait and its options, the shortcuts of
//! [`ExternalStorageExt`], the [`StorageWrapper`] helper for views and decorators, an in-memory
//! implementation, and views of a subdirectory.
//!
//! ```text
//!   callers ──put / get / get_range / size / put_if_absent / put_volatile──▶ ExternalStorageExt
//!                                                                              │ (blanket, never implemented by hand)
//!                                                                              ▼
//!   ExternalStorage: describe · put_opts · get_opts · list · list_with_delimiter · delete
//!        ▲ implemented by MemoryStorage, native ObjectStorage / WebDavStorage, wasm JsStorage, plugins
//!        ▲ and, through StorageWrapper (forwards every call unless overridden), by
//!          Prefixed, LocalityStorage, the conformance kit's Hooked, wasm's TrackedStorage
//! ```

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::kv::MaybeSendSync;

mod ext;
mod memory;
mod prefixed;
mod wrapper;

pub use ext::ExternalStorageExt;
pub use memory::{MemoryOpener, MemoryStorage};
pub use prefixed::{subdir, Prefixed};
pub use wrapper::StorageWrapper;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its path relative to the storage's root, `/`-separated, no leading `/`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// What [`ExternalStorage::put_opts`] does when an object already exists at the path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum PutMode {
    /// Replace it (the default).
    #[default]
    Overwrite,
    /// Fail with [`Error::AlreadyExists`] and leave it as it is; of several racing creates of
    /// one path exactly one succeeds.
    Create,
}

/// Whether an object written by [`ExternalStorage::put_opts`] must survive a crash of the
/// machine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Durability {
    /// Synced to stable storage before the call returns, where the storage syncs at all (the
    /// default).
    #[default]
    Durable,
    /// Need not survive a crash of the machine: a backup's done records, whose loss only costs
    /// redone work. A storage that syncs each write (a local directory) may skip that here;
    /// readers see the object either way, exactly as after a durable put.
    Volatile,
}

/// Options of [`ExternalStorage::put_opts`].
///
/// ```
/// use strata_core::{Durability, PutMode, PutOptions};
/// let options = PutOptions::default().with_mode(PutMode::Create).with_durability(Durability::Volatile);
/// assert_eq!((options.mode, options.durability), (PutMode::Create, Durability::Volatile));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// Overwrite or create only.
    pub mode: PutMode,
    /// Durable or volatile.
    pub durability: Durability,
}

impl PutOptions {
    /// Sets the mode.
    pub fn with_mode(mut self, mode: PutMode) -> PutOptions {
        self.mode = mode;
        self
    }

    /// Sets the durability.
    pub fn with_durability(mut self, durability: Durability) -> PutOptions {
        self.durability = durability;
        self
    }
}

/// Options of [`ExternalStorage::get_opts`].
///
/// ```
/// use strata_core::GetOptions;
/// let options = GetOptions::default().with_range(10..20);
/// assert_eq!((options.range, options.head), (Some(10..20), false));
/// assert!(GetOptions::default().with_head(true).head);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetOptions {
    /// Only these bytes of the object (`None`: all of them).
    pub range: Option<Range<u64>>,
    /// Only the object's size, no bytes; `range` is then ignored.
    pub head: bool,
}

impl GetOptions {
    /// Reads only bytes `range`.
    pub fn with_range(mut self, range: Range<u64>) -> GetOptions {
        self.range = Some(range);
        self
    }

    /// Reads only the size (`true`) or the bytes too (`false`, the default).
    pub fn with_head(mut self, head: bool) -> GetOptions {
        self.head = head;
        self
    }
}

/// What [`ExternalStorage::get_opts`] read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GetResult {
    /// The whole object, the requested range, or nothing for a head request.
    pub bytes: Bytes,
    /// The size of the whole object. Always set for a head request and for a read of the whole
    /// object; a storage that cannot tell it without another request may leave it `None` for a
    /// ranged read.
    pub size: Option<u64>,
}

impl GetResult {
    /// `bytes` read from an object of `size` bytes (`None`: not known).
    pub fn new(bytes: Bytes, size: Option<u64>) -> GetResult {
        GetResult { bytes, size }
    }

    /// The answer to a head request: the size, no bytes.
    pub fn head(size: u64) -> GetResult {
        GetResult { bytes: Bytes::new(), size: Some(size) }
    }

    /// Answers `options` from the whole object `data` (stored at `path`, named in errors): the
    /// size for a head request, a slice for a range (see [`slice_range`]), else everything. For
    /// storages that read whole objects anyway.
    pub fn from_object(data: Bytes, options: &GetOptions, path: &str) -> Result<GetResult> {
        let size = data.len() as u64;
        if options.head {
            return Ok(GetResult::head(size));
        }
        let bytes = match &options.range {
            Some(range) => slice_range(&data, range.clone(), path)?,
            None => data,
        };
        Ok(GetResult { bytes, size: Some(size) })
    }
}

/// What [`ExternalStorage::list_with_delimiter`] found under a prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListResult {
    /// The objects whose path starts with the prefix and has no `/` after it, sorted by path.
    pub objects: Vec<ObjectMeta>,
    /// For every deeper object, its path up to and including the first `/` after the prefix,
    /// once each, sorted: the "directories" directly under the prefix, each usable as a prefix.
    pub common_prefixes: Vec<String>,
}

impl ListResult {
    /// The objects and common prefixes directly under a prefix, as found.
    pub fn new(objects: Vec<ObjectMeta>, common_prefixes: Vec<String>) -> ListResult {
        ListResult { objects, common_prefixes }
    }

    /// Splits a listing of every object under the string prefix `prefix` (as
    /// [`ExternalStorage::list`] returns it, in any order) into objects directly under it and
    /// common prefixes. For storages without a listing by delimiter of their own.
    ///
    /// ```
    /// use strata_core::{ListResult, ObjectMeta};
    /// let all = ["a/b/c", "a/bc", "a/bd/e", "a/bd/f"].map(|p| ObjectMeta { path: p.into(), size: 1 });
    /// let result = ListResult::from_listing("a/b", all.to_vec());
    /// assert_eq!(result.objects, [ObjectMeta { path: "a/bc".into(), size: 1 }]);
    /// assert_eq!(result.common_prefixes, ["a/b/", "a/bd/"]);
    /// ```
    pub fn from_listing(prefix: &str, listing: Vec<ObjectMeta>) -> ListResult {
        let mut result = ListResult::default();
        for object in listing {
            let Some(rest) = object.path.strip_prefix(prefix) else { continue };
            match rest.find('/') {
                Some(i) => result.common_prefixes.push(format!("{prefix}{}", &rest[..=i])),
                None => result.objects.push(object),
            }
        }
        result.objects.sort_by(|a, b| a.path.cmp(&b.path));
        result.objects.dedup_by(|a, b| a.path == b.path);
        result.common_prefixes.sort();
        result.common_prefixes.dedup();
        result
    }
}

/// A place to store backups: a directory of objects addressed by relative paths.
///
/// The trait holds only full-option methods, all of them required; callers use the shortcuts
/// of [`ExternalStorageExt`] (`put`, `put_volatile`, `put_if_absent`, `get`, `get_range`,
/// `size`), which every storage has and none implements. A view or decorator of another storage
/// implements [`StorageWrapper`] instead, which forwards every method it does not override.
///
/// # Contract
/// Exactly what the checks of `conformance::storage::CHECKS` (feature `conformance`) check, against every
/// implementation (the check's name in brackets):
/// - Paths are relative to the storage's root, `/`-separated, without a leading `/`; names with
///   spaces, punctuation, capitals and non-ASCII letters work, and every byte value and empty
///   objects round-trip. [`ExternalStorage::describe`] is not empty. (`put_get_delete`)
/// - [`ExternalStorage::put_opts`] replaces the whole object: a shorter object leaves no tail
///   of a longer one, and parent directories need not exist (`put_get_delete`). Readers racing
///   writers see the old bytes or one writer's new bytes, never a mix or a prefix, and sizes
///   read meanwhile are one version's (`overwrite_is_atomic`). [`PutMode::Create`] fails with
///   [`Error::AlreadyExists`] naming the path if the object exists, durable or volatile, and
///   leaves it unchanged; after a delete the path can be created again (`put_if_absent`,
///   `put_and_get_options`); of 16 racing creates of one path exactly one succeeds
///   (`concurrent_writers`). A [`Durability::Volatile`] put is seen by readers exactly like a
///   durable one (`put_get_delete`, `put_and_get_options`).
/// - [`ExternalStorage::get_opts`] with a range returns exactly those bytes; ranges touching
///   either end and empty ranges inside the object or at its end are valid; a range that ends
///   past the object, starts past it, or is reversed is an [`Error::InvalidArgument`] naming the
///   path (`ranged_get`). A head request returns the size and no bytes, whatever the range; a
///   whole read's [`GetResult::size`] is the object's size, a ranged read's that size or `None`
///   (`put_and_get_options`).
/// - Every read of a missing object, or of a "directory" (a prefix of other objects' paths),
///   fails with [`Error::NotFound`] naming the path: whole, ranged (an empty range too) and head
///   (`missing_objects`).
/// - [`ExternalStorage::list`] returns every object whose path starts with the *string*
///   `prefix` (`a/b` lists `a/b/c`, `a/bc` and `a/bd/e`), recursively, with exact sizes, sorted
///   by path, all of 1,100 entries; nothing for a prefix that matches nothing (`list_prefixes`,
///   `missing_objects`).
/// - [`ExternalStorage::list_with_delimiter`] returns, of the same objects, those with no `/`
///   after the prefix, and the common prefixes of the others up to and including that `/` (see
///   [`ListResult`]), each sorted and once; nothing for a missing directory
///   (`list_with_delimiter`, `missing_objects`).
/// - [`ExternalStorage::delete`] removes the object, and only it: deleting a missing object or a
///   "directory" succeeds and removes nothing else, and may be repeated (`put_get_delete`,
///   `missing_objects`).
/// - Calls may run at once: 16 racing overwrites of one path leave one writer's whole bytes,
///   and 64 racing puts and 64 racing creates of different paths all land (`concurrent_writers`).
///
/// Required too, though no check can see it: other errors name the path with secrets redacted
/// and say whether retrying can help ([`Error::status`]); a durable put survives a crash of the
/// machine once it returns.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait ExternalStorage: MaybeSendSync {
    /// The storage's URI with secrets redacted, for messages.
    fn describe(&self) -> String;

    /// Stores an object as `options` say (replacing or creating only; durable or volatile).
    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()>;

    /// Reads an object, a range of it, or only its size, as `options` say.
    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult>;

    /// Every object under the string prefix `prefix`, sorted by path.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// The objects directly under `prefix` and the common prefixes of the deeper ones (see
    /// [`ListResult`]).
    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult>;

    /// Removes an object; succeeds if it is already gone.
    async fn delete(&self, path: &str) -> Result<()>;
}

/// Opens an [`ExternalStorage`] for a URI. Implemented by the native and wasm adapters; core
/// provides [`MemoryOpener`] for `memory://`.
pub trait StorageOpener: MaybeSendSync {
    /// The storage rooted at `uri`.
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>>;
}

/// Slices `range` out of a whole object, with the contract's error for a range past the end.
pub fn slice_range(data: &Bytes, range: Range<u64>, path: &str) -> Result<Bytes> {
    if range.start > range.end || range.end > data.len() as u64 {
        return Err(Error::invalid(
            "range",
            format!("{}..{} is outside {path} ({} bytes)", range.start, range.end, data.len()),
        ));
    }
    Ok(data.slice(range.start as usize..range.end as usize))
}
