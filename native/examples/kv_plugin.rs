//! A toy KV plugin: every method of `KvSource`, `KvSink` and `KvStore`, checked with the KV
//! conformance suite every engine passes (see `docs/PLUGINS.md`).
//!
//! ```sh
//! cargo run -p strata-native --example kv_plugin
//! ```
//!
//! `CountingKv` wraps another engine (here strata's reference `MemKv`, where a real plugin
//! calls its own engine) and counts the versions backups read from it. A plugin only has to
//! answer each call as its trait's `# Contract` says; `native/tests/kv_conformance.rs` runs
//! this suite too.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use strata_core::conformance::kv;
use strata_core::{
    Catalog, DescId, DescriptorChange, IngestBatch, KvSink, KvSource, KvStore, MemKv, Result, ScanPage, ScanRequest,
    Span, Timestamp,
};

/// An engine that counts the versions scanned from it.
#[derive(Clone, Default)]
pub struct CountingKv {
    inner: Arc<MemKv>,
    scanned: Arc<AtomicU64>,
}

impl CountingKv {
    /// An empty engine.
    pub fn new() -> Self {
        Self::default()
    }

    /// Versions returned by `scan` so far.
    pub fn scanned(&self) -> u64 {
        self.scanned.load(Ordering::Relaxed)
    }
}

#[async_trait]
impl KvSource for CountingKv {
    async fn now(&self) -> Result<Timestamp> {
        self.inner.now().await
    }
    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        let page = self.inner.scan(request).await?;
        self.scanned.fetch_add(page.entries.len() as u64, Ordering::Relaxed);
        Ok(page)
    }
    async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
        self.inner.gc_threshold(span).await
    }
}

#[async_trait]
impl KvSink for CountingKv {
    async fn catalog(&self) -> Result<Catalog> {
        self.inner.catalog().await
    }
    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.inner.allocate_ids(count).await
    }
    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        self.inner.ingest(batch).await
    }
    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        self.inner.publish(changes).await
    }
    async fn discard(&self, spans: &[Span]) -> Result<()> {
        self.inner.discard(spans).await
    }
}

#[async_trait]
impl KvStore for CountingKv {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.inner.write(batch).await
    }
}

fn main() {
    futures::executor::block_on(kv::run_all(CountingKv::new));
    println!("CountingKv passes the KV conformance suite");
}
