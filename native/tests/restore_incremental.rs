//! RESTORE into the embedded store, then incremental backups of what it restored. A restore's
//! ingests write no change-log rows (the store records each ingest's span instead), so a backup
//! whose window holds an ingest must still capture every restored row — the store leaves that
//! window to a full scan — and a later change must still be captured from the change log.

use std::path::Path;
use std::sync::Arc;

use strata_core::{keys, read_span, Executor, QueryResult, Timestamp, Value};
use strata_native::{EmbeddedStore, NativeOpener};

async fn run(exec: &Executor, statement: &str) -> QueryResult {
    exec.execute(statement).await.unwrap_or_else(|e| panic!("{statement}: {e}"))
}

/// The rows of `db.table` as of `ts` (now if `None`), keys without their table prefix.
async fn rows(exec: &Executor, db: &str, table: &str, ts: Option<Timestamp>) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = exec.table_id(db, table, None).await.unwrap();
    let ts = match ts {
        Some(ts) => ts,
        None => exec.store().now().await.unwrap(),
    };
    let rows = read_span(exec.store().as_ref(), keys::table_span(id), ts).await.unwrap();
    rows.into_iter().map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v)).collect()
}

/// Writes `key = value` (`None` deletes) into `db.table`.
async fn write(exec: &Executor, db: &str, table: &str, rows: Vec<(String, Option<String>)>) {
    let id = exec.table_id(db, table, None).await.unwrap();
    let batch = rows.into_iter().map(|(k, v)| (keys::table_key(id, k.as_bytes()), v.map(String::into_bytes))).collect();
    exec.store().write(batch).await.unwrap();
}

fn store(dir: &Path) -> EmbeddedStore {
    EmbeddedStore::open(dir).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_backups_after_a_restore_capture_every_restored_row_and_later_changes() {
    let dir = tempfile::tempdir().unwrap();
    let uri = |name: &str| format!("file://{}/{name}", dir.path().display());
    let opener = Arc::new(NativeOpener::new(dir.path().join("nodelocal")));

    let source = Executor::new(Arc::new(store(&dir.path().join("source"))), opener.clone());
    run(&source, "CREATE DATABASE bank").await;
    run(&source, "CREATE TABLE bank.accounts").await;
    let accounts: Vec<(String, Option<String>)> =
        (0..3000).map(|i| (format!("a{i:05}"), Some(format!("balance {i} {}", "x".repeat(i % 90))))).collect();
    write(&source, "bank", "accounts", accounts).await;
    run(&source, &format!("BACKUP DATABASE bank INTO '{}'", uri("bank"))).await;

    let target_store = store(&dir.path().join("target"));
    let target = Executor::new(Arc::new(target_store.clone()), opener.clone());
    run(&target, "CREATE DATABASE shop").await;
    run(&target, "CREATE TABLE shop.orders").await;
    write(&target, "shop", "orders", (0..10).map(|i| (format!("o{i}"), Some(format!("order {i}")))).collect()).await;
    let with = "WITH revision_history";
    run(&target, &format!("BACKUP DATABASE shop INTO '{}' {with}", uri("shop"))).await;

    // Ingested into shop by a restore: the next incremental's window holds the ingests.
    run(&target, &format!("RESTORE TABLE bank.accounts FROM LATEST IN '{}' WITH into_db = 'shop'", uri("bank"))).await;
    let restored = rows(&target, "shop", "accounts", None).await;
    assert_eq!(restored, rows(&source, "bank", "accounts", None).await, "the restored table");
    let first = run(&target, &format!("BACKUP DATABASE shop INTO LATEST IN '{}' {with}", uri("shop"))).await;
    assert_eq!(first.rows[0][1], Value::Text("incremental".into()), "{first:?}");
    let after_restore = target.store().now().await.unwrap();

    // Later changes, read from the change log by the next incremental.
    write(&target, "shop", "accounts", vec![("a00007".into(), Some("changed".into())), ("a00008".into(), None)]).await;
    write(&target, "shop", "orders", vec![("o3".into(), Some("changed too".into()))]).await;
    let before = target_store.stats();
    run(&target, &format!("BACKUP DATABASE shop INTO LATEST IN '{}' {with}", uri("shop"))).await;
    let read = target_store.stats().mvcc_rows_read - before.mvcc_rows_read;
    assert!(read < 1000, "the second incremental read {read} rows of the MVCC table: not from the change log");

    // The chain restores to the target's state, now and just after the restore.
    let check = Executor::new(Arc::new(store(&dir.path().join("check"))), opener.clone());
    run(&check, &format!("RESTORE DATABASE shop FROM LATEST IN '{}'", uri("shop"))).await;
    for table in ["accounts", "orders"] {
        let (expected, got) = (rows(&target, "shop", table, None).await, rows(&check, "shop", table, None).await);
        assert_eq!(got.len(), expected.len(), "shop.{table}: rows");
        assert!(got == expected, "shop.{table} differs after restoring the chain");
    }
    assert_eq!(rows(&check, "shop", "accounts", None).await.len(), 2999);
    let then = Executor::new(Arc::new(store(&dir.path().join("then"))), opener);
    run(
        &then,
        &format!("RESTORE DATABASE shop FROM LATEST IN '{}' AS OF SYSTEM TIME '{}'", uri("shop"), after_restore),
    )
    .await;
    assert_eq!(rows(&then, "shop", "accounts", None).await, restored, "shop.accounts as of just after the restore");
}
