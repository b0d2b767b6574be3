//! Each error of incremental backups and point-in-time restore: its kind, and that it names the
//! right thing; and the options each statement's form refuses (`statement_options`).

use std::sync::Arc;

use futures::executor::block_on;
use strata_core::{keys, Error, Executor, KvSource, MemKv, MemoryOpener, Timestamp};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[path = "incremental_errors/statement_options.rs"]
mod statement_options;

struct Env {
    kv: MemKv,
    opener: MemoryOpener,
    exec: Executor,
}

fn env() -> Env {
    let kv = MemKv::new();
    let opener = MemoryOpener::default();
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(opener.clone()));
    Env { kv, opener, exec }
}

impl Env {
    async fn run(&self, sql: &str) -> strata_core::QueryResult {
        self.exec.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn fail(&self, sql: &str) -> Error {
        self.exec.execute(sql).await.expect_err(sql)
    }
    async fn put(&self, table: &str, key: &str, value: &str) -> Timestamp {
        let id = self.exec.table_id("d", table, None).await.unwrap();
        self.kv.write_sync(vec![(keys::table_key(id, key.as_bytes()), Some(value.as_bytes().to_vec()))])
    }
    async fn setup(&self) {
        self.run("CREATE DATABASE d").await;
        self.run("CREATE TABLE d.t").await;
        self.put("t", "a", "1").await;
    }
}

fn end_time(r: &strata_core::QueryResult) -> Timestamp {
    r.get(0, "end_time").unwrap().to_string().parse().unwrap()
}

#[test]
fn incremental_below_the_gc_threshold_suggests_a_full_backup() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("BACKUP DATABASE d TO 'memory://b/full'").await;
        e.put("t", "a", "2").await;
        let now = e.kv.now().await.unwrap();
        e.kv.gc(now);
        let err = e.fail("BACKUP DATABASE d TO 'memory://b/full'").await;
        assert!(matches!(err, Error::InvalidTime(_)), "{err:?}");
        let msg = err.to_string();
        assert!(msg.contains("below the GC threshold") && msg.contains("take a full backup"), "{msg}");
        // No layer was left behind, and a full backup still works.
        assert!(e
            .exec
            .execute("SHOW BACKUP 'memory://b/full'")
            .await
            .unwrap()
            .rows
            .iter()
            .all(|r| r[2].to_string() == "full"));
        e.run("BACKUP DATABASE d TO 'memory://b/full2'").await;
    });
}

#[test]
fn as_of_below_the_gc_threshold_is_refused() {
    block_on(async {
        let e = env();
        e.setup().await;
        let old = e.put("t", "a", "2").await;
        e.put("t", "a", "3").await;
        let now = e.kv.now().await.unwrap();
        e.kv.gc(now);
        let err = e.fail(&format!("BACKUP DATABASE d TO 'memory://b/x' AS OF SYSTEM TIME {old}")).await;
        assert!(matches!(err, Error::InvalidTime(_)), "{err:?}");
        assert!(err.to_string().contains("below the GC threshold"), "{err}");
    });
}

#[test]
fn revision_history_full_backup_starts_at_the_gc_threshold() {
    block_on(async {
        let e = env();
        e.setup().await;
        let before = e.put("t", "a", "2").await;
        let now = e.kv.now().await.unwrap();
        e.kv.gc(now);
        let after = e.put("t", "a", "3").await;
        let r = e.run("BACKUP DATABASE d TO 'memory://b/rh' WITH revision_history").await;
        let end = end_time(&r);
        // Restorable from the GC threshold on, not before it.
        let t2 = Executor::new(Arc::new(MemKv::new()), Arc::new(e.opener.clone()));
        t2.execute(&format!("RESTORE DATABASE d FROM 'memory://b/rh' AS OF SYSTEM TIME {now}")).await.unwrap();
        let t3 = Executor::new(Arc::new(MemKv::new()), Arc::new(e.opener.clone()));
        let err = t3
            .execute(&format!("RESTORE DATABASE d FROM 'memory://b/rh' AS OF SYSTEM TIME {before}"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::InvalidTime(format!(
                "cannot restore as of {before}: it is outside the backup's window [{now}, {end}]"
            ))
        );
        assert!(after <= end);
    });
}

#[test]
fn restore_outside_the_window_names_it() {
    block_on(async {
        let e = env();
        e.setup().await;
        let full = end_time(&e.run("BACKUP DATABASE d TO 'memory://b/w'").await);
        e.put("t", "a", "2").await;
        let inc = end_time(&e.run("BACKUP DATABASE d TO 'memory://b/w'").await);
        let target = Executor::new(Arc::new(MemKv::new()), Arc::new(e.opener.clone()));
        let late = inc.next();
        let err = target
            .execute(&format!("RESTORE DATABASE d FROM 'memory://b/w' AS OF SYSTEM TIME {late}"))
            .await
            .unwrap_err();
        assert_eq!(
            err,
            Error::InvalidTime(format!(
                "cannot restore as of {late}: it is outside the backup's window [{full}, {inc}]"
            ))
        );
        // Both end times are restorable, and differ.
        for (t, want) in [(full, "1"), (inc, "2")] {
            let kv = MemKv::new();
            let x = Executor::new(Arc::new(kv.clone()), Arc::new(e.opener.clone()));
            x.execute(&format!("RESTORE DATABASE d FROM 'memory://b/w' AS OF SYSTEM TIME {t}")).await.unwrap();
            let id = x.table_id("d", "t", None).await.unwrap();
            assert_eq!(kv.get_at(&keys::table_key(id, b"a"), Timestamp::MAX), Some(want.as_bytes().to_vec()));
        }
    });
}

#[test]
fn explicit_chains_check_settings_and_order() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("BACKUP DATABASE d TO 'memory://b/f'").await;
        let err =
            e.fail("BACKUP DATABASE d TO 'memory://b/i' INCREMENTAL FROM 'memory://b/f' WITH revision_history").await;
        assert!(matches!(err, Error::Precondition(_)), "{err:?}");
        assert!(err.to_string().contains("taken without revision_history"), "{err}");
        let err = e.fail("BACKUP TO 'memory://b/i' INCREMENTAL FROM 'memory://b/f'").await;
        assert!(err.to_string().contains("same targets") && err.to_string().contains("database d"), "{err}");
        let err = e.fail("BACKUP DATABASE d TO 'memory://b/i' INCREMENTAL FROM 'memory://b/missing'").await;
        assert!(matches!(err, Error::NotFound { .. }) && err.to_string().contains("memory://b/missing"), "{err}");
        // The destination of an explicit incremental must be empty.
        let err = e.fail("BACKUP DATABASE d TO 'memory://b/f' INCREMENTAL FROM 'memory://b/f'").await;
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
        // Two fulls are not a chain.
        e.run("BACKUP DATABASE d TO 'memory://b/f2'").await;
        let err = e.fail("RESTORE DATABASE d FROM 'memory://b/f', 'memory://b/f2'").await;
        assert!(err.to_string().contains("is a full backup, but it is listed as an incremental layer"), "{err}");
    });
}

#[test]
fn a_missing_appended_layer_is_named() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("BACKUP DATABASE d TO 'memory://b/c'").await;
        e.put("t", "a", "2").await;
        let first = e.run("BACKUP DATABASE d TO 'memory://b/c'").await.get(0, "path").unwrap().to_string();
        e.put("t", "a", "3").await;
        e.run("BACKUP DATABASE d TO 'memory://b/c'").await;
        // Delete the first incremental's manifest: the chain now has a gap, and the error names it.
        let storage = strata_core::StorageOpener::open(&e.opener, "memory://b").unwrap();
        let rel = first.strip_prefix("memory://b/").unwrap();
        storage.delete(&format!("{rel}/BACKUP_MANIFEST")).await.unwrap();
        let err = e.fail("RESTORE DATABASE d FROM 'memory://b/c' WITH new_db_name = 'x'").await;
        assert!(matches!(err, Error::Precondition(_)), "{err:?}");
        assert!(err.to_string().contains("the chain has a gap") && err.to_string().contains(&first), "{err}");
    });
}

#[test]
fn dropped_and_recreated_tables_and_deletes_restore() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.put("t", "b", "1").await;
        e.run("BACKUP DATABASE d INTO 'memory://c'").await;
        // Delete a key, drop the table, re-create it under the same name with other rows.
        let id = e.exec.table_id("d", "t", None).await.unwrap();
        e.kv.write_sync(vec![(keys::table_key(id, b"a"), None)]);
        e.run("DROP TABLE d.t").await;
        e.run("CREATE TABLE d.t").await;
        e.put("t", "z", "new").await;
        e.run("BACKUP DATABASE d INTO LATEST IN 'memory://c'").await;
        let kv = MemKv::new();
        let x = Executor::new(Arc::new(kv.clone()), Arc::new(e.opener.clone()));
        x.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c'").await.unwrap();
        let id = x.table_id("d", "t", None).await.unwrap();
        let rows = kv.view_at(&keys::table_span(id), Timestamp::MAX);
        assert_eq!(rows, vec![(keys::table_key(id, b"z"), b"new".to_vec())]);
    });
}

#[test]
fn a_layer_without_its_manifest_is_reported_to_library_users() {
    use strata_core::{StorageOpener, Value};
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("BACKUP DATABASE d TO 'memory://b/full'").await;
        e.put("t", "a", "2").await;
        e.run("BACKUP DATABASE d TO 'memory://b/full'").await;
        let inc1 = e.run("SHOW BACKUP 'memory://b/full'").await;
        assert!(inc1.notices.is_empty(), "{inc1:?}");
        e.put("t", "a", "3").await;
        e.run("BACKUP DATABASE d TO 'memory://b/full'").await;
        let storage = e.opener.open("memory://b/full").unwrap();
        let manifests: Vec<String> = storage
            .list("incrementals/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.path)
            .filter(|p| p.ends_with("/BACKUP_MANIFEST"))
            .collect();
        assert_eq!(manifests.len(), 2);
        storage.delete(&manifests[1]).await.unwrap();
        let dir = manifests[1].strip_suffix("/BACKUP_MANIFEST").unwrap();

        let show = e.run("SHOW BACKUP 'memory://b/full'").await;
        assert_eq!(show.notices.len(), 1, "{show:?}");
        assert!(show.notices[0].starts_with(&format!("skipped the incremental layer memory://b/full/{dir}: it holds")));
        let last = show.rows.last().unwrap();
        assert_eq!(last[2], Value::Text(format!("skipped (no BACKUP_MANIFEST): {dir}")));
        assert_eq!(show.rows.len(), inc1.rows.len() + 1, "the layers read, and the skipped one");

        e.run("DROP DATABASE d CASCADE").await;
        let restored = e.run("RESTORE DATABASE d FROM 'memory://b/full'").await;
        assert_eq!(restored.notices, show.notices);
        // Restored to the end of the last layer read: the time the notice names.
        let inc1_end = inc1.get(inc1.rows.len() - 1, "end_time_decimal").unwrap().to_string();
        assert_eq!(restored.get(0, "as_of").unwrap().to_string(), inc1_end);
        assert!(show.notices[0].ends_with(&format!("without it the chain ends at {inc1_end}")), "{:?}", show.notices);
    });
}

/// The rows of `db.table` in `kv`, as (key, value) strings.
async fn rows_of(x: &Executor, kv: &MemKv, db: &str, table: &str) -> Vec<(String, String)> {
    let id = x.table_id(db, table, None).await.unwrap();
    let prefix = keys::table_key(id, b"").len();
    kv.view_at(&keys::table_span(id), Timestamp::MAX)
        .into_iter()
        .map(|(k, v)| (String::from_utf8_lossy(&k[prefix..]).into(), String::from_utf8_lossy(&v).into()))
        .collect()
}

/// CockroachDB's TestBackupRestoreIncrementalAddTable: a `db.*` target covers the tables its
/// database has at each backup (none at first is fine), so an incremental picks up a table
/// created since and the chain restores it.
#[test]
fn db_star_targets_back_up_empty_databases_and_pick_up_new_tables() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("CREATE DATABASE e").await;
        let r = e.run("BACKUP TABLE e.* INTO 'memory://empty'").await;
        assert_eq!(r.get(0, "rows").unwrap().to_string(), "0", "{r:?}");
        e.run("BACKUP TABLE d.*, e.* INTO 'memory://c'").await;
        e.put("t", "a", "after").await;
        e.run("CREATE TABLE e.u").await;
        let u = e.exec.table_id("e", "u", None).await.unwrap();
        e.kv.write_sync(vec![(keys::table_key(u, b"x"), Some(b"new".to_vec()))]);
        let r = e.run("BACKUP TABLE d.*, e.* INTO LATEST IN 'memory://c'").await;
        assert_eq!(r.get(0, "backup_type").unwrap().to_string(), "incremental", "{r:?}");
        let r = e.run("BACKUP TABLE e.* INTO LATEST IN 'memory://empty'").await;
        assert_eq!(r.get(0, "backup_type").unwrap().to_string(), "incremental", "{r:?}");

        for (from, dbs) in [("memory://c", &["d", "e"][..]), ("memory://empty", &["e"][..])] {
            let kv = MemKv::new();
            let x = Executor::new(Arc::new(kv.clone()), Arc::new(e.opener.clone()));
            let targets: Vec<String> = dbs.iter().map(|d| format!("{d}.*")).collect();
            for d in dbs {
                x.execute(&format!("CREATE DATABASE {d}")).await.unwrap();
            }
            x.execute(&format!("RESTORE TABLE {} FROM LATEST IN '{from}'", targets.join(", "))).await.unwrap();
            assert_eq!(rows_of(&x, &kv, "e", "u").await, vec![("x".to_string(), "new".to_string())], "{from}");
            if dbs.contains(&"d") {
                assert_eq!(rows_of(&x, &kv, "d", "t").await, vec![("a".to_string(), "after".to_string())]);
            }
        }
    });
}

/// CockroachDB's TestBackupRestoreIncrementalAddTableMissing: a database that the full backup
/// did not cover completely cannot join in an incremental; the error names every object by name.
#[test]
fn incrementals_with_other_targets_are_refused_naming_them() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("CREATE DATABASE e").await;
        e.run("BACKUP TABLE d.* INTO 'memory://c'").await;
        e.run("BACKUP TABLE d.t INTO 'memory://n'").await;
        e.run("CREATE TABLE e.u").await;
        e.run("CREATE TABLE d.v").await;
        let err = e.fail("BACKUP TABLE d.*, e.* INTO LATEST IN 'memory://c'").await;
        assert!(matches!(err, Error::Precondition(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "an incremental backup must have the same targets as the backup it extends: that one covers \
             tables d.*, this one tables d.*, e.*"
        );
        let err = e.fail("BACKUP TABLE d.t, d.v INTO LATEST IN 'memory://n'").await;
        assert!(err.to_string().ends_with("that one covers tables d.t, this one tables d.t, d.v"), "{err}");
        // The same names, new objects.
        e.run("DROP DATABASE d CASCADE").await;
        e.run("CREATE DATABASE d").await;
        let err = e.fail("BACKUP TABLE d.* INTO LATEST IN 'memory://c'").await;
        assert!(
            err.to_string().ends_with(
                "that one covers tables d.*, this one tables d.* (objects of the same names, dropped and created \
                 again since)"
            ),
            "{err}"
        );
    });
}

/// Chains begun by strata builds that listed a `db.*` target's tables one by one (as `TABLE
/// d.t` is listed today) are extended in that form while the database keeps the same tables.
#[test]
fn a_db_star_chain_listing_its_tables_is_extended() {
    block_on(async {
        let e = env();
        e.setup().await;
        e.run("BACKUP TABLE d.t TO 'memory://old'").await;
        e.put("t", "a", "2").await;
        let r = e.run("BACKUP TABLE d.* TO 'memory://old'").await;
        assert_eq!(r.get(0, "backup_type").unwrap().to_string(), "incremental", "{r:?}");
        e.run("CREATE TABLE d.v").await;
        let err = e.fail("BACKUP TABLE d.* TO 'memory://old'").await;
        assert!(err.to_string().ends_with("that one covers tables d.t, this one tables d.*"), "{err}");
    });
}
