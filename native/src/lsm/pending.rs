//! [`KvSink::prepare_ingest`](strata_core::KvSink::prepare_ingest): the spans a restore ingests
//! into, recorded in `"pending_ingests"` until its publish or a discard, and discarded when the
//! store opens if a killed restore left them (see `crate::store_pending`).

use fjall::{PersistMode, Readable};
use strata_core::{Result, Span, Timestamp};

use super::Inner;
use crate::store_pending;

impl Inner {
    /// Records `spans`, before the restore's first ingest into them. The batch is not synced on
    /// its own: each ingest first syncs the journal (its record in `"ingested"`), which persists
    /// this earlier batch too, before any of its tables is written.
    pub(super) fn prepare_ingest(&self, spans: &[Span]) -> Result<()> {
        const OP: &str = "record of a restore's spans";
        let mut batch = self.db.batch();
        for span in spans.iter().filter(|s| !s.is_empty()) {
            batch.insert(&self.pending_ingests, span.start.as_slice(), span.end.as_slice());
        }
        batch.commit().map_err(|e| self.err(OP, e))
    }

    /// On open (no restore is running): discards the recorded spans no table owns, and drops the
    /// records of those a table owns (none should be left: a publish drops them). `last` is the
    /// last timestamp issued.
    pub(super) fn discard_abandoned_ingests(&self, last: Timestamp) -> Result<()> {
        const OP: &str = "cleanup after a killed restore";
        let mut recorded = Vec::new();
        for row in self.db.snapshot().iter(&self.pending_ingests) {
            let (start, end) = row.into_inner().map_err(|e| self.err(OP, e))?;
            recorded.push(Span::new(start.to_vec(), end.to_vec()));
        }
        if recorded.is_empty() {
            return Ok(());
        }
        let abandoned = store_pending::abandoned_spans(&recorded, last, |request| self.scan(request))?;
        // The discard drops the records of the spans it removes; the rest go here.
        self.discard(&abandoned)?;
        let mut batch = self.db.batch().durability(Some(PersistMode::SyncData));
        for span in &recorded {
            batch.remove(&self.pending_ingests, span.start.as_slice());
        }
        batch.commit().map_err(|e| self.err(OP, e))
    }
}
