//! `strata scan --from URI` and `strata get --from URI` (issue 15 §1): rows read straight from a
//! backup print exactly what `scan`/`get` print on a store restored at the same time.

use std::path::Path;
use std::process::Command;

use super::cli_support::{scan, sql, strata, Run};

/// Runs `strata ARGS…` with no store at all.
fn strata_without_store(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .args(args)
        .env_remove("STRATA_STORE")
        .env_remove("STRATA_PASSPHRASE")
        .output()
        .expect("run strata");
    Run { args: args.iter().map(|a| a.to_string()).collect(), out }
}

fn now(store: &Path) -> String {
    strata(store, &["now"]).ok().stdout().trim().to_string()
}

/// A collection `uri` of the bank database with revision history (and `with`), three layers,
/// rows changed, deleted and a table dropped between them. Returns the times to compare at.
fn history(store: &Path, uri: &str, with: &str) -> Vec<String> {
    strata(store, &["workload", "init", "bank", "--rows", "300"]).ok();
    let mut times = vec![now(store)];
    sql(store, &format!("BACKUP DATABASE bank INTO '{uri}' WITH revision_history{with}")).ok();
    strata(store, &["put", "bank.accounts", "0000000001", "changed"]).ok();
    times.push(now(store));
    strata(store, &["delete", "bank.accounts", "0000000002"]).ok();
    times.push(now(store));
    sql(store, &format!("BACKUP DATABASE bank INTO LATEST IN '{uri}' WITH revision_history{with}")).ok();
    times.push(now(store));
    sql(store, "DROP TABLE bank.customers").ok();
    strata(store, &["put", "bank.accounts", "0000000001", "changed again"]).ok();
    strata(store, &["put", "bank.accounts", "zz-new", "new row"]).ok();
    times.push(now(store));
    sql(store, &format!("BACKUP DATABASE bank INTO LATEST IN '{uri}' WITH revision_history{with}")).ok();
    times
}

/// At each time: a restore into a fresh store, then `scan`/`get` there and `--from` the backup.
fn compare(tmp: &Path, uri: &str, times: &[String], restore_with: &str, keys: &[&str]) {
    for (i, t) in times.iter().enumerate() {
        let target = tmp.join(format!("restored-{i}"));
        sql(&target, &format!("RESTORE DATABASE bank FROM LATEST IN '{uri}' AS OF SYSTEM TIME {t}{restore_with}")).ok();
        for table in ["bank.accounts", "bank.customers"] {
            let from = |extra: &[&str]| {
                let mut args = vec!["scan", table, "--from", uri, "--in", "LATEST", "--as-of", t.as_str()];
                args.extend_from_slice(keys);
                args.extend_from_slice(extra);
                strata_without_store(&args)
            };
            let restored = strata(&target, &["scan", table]);
            if restored.out.status.success() {
                let rows = restored.stdout();
                assert!(rows.lines().count() >= 30, "{table} at {t}: {rows}");
                assert_eq!(from(&[]).ok().stdout(), rows, "{table} at {t}");
            } else {
                from(&[]).fails_with("table in backup not found: bank.customers");
            }
        }
        for key in ["0000000001", "0000000002", "zz-new", "0000000299"] {
            let mut args = vec!["get", "bank.accounts", key, "--from", uri, "--in", "LATEST", "--as-of", t.as_str()];
            args.extend_from_slice(keys);
            let read = strata_without_store(&args);
            let restored = strata(&target, &["get", "bank.accounts", key]);
            if restored.out.status.success() {
                assert_eq!(read.ok().stdout(), restored.stdout(), "get {key} at {t}");
            } else {
                read.fails_with(&format!("key not found: {key} in bank.accounts at {t}"));
            }
        }
    }
}

#[test]
fn scan_and_get_from_a_backup_print_what_a_restore_holds() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("source");
    let uri = format!("file://{}", tmp.path().join("c").display());
    let times = history(&store, &uri, "");
    compare(tmp.path(), &uri, &times, "", &[]);
    // The latest time is the default; a directory that is a collection says to add --in.
    let latest = strata_without_store(&["scan", "bank.accounts", "--from", &uri, "--in", "LATEST"]).ok().stdout();
    assert!(latest.contains("zz-new\tnew row") && latest.contains("0000000001\tchanged again"), "{latest}");
    strata_without_store(&["scan", "bank.accounts", "--from", &uri]).fails_with("add --in LATEST");
    // After the backup's end: an error, no rows.
    strata(&store, &["put", "bank.accounts", "zz-later", "after the backup"]).ok();
    let later = now(&store);
    strata_without_store(&["scan", "bank.accounts", "--from", &uri, "--in", "LATEST", "--as-of", &later])
        .fails_with("outside the backup's window");
    let store_rows = scan(&store, "bank.accounts");
    assert_eq!(store_rows.replace("zz-later\tafter the backup\n", ""), latest, "the store, and the backup's end");
}

#[test]
fn scan_and_get_from_an_encrypted_backup_take_its_passphrase() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("source");
    let uri = format!("file://{}", tmp.path().join("e").display());
    let pass = "scan from backup passphrase";
    let times = history(&store, &uri, &format!(", encryption_passphrase = '{pass}'"));
    compare(tmp.path(), &uri, &times[3..], &format!(" WITH encryption_passphrase = '{pass}'"), &["--passphrase", pass]);
    strata_without_store(&["scan", "bank.accounts", "--from", &uri, "--in", "LATEST"])
        .fails_with("is encrypted: give encryption_passphrase");
}

#[test]
fn scan_from_a_backup_opens_with_a_kms_key() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("source");
    let key = tmp.path().join("key");
    let kms = strata(&store, &["keygen", key.to_str().unwrap()]).ok().stdout().trim().to_string();
    strata(&store, &["workload", "init", "bank", "--rows", "100"]).ok();
    let uri = format!("file://{}", tmp.path().join("k").display());
    sql(&store, &format!("BACKUP DATABASE bank TO '{uri}' WITH kms = '{kms}'")).ok();
    let rows = strata_without_store(&["scan", "bank.accounts", "--from", &uri, "--kms", &kms]).ok().stdout();
    assert_eq!(rows, scan(&store, "bank.accounts"));
    let other = tmp.path().join("other");
    let wrong = strata(&store, &["keygen", other.to_str().unwrap()]).ok().stdout().trim().to_string();
    strata_without_store(&["get", "bank.accounts", "0000000001", "--from", &uri, "--kms", &wrong])
        .fails_with("the KMS key is wrong");
}
