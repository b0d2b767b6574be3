//! Helpers shared by the model-based tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;

use strata_core::{keys, Catalog, MemKv, TableDescriptor, Timestamp};

/// Rows of a table as the user sees them: user key → value.
pub type Rows = BTreeMap<Vec<u8>, Vec<u8>>;

/// `db.table -> rows` for the tables of `catalog` that `keep` selects, read from `kv` at `ts`.
pub fn logical_view(
    kv: &MemKv,
    catalog: &Catalog,
    ts: Timestamp,
    keep: impl Fn(&str, &TableDescriptor) -> bool,
) -> BTreeMap<String, Rows> {
    catalog
        .tables
        .values()
        .filter(|t| keep(catalog.database_name(t.parent_id), t))
        .map(|t| {
            let rows = kv
                .view_at(&t.span(), ts)
                .into_iter()
                .map(|(k, v)| (keys::decode_table_key(&k).expect("a table key").1.to_vec(), v))
                .collect();
            (format!("{}.{}", catalog.database_name(t.parent_id), t.name), rows)
        })
        .collect()
}

/// splitmix64: a small, fast, reproducible generator for seeded tests.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with the given probability in percent.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use strata_core::{ExternalStorage, MaybeSendSync, MemoryOpener, ObjectMeta, Result, StorageOpener};

/// A storage call, as a [`Hook`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    /// `put`.
    Put,
    /// `put_if_absent`.
    PutIfAbsent,
    /// `get`.
    Get,
    /// `get_range`, of `len` bytes.
    GetRange {
        /// Bytes asked for.
        len: u64,
    },
    /// `size`.
    Size,
    /// `list` (the path is the prefix).
    List,
    /// `delete`.
    Delete,
}

/// Runs before every call of a [`Hooked`] storage: to fail it, delay it or record it.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait Hook: MaybeSendSync {
    /// Called before `call` on `path`; an error is the call's result.
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
impl ExternalStorage for Hooked {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        self.hook.before(Call::Put, path).await?;
        self.inner.put(path, data).await
    }
    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<()> {
        self.hook.before(Call::PutIfAbsent, path).await?;
        self.inner.put_if_absent(path, data).await
    }
    async fn get(&self, path: &str) -> Result<Bytes> {
        self.hook.before(Call::Get, path).await?;
        self.inner.get(path).await
    }
    async fn get_range(&self, path: &str, range: Range<u64>) -> Result<Bytes> {
        self.hook.before(Call::GetRange { len: range.end - range.start }, path).await?;
        self.inner.get_range(path, range).await
    }
    async fn size(&self, path: &str) -> Result<u64> {
        self.hook.before(Call::Size, path).await?;
        self.inner.size(path).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.hook.before(Call::List, prefix).await?;
        self.inner.list(prefix).await
    }
    async fn delete(&self, path: &str) -> Result<()> {
        self.hook.before(Call::Delete, path).await?;
        self.inner.delete(path).await
    }
}

/// Opens `memory://` storages with a [`Hook`] in front of each.
pub struct HookedOpener {
    /// The real opener.
    pub inner: MemoryOpener,
    /// What runs before each call of every storage it opens.
    pub hook: Arc<dyn Hook>,
}

impl StorageOpener for HookedOpener {
    fn open(&self, uri: &str) -> Result<Arc<dyn ExternalStorage>> {
        Ok(Arc::new(Hooked { inner: self.inner.open(uri)?, hook: self.hook.clone() }))
    }
}
