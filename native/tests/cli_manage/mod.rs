//! `strata copy`, `strata compact` and `strata forget` as a user runs them, the README's
//! examples: real processes, a real store, backups in real directories.

use crate::cli_support::{scan, sql, strata};

#[test]
fn copy_compact_and_forget_from_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let source = tmp.path().join("source");
    strata(&source, &["workload", "init", "bank", "--rows", "200"]).ok();
    let coll = format!("file://{}", tmp.path().join("coll").display());
    let with = " WITH encryption_passphrase = 'pw'";
    sql(&source, &format!("BACKUP INTO '{coll}'{with}")).ok();
    strata(&source, &["put", "bank.accounts", "new", "row"]).ok();
    sql(&source, &format!("BACKUP INTO LATEST IN '{coll}'{with}")).ok();
    strata(&source, &["delete", "bank.accounts", "new"]).ok();
    strata(&source, &["put", "bank.accounts", "newer", "row"]).ok();
    sql(&source, &format!("BACKUP INTO LATEST IN '{coll}'{with}")).ok();
    let accounts = scan(&source, "bank.accounts");

    // Copy, re-encrypted; the copy verifies with its new key and restores the same rows.
    let copy = format!("file://{}", tmp.path().join("copy").display());
    let out = strata(&source, &["copy", &coll, &copy, "--passphrase", "pw", "--new-passphrase", "pw2"]).ok();
    assert!(out.stderr().contains("copied 1 chains (3 layers)"), "{}", out.stderr());
    strata(&source, &["verify", &copy, "--passphrase", "pw2"]).ok();
    let t1 = tmp.path().join("t1");
    sql(&t1, &format!("RESTORE DATABASE bank FROM LATEST IN '{copy}' WITH encryption_passphrase = 'pw2'")).ok();
    assert_eq!(scan(&t1, "bank.accounts"), accounts);
    // A rerun finds every file there and intact.
    let again = strata(&source, &["copy", &coll, &copy, "--passphrase", "pw", "--new-passphrase", "pw2"]).ok();
    assert!(again.stderr().contains("0 files written"), "{}", again.stderr());

    // Compact the chain into a new full backup, and restore from it.
    let out = strata(&source, &["compact", &coll, "--passphrase", "pw"]).ok();
    let dir = out.stdout().trim().to_string();
    assert!(dir.starts_with('/'), "{}", out.stdout());
    let t2 = tmp.path().join("t2");
    sql(&t2, &format!("RESTORE DATABASE bank FROM '{dir}' IN '{coll}'{with}")).ok();
    assert_eq!(scan(&t2, "bank.accounts"), accounts);
    let shown = sql(&source, &format!("SHOW BACKUP '{dir}' IN '{coll}'{with}")).ok().stdout();
    assert!(!shown.contains("incremental"), "{shown}");

    // Forget: the plan first, then --prune; the compacted backup is the newest and stays.
    let plan = strata(&source, &["forget", &coll, "--keep-last", "1"]).ok();
    assert!(plan.stdout().contains("remove") && plan.stdout().contains("last 1"), "{}", plan.stdout());
    assert!(plan.stderr().contains("would remove 3"), "{}", plan.stderr());
    let listed = sql(&source, &format!("SHOW BACKUPS IN '{coll}'")).ok().stdout();
    assert_eq!(listed.matches("/20").count(), 2, "nothing deleted without --prune: {listed}");
    strata(&source, &["forget", &coll, "--keep-last", "1", "--prune"]).ok();
    let listed = sql(&source, &format!("SHOW BACKUPS IN '{coll}'")).ok().stdout();
    assert!(listed.contains(&dir) && listed.matches("/20").count() == 1, "{listed}");
    let t3 = tmp.path().join("t3");
    sql(&t3, &format!("RESTORE DATABASE bank FROM '{dir}' IN '{coll}'{with}")).ok();
    assert_eq!(scan(&t3, "bank.accounts"), accounts);
    strata(&source, &["forget", &coll]).fails_with("no policy given");
}

#[test]
fn schedule_run_applies_the_schedules_keep_options_after_each_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    strata(&store, &["workload", "init", "bank", "--rows", "50"]).ok();
    sql(&store, "BACKUP DATABASE bank INTO 'nodelocal://1/c'").ok();
    strata(&store, &["put", "bank.accounts", "k", "v"]).ok();
    sql(&store, "BACKUP DATABASE bank INTO LATEST IN 'nodelocal://1/c'").ok();
    sql(
        &store,
        "CREATE SCHEDULE nightly FOR BACKUP DATABASE bank INTO 'nodelocal://1/c' RECURRING '@daily' \
         WITH SCHEDULE OPTIONS ignore_existing_backups, keep_last = 1",
    )
    .ok();
    let shown = sql(&store, "SHOW SCHEDULES").ok().stdout();
    assert!(shown.contains("keep_last = 1"), "{shown}");
    let accounts = scan(&store, "bank.accounts");
    let out = strata(&store, &["schedule", "run", "--once"]).ok();
    assert!(out.stderr().contains("forgot 2 old backups (its keep_* options)"), "{}", out.stderr());
    let listed = sql(&store, "SHOW BACKUPS IN 'nodelocal://1/c'").ok().stdout();
    assert_eq!(listed.matches("/20").count(), 1, "{listed}");
    let t = tmp.path().join("t");
    let coll = format!("file://{}", store.join("extern/c").display());
    sql(&t, &format!("RESTORE DATABASE bank FROM LATEST IN '{coll}'")).ok();
    assert_eq!(scan(&t, "bank.accounts"), accounts);
}
