//! The reference in-memory MVCC store: the model every other engine is compared against, and a
//! ready [`KvStore`] for tests and the wasm package.

use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;

use crate::batch::IngestBatch;
use crate::catalog::{DescId, DescriptorChange, FIRST_USER_ID};
use crate::error::Result;
use crate::keys;
use crate::kv::{check_gc_threshold, Entry, KvSink, KvSource, KvStore, MvccFilter, ScanPage, ScanRequest};
use crate::span::Span;
use crate::timestamp::Timestamp;

/// A physical clock: wall nanoseconds since the epoch. Core never reads the system clock; hosts
/// pass one in.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

type Versions = BTreeMap<Reverse<Timestamp>, Option<Vec<u8>>>;

struct State {
    data: BTreeMap<Vec<u8>, Versions>,
    last: Timestamp,
    gc_threshold: Timestamp,
    ticks: u64,
}

/// An in-memory MVCC key-value store implementing [`KvSource`], [`KvSink`] and [`KvStore`].
/// Cloning shares the same data.
#[derive(Clone)]
pub struct MemKv {
    state: Arc<Mutex<State>>,
    clock: Option<Clock>,
}

impl Default for MemKv {
    fn default() -> Self {
        MemKv::new()
    }
}

impl MemKv {
    /// An empty store with a deterministic clock (each timestamp one microsecond after the last,
    /// starting at 2023-11-14).
    pub fn new() -> MemKv {
        MemKv {
            state: Arc::new(Mutex::new(State {
                data: BTreeMap::new(),
                last: Timestamp::ZERO,
                gc_threshold: Timestamp::ZERO,
                ticks: 0,
            })),
            clock: None,
        }
    }

    /// An empty store whose timestamps follow `clock` (hybrid logical clock on top of it).
    pub fn with_clock(clock: Clock) -> MemKv {
        MemKv { clock: Some(clock), ..MemKv::new() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("memkv lock poisoned")
    }

    fn tick(&self, st: &mut State) -> Timestamp {
        st.ticks += 1;
        let physical = match &self.clock {
            Some(c) => c(),
            None => 1_700_000_000_000_000_000 + st.ticks * 1_000,
        };
        let ts = if physical > st.last.wall { Timestamp::from_nanos(physical) } else { st.last.next() };
        st.last = ts;
        ts
    }

    /// Writes a batch atomically at a fresh timestamp.
    pub fn write_sync(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Timestamp {
        let mut st = self.lock();
        let ts = self.tick(&mut st);
        for (k, v) in batch {
            st.data.entry(k).or_default().insert(Reverse(ts), v);
        }
        ts
    }

    /// The newest value of `key` at `ts`.
    pub fn get_at(&self, key: &[u8], ts: Timestamp) -> Option<Vec<u8>> {
        let st = self.lock();
        st.data.get(key)?.range(Reverse(ts)..).next().and_then(|(_, v)| v.clone())
    }

    /// Every live key and value in `span` at `ts`.
    pub fn view_at(&self, span: &Span, ts: Timestamp) -> Vec<(Vec<u8>, Vec<u8>)> {
        let st = self.lock();
        st.data
            .range::<[u8], _>((Bound::Included(span.start.as_slice()), Bound::Excluded(span.end.as_slice())))
            .filter_map(|(k, vs)| vs.range(Reverse(ts)..).next().and_then(|(_, v)| v.clone().map(|v| (k.clone(), v))))
            .collect()
    }

    /// Garbage-collects versions hidden before `threshold` (keeping the newest version at or
    /// below it) and raises the GC threshold.
    pub fn gc(&self, threshold: Timestamp) {
        let mut st = self.lock();
        for vs in st.data.values_mut() {
            let mut keep_one = true;
            vs.retain(|Reverse(ts), v| {
                if *ts > threshold {
                    return true;
                }
                let keep = keep_one && v.is_some();
                keep_one = false;
                keep
            });
        }
        st.data.retain(|_, vs| !vs.is_empty());
        st.gc_threshold = st.gc_threshold.max(threshold);
    }

    /// Number of versions stored (for tests).
    pub fn version_count(&self) -> usize {
        self.lock().data.values().map(|v| v.len()).sum()
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSource for MemKv {
    async fn now(&self) -> Result<Timestamp> {
        let mut st = self.lock();
        Ok(self.tick(&mut st))
    }

    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        let st = self.lock();
        check_gc_threshold(&request, st.gc_threshold)?;
        let mut page = ScanPage::default();
        if request.span.is_empty() || request.end <= request.start {
            return Ok(page);
        }
        let mut bytes = 0u64;
        let range = st.data.range::<[u8], _>((
            Bound::Included(request.span.start.as_slice()),
            Bound::Excluded(request.span.end.as_slice()),
        ));
        for (key, versions) in range {
            if bytes >= request.target_bytes {
                page.resume_key = Some(key.clone());
                break;
            }
            let window = versions.range(Reverse(request.end)..Reverse(request.start));
            for (Reverse(ts), value) in window {
                if *ts <= request.start {
                    break;
                }
                bytes += (key.len() + value.as_ref().map_or(0, |v| v.len())) as u64;
                page.entries.push(Entry::new(key.clone(), *ts, value.clone()));
                if request.filter == MvccFilter::Latest {
                    break;
                }
            }
        }
        Ok(page)
    }

    async fn gc_threshold(&self, _span: &Span) -> Result<Timestamp> {
        Ok(self.lock().gc_threshold)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvSink for MemKv {
    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        let mut st = self.lock();
        let current = st
            .data
            .get(keys::ID_COUNTER_KEY)
            .and_then(|vs| vs.values().next().cloned().flatten())
            .and_then(|v| v.try_into().ok().map(u32::from_be_bytes))
            .unwrap_or(FIRST_USER_ID);
        let ts = self.tick(&mut st);
        st.data
            .entry(keys::ID_COUNTER_KEY.to_vec())
            .or_default()
            .insert(Reverse(ts), Some((current + count).to_be_bytes().to_vec()));
        Ok(current)
    }

    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        self.write_sync(batch.iter().map(|(k, v)| (k.to_vec(), Some(v.to_vec()))).collect());
        Ok(())
    }

    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        Ok(self.write_sync(changes.into_iter().map(DescriptorChange::into_write).collect()))
    }

    async fn discard(&self, spans: &[Span]) -> Result<()> {
        let mut st = self.lock();
        st.data.retain(|k, _| !spans.iter().any(|s| s.contains(k)));
        Ok(())
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KvStore for MemKv {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        Ok(self.write_sync(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn k(s: &str) -> Vec<u8> {
        keys::table_key(200, s.as_bytes())
    }

    #[test]
    fn scan_windows_and_filters() {
        block_on(async {
            let kv = MemKv::new();
            let t1 = kv.write_sync(vec![(k("a"), Some(b"1".to_vec())), (k("b"), Some(b"1".to_vec()))]);
            let t2 = kv.write_sync(vec![(k("a"), Some(b"2".to_vec()))]);
            let t3 = kv.write_sync(vec![(k("b"), None)]);
            let span = keys::table_span(200);
            let latest =
                kv.scan(ScanRequest::new(span.clone(), Timestamp::ZERO, t3, MvccFilter::Latest)).await.unwrap();
            assert_eq!(latest.entries.len(), 2);
            assert_eq!(latest.entries[0].value.as_deref(), Some(&b"2"[..]));
            assert_eq!(latest.entries[1].value, None);
            let all = kv.scan(ScanRequest::new(span.clone(), t1, t3, MvccFilter::AllRevisions)).await.unwrap();
            assert_eq!(all.entries.iter().map(|e| e.ts).collect::<Vec<_>>(), vec![t2, t3]);
            assert_eq!(kv.view_at(&span, t1), vec![(k("a"), b"1".to_vec()), (k("b"), b"1".to_vec())]);
            assert_eq!(kv.view_at(&span, t3), vec![(k("a"), b"2".to_vec())]);
        });
    }

    #[test]
    fn pages_end_at_key_boundaries() {
        block_on(async {
            let kv = MemKv::new();
            for i in 0..50 {
                kv.write_sync(vec![(k(&format!("{i:03}")), Some(vec![0; 100]))]);
            }
            let now = kv.now().await.unwrap();
            let mut req = ScanRequest::new(keys::table_span(200), Timestamp::ZERO, now, MvccFilter::Latest);
            req.target_bytes = 1000;
            let mut seen = 0;
            loop {
                let page = kv.scan(req.clone()).await.unwrap();
                assert!(page.entries.len() <= 10);
                seen += page.entries.len();
                match page.resume_key {
                    Some(key) => req.span.start = key,
                    None => break,
                }
            }
            assert_eq!(seen, 50);
        });
    }

    #[test]
    fn gc_threshold_refuses_old_reads() {
        block_on(async {
            let kv = MemKv::new();
            let t1 = kv.write_sync(vec![(k("a"), Some(b"1".to_vec()))]);
            let t2 = kv.write_sync(vec![(k("a"), Some(b"2".to_vec()))]);
            kv.gc(t2);
            assert_eq!(kv.version_count(), 1);
            let span = keys::table_span(200);
            let err =
                kv.scan(ScanRequest::new(span.clone(), Timestamp::ZERO, t1, MvccFilter::Latest)).await.unwrap_err();
            assert!(err.to_string().contains("below the GC threshold"), "{err}");
            assert!(kv.scan(ScanRequest::new(span.clone(), t1, t2, MvccFilter::Latest)).await.is_err());
            assert!(kv.scan(ScanRequest::new(span, Timestamp::ZERO, t2, MvccFilter::Latest)).await.is_ok());
        });
    }

    #[test]
    fn ids_are_never_reused() {
        block_on(async {
            let kv = MemKv::new();
            assert_eq!(kv.allocate_ids(3).await.unwrap(), FIRST_USER_ID);
            assert_eq!(kv.allocate_ids(1).await.unwrap(), FIRST_USER_ID + 3);
        });
    }
}
