//! Encrypted backups through the `strata` CLI: real processes, the embedded store, backups and key
//! files in real directories, the default (64 MiB) argon2id parameters.

use std::path::{Path, PathBuf};

mod cli_support;
use cli_support::{scan, sql, strata};

const MARKER: &str = "PLAINTEXT-MARKER-c41d";
const PASS: &str = "swordfish on the moon";

/// A store with the bank workload and one row holding MARKER.
fn bank(dir: &Path) -> PathBuf {
    let store = dir.join("source");
    strata(&store, &["workload", "init", "bank", "--rows", "300"]).ok();
    strata(&store, &["put", "bank.accounts", "marker", MARKER]).ok();
    store
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn passphrase_backup_restore_and_verify() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path());
    let with = format!("WITH encryption_passphrase = '{PASS}'");
    let coll = tmp.path().join("coll");
    let coll_uri = format!("file://{}", coll.display());
    sql(&source, &format!("BACKUP INTO '{coll_uri}' {with}")).ok();
    strata(&source, &["put", "bank.accounts", "later", "value"]).ok();
    let out = sql(&source, &format!("BACKUP INTO LATEST IN '{coll_uri}' {with}")).ok().stdout();
    assert!(out.contains("incremental"), "{out}");

    let stored = files(&coll);
    assert!(stored.iter().any(|p| p.ends_with("ENCRYPTION-INFO")), "{stored:?}");
    for p in &stored {
        let bytes = std::fs::read(p).unwrap();
        for needle in [MARKER, PASS, "accounts"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle.as_bytes()), "{needle} in {}", p.display());
        }
    }

    // Restore needs the passphrase; a wrong one says so and is never echoed.
    let target = tmp.path().join("target");
    let run = sql(
        &target,
        &format!("RESTORE DATABASE bank FROM LATEST IN '{coll_uri}' WITH encryption_passphrase = 'guess'"),
    );
    let err = run.fails_with("the passphrase is wrong").stderr();
    assert!(!err.contains("guess"), "{err}");
    sql(&target, &format!("RESTORE DATABASE bank FROM LATEST IN '{coll_uri}'"))
        .fails_with("is encrypted: give encryption_passphrase");
    sql(&target, &format!("RESTORE DATABASE bank FROM LATEST IN '{coll_uri}' {with}")).ok();
    assert_eq!(scan(&target, "bank.accounts"), scan(&source, "bank.accounts"));
    assert_eq!(scan(&target, "bank.customers"), scan(&source, "bank.customers"));

    // verify: the whole collection, without the key, then with it.
    let run = strata(&source, &["verify", &coll_uri]).ok();
    assert!(run.stdout().contains("no problems"), "{}", run.stdout());
    assert!(run.stderr().is_empty(), "{}", run.stderr());
    strata(&source, &["verify", &coll_uri, "--in", "LATEST", "--passphrase", PASS]).ok();
    strata(&source, &["verify", &coll_uri, "--in", "LATEST", "--passphrase", "guess"])
        .fails_with("the passphrase is wrong");

    // A flipped bit in a data file: verify and restore name it.
    // The largest data file: bank.accounts in the full backup (the smallest is the system span,
    // which RESTORE DATABASE does not read).
    let data = stored
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "sst"))
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let name = data.file_name().unwrap().to_string_lossy().into_owned();
    let original = std::fs::read(data).unwrap();
    let mut bad = original.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 0x20;
    std::fs::write(data, &bad).unwrap();
    let run = strata(&source, &["verify", &coll_uri]).fails_with("1 problem");
    assert!(run.stdout().contains(&name) && run.stdout().contains("SHA-256 does not match"), "{}", run.stdout());
    let fresh = tmp.path().join("fresh");
    sql(&fresh, &format!("RESTORE DATABASE bank FROM LATEST IN '{coll_uri}' {with}")).fails_with(&name);
    // Deleted: named as missing, in JSON too.
    std::fs::remove_file(data).unwrap();
    let run = strata(&source, &["--format", "json", "verify", &coll_uri]).fails_with("1 problem");
    let rows: serde_json::Value = serde_json::from_str(&run.stdout()).unwrap();
    assert!(rows[0]["path"].as_str().unwrap().ends_with(&name), "{rows}");
    assert!(rows[0]["problem"].as_str().unwrap().starts_with("missing"), "{rows}");
    std::fs::write(data, &original).unwrap();
    strata(&source, &["verify", &coll_uri]).ok();
}

#[test]
fn kms_key_files_and_rotation() {
    let tmp = tempfile::tempdir().unwrap();
    let source = bank(tmp.path());
    let (k1, k2) = (tmp.path().join("k1.key"), tmp.path().join("k2.key"));
    let uri1 = strata(&source, &["keygen", k1.to_str().unwrap()]).ok().stdout().trim().to_string();
    let uri2 = strata(&source, &["keygen", k2.to_str().unwrap()]).ok().stdout().trim().to_string();
    assert_eq!(uri1, format!("file-kms://{}", k1.display()));
    strata(&source, &["keygen", k1.to_str().unwrap()]).fails_with("cannot write the key file");

    let backup = format!("file://{}", tmp.path().join("b").display());
    sql(&source, &format!("BACKUP DATABASE bank TO '{backup}' WITH kms = '{uri1}'")).ok();
    sql(&source, &format!("ALTER BACKUP '{backup}' ADD NEW_KMS = '{uri2}' WITH OLD_KMS = '{uri1}'")).ok();
    // The first key is gone: the second one alone restores.
    std::fs::remove_file(&k1).unwrap();
    let target = tmp.path().join("target");
    sql(&target, &format!("RESTORE DATABASE bank FROM '{backup}' WITH kms = '{uri1}'")).fails_with("k1.key");
    sql(&target, &format!("RESTORE DATABASE bank FROM '{backup}' WITH kms = '{uri2}'")).ok();
    assert_eq!(scan(&target, "bank.accounts"), scan(&source, "bank.accounts"));
    strata(&source, &["verify", &backup, "--kms", &uri2]).ok();

    // Passphrase rotation the same way.
    let pbackup = format!("file://{}", tmp.path().join("p").display());
    sql(&source, &format!("BACKUP DATABASE bank TO '{pbackup}' WITH encryption_passphrase = 'old'")).ok();
    sql(&source, &format!("ALTER BACKUP '{pbackup}' ADD NEW_PASSPHRASE = 'new' WITH OLD_PASSPHRASE = 'old'")).ok();
    let t2 = tmp.path().join("t2");
    sql(&t2, &format!("RESTORE DATABASE bank FROM '{pbackup}' WITH encryption_passphrase = 'new'")).ok();
    assert_eq!(scan(&t2, "bank.customers"), scan(&source, "bank.customers"));
}
