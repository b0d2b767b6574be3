//! [`BackupReader`]: rows read straight from a backup chain are what a restore at the same time
//! holds (at end times and between them, across dropped and recreated tables, encrypted or not),
//! and reading one table of a multi-table backup fetches only that table's blocks.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use futures::executor::block_on;
use strata_core::crypto::kdf::KdfParams;
use strata_core::sql::{BackupSource, Subdir};
use strata_core::{
    datafile, keys, read_span, BackupOptions, BackupReader, DataFileOptions, Entropy, Error, Executor,
    ExternalStorageExt, KeyRequest, KvSource, MemKv, MemoryOpener, MvccFilter, Result, ScanRequest, StorageOpener,
    Timestamp,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::common::{Call, Hook, HookedOpener};

const PASS: &str = "reader passphrase";

/// Deterministic "randomness" for the data key: a counter.
fn entropy() -> Entropy {
    let counter = AtomicU64::new(1);
    Entropy::new(move |buf| {
        for (i, b) in buf.iter_mut().enumerate() {
            *b = (counter.fetch_add(1, Ordering::Relaxed) as u8).wrapping_mul(31).wrapping_add(i as u8);
        }
        Ok(())
    })
}

fn executor(opener: Arc<dyn StorageOpener>) -> Executor {
    Executor::new(Arc::new(MemKv::new()), opener)
        .with_entropy(entropy())
        .with_kdf_params(KdfParams::argon2id(256, 1, 1).unwrap())
}

async fn put(exec: &Executor, table: &str, rows: impl Iterator<Item = (u32, Option<String>)>) -> Timestamp {
    let id = exec.table_id("d", table, None).await.unwrap();
    let batch = rows.map(|(k, v)| (keys::table_key(id, &k.to_be_bytes()), v.map(String::into_bytes))).collect();
    exec.store().write(batch).await.unwrap()
}

/// A chain of three layers with revision history in `uri`: tables a, b, c; then updates and
/// deletions in a, c dropped; then c created anew and a deleted row written again. Returns the
/// times to compare at: before, between and at each backup.
async fn history(exec: &Executor, uri: &str, with: &str) -> Vec<Timestamp> {
    let mut times = Vec::new();
    exec.execute("CREATE DATABASE d").await.unwrap();
    for t in ["a", "b", "c"] {
        exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
        put(exec, t, (0..300).map(|i| (i, Some(format!("{t}{i}-v0"))))).await;
    }
    times.push(exec.store().now().await.unwrap());
    exec.execute(&format!("BACKUP DATABASE d INTO '{uri}' WITH revision_history{with}")).await.unwrap();
    times.push(put(exec, "a", (0..100).map(|i| (i, Some(format!("a{i}-v1"))))).await);
    times.push(put(exec, "a", (100..150).map(|i| (i, None))).await);
    exec.execute("DROP TABLE d.c").await.unwrap();
    times.push(exec.store().now().await.unwrap());
    exec.execute(&format!("BACKUP DATABASE d INTO LATEST IN '{uri}' WITH revision_history{with}")).await.unwrap();
    times.push(exec.store().now().await.unwrap());
    exec.execute("CREATE TABLE d.c").await.unwrap();
    times.push(put(exec, "c", (0..30).map(|i| (i, Some(format!("new c{i}"))))).await);
    times.push(
        put(exec, "a", [(0, Some("a0-v2".into())), (120, Some("a120-back".into())), (7, None)].into_iter()).await,
    );
    exec.execute(&format!("BACKUP DATABASE d INTO LATEST IN '{uri}' WITH revision_history{with}")).await.unwrap();
    times
}

fn source(uri: &str) -> BackupSource {
    BackupSource { subdir: Some(Subdir::Latest), layers: vec![vec![uri.to_string()]] }
}

/// Every `(user key, value)` of each table of database `d` of `exec`'s store, by table name.
async fn restored_tables(exec: &Executor) -> Vec<(String, Vec<(Vec<u8>, Vec<u8>)>)> {
    let catalog = exec.store().catalog_at(exec.store().now().await.unwrap()).await.unwrap();
    let db = catalog.database("d").expect("d restored").id;
    let now = exec.store().now().await.unwrap();
    let mut out = Vec::new();
    let mut tables: Vec<_> = catalog.tables_in(db).cloned().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    for t in tables {
        let rows = read_span(exec.store().as_ref(), keys::table_span(t.id), now).await.unwrap();
        out.push((t.name.clone(), rows.into_iter().map(|(k, v)| (k[5..].to_vec(), v)).collect()));
    }
    out
}

/// Compares the reader with a restore at every time of the history, encrypted or not, from
/// small data files of small blocks (a table spans many of each in every layer).
fn compare_with_restores(with: &str, keys: KeyRequest<'_>) {
    block_on(async {
        let opener: Arc<dyn StorageOpener> = Arc::new(MemoryOpener::default());
        let small = BackupOptions::default()
            .with_target_file_size(1 << 10)
            .with_page_bytes(256)
            .with_data_file(DataFileOptions::default().with_block_size(512));
        let exec = executor(opener.clone()).with_backup_options(small);
        let times = history(&exec, "memory://h", with).await;
        let restore_with = with.replacen(',', " WITH", 1);
        let reader = BackupReader::new(exec.open_chain_with_keys(&source("memory://h"), keys).await.unwrap());
        assert_eq!(reader.chain().layers.len(), 3);
        let files = reader.chain().layers[0].manifest.files.len();
        assert!(files > 9, "the full backup has {files} data files");
        let (lo, hi) = reader.window().unwrap();
        let mut compared = 0;
        let ends = reader.chain().layers.iter().map(|l| l.manifest.end_time);
        for t in times.iter().copied().chain(ends) {
            if t < lo {
                continue;
            }
            let target = executor(opener.clone());
            target
                .execute(&format!("RESTORE DATABASE d FROM LATEST IN 'memory://h' AS OF SYSTEM TIME {t}{restore_with}"))
                .await
                .unwrap();
            let restored = restored_tables(&target).await;
            let catalog = reader.catalog(Some(t)).unwrap();
            let mut names: Vec<String> = catalog.tables.values().map(|x| x.name.clone()).collect();
            names.sort();
            assert_eq!(names, restored.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(), "tables at {t}");
            for (name, rows) in &restored {
                let read = reader.scan_table("d", name, Some(t)).await.unwrap();
                assert_eq!(read.as_of, t);
                let read: Vec<(Vec<u8>, Vec<u8>)> = read.rows.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
                assert_eq!(&read, rows, "d.{name} at {t}");
                for k in [0u32, 7, 120, 149, 299, 5000] {
                    let want = rows.iter().find(|(rk, _)| rk[..] == k.to_be_bytes()).map(|(_, v)| v.clone());
                    let got = reader.get("d", name, &k.to_be_bytes(), Some(t)).await.unwrap().map(|v| v.to_vec());
                    assert_eq!(got, want, "get {k} of d.{name} at {t}");
                }
            }
            if !names.contains(&"c".to_string()) {
                let err = reader.scan_table("d", "c", Some(t)).await.expect_err("c is dropped");
                assert!(matches!(err, Error::NotFound { .. }), "{err}");
            }
            compared += 1;
        }
        assert!(compared >= 9, "compared at {compared} times");
        // A time outside the window is an error, never rows.
        let err = reader.scan_table("d", "a", Some(Timestamp::new(hi.wall + 1, 0))).await.expect_err("after");
        assert!(matches!(err, Error::InvalidTime(_)), "{err}");
    });
}

#[test]
fn reads_what_a_restore_holds_at_every_time_of_a_chain() {
    compare_with_restores("", KeyRequest::default());
}

#[test]
fn reads_what_a_restore_holds_from_an_encrypted_chain() {
    let with = format!(", encryption_passphrase = '{PASS}'");
    compare_with_restores(&with, KeyRequest::new(Some(PASS), &[]));
}

#[test]
fn a_chain_without_revision_history_reads_only_at_its_end_times() {
    block_on(async {
        let opener: Arc<dyn StorageOpener> = Arc::new(MemoryOpener::default());
        let exec = executor(opener.clone());
        exec.execute("CREATE DATABASE d").await.unwrap();
        exec.execute("CREATE TABLE d.a").await.unwrap();
        put(&exec, "a", (0..50).map(|i| (i, Some(format!("v0-{i}"))))).await;
        exec.execute("BACKUP DATABASE d INTO 'memory://n'").await.unwrap();
        let between = put(&exec, "a", (0..10).map(|i| (i, None))).await;
        put(&exec, "a", (5..7).map(|i| (i, Some(format!("v1-{i}"))))).await;
        exec.execute("BACKUP DATABASE d INTO LATEST IN 'memory://n'").await.unwrap();
        let reader = BackupReader::new(exec.open_chain(&source("memory://n")).await.unwrap());
        for layer in &reader.chain().layers {
            let t = layer.manifest.end_time;
            let target = executor(opener.clone());
            target
                .execute(&format!("RESTORE DATABASE d FROM LATEST IN 'memory://n' AS OF SYSTEM TIME {t}"))
                .await
                .unwrap();
            let restored = restored_tables(&target).await;
            let read = reader.scan_table("d", "a", Some(t)).await.unwrap();
            let read: Vec<(Vec<u8>, Vec<u8>)> = read.rows.iter().map(|(k, v)| (k.to_vec(), v.to_vec())).collect();
            assert_eq!(read, restored[0].1, "d.a at {t}");
        }
        assert_eq!(reader.scan_table("d", "a", None).await.unwrap().rows.len(), 42);
        let err = reader.scan_table("d", "a", Some(between)).await.expect_err("between the layers");
        assert!(err.to_string().contains("requires a backup taken WITH revision_history"), "{err}");
        // Nor can it list revisions.
        let a = reader.table("d", "a", None).unwrap().id;
        let end = reader.now().await.unwrap();
        let all = ScanRequest::new(keys::table_span(a), Timestamp::ZERO, end, MvccFilter::AllRevisions);
        assert!(matches!(reader.scan(all).await, Err(Error::InvalidTime(_))));
    });
}

#[test]
fn pages_of_a_scan_and_revisions_come_from_the_layers() {
    block_on(async {
        let opener: Arc<dyn StorageOpener> = Arc::new(MemoryOpener::default());
        let exec = executor(opener.clone());
        let times = history(&exec, "memory://p", "").await;
        let reader = BackupReader::new(exec.open_chain(&source("memory://p")).await.unwrap());
        let end = reader.now().await.unwrap();
        let a = exec.table_id("d", "a", Some(end)).await.unwrap();
        // Small pages: resumed at key boundaries, together the one-page answer.
        let mut request = ScanRequest::new(keys::table_span(a), Timestamp::ZERO, end, MvccFilter::Latest);
        let whole = reader.scan(request.clone()).await.unwrap();
        assert!(whole.resume_key.is_none());
        assert_eq!(whole.entries.len(), 300, "299 rows and the tombstone of key 7, hiding every deleted key but 120");
        request.target_bytes = 500;
        let mut paged = Vec::new();
        let mut pages = 0;
        loop {
            let page = reader.scan(request.clone()).await.unwrap();
            pages += 1;
            paged.extend(page.entries);
            match page.resume_key {
                Some(k) => request.span.start = k,
                None => break,
            }
        }
        assert!(pages > 5, "{pages} pages");
        assert_eq!(paged, whole.entries);
        // Every revision of key 0 of a: v0 (in the full backup's history), v1, v2.
        let k0 = keys::table_key(a, &0u32.to_be_bytes());
        let mut revs = ScanRequest::new(
            strata_core::Span::new(k0.clone(), [k0.clone(), vec![0]].concat()),
            times[0],
            end,
            MvccFilter::AllRevisions,
        );
        let got: Vec<_> = reader.scan(revs.clone()).await.unwrap().entries.into_iter().map(|e| e.value).collect();
        assert_eq!(got, vec![Some("a0-v2".into()), Some("a0-v1".into())], "revisions after the full backup");
        revs.start = Timestamp::ZERO;
        let got = reader.scan(revs).await.unwrap().entries.len();
        assert_eq!(got, 3, "every revision since the history began");
    });
}

/// What was fetched: `(path, bytes)` of every read (a whole `get` counts as `u64::MAX`).
#[derive(Default)]
struct Fetched(Mutex<Vec<(String, u64)>>);

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Fetched {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        let len = match call {
            Call::Get => u64::MAX,
            Call::GetRange { len } => len,
            _ => return Ok(()),
        };
        self.0.lock().unwrap().push((path.to_string(), len));
        Ok(())
    }
}

/// Four tables of 5,000 rows of 100 varied bytes, backed up in one layer, plain or encrypted;
/// reading one table fetches its blocks, the index and footer of the files holding them, and
/// (encrypted) the chunks around them, never the other tables' blocks.
fn one_table_fetches_little_more_than_its_blocks(with: &str, keys: KeyRequest<'_>) {
    block_on(async {
        let memory = MemoryOpener::default();
        let fetched = Arc::new(Fetched::default());
        let hooked: Arc<dyn StorageOpener> = Arc::new(HookedOpener { inner: memory.clone(), hook: fetched.clone() });
        // Blocks of 32 KiB (the default is 256 KiB): each table spans several, so that a get
        // fetching one block fetches less than the table's.
        let exec = executor(hooked).with_backup_options(
            BackupOptions::default().with_data_file(DataFileOptions::default().with_block_size(32 << 10)),
        );
        exec.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b", "c", "e"] {
            exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let mut state = 0x9e37_79b9_7f4a_7c15u64 ^ t.as_bytes()[0] as u64;
            let mut noise = move || {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state
            };
            let rows: Vec<_> = (0..5000u32)
                .map(|i| {
                    (i, Some(format!("{t}{i:05}-{}", (0..6).map(|_| format!("{:016x}", noise())).collect::<String>())))
                })
                .collect();
            put(&exec, t, rows.into_iter()).await;
        }
        exec.execute(&format!("BACKUP DATABASE d INTO 'memory://m' WITH revision_history{with}")).await.unwrap();
        let reader = BackupReader::new(exec.open_chain_with_keys(&source("memory://m"), keys).await.unwrap());
        let b = reader.table("d", "b", None).unwrap();
        let span = keys::table_span(b.id);
        // What the table's blocks take, from the data files read whole outside the counter.
        let layer = &reader.chain().layers[0];
        let storage = layer.dir.storage();
        let (mut all, mut blocks, mut overhead, mut files) = (0u64, 0u64, 0u64, 0u64);
        for f in &layer.manifest.files {
            let stored = storage.get(&f.path).await.unwrap();
            all += stored.len() as u64;
            if !f.span.overlaps(&span) {
                continue;
            }
            files += 1;
            let plain = reader.chain().codec.open(&f.path, stored, &f.path).unwrap();
            let size = plain.len() as u64;
            let footer =
                datafile::decode_footer(&plain[(size - datafile::FOOTER_LEN) as usize..], size, &f.path).unwrap();
            let at = footer.index_offset as usize;
            let index = datafile::decode_index(&plain[at..at + footer.index_len as usize], &footer, &f.path).unwrap();
            blocks += index.iter().filter(|h| h.overlaps(&span)).map(|h| h.len as u64).sum::<u64>();
            overhead += datafile::FOOTER_LEN + footer.index_len as u64;
        }
        assert!(blocks > 0 && files > 0);
        fetched.0.lock().unwrap().clear();
        let rows = reader.scan_table("d", "b", None).await.unwrap();
        assert_eq!(rows.rows.len(), 5000);
        let reads = fetched.0.lock().unwrap().clone();
        let total: u64 = reads.iter().map(|(_, n)| *n).sum();
        let bound = if reader.chain().codec.is_encrypted() {
            // Each read widens to whole chunks (a chunk on each side at most), plus the header of
            // each file and a tag per chunk.
            use strata_core::crypto::aead::{DEFAULT_CHUNK_SIZE, HEADER_LEN, TAG_LEN};
            let chunk = DEFAULT_CHUNK_SIZE as u64 + TAG_LEN;
            blocks + overhead + reads.len() as u64 * 2 * chunk + files * HEADER_LEN + (blocks / chunk + 1) * TAG_LEN
        } else {
            blocks + overhead
        };
        eprintln!(
            "read d.b ({with:?}): fetched {total} bytes in {} reads; its blocks {blocks}, index+footer {overhead}, \
             all data files {all}",
            reads.len()
        );
        assert!(total >= blocks && total <= bound, "fetched {total} bytes, bound {bound}: {reads:?}");
        assert!(total * 2 < all, "fetched {total} of {all} bytes of data files");
        // A key: one block (and its chunks) of one file, the index already known.
        fetched.0.lock().unwrap().clear();
        let v = reader.get("d", "b", &1234u32.to_be_bytes(), None).await.unwrap();
        assert!(v.is_some_and(|v| v.starts_with(b"b01234")));
        let total: u64 = fetched.0.lock().unwrap().iter().map(|(_, n)| *n).sum();
        assert!(total < blocks, "a get fetched {total} bytes, the table's blocks are {blocks}");
    });
}

#[test]
fn reading_one_table_fetches_only_its_blocks() {
    one_table_fetches_little_more_than_its_blocks("", KeyRequest::default());
}

#[test]
fn reading_one_table_of_an_encrypted_backup_fetches_only_its_chunks() {
    let with = format!(", encryption_passphrase = '{PASS}'");
    one_table_fetches_little_more_than_its_blocks(&with, KeyRequest::new(Some(PASS), &[]));
}
