//! Where backups live: the [`ExternalStorage`] trait, an in-memory implementation, and views of
//! a subdirectory.

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::kv::MaybeSendSync;
use crate::redact::redact_uri;

/// One stored object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// Its path relative to the storage's root, `/`-separated, no leading `/`.
    pub path: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A streamed upload of one large object (see [`ExternalStorage::put_multipart`]).
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait MultipartUpload: MaybeSendSync {
    /// Appends bytes to the object.
    async fn write(&mut self, data: Bytes) -> Result<()>;
    /// Makes the object visible with everything written so far.
    async fn complete(self: Box<Self>) -> Result<()>;
    /// Abandons the upload; nothing becomes visible.
    async fn abort(self: Box<Self>) -> Result<()>;
}

/// A place to store backups: a directory of objects addressed by relative paths.
///
/// # Contract
/// - Paths are relative to the storage's root, `/`-separated, without a leading `/`.
/// - [`ExternalStorage::put`] replaces the whole object atomically: a reader sees the old or the
///   new bytes, never a mix or a prefix. [`ExternalStorage::put_if_absent`] fails with
///   [`Error::AlreadyExists`] if the object exists.
/// - [`ExternalStorage::get`] and [`ExternalStorage::get_range`] fail with [`Error::NotFound`]
///   for a missing object; a range past the end is an [`Error::InvalidArgument`].
/// - [`ExternalStorage::list`] returns every object whose path starts with `prefix`, sorted by path.
/// - [`ExternalStorage::delete`] of a missing object succeeds.
/// - Errors name the path (with secrets redacted) and say whether retrying can help.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait ExternalStorage: MaybeSendSync {
    /// The storage's URI with secrets redacted, for messages.
    fn describe(&self) -> String;

    /// Stores an object, replacing any existing one.
    async fn put(&self, path: &str, data: Bytes) -> Result<()>;

    /// Stores an object like [`ExternalStorage::put`], for an object that need not survive a
    /// crash of the machine: a backup's checkpoint, whose loss only costs redone work. A storage
    /// that syncs each write to stable storage (a local directory) may skip that here; readers
    /// see the object either way. The default is [`ExternalStorage::put`].
    async fn put_volatile(&self, path: &str, data: Bytes) -> Result<()> {
        self.put(path, data).await
    }

    /// Stores an object only if none exists at `path`.
    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()>;

    /// Reads a whole object.
    async fn get(&self, path: &str) -> Result<Bytes>;

    /// Reads bytes `range` of an object.
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes>;

    /// The size of an object.
    async fn size(&self, path: &str) -> Result<u64>;

    /// Every object under `prefix`, sorted by path.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>>;

    /// Removes an object; succeeds if it is already gone.
    async fn delete(&self, path: &str) -> Result<()>;

    /// Starts a streamed upload. The default buffers in memory and calls [`ExternalStorage::put`]
    /// on completion; implementations backed by multipart APIs should override it.
    async fn put_multipart<'a>(&'a self, path: &str) -> Result<Box<dyn MultipartUpload + 'a>> {
        Ok(Box::new(BufferedUpload { storage: self, path: path.to_string(), buf: Vec::new() }))
    }

    /// For the locations of a locality-aware backup (see [`crate::LocalityStorage`]): the
    /// location of locality tier `tier` (`region=us-west`), at the same directory as this one.
    /// Ordinary storages have none; the default returns `None`, and views of a storage (such
    /// as [`Prefixed`]) pass the question on.
    fn locality(&self, _tier: &str) -> Option<Arc<dyn ExternalStorage>> {
        None
    }
}

struct BufferedUpload<'a, S: ?Sized> {
    storage: &'a S,
    path: String,
    buf: Vec<u8>,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl<S: ExternalStorage + ?Sized> MultipartUpload for BufferedUpload<'_, S> {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        self.buf.extend_from_slice(&data);
        Ok(())
    }
    async fn complete(self: Box<Self>) -> Result<()> {
        self.storage.put(&self.path, Bytes::from(self.buf)).await
    }
    async fn abort(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// Opens an [`ExternalStorage`] for a URI. Implemented by the native and wasm adapters; core
/// provides [`MemoryOpener`] for `memory://`.
pub trait StorageOpener: MaybeSendSync {
    /// The storage rooted at `uri`.
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>>;
}

/// An in-memory object store. Cloning shares the same objects.
#[derive(Clone, Default)]
pub struct MemoryStorage {
    name: String,
    objects: Arc<Mutex<BTreeMap<String, Bytes>>>,
}

impl MemoryStorage {
    /// An empty store described as `memory://name`.
    pub fn new(name: &str) -> MemoryStorage {
        MemoryStorage { name: name.to_string(), objects: Arc::default() }
    }

    /// Replaces an object's bytes directly (for tests that damage backups).
    pub fn set_raw(&self, path: &str, data: Vec<u8>) {
        self.objects.lock().expect("memory storage lock").insert(path.to_string(), Bytes::from(data));
    }

    fn missing(&self, path: &str) -> Error {
        Error::not_found("file", format!("{}/{path}", self.describe()))
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl ExternalStorage for MemoryStorage {
    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.objects.lock().expect("memory storage lock").insert(path.to_string(), data);
        Ok(())
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        let mut objects = self.objects.lock().expect("memory storage lock");
        if objects.contains_key(path) {
            return Err(Error::exists("file", format!("{}/{path}", self.describe())));
        }
        objects.insert(path.to_string(), data);
        Ok(())
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        self.objects.lock().expect("memory storage lock").get(path).cloned().ok_or_else(|| self.missing(path))
    }

    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        let data = self.get(path).await?;
        slice_range(&data, range, &format!("{}/{path}", self.describe()))
    }

    async fn size(&self, path: &str) -> Result<u64> {
        Ok(self.get(path).await?.len() as u64)
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let objects = self.objects.lock().expect("memory storage lock");
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta { path: k.clone(), size: v.len() as u64 })
            .collect())
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.objects.lock().expect("memory storage lock").remove(path);
        Ok(())
    }
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

/// Opens `memory://name[/path]` URIs onto shared in-memory stores: the same name gives the same
/// objects for the opener's lifetime.
#[derive(Clone, Default)]
pub struct MemoryOpener {
    stores: Arc<Mutex<BTreeMap<String, MemoryStorage>>>,
}

impl StorageOpener for MemoryOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        let rest = uri
            .strip_prefix("memory://")
            .ok_or_else(|| Error::invalid("storage URI", format!("unsupported scheme in '{}'", redact_uri(uri))))?;
        let rest = rest.split('?').next().unwrap_or_default();
        let (name, path) = match rest.split_once('/') {
            Some((n, p)) => (n, p.trim_matches('/')),
            None => (rest, ""),
        };
        let store = self
            .stores
            .lock()
            .expect("memory opener lock")
            .entry(name.to_string())
            .or_insert_with(|| MemoryStorage::new(name))
            .clone();
        let store: Arc<dyn ExternalStorage> = Arc::new(store);
        Ok(if path.is_empty() { store } else { Arc::new(Prefixed::new(store, path)) })
    }
}

/// A view of a subdirectory of another storage.
pub struct Prefixed {
    inner: Arc<dyn ExternalStorage>,
    prefix: String,
}

impl Prefixed {
    /// The subdirectory `dir` (no leading or trailing `/` needed) of `inner`.
    pub fn new(inner: Arc<dyn ExternalStorage>, dir: &str) -> Prefixed {
        let dir = dir.trim_matches('/');
        Prefixed { inner, prefix: if dir.is_empty() { String::new() } else { format!("{dir}/") } }
    }

    fn full(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }
}

/// The storage at subdirectory `dir` of `inner` (`inner` itself for an empty `dir`).
pub fn subdir(inner: &Arc<dyn ExternalStorage>, dir: &str) -> Arc<dyn ExternalStorage> {
    if dir.trim_matches('/').is_empty() {
        inner.clone()
    } else {
        Arc::new(Prefixed::new(inner.clone(), dir))
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl ExternalStorage for Prefixed {
    fn describe(&self) -> String {
        format!("{}/{}", self.inner.describe().trim_end_matches('/'), self.prefix.trim_end_matches('/'))
    }
    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.put(&self.full(path), data).await
    }

    async fn put_volatile(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.put_volatile(&self.full(path), data).await
    }
    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        self.inner.put_if_absent(&self.full(path), data).await
    }
    async fn get(&self, path: &str) -> Result<Bytes> {
        self.inner.get(&self.full(path)).await
    }
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.inner.get_range(&self.full(path), range).await
    }
    async fn size(&self, path: &str) -> Result<u64> {
        self.inner.size(&self.full(path)).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let mut out = self.inner.list(&self.full(prefix)).await?;
        for o in &mut out {
            o.path = o.path[self.prefix.len()..].to_string();
        }
        Ok(out)
    }
    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(&self.full(path)).await
    }
    async fn put_multipart<'a>(&'a self, path: &str) -> Result<Box<dyn MultipartUpload + 'a>> {
        self.inner.put_multipart(&self.full(path)).await
    }
    fn locality(&self, tier: &str) -> Option<Arc<dyn ExternalStorage>> {
        let location = self.inner.locality(tier)?;
        Some(Arc::new(Prefixed { inner: location, prefix: self.prefix.clone() }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn memory_contract_basics() {
        block_on(async {
            let opener = MemoryOpener::default();
            let s = opener.open("memory://b/sub").unwrap();
            s.put("a/1", Bytes::from_static(b"hello")).await.unwrap();
            assert_eq!(s.get("a/1").await.unwrap(), Bytes::from_static(b"hello"));
            assert_eq!(s.get_range("a/1", 1..3).await.unwrap(), Bytes::from_static(b"el"));
            assert!(matches!(s.get_range("a/1", 3..9).await, Err(Error::InvalidArgument { .. })));
            assert!(matches!(s.put_if_absent("a/1", Bytes::new()).await, Err(Error::AlreadyExists { .. })));
            let err = s.get("nope").await.unwrap_err();
            assert_eq!(err.to_string(), "file not found: memory://b/sub/nope");
            // The same name opens the same objects; the prefix is applied underneath.
            let root = opener.open("memory://b").unwrap();
            assert_eq!(root.list("sub/").await.unwrap(), vec![ObjectMeta { path: "sub/a/1".into(), size: 5 }]);
            assert_eq!(s.list("").await.unwrap(), vec![ObjectMeta { path: "a/1".into(), size: 5 }]);
            s.delete("a/1").await.unwrap();
            s.delete("a/1").await.unwrap();
            assert!(root.list("").await.unwrap().is_empty());
        });
    }
}
