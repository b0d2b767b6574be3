//! Encrypted backups end to end: passphrases and KMS keys, wrong and missing keys, damage of every
//! kind of file detected and named by restore and by verification, incremental chains, key
//! rotation, ranged reads of encrypted files, and a committed encrypted backup whose KDF
//! parameters differ from today's default.
//!
//! Regenerate the fixture (only when adding a new format version, never to make a test pass):
//! `STRATA_WRITE_FIXTURES=1 cargo test -p strata-core --test integration encryption::`

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::executor::block_on;
use strata_core::crypto::info::EncryptionInfo;
use strata_core::crypto::kdf::KdfParams;
use strata_core::manifest::sha256;
use strata_core::sql::{BackupSource, Subdir};
use strata_core::{
    keys, run_restore, DataFileOptions, DataFileWriter, DataKey, DatabaseDescriptor, DatabaseRestore, Entropy, Entry,
    Error, Executor, ExternalStorage, FileCodec, FileInfo, KeyProvider, KeyRequest, KmsOpener, KvSource, LayerFile,
    MemKv, MemoryOpener, ObjectMeta, QueryResult, RestorePlan, RestoreRunOptions, Result, StorageOpener,
    TableDescriptor, TableRestore, Timestamp, VerifyReport, ENCRYPTION_INFO_NAME,
};
use strata_core::{BackupScope, Chain, Layer, Locations, Manifest, MvccFilter};
use strata_core::{ExternalStorageExt, GetOptions, GetResult, StorageWrapper};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// A value no encrypted byte may contain.
const MARKER: &str = "PLAINTEXT-MARKER-7f3a";
const PASS: &str = "correct horse battery staple";

/// Deterministic "randomness" for tests: SHA-256 of a counter.
fn entropy() -> Entropy {
    let counter = AtomicU64::new(0);
    Entropy::new(move |buf| {
        for chunk in buf.chunks_mut(32) {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            chunk.copy_from_slice(&sha256(&n.to_le_bytes())[..chunk.len()]);
        }
        Ok(())
    })
}

/// argon2id cheap enough for tests (the default is 64 MiB, 3 passes).
fn cheap() -> KdfParams {
    KdfParams::argon2id(256, 1, 1).unwrap()
}

/// A test KMS: `test-kms:///NAME` keys; an opener opens only the names it is given.
struct TestKms(Vec<&'static str>);

struct TestKey(String);

impl KmsOpener for TestKms {
    fn open(&self, uri: &str) -> Result<Arc<dyn KeyProvider>> {
        let name = uri.strip_prefix("test-kms:///").unwrap_or(uri);
        if !self.0.contains(&name) {
            return Err(Error::NotFound { what: "KMS key".into(), name: uri.into() });
        }
        Ok(Arc::new(TestKey(name.to_string())))
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl KeyProvider for TestKey {
    fn key_id(&self) -> String {
        format!("test-kms:{}", self.0)
    }
    async fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>> {
        let pad = sha256(self.0.as_bytes());
        let mut out = self.0.as_bytes().to_vec();
        out.push(0);
        out.extend(data_key.iter().zip(pad).map(|(a, b)| a ^ b));
        Ok(out)
    }
    async fn unwrap(&self, wrapped: &[u8]) -> Result<Vec<u8>> {
        let name_end = wrapped.iter().position(|&b| b == 0).unwrap_or(0);
        if &wrapped[..name_end] != self.0.as_bytes() {
            return Err(Error::Precondition(format!("{} did not wrap this", self.key_id())));
        }
        let pad = sha256(self.0.as_bytes());
        Ok(wrapped[name_end + 1..].iter().zip(pad).map(|(a, b)| a ^ b).collect())
    }
}

struct Env {
    kv: MemKv,
    opener: MemoryOpener,
    exec: Executor,
}

fn executor(kv: &MemKv, opener: &MemoryOpener, kms: Vec<&'static str>) -> Executor {
    Executor::new(Arc::new(kv.clone()), Arc::new(opener.clone()))
        .with_entropy(entropy())
        .with_kdf_params(cheap())
        .with_kms_opener(Arc::new(TestKms(kms)))
}

fn env() -> Env {
    let kv = MemKv::new();
    let opener = MemoryOpener::default();
    let exec = executor(&kv, &opener, vec!["k1", "k2"]);
    Env { kv, opener, exec }
}

impl Env {
    /// A fresh, empty store sharing this one's storage, with access to KMS keys `kms`.
    fn target(&self, kms: Vec<&'static str>) -> Env {
        let kv = MemKv::new();
        Env { exec: executor(&kv, &self.opener, kms), kv, opener: self.opener.clone() }
    }
    async fn run(&self, sql: &str) -> QueryResult {
        self.exec.execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }
    async fn fail(&self, sql: &str) -> Error {
        match self.exec.execute(sql).await {
            Ok(r) => panic!("{sql} should fail, returned {r}"),
            Err(e) => e,
        }
    }
    async fn put(&self, table: &str, key: &str, value: &str) -> Timestamp {
        let id = self.exec.table_id("bank", table, None).await.unwrap();
        self.kv.write_sync(vec![(keys::table_key(id, key.as_bytes()), Some(value.as_bytes().to_vec()))])
    }
    async fn delete(&self, table: &str, key: &str) {
        let id = self.exec.table_id("bank", table, None).await.unwrap();
        self.kv.write_sync(vec![(keys::table_key(id, key.as_bytes()), None)]);
    }
    async fn rows(&self, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        let id = self.exec.table_id("bank", table, None).await.unwrap();
        let now = self.kv.now().await.unwrap();
        self.kv.view_at(&keys::table_span(id), now).into_iter().map(|(k, v)| (k[5..].to_vec(), v)).collect()
    }
    /// bank.accounts (300 rows) and bank.customers (40 rows), every value holding MARKER.
    async fn bank(&self) {
        self.run("CREATE DATABASE bank").await;
        self.run("CREATE TABLE bank.accounts").await;
        self.run("CREATE TABLE bank.customers").await;
        for i in 0..300 {
            self.put("accounts", &format!("acct-{i:04}"), &format!("{MARKER} balance {}", i * 17)).await;
        }
        for i in 0..40 {
            self.put("customers", &format!("cust-{i:03}"), &format!("{MARKER} customer {i}")).await;
        }
    }
    fn storage(&self, uri: &str) -> Arc<dyn ExternalStorage> {
        self.opener.open(uri).unwrap()
    }
    async fn objects(&self, uri: &str) -> Vec<ObjectMeta> {
        self.storage(uri).list("").await.unwrap()
    }
    async fn verify(&self, uri: &str) -> VerifyReport {
        let source = BackupSource { subdir: None, layers: vec![vec![uri.to_string()]] };
        self.exec.check_files(&source, KeyRequest::default(), false).await.unwrap()
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn encrypted_backup_restores_and_no_plaintext_reaches_storage() {
    block_on(async {
        let e = env();
        e.bank().await;
        e.run(&format!("BACKUP DATABASE bank INTO 'memory://b' WITH encryption_passphrase = '{PASS}'")).await;
        let objects = e.objects("memory://b").await;
        let names: Vec<&str> = objects.iter().map(|o| o.path.rsplit('/').next().unwrap()).collect();
        for n in ["LATEST", ENCRYPTION_INFO_NAME, "BACKUP_MANIFEST", "BACKUP_MANIFEST-CHECKSUM", "BACKUP-FILES"] {
            assert!(names.contains(&n), "{n} in {names:?}");
        }
        let root = e.storage("memory://b");
        for o in &objects {
            let bytes = root.get(&o.path).await.unwrap();
            for needle in [MARKER, "acct-0001", "accounts", "customers", "bank", PASS] {
                assert!(!contains(&bytes, needle.as_bytes()), "{needle:?} in {}", o.path);
            }
            // Everything strata encrypts starts with the chunked format's magic.
            if o.path.ends_with("BACKUP_MANIFEST") || o.path.ends_with(".sst") {
                assert_eq!(&bytes[..8], b"STRATAEN", "{}", o.path);
            }
        }

        let t = e.target(vec![]);
        t.run(&format!("RESTORE DATABASE bank FROM LATEST IN 'memory://b' WITH encryption_passphrase = '{PASS}'"))
            .await;
        assert_eq!(t.rows("accounts").await, e.rows("accounts").await);
        assert_eq!(t.rows("customers").await, e.rows("customers").await);
        assert_eq!(t.rows("accounts").await.len(), 300);

        // SHOW BACKUP needs the passphrase too, and shows no secret.
        let shown = e.run(&format!("SHOW BACKUP LATEST IN 'memory://b' WITH encryption_passphrase = '{PASS}'")).await;
        assert_eq!(shown.rows.len(), 3);
        assert!(!shown.to_string().contains(PASS));
        // The manifest records the statement with the passphrase redacted.
        let chain = e
            .exec
            .open_chain_with_keys(
                &BackupSource { subdir: Some(Subdir::Latest), layers: vec![vec!["memory://b".into()]] },
                KeyRequest::new(Some(PASS), &[]),
            )
            .await
            .unwrap();
        assert!(chain.codec.is_encrypted());
        let statement = &chain.layers[0].manifest.statement;
        assert!(statement.contains("encryption_passphrase = 'redacted'") && !statement.contains(PASS), "{statement}");

        // Every file checks out, with and without the key.
        assert_eq!(e.verify("memory://b").await.problems, vec![]);
        let checked = e
            .run(&format!("SHOW BACKUP LATEST IN 'memory://b' WITH check_files, encryption_passphrase = '{PASS}'"))
            .await;
        assert_eq!(checked.columns, vec!["path", "problem"]);
        assert!(checked.rows.is_empty(), "{checked}");
    });
}

#[test]
fn wrong_missing_and_unneeded_keys_say_what_is_wrong() {
    block_on(async {
        let e = env();
        e.bank().await;
        e.run(&format!("BACKUP DATABASE bank TO 'memory://b/enc' WITH encryption_passphrase = '{PASS}'")).await;
        e.run("BACKUP DATABASE bank TO 'memory://b/plain'").await;
        let t = e.target(vec!["k1"]);

        let err = t.fail("RESTORE DATABASE bank FROM 'memory://b/enc' WITH encryption_passphrase = 'hunter2'").await;
        assert!(matches!(err, Error::WrongKey(_)), "{err:?}");
        assert_eq!(err.code(), "WRONG_KEY");
        assert_eq!(err.to_string(), "the passphrase is wrong: it does not open the encrypted backup at memory://b/enc");
        let err = t.fail("SHOW BACKUP 'memory://b/enc' WITH encryption_passphrase = 'hunter2'").await;
        assert!(err.to_string().starts_with("the passphrase is wrong"), "{err}");

        let err = t.fail("RESTORE DATABASE bank FROM 'memory://b/enc'").await;
        assert!(matches!(err, Error::Precondition(_)), "{err:?}");
        assert_eq!(
            err.to_string(),
            "the backup at memory://b/enc is encrypted: give encryption_passphrase = '…' or kms = '…' (it opens with \
             a passphrase)"
        );
        let err = t.fail("RESTORE DATABASE bank FROM 'memory://b/enc' WITH kms = 'test-kms:///k1'").await;
        assert!(err.to_string().contains("encrypted with a passphrase, not a KMS key"), "{err}");

        let err = t
            .fail(&format!("RESTORE DATABASE bank FROM 'memory://b/plain' WITH encryption_passphrase = '{PASS}'"))
            .await;
        assert_eq!(
            err.to_string(),
            "the backup at memory://b/plain is not encrypted; run the statement without encryption_passphrase"
        );
        let err = e
            .fail(&format!(
                "BACKUP DATABASE bank TO 'memory://b/x' WITH encryption_passphrase = '{PASS}', kms = 'test-kms:///k1'"
            ))
            .await;
        assert_eq!(
            err.to_string(),
            "invalid BACKUP options: cannot have both encryption_passphrase and kms option set"
        );

        // Without randomness no key can be made, and the error says so.
        let no_entropy = Executor::new(Arc::new(e.kv.clone()), Arc::new(e.opener.clone()));
        let err = no_entropy
            .execute("BACKUP DATABASE bank TO 'memory://b/y' WITH encryption_passphrase = 'x'")
            .await
            .unwrap_err();
        assert!(err.to_string().contains("needs a source of random bytes"), "{err}");
        assert!(e.objects("memory://b/y").await.is_empty(), "nothing is left behind");
        // Restores need none.
        let t2 = Executor::new(Arc::new(MemKv::new()), Arc::new(e.opener.clone()));
        t2.execute(&format!("RESTORE DATABASE bank FROM 'memory://b/enc' WITH encryption_passphrase = '{PASS}'"))
            .await
            .unwrap();
    });
}

/// Full backup plus one appended incremental, both encrypted; returns the data file paths (full, incremental).
async fn encrypted_chain(e: &Env) -> (String, String) {
    e.bank().await;
    e.run(&format!("BACKUP DATABASE bank TO 'memory://b/chain' WITH encryption_passphrase = '{PASS}'")).await;
    e.put("accounts", "acct-0005", &format!("{MARKER} changed")).await;
    e.run(&format!("BACKUP DATABASE bank TO 'memory://b/chain' WITH encryption_passphrase = '{PASS}'")).await;
    let objects = e.objects("memory://b/chain").await;
    let full = objects.iter().find(|o| o.path.starts_with("data/")).unwrap().path.clone();
    let inc = objects.iter().find(|o| o.path.starts_with("incrementals/") && o.path.ends_with(".sst")).unwrap();
    (full, inc.path.clone())
}

/// Restoring the chain fails with an error naming one of `files` (paths in memory://b/chain).
async fn restore_fails_naming_one_of(e: &Env, files: &[&str]) -> Error {
    let t = e.target(vec![]);
    let err =
        t.fail(&format!("RESTORE DATABASE bank FROM 'memory://b/chain' WITH encryption_passphrase = '{PASS}'")).await;
    let named = files.iter().any(|f| err.to_string().contains(&format!("memory://b/chain/{f}:")));
    assert!(named, "restore after damaging {files:?} should name it: {err}");
    assert!(t.exec.execute("SHOW DATABASES").await.unwrap().rows.is_empty(), "nothing restored is visible");
    err
}

async fn restore_fails_naming(e: &Env, file: &str) -> Error {
    restore_fails_naming_one_of(e, &[file]).await
}

/// Verification, without the key and with it, reports a problem with `file`: by its path, or
/// (without the key, for a manifest and its checksum) naming it in the problem of its sibling.
async fn verify_names(e: &Env, file: &str) {
    let full = format!("memory://b/chain/{file}");
    let (dir, name) = full.rsplit_once('/').unwrap();
    for report in [
        e.verify("memory://b/chain").await,
        e.exec
            .check_files(
                &BackupSource { subdir: None, layers: vec![vec!["memory://b/chain".into()]] },
                KeyRequest::new(Some(PASS), &[]),
                true,
            )
            .await
            .unwrap(),
    ] {
        assert!(
            report
                .problems
                .iter()
                .any(|p| p.path == full || (p.problem.contains(name) && p.path.rsplit_once('/').unwrap().0 == dir)),
            "verify after damaging {file} should name it: {report:?}"
        );
    }
}

#[test]
fn a_flipped_bit_in_any_kind_of_file_fails_restore_and_verify_naming_the_file() {
    block_on(async {
        let e = env();
        let (full_data, inc_data) = encrypted_chain(&e).await;
        let root = e.storage("memory://b/chain");
        let inc_dir = inc_data.split("/data/").next().unwrap().to_string();
        let files = [
            full_data.clone(),
            inc_data.clone(),
            "BACKUP_MANIFEST".into(),
            format!("{inc_dir}/BACKUP_MANIFEST"),
            "BACKUP_MANIFEST-CHECKSUM".into(),
            format!("{inc_dir}/BACKUP_MANIFEST-CHECKSUM"),
            ENCRYPTION_INFO_NAME.into(),
        ];
        for file in &files {
            let original = root.get(file).await.unwrap();
            let n = original.len();
            // Sampled positions: the start (magic), the header, the first chunk, the middle, the end.
            let mut positions = vec![0, 9, 20, 40.min(n - 1), n / 3, n / 2, n - 17.min(n - 1), n - 1];
            positions.dedup();
            for &pos in &positions {
                let mut bad = original.to_vec();
                bad[pos] ^= 0x04;
                root.put(file, Bytes::from(bad)).await.unwrap();
                restore_fails_naming(&e, file).await;
                verify_names(&e, file).await;
            }
            root.put(file, original).await.unwrap();
        }
        // The plaintext file lists are checked by verification (restore does not need them).
        for file in ["BACKUP-FILES".to_string(), format!("{inc_dir}/BACKUP-FILES")] {
            let original = root.get(&file).await.unwrap();
            let mut bad = original.to_vec();
            let mid = bad.len() / 2;
            bad[mid] ^= 0x01;
            root.put(&file, Bytes::from(bad)).await.unwrap();
            verify_names(&e, &file).await;
            root.put(&file, original).await.unwrap();
        }
        // Undamaged again: restore works.
        let t = e.target(vec![]);
        t.run(&format!("RESTORE DATABASE bank FROM 'memory://b/chain' WITH encryption_passphrase = '{PASS}'")).await;
        assert_eq!(t.rows("accounts").await, e.rows("accounts").await);
    });
}

#[test]
fn truncated_extended_swapped_and_deleted_data_files_are_detected_and_named() {
    block_on(async {
        let e = env();
        encrypted_chain(&e).await;
        let root = e.storage("memory://b/chain");
        let data: Vec<String> = e
            .objects("memory://b/chain")
            .await
            .into_iter()
            .filter(|o| o.path.starts_with("data/"))
            .map(|o| o.path)
            .collect();
        assert_eq!(data.len(), 2, "one data file per table: {data:?}");
        let (a, b) = (&data[0], &data[1]);
        let original_a = root.get(a).await.unwrap();
        let original_b = root.get(b).await.unwrap();

        // Truncated by one byte, and by a whole chunk's worth.
        for cut in [1, 600.min(original_a.len() / 2)] {
            root.put(a, original_a.slice(..original_a.len() - cut)).await.unwrap();
            let err = restore_fails_naming(&e, a).await;
            assert!(err.to_string().contains("size is"), "{err}");
            verify_names(&e, a).await;
        }
        // Extended.
        let mut longer = original_a.to_vec();
        longer.extend_from_slice(&original_a[32..100]);
        root.put(a, Bytes::from(longer)).await.unwrap();
        restore_fails_naming(&e, a).await;
        verify_names(&e, a).await;
        // Swapped with the other table's file: both are named by verification.
        root.put(a, original_b.clone()).await.unwrap();
        root.put(b, original_a.clone()).await.unwrap();
        restore_fails_naming_one_of(&e, &[a, b]).await;
        let report = e.verify("memory://b/chain").await;
        for f in [a, b] {
            assert!(report.problems.iter().any(|p| p.path.ends_with(f.as_str())), "{f}: {report:?}");
        }
        root.put(b, original_b.clone()).await.unwrap();
        // Deleted.
        root.delete(a).await.unwrap();
        let err = restore_fails_naming(&e, a).await;
        assert!(err.to_string().contains("missing"), "{err}");
        let report = e.verify("memory://b/chain").await;
        assert!(
            report.problems.iter().any(|p| p.path.ends_with(a.as_str()) && p.problem.starts_with("missing")),
            "{report:?}"
        );
        root.put(a, original_a).await.unwrap();
        assert_eq!(e.verify("memory://b/chain").await.problems, vec![]);
    });
}

#[test]
fn deleting_encryption_info_is_named() {
    block_on(async {
        let e = env();
        encrypted_chain(&e).await;
        e.storage("memory://b/chain").delete(ENCRYPTION_INFO_NAME).await.unwrap();
        let err = restore_fails_naming(&e, ENCRYPTION_INFO_NAME).await;
        assert!(err.to_string().contains("is missing, but the backup is encrypted"), "{err}");
        let report = e.verify("memory://b/chain").await;
        assert!(
            report.problems.iter().any(|p| p.path.ends_with(ENCRYPTION_INFO_NAME) && p.problem.starts_with("missing")),
            "{report:?}"
        );
    });
}

#[test]
fn encrypted_incremental_chains_restore_and_mismatched_keys_are_refused() {
    block_on(async {
        let e = env();
        e.bank().await;
        let with = format!("WITH encryption_passphrase = '{PASS}'");
        // A collection: full + 2 incrementals.
        e.run(&format!("BACKUP DATABASE bank INTO 'memory://c' {with}")).await;
        e.put("accounts", "acct-0001", "one").await;
        e.delete("customers", "cust-003").await;
        e.run(&format!("BACKUP DATABASE bank INTO LATEST IN 'memory://c' {with}")).await;
        e.put("accounts", "acct-0002", "two").await;
        e.put("accounts", "acct-9999", "new").await;
        e.run(&format!("BACKUP DATABASE bank INTO LATEST IN 'memory://c' {with}")).await;
        let shown = e.run(&format!("SHOW BACKUP LATEST IN 'memory://c' {with}")).await;
        assert_eq!(shown.rows.iter().filter(|r| r[2].to_string() == "incremental").count(), 6);
        let t = e.target(vec![]);
        t.run(&format!("RESTORE DATABASE bank FROM LATEST IN 'memory://c' {with}")).await;
        assert_eq!(t.rows("accounts").await, e.rows("accounts").await);
        assert_eq!(t.rows("customers").await, e.rows("customers").await);
        assert_eq!(e.verify("memory://c").await.problems, vec![], "verifies a collection without the key");

        // Explicit layers: BACKUP TO … INCREMENTAL FROM, RESTORE FROM full, inc1, inc2.
        e.run(&format!("BACKUP DATABASE bank TO 'memory://d/full' {with}")).await;
        e.put("accounts", "acct-0003", "three").await;
        e.run(&format!("BACKUP DATABASE bank TO 'memory://d/inc1' INCREMENTAL FROM 'memory://d/full' {with}")).await;
        e.delete("accounts", "acct-0004").await;
        e.run(&format!(
            "BACKUP DATABASE bank TO 'memory://d/inc2' INCREMENTAL FROM 'memory://d/full', 'memory://d/inc1' {with}"
        ))
        .await;
        let t = e.target(vec![]);
        t.run(&format!("RESTORE DATABASE bank FROM 'memory://d/full', 'memory://d/inc1', 'memory://d/inc2' {with}"))
            .await;
        assert_eq!(t.rows("accounts").await, e.rows("accounts").await);
        // Each layer verifies on its own without the key, and the listed chain with it.
        for layer in ["memory://d/full", "memory://d/inc1", "memory://d/inc2"] {
            assert_eq!(e.verify(layer).await.problems, vec![], "{layer}");
        }
        let checked = e
            .run(&format!(
                "SHOW BACKUP FROM 'memory://d/full', 'memory://d/inc1', 'memory://d/inc2' WITH check_files, \
                 encryption_passphrase = '{PASS}'"
            ))
            .await;
        assert!(checked.rows.is_empty(), "{checked}");
        for layer in ["memory://d/inc1", "memory://d/inc2"] {
            let head = e.storage(layer).get_range("BACKUP_MANIFEST", 0..8).await.unwrap();
            assert_eq!(&head[..], b"STRATAEN", "{layer} is encrypted with the chain's key");
            assert!(e.storage(layer).get(ENCRYPTION_INFO_NAME).await.is_err(), "one ENCRYPTION-INFO per chain");
        }

        // Mismatches: extending an encrypted chain without the key, or with another one; a plain
        // chain with a key.
        let err = e.fail("BACKUP DATABASE bank INTO LATEST IN 'memory://c'").await;
        assert!(err.to_string().contains("is encrypted: give encryption_passphrase"), "{err}");
        let err = e.fail("BACKUP DATABASE bank INTO LATEST IN 'memory://c' WITH encryption_passphrase = 'other'").await;
        assert!(err.to_string().starts_with("the passphrase is wrong"), "{err}");
        let err = e
            .fail("BACKUP DATABASE bank TO 'memory://d/inc3' INCREMENTAL FROM 'memory://d/full', 'memory://d/inc1'")
            .await;
        assert!(err.to_string().contains("is encrypted"), "{err}");
        e.run("BACKUP DATABASE bank INTO 'memory://p'").await;
        let err = e.fail(&format!("BACKUP DATABASE bank INTO LATEST IN 'memory://p' {with}")).await;
        assert!(err.to_string().contains("is not encrypted"), "{err}");
        // A plain layer listed in an encrypted chain is refused by name.
        let err = e
            .fail(&format!("RESTORE DATABASE bank FROM 'memory://d/full', 'memory://p/{}' {with}", {
                let latest = e.storage("memory://p").get("LATEST").await.unwrap();
                String::from_utf8(latest.to_vec()).unwrap().trim_start_matches('/').to_string()
            }))
            .await;
        assert!(err.to_string().contains("is not encrypted, but the backup chain is"), "{err}");
    });
}

#[test]
fn kms_keys_and_rotation() {
    block_on(async {
        let e = env();
        e.bank().await;
        e.run("BACKUP DATABASE bank TO 'memory://k/b' WITH kms = 'test-kms:///k1'").await;
        let root = e.storage("memory://k/b");
        let before: Vec<(String, Bytes)> = {
            let mut v = Vec::new();
            for o in root.list("").await.unwrap() {
                v.push((o.path.clone(), root.get(&o.path).await.unwrap()));
            }
            v
        };
        // A target that only has k2 cannot restore yet.
        let only_k2 = e.target(vec!["k2"]);
        let err = only_k2.fail("RESTORE DATABASE bank FROM 'memory://k/b' WITH kms = 'test-kms:///k2'").await;
        assert!(matches!(err, Error::WrongKey(_)), "{err:?}");
        assert!(err.to_string().starts_with("the KMS key is wrong"), "{err}");
        assert!(err.to_string().contains("test-kms:k1"), "names the key that would open it: {err}");

        let r =
            e.run("ALTER BACKUP 'memory://k/b' ADD NEW_KMS = 'test-kms:///k2' WITH OLD_KMS = 'test-kms:///k1'").await;
        assert_eq!(r.get(0, "keys").unwrap().to_string(), "2");
        // Only ENCRYPTION-INFO changed.
        for (path, bytes) in &before {
            let now = root.get(path).await.unwrap();
            assert_eq!(path == ENCRYPTION_INFO_NAME, now != *bytes, "{path}");
        }
        only_k2.run("RESTORE DATABASE bank FROM 'memory://k/b' WITH kms = 'test-kms:///k2'").await;
        assert_eq!(only_k2.rows("accounts").await, e.rows("accounts").await);

        // Adding a key needs one that opens the backup.
        let err =
            e.fail("ALTER BACKUP 'memory://k/b' ADD NEW_KMS = 'test-kms:///k2' WITH OLD_KMS = 'test-kms:///k3'").await;
        assert!(err.to_string().contains("test-kms:///k3"), "{err}");
        // Passphrase rotation the same way.
        e.run(&format!("BACKUP DATABASE bank TO 'memory://k/p' WITH encryption_passphrase = '{PASS}'")).await;
        let err =
            e.fail("ALTER BACKUP 'memory://k/p' ADD NEW_PASSPHRASE = 'new one' WITH OLD_PASSPHRASE = 'nope'").await;
        assert!(err.to_string().starts_with("the passphrase is wrong"), "{err}");
        assert!(!err.to_string().contains("nope") && !err.to_string().contains("new one"));
        e.run(&format!("ALTER BACKUP 'memory://k/p' ADD NEW_PASSPHRASE = 'new one' WITH OLD_PASSPHRASE = '{PASS}'"))
            .await;
        let t = e.target(vec![]);
        t.run("RESTORE DATABASE bank FROM 'memory://k/p' WITH encryption_passphrase = 'new one'").await;
        assert_eq!(t.rows("customers").await, e.rows("customers").await);
        // The old passphrase still works too (keys are added, not replaced).
        e.target(vec![])
            .run(&format!("RESTORE DATABASE bank FROM 'memory://k/p' WITH encryption_passphrase = '{PASS}'"))
            .await;
        // A KMS key for a passphrase chain is refused by kind.
        let err =
            e.fail("ALTER BACKUP 'memory://k/p' ADD NEW_KMS = 'test-kms:///k2' WITH OLD_KMS = 'test-kms:///k1'").await;
        assert!(err.to_string().contains("passphrase, not a KMS key"), "{err}");
        // A plain backup has no key to add to.
        e.run("BACKUP DATABASE bank TO 'memory://k/plain'").await;
        let err = e.fail("ALTER BACKUP 'memory://k/plain' ADD NEW_PASSPHRASE = 'a' WITH OLD_PASSPHRASE = 'b'").await;
        assert!(err.to_string().contains("is not encrypted"), "{err}");

        // Several KMS keys at backup time: each opens it alone.
        e.run("BACKUP DATABASE bank TO 'memory://k/multi' WITH kms = ('test-kms:///k1', 'test-kms:///k2')").await;
        for k in ["k1", "k2"] {
            e.target(vec![k])
                .run(&format!("RESTORE DATABASE bank FROM 'memory://k/multi' WITH kms = 'test-kms:///{k}'"))
                .await;
        }
    });
}

#[test]
fn an_unfinished_backups_encryption_info_is_reused_with_its_key_and_refused_otherwise() {
    block_on(async {
        let e = env();
        e.bank().await;
        // A failed plan leaves nothing behind.
        e.fail(&format!("BACKUP TABLE bank.nope TO 'memory://u/a' WITH encryption_passphrase = '{PASS}'")).await;
        assert!(e.objects("memory://u/a").await.is_empty());
        // ENCRYPTION-INFO of a backup that never wrote its manifest (a crash).
        e.run(&format!("BACKUP DATABASE bank TO 'memory://u/a' WITH encryption_passphrase = '{PASS}'")).await;
        let info = e.storage("memory://u/a").get(ENCRYPTION_INFO_NAME).await.unwrap();
        let dir = e.storage("memory://u/b");
        dir.put(ENCRYPTION_INFO_NAME, info.clone()).await.unwrap();
        let err = e.fail("BACKUP DATABASE bank TO 'memory://u/b' WITH encryption_passphrase = 'other'").await;
        assert!(err.to_string().contains("left by an unfinished backup"), "{err}");
        let err = e.fail("BACKUP DATABASE bank TO 'memory://u/b'").await;
        assert!(err.to_string().contains("left by an unfinished backup"), "{err}");
        e.run(&format!("BACKUP DATABASE bank TO 'memory://u/b' WITH encryption_passphrase = '{PASS}'")).await;
        assert_eq!(dir.get(ENCRYPTION_INFO_NAME).await.unwrap(), info, "reused, not replaced");
        e.target(vec![])
            .run(&format!("RESTORE DATABASE bank FROM 'memory://u/b' WITH encryption_passphrase = '{PASS}'"))
            .await;
    });
}

#[test]
fn plain_backups_are_unchanged_and_verify_too() {
    block_on(async {
        let e = env();
        e.bank().await;
        e.run("BACKUP DATABASE bank TO 'memory://plain/b'").await;
        let objects = e.objects("memory://plain/b").await;
        assert!(objects.iter().all(|o| o.path != ENCRYPTION_INFO_NAME && o.path != "BACKUP-FILES"), "{objects:?}");
        let manifest = e.storage("memory://plain/b").get("BACKUP_MANIFEST").await.unwrap();
        assert_eq!(&manifest[..8], b"STRATAMF");
        let data = objects.iter().find(|o| o.path.starts_with("data/")).unwrap();
        assert_eq!(e.verify("memory://plain/b").await.problems, vec![]);
        e.storage("memory://plain/b").delete(&data.path).await.unwrap();
        let r = e.run("SHOW BACKUP 'memory://plain/b' WITH check_files").await;
        assert_eq!(r.rows.len(), 1, "{r}");
        assert_eq!(r.rows[0][0].to_string(), format!("memory://plain/b/{}", data.path));
        assert_eq!(r.rows[0][1].to_string(), "missing (the manifest names it)");
    });
}

/// A storage that counts the bytes read from it.
struct Counting {
    inner: Arc<dyn ExternalStorage>,
    read: AtomicU64,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl StorageWrapper for Counting {
    fn inner(&self) -> &dyn ExternalStorage {
        self.inner.as_ref()
    }
    async fn get_opts(&self, path: &str, options: GetOptions) -> Result<GetResult> {
        let got = self.inner.get_opts(path, options).await?;
        self.read.fetch_add(got.bytes.len() as u64, Ordering::Relaxed);
        Ok(got)
    }
}

#[test]
fn ranged_reads_of_an_encrypted_file_fetch_and_decrypt_only_the_needed_chunks() {
    block_on(async {
        // One data file holding two tables (104 and 105); restoring 105 alone reads its blocks only.
        let ts = Timestamp::new(1_700_000_000_000_000_000, 0);
        let mut w = DataFileWriter::new(DataFileOptions::default().with_block_size(512));
        let mut expected = Vec::new();
        for (table, rows) in [(104u32, 3000), (105, 200)] {
            for i in 0..rows {
                let value = format!("{MARKER} t{table} row {i}").into_bytes();
                w.add_entry(&Entry {
                    key: keys::table_key(table, format!("k{i:04}").as_bytes()).into(),
                    ts,
                    value: Some(value.clone().into()),
                });
                if table == 105 {
                    expected.push((format!("k{i:04}").into_bytes(), value));
                }
            }
        }
        let (plain, stats) = w.finish();
        let key = DataKey::generate(&entropy()).unwrap();
        let codec = FileCodec::encrypted(key.clone()).with_chunk_size(1024);
        let stored = codec.seal("data/two.sst", plain.clone());
        assert!(!contains(&stored, MARKER.as_bytes()));
        let memory = MemoryOpener::default().open("memory://r").unwrap();
        memory.put("data/two.sst", Bytes::from(stored.clone())).await.unwrap();
        let counting = Arc::new(Counting { inner: memory.clone(), read: AtomicU64::new(0) });
        let file = |path: &str| FileInfo {
            path: path.into(),
            span: strata_core::Span::new(keys::table_prefix(104).to_vec(), keys::table_span(105).end),
            size: stored.len() as u64,
            sha256: sha256(&stored),
            entries: stats.entries,
            rows: stats.rows,
            logical_bytes: stats.logical_bytes,
            locality: None,
        };
        let plan = |path: &str| RestorePlan {
            as_of: ts,
            layers: vec!["memory://r".into()],
            databases: vec![DatabaseRestore {
                old_id: 100,
                descriptor: DatabaseDescriptor { id: 200, name: "db".into(), version: 1, modification_time: ts },
            }],
            tables: vec![TableRestore {
                old_id: 105,
                descriptor: TableDescriptor {
                    id: 201,
                    name: "t".into(),
                    parent_id: 200,
                    version: 1,
                    modification_time: ts,
                    indexes: vec![],
                },
            }],
            restore_system: false,
            files: vec![LayerFile { layer: 0, file: file(path) }],
        };
        let sink = MemKv::new();
        let layers = one_layer_chain(counting.clone(), codec.clone(), ts);
        let options = RestoreRunOptions::default();
        run_restore(&sink, &layers, &plan("data/two.sst"), &options).await.unwrap();
        let now = sink.now().await.unwrap();
        let got: Vec<_> =
            sink.view_at(&keys::table_span(201), now).into_iter().map(|(k, v)| (k[5..].to_vec(), v)).collect();
        assert_eq!(got, expected);
        let read = counting.read.load(Ordering::Relaxed);
        // The same restore of the plain file, for reference: encryption adds at most a chunk of
        // alignment at each end of each of the (three) ranged reads, plus the header.
        let plain_storage = MemoryOpener::default().open("memory://plain").unwrap();
        plain_storage.put("data/two.sst", Bytes::from(plain.clone())).await.unwrap();
        let plain_counting = Arc::new(Counting { inner: plain_storage, read: AtomicU64::new(0) });
        let mut plain_plan = plan("data/two.sst");
        plain_plan.files[0].file.size = plain.len() as u64;
        plain_plan.files[0].file.sha256 = sha256(&plain);
        let plain_layers = one_layer_chain(plain_counting.clone(), FileCodec::plain(), ts);
        run_restore(&MemKv::new(), &plain_layers, &plain_plan, &RestoreRunOptions::default()).await.unwrap();
        let plain_read = plain_counting.read.load(Ordering::Relaxed);
        assert!(plain_read < plain.len() as u64 / 2, "plain: read {plain_read} of {}", plain.len());
        assert!(read <= plain_read + 3 * 2 * (1024 + 16) + 32, "read {read}, plain {plain_read} of {}", stored.len());

        // A flipped bit in a chunk the restore needs fails it, naming the file.
        let mut bad = stored.clone();
        let last_quarter = bad.len() - bad.len() / 4;
        bad[last_quarter] ^= 1;
        memory.put("data/two.sst", Bytes::from(bad)).await.unwrap();
        let err = run_restore(&MemKv::new(), &layers, &plan("data/two.sst"), &options).await.unwrap_err();
        assert_eq!(err.code(), "CORRUPT");
        assert!(
            err.to_string().contains("memory://r/data/two.sst") && err.to_string().contains("fails authentication"),
            "{err}"
        );

        // The same bytes at another path do not decrypt: the path is bound into every chunk.
        memory.put("data/moved.sst", Bytes::from(stored.clone())).await.unwrap();
        let err = run_restore(&MemKv::new(), &layers, &plan("data/moved.sst"), &options).await.unwrap_err();
        assert!(
            err.to_string().contains("data/moved.sst") && err.to_string().contains("moved from another path"),
            "{err}"
        );
    });
}

/// The committed fixture: an encrypted backup (full + one incremental) made with argon2id at
/// 1 MiB, 2 passes, 2 lanes — not today's default — packed as `u32 LE path length | path |
/// u64 LE size | bytes` per object.
const FIXTURE: &[u8] = include_bytes!("fixtures/encrypted-backup-v1.bin");
const FIXTURE_PASS: &str = "fixture passphrase";

fn fixture_kdf() -> KdfParams {
    KdfParams::argon2id(1024, 2, 2).unwrap()
}

fn fixture_rows() -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut rows: Vec<(Vec<u8>, Vec<u8>)> =
        (0..20).map(|i| (format!("k{i:02}").into_bytes(), format!("v{i}").into_bytes())).collect();
    rows[3].1 = b"changed".to_vec();
    rows.remove(7);
    rows
}

fn pack(objects: &[(String, Bytes)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (path, bytes) in objects {
        out.extend_from_slice(&(path.len() as u32).to_le_bytes());
        out.extend_from_slice(path.as_bytes());
        out.extend_from_slice(&(bytes.len() as u64).to_le_bytes());
        out.extend_from_slice(bytes);
    }
    out
}

fn unpack(mut b: &[u8]) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    while !b.is_empty() {
        let n = u32::from_le_bytes(b[..4].try_into().unwrap()) as usize;
        let path = String::from_utf8(b[4..4 + n].to_vec()).unwrap();
        b = &b[4 + n..];
        let size = u64::from_le_bytes(b[..8].try_into().unwrap()) as usize;
        out.push((path, Bytes::copy_from_slice(&b[8..8 + size])));
        b = &b[8 + size..];
    }
    out
}

#[test]
fn kdf_parameters_are_read_from_encryption_info_of_a_committed_backup() {
    block_on(async {
        if std::env::var_os("STRATA_WRITE_FIXTURES").is_some() {
            let kv = MemKv::new();
            let opener = MemoryOpener::default();
            let exec = Executor::new(Arc::new(kv.clone()), Arc::new(opener.clone()))
                .with_entropy(entropy())
                .with_kdf_params(fixture_kdf());
            let with = format!("WITH encryption_passphrase = '{FIXTURE_PASS}'");
            exec.execute("CREATE DATABASE bank").await.unwrap();
            exec.execute("CREATE TABLE bank.accounts").await.unwrap();
            let id = exec.table_id("bank", "accounts", None).await.unwrap();
            for i in 0..20 {
                kv.write_sync(vec![(
                    keys::table_key(id, format!("k{i:02}").as_bytes()),
                    Some(format!("v{i}").into_bytes()),
                )]);
            }
            exec.execute(&format!("BACKUP DATABASE bank TO 'memory://fx' {with}")).await.unwrap();
            kv.write_sync(vec![
                (keys::table_key(id, b"k03"), Some(b"changed".to_vec())),
                (keys::table_key(id, b"k07"), None),
            ]);
            exec.execute(&format!("BACKUP DATABASE bank TO 'memory://fx' {with}")).await.unwrap();
            let root = opener.open("memory://fx").unwrap();
            let mut objects = Vec::new();
            for o in root.list("").await.unwrap() {
                objects.push((o.path.clone(), root.get(&o.path).await.unwrap()));
            }
            let path = format!("{}/tests/fixtures/encrypted-backup-v1.bin", env!("CARGO_MANIFEST_DIR"));
            std::fs::write(path, pack(&objects)).unwrap();
        }
        let objects = unpack(FIXTURE);
        let opener = MemoryOpener::default();
        let root = opener.open("memory://fx").unwrap();
        for (path, bytes) in &objects {
            root.put(path, bytes.clone()).await.unwrap();
        }
        // The parameters it was made with are in its ENCRYPTION-INFO …
        let info = EncryptionInfo::decode(&root.get(ENCRYPTION_INFO_NAME).await.unwrap(), "fixture").unwrap();
        match &info.keys[..] {
            [strata_core::crypto::info::WrappedKey::Passphrase { kdf, .. }] => assert_eq!(*kdf, fixture_kdf()),
            other => panic!("{other:?}"),
        }
        // … and an executor whose default differs restores it with them.
        let kv = MemKv::new();
        let exec = Executor::new(Arc::new(kv.clone()), Arc::new(opener.clone()));
        assert_ne!(exec.keyring().kdf_params(), fixture_kdf());
        let err = exec
            .execute("RESTORE DATABASE bank FROM 'memory://fx' WITH encryption_passphrase = 'wrong'")
            .await
            .unwrap_err();
        assert!(err.to_string().starts_with("the passphrase is wrong"), "{err}");
        exec.execute(&format!(
            "RESTORE DATABASE bank FROM 'memory://fx' WITH encryption_passphrase = '{FIXTURE_PASS}'"
        ))
        .await
        .unwrap();
        let id = exec.table_id("bank", "accounts", None).await.unwrap();
        let now = kv.now().await.unwrap();
        let rows: Vec<_> =
            kv.view_at(&keys::table_span(id), now).into_iter().map(|(k, v)| (k[5..].to_vec(), v)).collect();
        assert_eq!(rows, fixture_rows());
        // It also verifies without the key.
        let report = exec
            .check_files(
                &BackupSource { subdir: None, layers: vec![vec!["memory://fx".into()]] },
                KeyRequest::default(),
                false,
            )
            .await
            .unwrap();
        assert_eq!((report.layers, report.problems.len()), (2, 0), "{report:?}");
    });
}

#[test]
fn unknown_versions_of_the_encrypted_formats_are_refused_by_name() {
    let key = DataKey::generate(&entropy()).unwrap();
    let mut sealed = FileCodec::encrypted(key.clone()).seal("BACKUP_MANIFEST", b"hello".to_vec());
    sealed[8] = 9;
    let err = FileCodec::encrypted(key).open("BACKUP_MANIFEST", Bytes::from(sealed), "x/BACKUP_MANIFEST").unwrap_err();
    assert_eq!(
        err.to_string(),
        "corrupt x/BACKUP_MANIFEST: encryption format version 9 is not readable by this build (reads 1)"
    );
}

/// A chain of one layer, named `memory://r`, in `storage` (its manifest holds only what a
/// hand-made restore plan needs: the plan names the files itself).
fn one_layer_chain(storage: Arc<dyn ExternalStorage>, codec: FileCodec, end_time: Timestamp) -> Chain {
    let manifest = Manifest {
        created_by: "test".into(),
        start_time: Timestamp::ZERO,
        end_time,
        mvcc_filter: MvccFilter::Latest,
        scope: BackupScope::Cluster,
        is_full_cluster: false,
        spans: vec![],
        introduced_spans: vec![],
        descriptors: vec![],
        descriptor_changes: vec![],
        files: vec![],
        dependencies: vec![],
        statement: String::new(),
        revision_start_time: end_time,
        origin: None,
    };
    Chain { layers: vec![Layer { name: "memory://r".into(), dir: Locations::single(storage), manifest }], codec }
}
