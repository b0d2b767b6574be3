//! How both embedded stores answer [`KvSource::scan_changes`](strata_core::KvSource::scan_changes)
//! from their change logs, whatever the engine: merging the runs of a window of few writes, or
//! collecting a window of many in bounded passes kept between pages ([`ChangedKeys`]).
//!
//! A change log holds one row per version a write added: the write's timestamp, the key, and the
//! stored version (tag byte and value, as in the MVCC table). Its rows sort by timestamp, then
//! key, so each write's rows in a span are one range sorted by key (a "run"). Each engine reads
//! its own tables into [`ChangeRow`]s; what is done with them is here.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use strata_core::{Error, MvccFilter, PageBuilder, Result, ScanRequest, Timestamp};

use crate::store_common::{decode_version, successor};

/// How many changed keys one pass over a change log collects at most (see
/// [`EmbeddedStore::set_changed_keys_per_pass`](crate::EmbeddedStore::set_changed_keys_per_pass)).
pub(crate) const CHANGED_KEYS_PER_PASS: usize = 1 << 15;
/// How many bytes of changed keys and values one pass over a change log collects at most (past
/// the first key): what a window of changes holds in memory.
const CHANGED_BYTES_PER_PASS: usize = 8 << 20;
/// A window of at most this many writes is read by merging their runs of the change log (one
/// cursor each); a window of more, by passes that collect its changed keys ([`ChangedKeys`]).
pub(crate) const MAX_MERGED_RUNS: usize = 64;
/// How many windows of changed keys are kept between pages (one per unit a backup exports at
/// once, by default four): with [`CHANGED_BYTES_PER_PASS`], what they hold at most.
const CHANGED_KEYS_CACHED: usize = 4;

/// One row of a change log, as the engine reads it.
pub(crate) trait ChangeRow {
    /// The timestamp of the write that added the version.
    fn ts(&self) -> Timestamp;
    /// The key.
    fn key(&self) -> &[u8];
    /// The stored version: tag byte and value.
    fn stored(&self) -> &[u8];
}

/// The timestamps of the writes in a window `(start, end]`, oldest first (each write's rows are
/// one run of the change log), or `None` when there are more than `max` (or `max` is 0: the
/// window is read by passes). `first_from(ts)` is the store's seek: the timestamp of the first
/// row at or after `ts` and in the window. One seek per write.
pub(crate) fn change_runs(
    max: usize,
    start: Timestamp,
    mut first_from: impl FnMut(Timestamp) -> Result<Option<Timestamp>>,
) -> Result<Option<Vec<Timestamp>>> {
    if max == 0 {
        return Ok(None);
    }
    let mut runs = Vec::new();
    // The window is not empty (`start < end`), so `start.next()` does not overflow.
    let mut from = start.next();
    while let Some(ts) = first_from(from)? {
        if runs.len() >= max {
            return Ok(None);
        }
        runs.push(ts);
        if ts == Timestamp::MAX {
            break;
        }
        from = ts.next();
    }
    Ok(Some(runs))
}

/// Fills `out` from the runs of a window of writes (`cursors`: one per write, oldest first, each
/// over that write's rows in the request's span, sorted by key) by merging them key by key, up to
/// the page's target; returns the page's bytes. Holds nothing but the cursors' heads.
/// `rows_read` counts the rows read; `corrupt` is the store's error for a version that does not
/// decode.
pub(crate) fn merge_runs<R: ChangeRow>(
    cursors: &mut [impl Iterator<Item = Result<R>>],
    request: &ScanRequest,
    out: &mut PageBuilder,
    rows_read: &mut u64,
    corrupt: impl Fn(String) -> Error,
) -> Result<u64> {
    let mut heads = Vec::with_capacity(cursors.len());
    for cursor in cursors.iter_mut() {
        let head = cursor.next().transpose()?;
        *rows_read += u64::from(head.is_some());
        heads.push(head);
    }
    let mut bytes = 0u64;
    let mut versions: Vec<usize> = Vec::with_capacity(cursors.len());
    loop {
        // The smallest key among the heads, and the runs holding it (oldest first).
        versions.clear();
        let mut smallest: Option<&[u8]> = None;
        for (i, head) in heads.iter().enumerate() {
            let Some(row) = head else { continue };
            let key = row.key();
            match smallest.map(|s| key.cmp(s)) {
                None | Some(std::cmp::Ordering::Less) => {
                    smallest = Some(key);
                    versions.clear();
                    versions.push(i);
                }
                Some(std::cmp::Ordering::Equal) => versions.push(i),
                Some(std::cmp::Ordering::Greater) => {}
            }
        }
        let Some(key) = smallest else { return Ok(bytes) };
        if bytes >= request.target_bytes {
            return Ok(bytes);
        }
        // Newest first; with `Latest`, only the newest.
        let take = if request.filter == MvccFilter::Latest { 1 } else { versions.len() };
        for &i in versions.iter().rev().take(take) {
            let row = heads[i].as_ref().expect("a run holding the key has a head");
            let value = decode_version(key, row.stored(), &corrupt)?;
            bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
            out.push(key, row.ts(), value);
        }
        for &i in &versions {
            heads[i] = cursors[i].next().transpose()?;
            *rows_read += u64::from(heads[i].is_some());
        }
    }
}

/// A key's versions from a change log: timestamp, and the stored version (tag byte and value).
type Versions = Vec<(Timestamp, Vec<u8>)>;

/// The smallest distinct keys in `[lower, span_end)` with a version in `(start, end]`, and those
/// versions, collected from a change log for the pages of one scan of changes.
///
/// Valid while `generation` (the store's `"last_timestamp"` when it was read) is unchanged:
/// every write that adds versions moves it. Discard and GC, which remove versions without moving
/// it, clear the cache ([`ChangedKeysCache::clear`]).
pub(crate) struct ChangedKeys {
    generation: Timestamp,
    start: Timestamp,
    end: Timestamp,
    filter: MvccFilter,
    span_end: Vec<u8>,
    lower: Vec<u8>,
    /// Sorted ascending by key, distinct; each key's versions in `(start, end]` newest first
    /// (only the newest with [`MvccFilter::Latest`]), as stored: tag byte and value.
    keys: Vec<(Vec<u8>, Versions)>,
    /// Whether every changed key in `[lower, span_end)` is in `keys` (else `keys` holds the
    /// smallest of them, and the rest are all above its last).
    complete: bool,
}

impl ChangedKeys {
    /// Whether these keys answer which keys at or after `lower` changed, up to the last of them.
    fn covers(&self, generation: Timestamp, request: &ScanRequest, lower: &[u8]) -> bool {
        self.generation == generation
            && self.start == request.start
            && self.end == request.end
            && self.filter == request.filter
            && self.span_end == request.span.end
            && self.lower.as_slice() <= lower
            && (self.complete || self.keys.last().is_some_and(|(k, _)| k.as_slice() >= lower))
    }

    /// Collects, from the rows of a window (`rows`: every row with a timestamp in the window,
    /// oldest first), the smallest changed keys of `request`'s span at or after `lower`: at most
    /// `max` keys and about [`CHANGED_BYTES_PER_PASS`] bytes (always at least one key).
    pub(crate) fn collect<R: ChangeRow>(
        rows: impl Iterator<Item = Result<R>>,
        generation: Timestamp,
        request: &ScanRequest,
        lower: &[u8],
        max: usize,
        rows_read: &mut u64,
    ) -> Result<ChangedKeys> {
        let max = max.max(1);
        let span_end = request.span.end.as_slice();
        // Rows come oldest first: a key's versions are pushed in that order, reversed below.
        let mut keys: BTreeMap<Vec<u8>, Versions> = BTreeMap::new();
        let mut held = 0usize;
        let mut complete = true;
        for row in rows {
            let row = row?;
            *rows_read += 1;
            let key = row.key();
            if key < lower || key >= span_end {
                continue;
            }
            let version = (row.ts(), row.stored().to_vec());
            if let Some(versions) = keys.get_mut(key) {
                if request.filter == MvccFilter::Latest {
                    held = held - versions[0].1.len() + version.1.len();
                    versions[0] = version;
                } else {
                    held += version.1.len();
                    versions.push(version);
                }
                continue;
            }
            let full = keys.len() >= max || held >= CHANGED_BYTES_PER_PASS;
            if full && keys.last_key_value().is_some_and(|(last, _)| key > last.as_slice()) {
                complete = false;
                continue;
            }
            held += key.len() + version.1.len();
            keys.insert(key.to_vec(), vec![version]);
            // Keep the smallest keys: drop the largest while over a bound (never the only one).
            while keys.len() > 1 && (keys.len() > max || held > CHANGED_BYTES_PER_PASS) {
                let (k, versions) = keys.pop_last().expect("more than one key");
                held -= k.len() + versions.iter().map(|(_, v)| v.len()).sum::<usize>();
                complete = false;
            }
        }
        Ok(ChangedKeys {
            generation,
            start: request.start,
            end: request.end,
            filter: request.filter,
            span_end: span_end.to_vec(),
            lower: lower.to_vec(),
            keys: keys
                .into_iter()
                .map(|(k, mut versions)| {
                    versions.reverse();
                    (k, versions)
                })
                .collect(),
            complete,
        })
    }
}

/// The last few windows of changed keys a store collected, newest last.
#[derive(Default)]
pub(crate) struct ChangedKeysCache(Mutex<Vec<Arc<ChangedKeys>>>);

impl ChangedKeysCache {
    fn lock(&self) -> MutexGuard<'_, Vec<Arc<ChangedKeys>>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forgets every window: versions were removed (discard, GC) or the pass size changed.
    pub(crate) fn clear(&self) {
        self.lock().clear();
    }

    /// The window answering `request` at or after `lower`, from the cache, or else from
    /// `collect` (one pass over the change log), which is then kept.
    fn get_or_collect(
        &self,
        generation: Timestamp,
        request: &ScanRequest,
        lower: &[u8],
        collect: impl FnOnce() -> Result<ChangedKeys>,
    ) -> Result<Arc<ChangedKeys>> {
        {
            let mut cache = self.lock();
            if let Some(i) = cache.iter().position(|c| c.covers(generation, request, lower)) {
                let hit = cache.remove(i);
                cache.push(hit.clone());
                return Ok(hit);
            }
        }
        let chunk = Arc::new(collect()?);
        let mut cache = self.lock();
        cache.push(chunk.clone());
        if cache.len() > CHANGED_KEYS_CACHED {
            cache.remove(0);
        }
        Ok(chunk)
    }

    /// Fills `out` from passes over a window of many writes, for `request`'s page: `collect`
    /// makes one pass for the keys at or after a lower bound (see [`ChangedKeys::collect`]), and
    /// is called only for windows the cache does not hold. Returns the page's bytes.
    pub(crate) fn page_from_passes(
        &self,
        generation: Timestamp,
        request: &ScanRequest,
        out: &mut PageBuilder,
        mut collect: impl FnMut(&[u8]) -> Result<ChangedKeys>,
        corrupt: impl Fn(String) -> Error,
    ) -> Result<u64> {
        let mut bytes = 0u64;
        let mut lower = request.span.start.clone();
        'keys: loop {
            let chunk = self.get_or_collect(generation, request, &lower, || collect(&lower))?;
            let first = chunk.keys.partition_point(|(k, _)| *k < lower);
            for (key, versions) in &chunk.keys[first..] {
                if bytes >= request.target_bytes {
                    break 'keys;
                }
                for (ts, stored) in versions {
                    let value = decode_version(key, stored, &corrupt)?;
                    bytes += (key.len() + value.map_or(0, <[u8]>::len)) as u64;
                    out.push(key, *ts, value);
                }
            }
            match (chunk.complete, chunk.keys.last()) {
                (false, Some((last, _))) => lower = successor(last),
                _ => break,
            }
        }
        Ok(bytes)
    }
}
