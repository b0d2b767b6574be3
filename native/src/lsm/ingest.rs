//! [`KvSink::ingest`](strata_core::KvSink::ingest): a restore's sorted runs written with fjall's
//! bulk ingestion straight into table files, recorded by their span in `"ingested"` instead of
//! one change-index row per key; and the one question a scan of changes asks of `"ingested"`.

use std::collections::BTreeMap;

use fjall::{PersistMode, Readable, Slice, Snapshot};
use strata_core::{Result, ScanRequest};

use super::layout::{
    change_bounds, change_key, encode_ts, push_version_key, split_change_key, successor, LAST_TIMESTAMP_KEY, TAG_VALUE,
};
use super::write::ByteDeltas;
use super::Inner;

impl Inner {
    /// [`KvSink::ingest`](strata_core::KvSink::ingest) of `pairs`, which should come sorted by key
    /// and without duplicates; pairs that do not are sorted first (the last of a duplicated key
    /// wins, as in a write). `pairs` is read twice: once to check the order and find the span,
    /// once to write.
    pub(super) fn ingest<'a, I>(&self, pairs: I) -> Result<()>
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let mut span: Option<(&[u8], &[u8])> = None;
        let mut ascending = true;
        for (key, _) in pairs.clone() {
            span = Some(match span {
                None => (key, key),
                Some((first, last)) => {
                    ascending &= key > last;
                    (first.min(key), last.max(key))
                }
            });
        }
        let Some((first, last)) = span else { return Ok(()) };
        if ascending {
            self.ingest_sorted(pairs, first, last)
        } else {
            let sorted: BTreeMap<&[u8], &[u8]> = pairs.collect();
            self.ingest_sorted(sorted.into_iter(), first, last)
        }
    }

    /// Ingests `pairs`, strictly ascending by key, from `first` to `last`, at one fresh timestamp
    /// (see "Writes, ingests and durability" on [`LsmStore`](super::LsmStore)).
    fn ingest_sorted<'a>(
        &self,
        pairs: impl Iterator<Item = (&'a [u8], &'a [u8])>,
        first: &[u8],
        last: &[u8],
    ) -> Result<()> {
        const OP: &str = "ingest";
        let _commit = self.lock_commit();
        let pending = self.clock.issue();
        let ts = pending.ts;
        // The record and the clock first, durably: a crash after it and before the ingestion
        // registers its tables leaves a record without versions, which only makes a scan of
        // changes fall back to a scan.
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        batch.insert(&self.ingested, change_key(ts, first), successor(last));
        batch.insert(&self.meta, LAST_TIMESTAMP_KEY, encode_ts(ts).as_slice());
        batch.commit().map_err(|e| self.err(OP, e))?;

        // The versions, into new tables: fjall syncs them and registers them atomically.
        let mut ingestion = self.versions.start_ingestion().map_err(|e| self.err(OP, e))?;
        let mut deltas = ByteDeltas::default();
        let (mut key_buf, mut value_buf) = (Vec::new(), vec![TAG_VALUE]);
        for (key, value) in pairs {
            key_buf.clear();
            push_version_key(&mut key_buf, key, ts);
            value_buf.truncate(1);
            value_buf.extend_from_slice(value);
            deltas.count(key, value_buf.len(), 1);
            ingestion.write(Slice::new(&key_buf), Slice::new(&value_buf)).map_err(|e| self.err(OP, e))?;
        }
        ingestion.finish().map_err(|e| self.err(OP, e))?;

        // The byte counts, not synced: they are estimates, and the next synced commit persists them.
        let mut batch = self.db.batch();
        let counts = self.count_into(&mut batch, deltas);
        batch.commit().map_err(|e| self.err(OP, e))?;
        self.apply_counts(counts);
        drop(pending);
        Ok(())
    }

    /// Whether an ingest at a timestamp in `(request.start, request.end]` wrote into
    /// `request.span`: its versions have no rows in the change index, so a scan of changes cannot
    /// answer `request` from it. `snapshot` is the one the scan reads.
    pub(super) fn ingested_spans_overlap(&self, snapshot: &Snapshot, request: &ScanRequest) -> Result<bool> {
        const OP: &str = "read of the ingested spans";
        if request.span.is_empty() || request.end <= request.start {
            return Ok(false);
        }
        for row in snapshot.range(&self.ingested, change_bounds(request.start, request.end)) {
            let (k, end) = row.into_inner().map_err(|e| self.err(OP, e))?;
            let (_, start) = split_change_key(&k).ok_or_else(|| self.corrupt("a row of \"ingested\" is too short"))?;
            if start < request.span.end.as_slice() && request.span.start.as_slice() < &*end {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
