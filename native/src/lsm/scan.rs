//! Reads of `"versions"`: [`KvSource::scan`](strata_core::KvSource::scan), point reads, and one
//! key's versions in a window (what a scan of changes reads per changed key); the page buffer
//! sizing and the row counters.

use crate::store_common::{page_capacity, RowCount};

use fjall::{Readable, Snapshot};
use strata_core::{check_gc_threshold, MvccFilter, PageBuilder, Result, ScanPage, ScanRequest, Span, Timestamp};

use super::layout::{split_version, successor, unescape, version_key, GC_THRESHOLD_KEY};
use super::Inner;

impl Inner {
    /// [`KvSource::scan`](strata_core::KvSource::scan): one range of `"versions"`, keys ascending
    /// and each key's versions newest first, as the keyspace stores them.
    pub(super) fn scan(&self, request: &ScanRequest) -> Result<ScanPage> {
        const OP: &str = "scan";
        let snapshot = self.db.snapshot();
        check_gc_threshold(request, self.read_meta_ts(&snapshot, GC_THRESHOLD_KEY)?)?;
        if request.span.is_empty() || request.end <= request.start {
            return Ok(ScanPage::default());
        }
        let lower = version_key(&request.span.start, Timestamp::MAX);
        let upper = version_key(&request.span.end, Timestamp::MAX);
        let mut rows = RowCount::new(&self.versions_read);
        let mut bytes = 0u64;
        let mut out = PageBuilder::with_capacity(page_capacity(request));
        let mut resume_key = None;
        // The escaped key whose versions are being read, the key itself, and whether it needs no
        // more of them.
        let mut current: Option<Vec<u8>> = None;
        let mut key = Vec::new();
        let mut key_done = false;
        for row in snapshot.range(&self.versions, lower..upper) {
            let (k, v) = row.into_inner().map_err(|e| self.err(OP, e))?;
            rows.rows += 1;
            let (escaped, ts) = split_version(&k).ok_or_else(|| self.bad_version_key(&k))?;
            if current.as_deref() != Some(escaped) {
                if !unescape(escaped, &mut key) {
                    return Err(self.bad_version_key(&k));
                }
                if bytes >= request.target_bytes {
                    resume_key = Some(key);
                    break;
                }
                let buf = current.get_or_insert_with(Vec::new);
                buf.clear();
                buf.extend_from_slice(escaped);
                key_done = false;
            }
            if key_done || ts > request.end {
                continue;
            }
            if ts <= request.start {
                key_done = true;
                continue;
            }
            let value = self.decode_value(&key, &v)?;
            bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
            out.push(&key, ts, value);
            key_done = request.filter == MvccFilter::Latest;
        }
        Ok(out.finish(resume_key))
    }

    /// The first stored key at or after `from` and before `end`, read from `snapshot`.
    pub(super) fn first_key_from(&self, snapshot: &Snapshot, from: &[u8], end: &[u8]) -> Result<Option<Vec<u8>>> {
        const OP: &str = "seek of the next key";
        let lower = version_key(from, Timestamp::MAX);
        let upper = version_key(end, Timestamp::MAX);
        if lower >= upper {
            return Ok(None);
        }
        let Some(row) = snapshot.range(&self.versions, lower..upper).next() else { return Ok(None) };
        RowCount::new(&self.versions_read).rows += 1;
        let k = row.key().map_err(|e| self.err(OP, e))?;
        let (escaped, _) = split_version(&k).ok_or_else(|| self.bad_version_key(&k))?;
        let mut out = Vec::new();
        if !unescape(escaped, &mut out) {
            return Err(self.bad_version_key(&k));
        }
        Ok(Some(out))
    }

    /// The value of `key` as of `ts` (see [`LsmStore::get_at`](super::LsmStore::get_at)).
    pub(super) fn get_at(&self, key: &[u8], ts: Timestamp) -> Result<Option<Vec<u8>>> {
        const OP: &str = "point read";
        let snapshot = self.db.snapshot();
        // The span of exactly `key`, for the error message.
        let span = Span::new(key, successor(key));
        let request = ScanRequest::new(span, Timestamp::ZERO, ts, MvccFilter::Latest);
        check_gc_threshold(&request, self.read_meta_ts(&snapshot, GC_THRESHOLD_KEY)?)?;
        let range = version_key(key, ts)..=version_key(key, Timestamp::ZERO);
        match snapshot.range(&self.versions, range).next() {
            Some(row) => {
                let (_, v) = row.into_inner().map_err(|e| self.err(OP, e))?;
                Ok(self.decode_value(key, &v)?.map(<[u8]>::to_vec))
            }
            None => Ok(None),
        }
    }

    pub(super) fn bad_version_key(&self, k: &[u8]) -> strata_core::Error {
        self.corrupt(format!("a key of \"versions\" is not a version's key: {:02x?}", &k[..k.len().min(64)]))
    }
}
