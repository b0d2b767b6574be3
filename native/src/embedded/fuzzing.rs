//! Fuzzing the store's layouts: a store file whose tables hold whatever rows the input says
//! (any keys, any values, any layout version and timestamps in `"meta"`), opened (which checks
//! and upgrades its layout) and read back through every read the store offers. Nothing may
//! panic or hang; errors are the expected outcome.
//!
//! ```text
//! input = row*    row = table: u8 | key_len: u8 | key | value_len: u8 | value
//! table % 4: 0 "mvcc" (key ‖ wall u64 ‖ logical u32 from the key's last 12 bytes), 1 "change_log",
//!            2 "ingested" (the same split), 3 "meta" (the name picked by the key's first byte)
//! ```

use futures::executor::block_on;
use strata_core::{KvSource, MvccFilter, ScanPage, ScanRequest, Span, Timestamp};

use super::layout::{CHANGES, INGESTED, META, MVCC};
use super::EmbeddedStore;

/// The names the store keeps in `"meta"`, and one it does not know.
const META_NAMES: [&str; 4] = ["layout_version", "last_timestamp", "gc_threshold", "unknown"];

/// Runs one input (see the module docs).
pub fn store_layout(data: &[u8]) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    write_rows(&dir.path().join(EmbeddedStore::FILE_NAME), data).expect("rows of valid types write");
    let Ok(store) = EmbeddedStore::open(dir.path()) else { return };
    block_on(async {
        let Ok(now) = store.now().await else { return };
        let all = Span::new(Vec::new(), vec![0xff; 16]);
        for (start, filter) in [(Timestamp::ZERO, MvccFilter::AllRevisions), (Timestamp::new(0, 1), MvccFilter::Latest)]
        {
            let mut request = ScanRequest::new(all.clone(), start, now, filter);
            request.target_bytes = 64;
            for _ in 0..10_000 {
                match store.scan(request.clone()).await {
                    Ok(ScanPage { resume_key: Some(k), .. }) => request.span.start = k,
                    _ => break,
                }
            }
            let _ = store.scan_changes(request).await;
        }
        let _ = store.catalog_at(now).await;
        let _ = store.gc_threshold(&all).await;
    });
}

/// `(key, wall, logical)` from a row's key: its last 12 bytes are the timestamp, when it has them.
fn split(key: &[u8]) -> (&[u8], u64, u32) {
    if key.len() < 12 {
        return (key, key.len() as u64, 0);
    }
    let (k, ts) = key.split_at(key.len() - 12);
    (
        k,
        u64::from_be_bytes(ts[..8].try_into().expect("8 bytes")),
        u32::from_be_bytes(ts[8..].try_into().expect("4 bytes")),
    )
}

fn write_rows(path: &std::path::Path, mut data: &[u8]) -> Result<(), redb::Error> {
    let db = redb::Database::create(path)?;
    let txn = db.begin_write()?;
    {
        let mut mvcc = txn.open_table(MVCC)?;
        let mut changes = txn.open_table(CHANGES)?;
        let mut ingested = txn.open_table(INGESTED)?;
        let mut meta = txn.open_table(META)?;
        let mut take = |n: usize| -> Option<&[u8]> {
            let (piece, rest) = (data.get(..n)?, data.get(n..)?);
            data = rest;
            Some(piece)
        };
        while let Some(&[table, key_len]) = take(2).map(|b| <&[u8; 2]>::try_from(b).expect("2 bytes")) {
            let Some(key) = take(key_len as usize) else { break };
            let Some(&[value_len]) = take(1) else { break };
            let Some(value) = take(value_len as usize) else { break };
            let (k, wall, logical) = split(key);
            match table % 4 {
                0 => drop(mvcc.insert((k, wall, logical), value)?),
                1 => drop(changes.insert((wall, logical, k), value)?),
                2 => drop(ingested.insert((wall, logical, k), value)?),
                _ => drop(meta.insert(META_NAMES[key.first().copied().unwrap_or(0) as usize % 4], value)?),
            }
        }
    }
    txn.commit()?;
    Ok(())
}
