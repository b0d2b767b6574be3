//! Reads of `"mvcc"`: [`KvSource::scan`](strata_core::KvSource::scan) and point reads; the page
//! buffer sizing and the row counters every scan (also of changes) uses.

use crate::store_common::{page_capacity, RowCount};
use std::ops::Bound;

use redb::ReadableDatabase;
use strata_core::{check_gc_threshold, MvccFilter, PageBuilder, Result, ScanPage, ScanRequest, Span, Timestamp};

use super::layout::{successor, version_key, version_ts, GC_THRESHOLD_KEY, META, MVCC};
use super::Inner;

impl Inner {
    /// [`KvSource::scan`](strata_core::KvSource::scan): one range of `"mvcc"`, keys ascending
    /// and each key's versions newest first, as the table stores them.
    pub(super) fn scan(&self, request: &ScanRequest) -> Result<ScanPage> {
        const OP: &str = "scan";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        check_gc_threshold(request, self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?)?;
        if request.span.is_empty() || request.end <= request.start {
            return Ok(ScanPage::default());
        }
        let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
        // (key, 0, 0) is the newest possible version of `key`: the first row of it.
        let lower = (request.span.start.as_slice(), 0u64, 0u32);
        let upper = (request.span.end.as_slice(), 0u64, 0u32);
        let range = mvcc
            .range::<(&[u8], u64, u32)>((Bound::Included(lower), Bound::Excluded(upper)))
            .map_err(|e| self.err(OP, e))?;
        let mut rows = RowCount::new(&self.mvcc_rows_read);
        let mut bytes = 0u64;
        let mut out = PageBuilder::with_capacity(page_capacity(request));
        let mut resume_key = None;
        // The key whose versions are being read, and whether it needs no more of them.
        let mut current: Option<Vec<u8>> = None;
        let mut key_done = false;
        for row in range {
            let (k, v) = row.map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (key, inverted_wall, inverted_logical) = k.value();
            if current.as_deref() != Some(key) {
                if bytes >= request.target_bytes {
                    resume_key = Some(key.to_vec());
                    break;
                }
                let buf = current.get_or_insert_with(Vec::new);
                buf.clear();
                buf.extend_from_slice(key);
                key_done = false;
            }
            if key_done {
                continue;
            }
            let ts = version_ts(inverted_wall, inverted_logical);
            if ts > request.end {
                continue;
            }
            if ts <= request.start {
                key_done = true;
                continue;
            }
            let value = self.decode_value(key, v.value())?;
            bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
            out.push(key, ts, value);
            key_done = request.filter == MvccFilter::Latest;
        }
        Ok(out.finish(resume_key))
    }

    /// The value of `key` as of `ts` (see [`EmbeddedStore::get_at`](super::EmbeddedStore::get_at)).
    pub(super) fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        const OP: &str = "point read";
        let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
        let meta = txn.open_table(META).map_err(|e| self.err(OP, e))?;
        // The span of exactly `key`, for the error message.
        let span = Span::new(key, successor(key));
        let request = ScanRequest::new(span, Timestamp::ZERO, ts, MvccFilter::Latest);
        check_gc_threshold(&request, self.read_meta_ts(&meta, GC_THRESHOLD_KEY)?)?;
        let mvcc = txn.open_table(MVCC).map_err(|e| self.err(OP, e))?;
        let mut range = mvcc
            .range::<(&[u8], u64, u32)>(version_key(key, ts)..=(key, u64::MAX, u32::MAX))
            .map_err(|e| self.err(OP, e))?;
        match range.next() {
            Some(row) => {
                let (_, v) = row.map_err(|e| self.err(OP, e))?;
                Ok(self.decode_value(key, v.value())?.map(<[u8]>::to_vec))
            }
            None => Ok(None),
        }
    }
}
