//! How both embedded stores keep the spans a restore is ingesting into
//! ([`KvSink::prepare_ingest`](strata_core::KvSink::prepare_ingest)), and clean up after a restore
//! killed before its publish.
//!
//! A restore's ingests go into the spans of tables it has not published yet: nothing shows them,
//! and a restore that fails discards them. One that is killed cannot, and what it ingested and
//! synced (the LSM store syncs each ingest's tables; redb's ingests become durable with the next
//! durable commit, whoever makes it) would stay on disk for good, in spans no descriptor will
//! ever own. So each store records the spans before the first ingest (a commit that reaches the
//! disk before any ingest it covers does, without a sync of its own), drops a span's
//! record in the commit of the publish that writes its table's descriptor (or in a discard of
//! the span), and, when it opens (a store is open in one process at a time: no restore can be
//! running then), discards the spans still recorded that no table owns.

use strata_core::{keys, Descriptor, DescriptorChange, MvccFilter, Result, ScanPage, ScanRequest, Span, Timestamp};

/// A batch of writes: a value, or `None` for a deletion, per key.
pub(crate) type Writes = Vec<(Vec<u8>, Option<Vec<u8>>)>;

/// A publish of `changes`: its writes ([`DescriptorChange::into_write`]), and the spans whose
/// records it drops in the same commit (those of the tables it writes).
pub(crate) fn publish_writes(changes: Vec<DescriptorChange>) -> (Writes, Vec<Span>) {
    let published = changes
        .iter()
        .filter_map(|c| match c {
            DescriptorChange::Put(Descriptor::Table(t)) => Some(t.span()),
            _ => None,
        })
        .collect();
    (changes.into_iter().map(DescriptorChange::into_write).collect(), published)
}

/// The recorded spans that no table of the catalog at `at` overlaps: what restores killed
/// before their publish ingested into. `scan` is the store's scan of one page (used for the
/// descriptors only, and only when something is recorded).
pub(crate) fn abandoned_spans(
    recorded: &[Span],
    at: Timestamp,
    mut scan: impl FnMut(&ScanRequest) -> Result<ScanPage>,
) -> Result<Vec<Span>> {
    if recorded.is_empty() {
        return Ok(Vec::new());
    }
    let mut owned = Vec::new();
    let mut request = ScanRequest::new(keys::descriptor_span(), Timestamp::ZERO, at, MvccFilter::Latest);
    loop {
        let page = scan(&request)?;
        for e in page.entries {
            if let Some(Descriptor::Table(t)) = e.value.as_deref().map(Descriptor::decode).transpose()? {
                owned.push(t.span());
            }
        }
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => break,
        }
    }
    Ok(recorded.iter().filter(|r| !owned.iter().any(|o| o.overlaps(r))).cloned().collect())
}

/// Whether the record of `recorded` goes with a discard of `spans`: one of them covers it.
pub(crate) fn discarded_by(recorded: &Span, spans: &[Span]) -> bool {
    spans.iter().any(|s| s.start <= recorded.start && recorded.end <= s.end)
}

#[cfg(test)]
mod tests {
    use super::*;
    use strata_core::{DatabaseDescriptor, TableDescriptor};

    fn table(id: u32) -> TableDescriptor {
        TableDescriptor {
            id,
            name: format!("t{id}"),
            parent_id: 100,
            version: 1,
            modification_time: Timestamp::new(1, 0),
            indexes: Vec::new(),
        }
    }

    #[test]
    fn a_publish_drops_the_records_of_the_tables_it_writes() {
        let changes = vec![
            DescriptorChange::Put(Descriptor::Database(DatabaseDescriptor {
                id: 100,
                name: "d".into(),
                version: 1,
                modification_time: Timestamp::new(1, 0),
            })),
            DescriptorChange::Put(Descriptor::Table(table(101))),
            DescriptorChange::Delete(102),
            DescriptorChange::Put(Descriptor::Table(table(103))),
        ];
        let (writes, published) = publish_writes(changes.clone());
        assert_eq!(published, vec![keys::table_span(101), keys::table_span(103)]);
        assert_eq!(writes, changes.into_iter().map(DescriptorChange::into_write).collect::<Vec<_>>());
    }

    #[test]
    fn spans_a_table_owns_are_not_abandoned() {
        let owned = table(101);
        let page = ScanPage {
            entries: vec![strata_core::Entry::new(
                keys::descriptor_key(101),
                Timestamp::new(5, 0),
                Some(Descriptor::Table(owned).encode()),
            )],
            resume_key: None,
        };
        let recorded = [keys::table_span(101), keys::table_span(104)];
        let mut scans = 0;
        let abandoned = abandoned_spans(&recorded, Timestamp::new(9, 0), |r| {
            scans += 1;
            assert_eq!(r.span, keys::descriptor_span());
            Ok(page.clone())
        })
        .unwrap();
        assert_eq!(abandoned, vec![keys::table_span(104)]);
        assert_eq!(scans, 1);
        // Nothing recorded: nothing read.
        assert!(abandoned_spans(&[], Timestamp::new(9, 0), |_| panic!("no scan")).unwrap().is_empty());
    }

    #[test]
    fn a_discard_drops_the_records_it_covers() {
        let whole = Span::new(keys::table_span(101).start, keys::table_span(103).end);
        assert!(discarded_by(&keys::table_span(102), std::slice::from_ref(&whole)));
        assert!(!discarded_by(&keys::table_span(104), std::slice::from_ref(&whole)));
        assert!(!discarded_by(
            &keys::table_span(101),
            &[Span::new(keys::table_key(101, b"a"), keys::table_span(101).end)]
        ));
    }
}
