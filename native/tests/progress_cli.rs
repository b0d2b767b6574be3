//! Progress of backups on the embedded store: the store's table sizes weigh a backup's work
//! units, so its `fraction` follows the bytes exported (not the count of tables done); and the
//! CLI's bars are drawn only on a terminal: with stderr piped, a backup and a restore print
//! nothing there. (The bars themselves are checked by hand under a pseudo-terminal.)

use std::path::Path;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use strata_core::{keys, BackupOptions, Executor, KvSink, KvSource, KvStore, Progress, ProgressReporter, Span};
use strata_native::{EmbeddedStore, NativeOpener};

fn strata(store: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("STRATA_STORE")
        .output()
        .expect("run strata");
    assert!(out.status.success(), "strata {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn no_progress_output_when_stderr_is_not_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "2000"]);
    let backup = strata(&store, &["sql", "BACKUP DATABASE bank INTO 'nodelocal://1/c'"]);
    assert!(backup.stderr.is_empty(), "{}", String::from_utf8_lossy(&backup.stderr));
    let restore =
        strata(&store, &["sql", "RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/c' WITH new_db_name = 'copy'"]);
    assert!(restore.stderr.is_empty(), "{}", String::from_utf8_lossy(&restore.stderr));
}

/// 200 bytes that do not compress.
fn noise(seed: u32) -> Vec<u8> {
    let mut x = u64::from(seed).wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..200)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// The sizes the store keeps follow writes, ingests, discards and GC.
async fn estimate(store: &EmbeddedStore, span: &Span) -> u64 {
    store.estimate_bytes(span).await.unwrap().expect("a new store counts its tables")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_progress_follows_the_bytes_exported() {
    let dir = tempfile::tempdir().unwrap();
    let store = EmbeddedStore::open(&dir.path().join("store")).unwrap();
    let seen: Arc<Mutex<Vec<Progress>>> = Arc::default();
    let s = seen.clone();
    let exec = Executor::new(Arc::new(store.clone()), Arc::new(NativeOpener::new(dir.path().join("extern"))))
        .with_backup_options(
            BackupOptions::default()
                .with_target_file_size(64 << 10)
                .with_page_bytes(16 << 10)
                .with_progress(ProgressReporter::new(move |p| s.lock().unwrap().push(*p))),
        );
    exec.execute("CREATE DATABASE d").await.unwrap();
    // A small table and one 40 times its size: equal weights would put the backup at 2/3 once
    // the system span and the small table are done, with 2% of the bytes exported.
    let mut spans = Vec::new();
    for (table, rows) in [("small", 100u32), ("big", 4000)] {
        exec.execute(&format!("CREATE TABLE d.{table}")).await.unwrap();
        let id = exec.table_id("d", table, None).await.unwrap();
        let batch = (0..rows).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(noise(i)))).collect();
        store.write(batch).await.unwrap();
        spans.push(keys::table_span(id));
    }
    let (small, big) = (estimate(&store, &spans[0]).await, estimate(&store, &spans[1]).await);
    let row = (keys::table_key(0, &[0; 4]).len() + 1 + 200) as u64;
    assert_eq!((small, big), (100 * row, 4000 * row));
    assert!(estimate(&store, &keys::system_span()).await > 0, "descriptors count outside tables");

    exec.execute("BACKUP DATABASE d INTO 'nodelocal://1/c'").await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let total = seen.last().unwrap().bytes as f64;
    assert_eq!(seen.last().unwrap().fraction, 1.0);
    // The fraction follows the bytes read, which lead the bytes stored by at most, per unit, two
    // files (one uploading, one being filled: 64 KiB and a page each) and a page (16 KiB) —
    // 176 KiB for the big table, the small one's 21 KB. Equal weights would be at 0.5 here once
    // the small table is stored (2% of the bytes).
    for p in &seen {
        let read_at_most = (p.bytes + (176 << 10) + small) as f64 / total;
        assert!(p.fraction <= read_at_most + 0.01, "fraction ahead of the bytes read: {p:?}");
    }
    let within = seen.iter().filter(|p| p.fraction > 0.05 && p.fraction < 0.95).count();
    assert!(within >= 20, "the fraction moves within the big table, page by page: {seen:?}");

    // A restore ingests (counted), a discard and GC remove versions (uncounted).
    exec.execute("RESTORE DATABASE d FROM LATEST IN 'nodelocal://1/c' WITH new_db_name = 'e'").await.unwrap();
    let copy = keys::table_span(exec.table_id("e", "big", None).await.unwrap());
    assert_eq!(estimate(&store, &copy).await, big);
    store.discard(std::slice::from_ref(&copy)).await.unwrap();
    assert_eq!(estimate(&store, &copy).await, 0);
    let id = exec.table_id("d", "small", None).await.unwrap();
    store.write((0..100u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), None)).collect()).await.unwrap();
    assert_eq!(estimate(&store, &spans[0]).await, small + 100 * (row - 200));
    store.gc(store.now().await.unwrap()).await.unwrap();
    assert_eq!(estimate(&store, &spans[0]).await, 0, "GC drops the deleted rows and their tombstones");
}
