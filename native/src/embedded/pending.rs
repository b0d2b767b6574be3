//! [`KvSink::prepare_ingest`](strata_core::KvSink::prepare_ingest): the spans a restore ingests
//! into, recorded in `"pending_ingests"` until its publish or a discard, and discarded when the
//! store opens if a killed restore left them (see `crate::store_pending`).

use redb::{ReadableDatabase, ReadableTable};
use strata_core::{Result, Span, Timestamp};

use super::layout::PENDING_INGESTS;
use super::Inner;
use crate::store_pending;

impl Inner {
    /// Records `spans`, before the restore's first ingest into them. The commit is not durable
    /// on its own, as the ingests are not ([`redb::Durability::None`]): redb makes commits
    /// durable in order, so any ingest that reaches the disk finds the record there too, and no
    /// restore waits for a sync here.
    pub(super) fn prepare_ingest(&self, spans: &[Span]) -> Result<()> {
        const OP: &str = "record of a restore's spans";
        let mut txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        txn.set_durability(redb::Durability::None).map_err(|e| self.err(OP, e))?;
        {
            let mut pending = txn.open_table(PENDING_INGESTS).map_err(|e| self.err(OP, e))?;
            for span in spans.iter().filter(|s| !s.is_empty()) {
                pending.insert(span.start.as_slice(), span.end.as_slice()).map_err(|e| self.err(OP, e))?;
            }
        }
        txn.commit().map_err(|e| self.err(OP, e))
    }

    /// On open (no restore is running): discards the recorded spans no table owns, and drops the
    /// records of those a table owns (none should be left: a publish drops them). `last` is the
    /// last timestamp issued.
    pub(super) fn discard_abandoned_ingests(&self, last: Timestamp) -> Result<()> {
        const OP: &str = "cleanup after a killed restore";
        let recorded = {
            let txn = self.db.begin_read().map_err(|e| self.err(OP, e))?;
            let pending = txn.open_table(PENDING_INGESTS).map_err(|e| self.err(OP, e))?;
            let mut recorded = Vec::new();
            for row in pending.iter().map_err(|e| self.err(OP, e))? {
                let (start, end) = row.map_err(|e| self.err(OP, e))?;
                recorded.push(Span::new(start.value().to_vec(), end.value().to_vec()));
            }
            recorded
        };
        if recorded.is_empty() {
            return Ok(());
        }
        let abandoned = store_pending::abandoned_spans(&recorded, last, |request| self.scan(request))?;
        // The discard drops the records of the spans it removes; the rest go here.
        self.discard(&abandoned)?;
        let txn = self.db.begin_write().map_err(|e| self.err(OP, e))?;
        {
            let mut pending = txn.open_table(PENDING_INGESTS).map_err(|e| self.err(OP, e))?;
            for span in &recorded {
                pending.remove(span.start.as_slice()).map_err(|e| self.err(OP, e))?;
            }
        }
        txn.commit().map_err(|e| self.err(OP, e))
    }
}
