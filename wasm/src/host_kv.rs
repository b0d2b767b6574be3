//! The store as the host runs it: every store a [`crate::Strata`] uses (the built-in in-memory
//! one, or a JavaScript `KvPlugin`) is wrapped in a [`HostKv`], which
//!
//! - yields to the JavaScript event loop (a macrotask: `setImmediate`, else a `MessageChannel`
//!   message, else `setTimeout(0)`) after every [`YIELD_BYTES`] of keys and values the store has
//!   scanned, ingested or written. A store that answers in memory (or through Promises that
//!   resolve at once) would otherwise run a whole backup in one macrotask: no timer would fire
//!   (so `AbortSignal.timeout` could not cancel it) and the page would not repaint. The core
//!   checks its cancel signal before each page, so an abort is seen at the next page after the
//!   yield that let the timer fire.
//! - cuts the built-in store's spans into work units of about [`UNIT_BYTES`] when a backup plans
//!   ([`KvSource::split`]), so a backup's `fraction` (the share of work units done) moves within
//!   a large table instead of jumping from one table to the next.
//!
//! Natively there is no event loop: the yield is a no-op (the Rust API's tests run the same code).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use strata_core::{
    Catalog, DescId, DescriptorChange, IngestBatch, KvSink, KvSource, KvStore, MvccFilter, Result, ScanPage,
    ScanRequest, Span, TableDescriptor, Timestamp, WorkUnit,
};

/// Key and value bytes moved between two yields to the event loop.
pub const YIELD_BYTES: u64 = 256 << 10;

/// About how many key and value bytes (newest versions) one work unit of the built-in store holds.
pub const UNIT_BYTES: u64 = 1 << 20;

/// A store run by the host: see the module's documentation.
pub struct HostKv {
    inner: Arc<dyn KvStore>,
    /// Cut spans into units of about this many bytes (`None`: ask the inner store).
    unit_bytes: Option<u64>,
    since_yield: AtomicU64,
}

impl HostKv {
    /// `inner`, yielding to the event loop as it works; with `unit_bytes`, backups cut its spans
    /// into units of about that many bytes (by a scan of the newest versions: for a store whose
    /// scans are cheap, like the built-in one).
    pub fn new(inner: Arc<dyn KvStore>, unit_bytes: Option<u64>) -> HostKv {
        HostKv { inner, unit_bytes, since_yield: AtomicU64::new(0) }
    }

    /// Counts `bytes` moved; yields to the event loop once [`YIELD_BYTES`] have been since the last yield.
    async fn moved(&self, bytes: u64) {
        let total = self.since_yield.fetch_add(bytes, Ordering::Relaxed) + bytes;
        if total >= YIELD_BYTES {
            self.since_yield.store(0, Ordering::Relaxed);
            yield_to_event_loop().await;
        }
    }
}

fn page_bytes(page: &ScanPage) -> u64 {
    page.entries.iter().map(|e| e.bytes() + 16).sum()
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSource for HostKv {
    async fn now(&self) -> Result<Timestamp> {
        self.inner.now().await
    }

    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        let page = self.inner.scan(request).await?;
        self.moved(page_bytes(&page)).await;
        Ok(page)
    }

    async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
        self.inner.gc_threshold(span).await
    }

    async fn split(&self, span: &Span) -> Result<Vec<WorkUnit>> {
        let Some(unit_bytes) = self.unit_bytes else { return self.inner.split(span).await };
        // Each page of `unit_bytes` ends where the next unit starts.
        let mut request = ScanRequest::new(span.clone(), Timestamp::ZERO, self.inner.now().await?, MvccFilter::Latest);
        request.target_bytes = unit_bytes;
        let mut units = Vec::new();
        let mut start = span.start.clone();
        loop {
            let page = self.scan(request.clone()).await?;
            match page.resume_key {
                Some(k) if k > start && k < span.end => {
                    units.push(WorkUnit {
                        span: Span::new(std::mem::replace(&mut start, k.clone()), k.clone()),
                        locality: None,
                    });
                    request.span.start = k;
                }
                _ => break,
            }
        }
        units.push(WorkUnit { span: Span::new(start, span.end.clone()), locality: None });
        Ok(units)
    }

    async fn estimate_bytes(&self, span: &Span) -> Result<Option<u64>> {
        self.inner.estimate_bytes(span).await
    }

    async fn scan_changes(&self, request: ScanRequest) -> Result<Option<ScanPage>> {
        let page = self.inner.scan_changes(request).await?;
        if let Some(p) = &page {
            self.moved(page_bytes(p)).await;
        }
        Ok(page)
    }

    async fn catalog_at(&self, ts: Timestamp) -> Result<Catalog> {
        self.inner.catalog_at(ts).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSink for HostKv {
    async fn catalog(&self) -> Result<Catalog> {
        self.inner.catalog().await
    }

    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.inner.allocate_ids(count).await
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        let bytes = (batch.bytes() + 16 * batch.len()) as u64;
        self.inner.ingest(batch).await?;
        self.moved(bytes).await;
        Ok(())
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        self.inner.publish(changes).await
    }

    async fn discard(&self, spans: &[Span]) -> Result<()> {
        self.inner.discard(spans).await
    }

    async fn validate_indexes(&self, table: &TableDescriptor) -> Result<()> {
        self.inner.validate_indexes(table).await
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvStore for HostKv {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        let bytes = batch.iter().map(|(k, v)| (k.len() + v.as_ref().map_or(0, Vec::len)) as u64 + 16).sum();
        let ts = self.inner.write(batch).await?;
        self.moved(bytes).await;
        Ok(ts)
    }
}

/// Lets the JavaScript event loop run (timers, I/O, rendering): resolves in a later macrotask.
#[cfg(target_arch = "wasm32")]
pub async fn yield_to_event_loop() {
    use wasm_bindgen::prelude::*;

    #[wasm_bindgen(inline_js = r#"
export function yieldToEventLoop() {
  if (typeof setImmediate === "function") return new Promise((resolve) => setImmediate(resolve));
  if (typeof MessageChannel === "function") {
    return new Promise((resolve) => {
      const channel = new MessageChannel();
      channel.port1.onmessage = () => {
        channel.port1.close();
        resolve();
      };
      channel.port2.postMessage(null);
    });
  }
  return new Promise((resolve) => setTimeout(resolve, 0));
}
"#)]
    extern "C" {
        #[wasm_bindgen(js_name = yieldToEventLoop)]
        fn yield_promise() -> js_sys::Promise;
    }

    let _ = wasm_bindgen_futures::JsFuture::from(yield_promise()).await;
}

/// Natively there is no event loop to yield to.
#[cfg(not(target_arch = "wasm32"))]
pub async fn yield_to_event_loop() {}

#[cfg(test)]
mod tests {
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use futures::executor::block_on;
    use strata_core::{keys, read_span, MemKv};

    use super::*;

    #[test]
    fn units_cover_the_span_in_order() {
        let mem = Arc::new(MemKv::new());
        // Less than YIELD_BYTES in all: under wasm32, block_on cannot wait for the event loop.
        let rows: Vec<_> =
            (0..600u32).map(|i| (keys::table_key(200, &i.to_be_bytes()), Some(vec![1u8; 100]))).collect();
        block_on(async {
            mem.write(rows).await.unwrap();
            let kv = HostKv::new(mem.clone(), Some(16 << 10));
            let span = Span::new(keys::table_prefix(200).to_vec(), keys::table_prefix(201).to_vec());
            let units = kv.split(&span).await.unwrap();
            // ~64 KB of rows in units of ~16 KiB.
            assert!((3..=5).contains(&units.len()), "{} units", units.len());
            assert_eq!(units[0].span.start, span.start);
            assert_eq!(units.last().unwrap().span.end, span.end);
            assert!(units.windows(2).all(|w| w[0].span.end == w[1].span.start && w[0].span.start < w[0].span.end));
            let now = kv.now().await.unwrap();
            let mut total = 0;
            for u in &units {
                total += read_span(&kv, u.span.clone(), now).await.unwrap().len();
            }
            assert_eq!(total, 600);
            // A store asked as is keeps its own split.
            assert_eq!(HostKv::new(mem, None).split(&span).await.unwrap().len(), 1);
        });
    }
}
