//! End-to-end tests of the `strata` CLI: real processes, a real embedded store on disk, backups in
//! real directories.

use std::path::Path;
use std::process::Command;

mod cli_from_backup;
mod cli_manage;
mod cli_odd;
mod cli_statements;
mod cli_support;
use cli_support::{scan, sql, strata};

/// A store with the bank workload and a few hand-written rows.
fn bank(dir: &Path, rows: &str) -> std::path::PathBuf {
    let store = dir.join("source");
    strata(&store, &["workload", "init", "bank", "--rows", rows]).ok();
    store
}

#[test]
fn backup_to_and_restore_table_database_and_cluster() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path(), "500");
    let uri = format!("file://{}", tmp.path().join("b1").display());
    let out = sql(&source, &format!("BACKUP TO '{uri}'")).ok().stdout();
    assert!(out.contains("succeeded"), "{out}");
    let customers = scan(&source, "bank.customers");
    let accounts = scan(&source, "bank.accounts");
    assert_eq!(customers.lines().count(), 50);
    assert_eq!(accounts.lines().count(), 500);

    // RESTORE TABLE into a fresh store that has the database.
    let t1 = tmp.path().join("t1");
    sql(&t1, "CREATE DATABASE bank").ok();
    sql(&t1, &format!("RESTORE TABLE bank.customers FROM '{uri}'")).ok();
    assert_eq!(scan(&t1, "bank.customers"), customers);
    strata(&t1, &["scan", "bank.accounts"]).fails_with("table not found: bank.accounts");

    // RESTORE DATABASE into a fresh store.
    let t2 = tmp.path().join("t2");
    sql(&t2, &format!("RESTORE DATABASE bank FROM '{uri}'")).ok();
    assert_eq!(scan(&t2, "bank.customers"), customers);
    assert_eq!(scan(&t2, "bank.accounts"), accounts);

    // Full cluster restore into an empty store.
    let t3 = tmp.path().join("t3");
    sql(&t3, &format!("RESTORE FROM '{uri}'")).ok();
    assert_eq!(scan(&t3, "bank.accounts"), accounts);
    let dbs = sql(&t3, "SHOW DATABASES").ok().stdout();
    assert!(dbs.contains("bank"), "{dbs}");
}

#[test]
fn full_cluster_restore_into_a_non_empty_store_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path(), "20");
    let uri = format!("file://{}", tmp.path().join("b").display());
    sql(&source, &format!("BACKUP TO '{uri}'")).ok();
    let target = tmp.path().join("t");
    sql(&target, "CREATE DATABASE other").ok();
    sql(&target, &format!("RESTORE FROM '{uri}'"))
        .fails_with("full cluster restore can only be run on a cluster with no user-created databases or tables");
    // Nothing was restored.
    let dbs = sql(&target, "SHOW DATABASES").ok().stdout();
    assert!(!dbs.contains("bank"), "{dbs}");
}

#[test]
fn restore_errors_name_what_is_wrong() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path(), "20");
    let uri = format!("file://{}", tmp.path().join("b").display());
    sql(&source, &format!("BACKUP DATABASE bank TO '{uri}'")).ok();

    let missing = format!("file://{}", tmp.path().join("nothing-here").display());
    sql(&source, &format!("RESTORE DATABASE bank FROM '{missing}'")).fails_with("backup not found");
    // The database and its tables exist in the source itself.
    sql(&source, &format!("RESTORE DATABASE bank FROM '{uri}'")).fails_with("database already exists: bank");
    sql(&source, &format!("RESTORE TABLE bank.accounts FROM '{uri}'"))
        .fails_with("table already exists: bank.accounts");
    sql(&source, &format!("RESTORE TABLE bank.nope FROM '{uri}'")).fails_with("table in backup not found: bank.nope");
    sql(&source, &format!("RESTORE DATABASE nope FROM '{uri}'")).fails_with("database in backup not found: nope");
    let fresh = tmp.path().join("fresh");
    sql(&fresh, &format!("RESTORE TABLE bank.accounts FROM '{uri}'"))
        .fails_with("a database named bank needs to exist");
    // A database-only backup is not a cluster backup.
    sql(&fresh, &format!("RESTORE FROM '{uri}'")).fails_with("not a full cluster backup");
    // BACKUP TO onto an existing backup appends an incremental layer; other targets are refused.
    let out = sql(&source, &format!("BACKUP DATABASE bank TO '{uri}'")).ok().stdout();
    assert!(out.contains("incremental"), "{out}");
    sql(&source, &format!("BACKUP TABLE bank.accounts TO '{uri}'")).fails_with("same targets");
}

#[test]
fn restore_options_into_db_and_new_db_name() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path(), "30");
    let uri = format!("file://{}", tmp.path().join("b").display());
    sql(&source, &format!("BACKUP DATABASE bank TO '{uri}'")).ok();
    let accounts = scan(&source, "bank.accounts");
    sql(&source, &format!("RESTORE DATABASE bank FROM '{uri}' WITH new_db_name = 'bank2'")).ok();
    assert_eq!(scan(&source, "bank2.accounts"), accounts);
    sql(&source, "CREATE DATABASE archive").ok();
    sql(&source, &format!("RESTORE TABLE bank.accounts FROM '{uri}' WITH into_db = 'archive'")).ok();
    assert_eq!(scan(&source, "archive.accounts"), accounts);
    let tables = sql(&source, "SHOW TABLES FROM archive").ok().stdout();
    assert!(tables.contains("accounts") && !tables.contains("customers"), "{tables}");
}

#[test]
fn backup_into_collections_latest_and_subdirs() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path(), "10");
    let uri = "nodelocal://1/collection";
    let first = sql(&source, &format!("BACKUP INTO '{uri}'")).ok().stdout();
    strata(&source, &["put", "bank.accounts", "0000000001", "changed"]).ok();
    sql(&source, &format!("BACKUP INTO '{uri}'")).ok();
    // nodelocal://1/… lives under the store's extern directory.
    assert!(source.join("extern/collection/LATEST").exists());

    let list = strata(&source, &["--format", "json", "sql", &format!("SHOW BACKUPS IN '{uri}'")]).ok().stdout();
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    let paths: Vec<&str> = list.as_array().unwrap().iter().map(|r| r["path"].as_str().unwrap()).collect();
    assert_eq!(paths.len(), 2, "{paths:?}");
    assert!(first.contains(paths[0]), "the first backup's path {} should be in {first}", paths[0]);

    // LATEST has the change; the first subdirectory has the old value.
    let (t1, t2) = (tmp.path().join("t1"), tmp.path().join("t2"));
    // Both stores resolve nodelocal:// under their own extern dir: copy the collection there.
    for t in [&t1, &t2] {
        copy_dir(&source.join("extern"), &t.join("extern"));
    }
    sql(&t1, &format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'")).ok();
    sql(&t2, &format!("RESTORE DATABASE bank FROM '{}' IN '{uri}'", paths[0])).ok();
    assert_eq!(strata(&t1, &["get", "bank.accounts", "0000000001"]).ok().stdout(), "changed\n");
    assert!(strata(&t2, &["get", "bank.accounts", "0000000001"]).ok().stdout().starts_with("{\"id\":1,"));

    let show = strata(&source, &["--format", "json", "sql", &format!("SHOW BACKUP LATEST IN '{uri}'")]).ok().stdout();
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    let accounts = show.as_array().unwrap().iter().find(|r| r["table_name"] == "accounts").unwrap();
    assert_eq!(accounts["rows"], 10);
    assert_eq!(accounts["database_name"], "bank");
    assert_eq!(accounts["is_full_cluster"], true);
    assert!(accounts["size_bytes"].as_i64().unwrap() > 0);
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

#[test]
fn as_of_system_time_backups_and_reads() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    sql(&store, "CREATE DATABASE d").ok();
    sql(&store, "CREATE TABLE d.t").ok();
    strata(&store, &["put", "d.t", "k", "old"]).ok();
    let before = strata(&store, &["now"]).ok().stdout().trim().to_string();
    assert!(before.parse::<f64>().is_ok() && before.contains('.'), "now prints a decimal: {before}");
    strata(&store, &["put", "d.t", "k", "new"]).ok();
    strata(&store, &["put", "d.t", "k2", "later"]).ok();
    assert_eq!(strata(&store, &["get", "d.t", "k", "--as-of", &before]).ok().stdout(), "old\n");
    assert_eq!(strata(&store, &["scan", "d.t", "--as-of", &before]).ok().stdout(), "k\told\n");
    strata(&store, &["delete", "d.t", "k"]).ok();
    strata(&store, &["get", "d.t", "k"]).fails_with("key not found");

    let uri = format!("file://{}", tmp.path().join("b").display());
    sql(&store, &format!("BACKUP DATABASE d TO '{uri}' AS OF SYSTEM TIME {before}")).ok();
    let target = tmp.path().join("t");
    sql(&target, &format!("RESTORE DATABASE d FROM '{uri}'")).ok();
    assert_eq!(scan(&target, "d.t"), "k\told\n");
    sql(&target, &format!("RESTORE DATABASE d FROM '{uri}' AS OF SYSTEM TIME '-1h'"))
        .fails_with("outside the backup's window");
    sql(&store, &format!("BACKUP TO '{uri}-future' AS OF SYSTEM TIME '2500-01-01 00:00:00'"))
        .fails_with("in the future");
}

#[test]
fn parse_errors_point_at_the_token() {
    let tmp = tempfile::tempdir().unwrap();
    let run = sql(&tmp.path().join("s"), "BACKUP DATABASE bank FOO 'nodelocal://1/x'");
    let err = run.fails_with("at or near \"FOO\"").stderr();
    assert!(err.contains("BACKUP DATABASE bank FOO 'nodelocal://1/x'\n                     ^"), "{err}");
    let secret =
        sql(&tmp.path().join("s"), "BACKUP INTO 'nodelocal://1/x' WITH encryption_passphrase = 'hunter2', bogus");
    let err = secret.fails_with("bogus").stderr();
    assert!(!err.contains("hunter2"), "a passphrase leaked into an error: {err}");
}

#[test]
fn statements_of_later_features_say_what_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    // A detached restore is a job now (issue 17 §3): a one-shot process records it pending.
    let detached = sql(&store, "RESTORE FROM LATEST IN 'nodelocal://1/x' WITH detached").ok().stdout();
    assert!(detached.contains("pending"), "{detached}");
    sql(&store, "BACKUP INTO 's3://bucket/p?AWS_SECRET_ACCESS_KEY=topsecret'")
        .fails_with("missing parameter AWS_ACCESS_KEY_ID");
    let err = sql(&store, "BACKUP INTO 's3://bucket/p?AWS_SECRET_ACCESS_KEY=topsecret'").stderr();
    assert!(!err.contains("topsecret"), "{err}");
}

#[test]
fn json_output_and_ddl() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    sql(&store, "CREATE DATABASE a").ok();
    sql(&store, "CREATE DATABASE a").fails_with("database already exists: a");
    sql(&store, "CREATE DATABASE IF NOT EXISTS a").ok();
    sql(&store, "CREATE TABLE a.t1").ok();
    sql(&store, "CREATE TABLE a.t2").ok();
    let out = strata(&store, &["--format", "json", "sql", "SHOW TABLES FROM a"]).ok().stdout();
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        v,
        serde_json::json!([{"database_name": "a", "table_name": "t1"}, {"database_name": "a", "table_name": "t2"}])
    );
    sql(&store, "DROP DATABASE a").fails_with("not empty");
    sql(&store, "DROP TABLE a.t1").ok();
    sql(&store, "DROP DATABASE a CASCADE").ok();
    let out = strata(&store, &["--format", "json", "sql", "SHOW DATABASES"]).ok().stdout();
    assert_eq!(serde_json::from_str::<serde_json::Value>(&out).unwrap(), serde_json::json!([]));
    strata(&store, &["put", "a.t1", "k", "v"]).fails_with("database not found: a");
    strata(&store, &["put", "t1", "k", "v"]).fails_with("must be qualified");
}

fn now(store: &Path) -> String {
    strata(store, &["now"]).ok().stdout().trim().to_string()
}

#[test]
fn incremental_chain_with_revision_history_restores_any_time() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s");
    let coll = format!("file://{}", tmp.path().join("coll").display());
    sql(&s, "CREATE DATABASE d").ok();
    sql(&s, "CREATE TABLE d.t").ok();
    strata(&s, &["put", "d.t", "k1", "v1"]).ok();
    strata(&s, &["put", "d.t", "k2", "v2"]).ok();
    sql(&s, &format!("BACKUP DATABASE d INTO '{coll}' WITH revision_history")).ok();
    let t1 = now(&s);
    strata(&s, &["put", "d.t", "k1", "v1b"]).ok();
    strata(&s, &["delete", "d.t", "k2"]).ok();
    sql(&s, "CREATE TABLE d.u").ok();
    strata(&s, &["put", "d.u", "x", "1"]).ok();
    let t2 = now(&s);
    let out = sql(&s, &format!("BACKUP DATABASE d INTO LATEST IN '{coll}' WITH revision_history")).ok().stdout();
    assert!(out.contains("incremental"), "{out}");
    strata(&s, &["put", "d.t", "k3", "v3"]).ok();
    sql(&s, "DROP TABLE d.u").ok();
    sql(&s, &format!("BACKUP DATABASE d INTO LATEST IN '{coll}' WITH revision_history")).ok();

    let show = strata(&s, &["--format", "json", "sql", &format!("SHOW BACKUP LATEST IN '{coll}'")]).ok().stdout();
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    let kinds: Vec<&str> = show
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["table_name"] == "t")
        .map(|r| r["backup_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["full", "incremental", "incremental"]);

    let restore = |name: &str, as_of: Option<&str>| {
        let target = tmp.path().join(name);
        let aost = as_of.map(|t| format!(" AS OF SYSTEM TIME {t}")).unwrap_or_default();
        sql(&target, &format!("RESTORE DATABASE d FROM LATEST IN '{coll}'{aost}")).ok();
        target
    };
    let end = restore("end", None);
    assert_eq!(scan(&end, "d.t"), "k1\tv1b\nk3\tv3\n");
    strata(&end, &["scan", "d.u"]).fails_with("table not found: d.u");
    let at1 = restore("at1", Some(&t1));
    assert_eq!(scan(&at1, "d.t"), "k1\tv1\nk2\tv2\n");
    strata(&at1, &["scan", "d.u"]).fails_with("table not found: d.u");
    let at2 = restore("at2", Some(&t2));
    assert_eq!(scan(&at2, "d.t"), "k1\tv1b\n");
    assert_eq!(scan(&at2, "d.u"), "x\t1\n");
}

#[test]
fn incrementals_without_revision_history_restore_only_end_times() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s");
    let dest = format!("file://{}", tmp.path().join("dest").display());
    sql(&s, "CREATE DATABASE d").ok();
    sql(&s, "CREATE TABLE d.t").ok();
    strata(&s, &["put", "d.t", "a", "1"]).ok();
    sql(&s, &format!("BACKUP DATABASE d TO '{dest}'")).ok();
    let between = now(&s);
    strata(&s, &["put", "d.t", "a", "2"]).ok();
    strata(&s, &["put", "d.t", "b", "2"]).ok();
    let inc = sql(&s, &format!("BACKUP DATABASE d TO '{dest}'")).ok().stdout();
    assert!(inc.contains("incremental") && inc.contains("/incrementals/"), "{inc}");
    let target = tmp.path().join("t");
    sql(&target, &format!("RESTORE DATABASE d FROM '{dest}' AS OF SYSTEM TIME {between}"))
        .fails_with("requires a backup taken WITH revision_history");
    sql(&target, &format!("RESTORE DATABASE d FROM '{dest}'")).ok();
    assert_eq!(scan(&target, "d.t"), "a\t2\nb\t2\n");
    // Appending with revision_history to a chain taken without it is refused.
    sql(&s, &format!("BACKUP DATABASE d TO '{dest}' WITH revision_history")).fails_with("without revision_history");
}

#[test]
fn explicit_incremental_from_chains_and_their_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let s = tmp.path().join("s");
    let uri = |n: &str| format!("file://{}", tmp.path().join(n).display());
    sql(&s, "CREATE DATABASE d").ok();
    sql(&s, "CREATE TABLE d.t").ok();
    strata(&s, &["put", "d.t", "a", "1"]).ok();
    sql(&s, &format!("BACKUP DATABASE d TO '{}'", uri("full"))).ok();
    strata(&s, &["put", "d.t", "b", "2"]).ok();
    sql(&s, &format!("BACKUP DATABASE d TO '{}' INCREMENTAL FROM '{}'", uri("inc1"), uri("full"))).ok();
    strata(&s, &["delete", "d.t", "a"]).ok();
    sql(&s, &format!("BACKUP DATABASE d TO '{}' INCREMENTAL FROM '{}', '{}'", uri("inc2"), uri("full"), uri("inc1")))
        .ok();

    let target = tmp.path().join("t");
    sql(&target, &format!("RESTORE DATABASE d FROM '{}', '{}', '{}'", uri("full"), uri("inc1"), uri("inc2"))).ok();
    assert_eq!(scan(&target, "d.t"), "b\t2\n");
    // A missing layer is named.
    let gap = tmp.path().join("gap");
    sql(&gap, &format!("RESTORE DATABASE d FROM '{}', '{}'", uri("full"), uri("inc2")))
        .fails_with(&format!("the missing layer is {}", uri("inc1")));
    // An incremental alone is not restorable, and says what it needs.
    sql(&gap, &format!("RESTORE DATABASE d FROM '{}'", uri("inc2"))).fails_with("is an incremental backup");
    // The chain must hold the same targets.
    sql(&s, &format!("BACKUP TABLE d.t TO '{}' INCREMENTAL FROM '{}'", uri("inc3"), uri("full")))
        .fails_with("same targets");
    // Layers out of order.
    sql(&s, &format!("BACKUP DATABASE d TO '{}' INCREMENTAL FROM '{}', '{}'", uri("inc4"), uri("inc1"), uri("full")))
        .fails_with("is an incremental backup");
}

#[test]
fn the_demo_runs_end_to_end() {
    let out = Command::new(env!("CARGO_BIN_EXE_strata")).args(["demo", "--rows", "2000"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "demo failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("demo passed: every restored row equals the source"), "{stdout}");
    assert!(stdout.contains("bank.accounts: 1995 rows equal the source as of"), "{stdout}");
}
