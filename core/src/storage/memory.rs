//! [`MemoryStorage`] and [`MemoryOpener`]: objects in memory, for tests and `memory://` URIs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use super::{
    ExternalStorage, GetOptions, GetResult, ListResult, ObjectMeta, Prefixed, PutMode, PutOptions, StorageOpener,
};
use crate::error::{Error, Result};
use crate::redact::redact_uri;

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

    fn location(&self, path: &str) -> String {
        format!("{}/{path}", ExternalStorage::describe(self))
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl ExternalStorage for MemoryStorage {
    fn describe(&self) -> String {
        format!("memory://{}", self.name)
    }

    async fn put_opts(&self, path: &str, data: Bytes, options: PutOptions) -> Result<()> {
        let mut objects = self.objects.lock().expect("memory storage lock");
        if options.mode == PutMode::Create && objects.contains_key(path) {
            return Err(Error::exists("file", self.location(path)));
        }
        objects.insert(path.to_string(), data);
        Ok(())
    }

    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        let data = self.objects.lock().expect("memory storage lock").get(path).cloned();
        let data = data.ok_or_else(|| Error::not_found("file", self.location(path)))?;
        GetResult::from_object(data, &options, &self.location(path))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let objects = self.objects.lock().expect("memory storage lock");
        Ok(objects
            .range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectMeta { path: k.clone(), size: v.len() as u64 })
            .collect())
    }

    async fn list_with_delimiter(&self, prefix: &str) -> Result<ListResult> {
        Ok(ListResult::from_listing(prefix, self.list(prefix).await?))
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.objects.lock().expect("memory storage lock").remove(path);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ExternalStorageExt;
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
            assert_eq!(s.size("a/1").await.unwrap(), 5);
            let head = s.get_opts("a/1", GetOptions::default().with_head(true)).await.unwrap();
            assert_eq!(head, GetResult::head(5));
            assert!(matches!(s.get_range("a/1", 3..9).await, Err(Error::InvalidArgument { .. })));
            assert!(matches!(s.put_if_absent("a/1", Bytes::new()).await, Err(Error::AlreadyExists { .. })));
            let err = s.get("nope").await.unwrap_err();
            assert_eq!(err.to_string(), "file not found: memory://b/sub/nope");
            // The same name opens the same objects; the prefix is applied underneath.
            let root = opener.open("memory://b").unwrap();
            assert_eq!(root.list("sub/").await.unwrap(), vec![ObjectMeta { path: "sub/a/1".into(), size: 5 }]);
            assert_eq!(s.list("").await.unwrap(), vec![ObjectMeta { path: "a/1".into(), size: 5 }]);
            assert_eq!(root.list_with_delimiter("").await.unwrap(), ListResult::new(vec![], vec!["sub/".into()]));
            assert_eq!(s.list_with_delimiter("").await.unwrap(), ListResult::new(vec![], vec!["a/".into()]));
            s.delete("a/1").await.unwrap();
            s.delete("a/1").await.unwrap();
            assert!(root.list("").await.unwrap().is_empty());
        });
    }
}
