//! Backups through real servers (started by scripts/test-all.sh): a full backup, two
//! incrementals and a restore through S3 (moto), Azure (Azurite) and WebDAV (rclone), plain and
//! encrypted; a locality-aware backup to two S3 buckets and a WebDAV location that restores
//! correctly with every file where its locality says; and no secret of any URI in any error,
//! result, `SHOW` output, manifest or CLI output.

mod storage_manage;
mod support;

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;
use strata_core::sql::{BackupSource, Subdir};
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, read_span, Catalog, DescId, DescriptorChange, Executor, ExternalStorage, IngestBatch, KdfParams, KeyRequest,
    KvSink, KvSource, KvStore, MemKv, QueryResult, Result, ScanPage, ScanRequest, Span, StorageOpener, TableDescriptor,
    Timestamp, WorkUnit, MANIFEST_NAME,
};
use strata_native::{os_entropy, NativeOpener};
use support::*;

const PASSPHRASE: &str = "correct horse battery staple";

/// The passphrase KDF of the backups written here: argon2id with 256 KiB, not the default 64 MiB.
/// These tests are about storage servers; each encrypted statement derives the key again, and
/// the default cost made the derivations most of this file's CPU time. Restores read the
/// parameters from the backup's ENCRYPTION-INFO, as they always do.
fn cheap_kdf() -> KdfParams {
    KdfParams::argon2id(256, 1, 1).unwrap()
}

fn opener() -> Arc<NativeOpener> {
    Arc::new(NativeOpener::new(std::env::temp_dir().join("strata-storage-backups")))
}

/// A MemKv whose `split` says where each table's data lives: a test source with localities,
/// like a cluster whose ranges have leaseholders in several regions.
struct LocalityKv {
    inner: MemKv,
    /// `(span, locality)`: work units starting inside `span` are in `locality`.
    localities: Mutex<Vec<(Span, String)>>,
}

impl LocalityKv {
    fn new() -> LocalityKv {
        LocalityKv { inner: MemKv::new(), localities: Mutex::default() }
    }
    fn place(&self, span: Span, locality: &str) {
        self.localities.lock().unwrap().push((span, locality.to_string()));
    }
}

#[async_trait]
impl KvSource for LocalityKv {
    async fn now(&self) -> Result<Timestamp> {
        self.inner.now().await
    }
    async fn scan(&self, request: ScanRequest) -> Result<ScanPage> {
        self.inner.scan(request).await
    }
    async fn gc_threshold(&self, span: &Span) -> Result<Timestamp> {
        self.inner.gc_threshold(span).await
    }
    async fn split(&self, span: &Span) -> Result<Vec<WorkUnit>> {
        let locality =
            self.localities.lock().unwrap().iter().find(|(s, _)| s.contains(&span.start)).map(|(_, l)| l.clone());
        Ok(vec![WorkUnit { span: span.clone(), locality }])
    }
    async fn scan_changes(&self, request: ScanRequest) -> Result<Option<ScanPage>> {
        self.inner.scan_changes(request).await
    }
    async fn catalog_at(&self, ts: Timestamp) -> Result<Catalog> {
        self.inner.catalog_at(ts).await
    }
}

#[async_trait]
impl KvSink for LocalityKv {
    async fn catalog(&self) -> Result<Catalog> {
        self.inner.catalog().await
    }
    async fn allocate_ids(&self, count: u32) -> Result<DescId> {
        self.inner.allocate_ids(count).await
    }
    async fn ingest(&self, batch: IngestBatch) -> Result<()> {
        self.inner.ingest(batch).await
    }
    async fn publish(&self, changes: Vec<DescriptorChange>) -> Result<Timestamp> {
        self.inner.publish(changes).await
    }
    async fn discard(&self, spans: &[Span]) -> Result<()> {
        self.inner.discard(spans).await
    }
    async fn validate_indexes(&self, table: &TableDescriptor) -> Result<()> {
        self.inner.validate_indexes(table).await
    }
}

#[async_trait]
impl KvStore for LocalityKv {
    async fn write(&self, batch: Vec<(Vec<u8>, Option<Vec<u8>>)>) -> Result<Timestamp> {
        self.inner.write(batch).await
    }
}

/// Everything a test showed: results and errors, as text, to grep for secrets.
#[derive(Default)]
struct Shown(Mutex<Vec<String>>);

impl Shown {
    async fn run(&self, exec: &Executor, statement: &str) -> QueryResult {
        let result = exec.execute(statement).await;
        self.0.lock().unwrap().push(format!("{result:?}"));
        match result {
            Ok(r) => r,
            Err(e) => panic!("{statement}: {e}"),
        }
    }
    async fn fails(&self, exec: &Executor, statement: &str) -> String {
        let result = exec.execute(statement).await;
        let text = match &result {
            Ok(r) => panic!("{statement} should fail, got {r:?}"),
            Err(e) => format!("{e}"),
        };
        self.0.lock().unwrap().push(format!("{result:?}"));
        text
    }
    fn push(&self, text: String) {
        self.0.lock().unwrap().push(text);
    }
    /// Panics if any shown text holds one of `secrets` (raw or percent-encoded).
    fn assert_free_of(&self, secrets: &[&str]) {
        for text in self.0.lock().unwrap().iter() {
            for secret in secrets {
                for spelling in [secret.to_string(), encode(secret)] {
                    assert!(!text.contains(&spelling), "a secret was shown: {text}");
                }
            }
        }
    }
}

async fn table_id(exec: &Executor, table: &str) -> DescId {
    exec.table_id("bank", table, None).await.unwrap()
}

/// Writes `rows` (suffix → value; `None` deletes) into `bank.<table>`.
async fn write(exec: &Executor, table: &str, rows: impl IntoIterator<Item = (String, Option<String>)>) {
    let prefix = keys::table_prefix(table_id(exec, table).await);
    let batch = rows
        .into_iter()
        .map(|(k, v)| {
            let mut key = prefix.to_vec();
            key.extend_from_slice(k.as_bytes());
            (key, v.map(String::into_bytes))
        })
        .collect();
    exec.store().write(batch).await.unwrap();
}

/// The rows of `bank.<table>` now, keys without their table prefix.
async fn rows(exec: &Executor, table: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    let id = table_id(exec, table).await;
    let now = exec.store().now().await.unwrap();
    let rows = read_span(exec.store().as_ref(), keys::table_span(id), now).await.unwrap();
    rows.into_iter().map(|(k, v)| (k[5..].to_vec(), v)).collect()
}

fn value(i: usize, version: usize) -> Option<String> {
    Some(format!("account {i} version {version} {}", "x".repeat(150 + i % 50)))
}

/// A full backup, two incrementals (updates, deletes, a new table) and a restore of the
/// collection at `uri`, with or without encryption; the restored tables equal the source's.
async fn round_trip(uri: &str, encrypted: bool, secrets: &[&str]) {
    let opener = opener();
    let shown = Shown::default();
    let with = if encrypted { format!(" WITH encryption_passphrase = '{PASSPHRASE}'") } else { String::new() };
    let exec =
        Executor::new(Arc::new(MemKv::new()), opener.clone()).with_entropy(os_entropy()).with_kdf_params(cheap_kdf());
    shown.run(&exec, "CREATE DATABASE bank").await;
    shown.run(&exec, "CREATE TABLE bank.accounts").await;
    shown.run(&exec, "CREATE TABLE bank.branches").await;
    write(&exec, "accounts", (0..300).map(|i| (format!("{i:05}"), value(i, 0)))).await;
    write(&exec, "branches", (0..20).map(|i| (format!("b{i}"), Some(format!("branch {i}"))))).await;
    let full = shown.run(&exec, &format!("BACKUP DATABASE bank INTO '{uri}'{with}")).await;
    assert_eq!(full.rows[0][1], "full".into(), "{full:?}");

    write(&exec, "accounts", (0..50).map(|i| (format!("{:05}", i * 3), value(i, 1)))).await;
    write(&exec, "accounts", (100..120).map(|i| (format!("{i:05}"), None))).await;
    write(&exec, "accounts", (300..330).map(|i| (format!("{i:05}"), value(i, 1)))).await;
    let inc1 = shown.run(&exec, &format!("BACKUP DATABASE bank INTO LATEST IN '{uri}'{with}")).await;
    assert_eq!(inc1.rows[0][1], "incremental".into(), "{inc1:?}");

    shown.run(&exec, "CREATE TABLE bank.audit").await;
    write(&exec, "audit", (0..40).map(|i| (format!("a{i:03}"), Some(format!("event {i}"))))).await;
    write(&exec, "accounts", (200..210).map(|i| (format!("{i:05}"), None))).await;
    write(&exec, "branches", [("b3".to_string(), Some("renamed".to_string()))]).await;
    shown.run(&exec, &format!("BACKUP DATABASE bank INTO LATEST IN '{uri}'{with}")).await;

    let show = shown.run(&exec, &format!("SHOW BACKUP LATEST IN '{uri}'{with}")).await;
    let kinds: Vec<String> =
        show.rows.iter().filter(|r| r[1] == strata_core::Value::Null).map(|r| format!("{}", r[2])).collect();
    assert_eq!(kinds.len(), 3, "one database row per layer: {show:?}");
    shown.run(&exec, &format!("SHOW BACKUPS IN '{uri}'")).await;

    let target = Executor::new(Arc::new(MemKv::new()), opener.clone());
    if encrypted {
        let err = shown.fails(&target, &format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'")).await;
        assert!(err.contains("encrypted"), "{err}");
    }
    shown.run(&target, &format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'{with}")).await;
    for table in ["accounts", "branches", "audit"] {
        let (expected, got) = (rows(&exec, table).await, rows(&target, table).await);
        assert!(!expected.is_empty());
        assert_eq!(got.len(), expected.len(), "{uri}: bank.{table} row count");
        assert!(got == expected, "{uri}: bank.{table} differs after restore");
    }

    // The raw manifest of the full backup, and a failing statement, hold no secret either.
    let root = opener.open(uri).unwrap();
    let latest = String::from_utf8(root.get("LATEST").await.unwrap().to_vec()).unwrap();
    let manifest = root.get(&format!("{}/{MANIFEST_NAME}", latest.trim_matches('/'))).await.unwrap();
    shown.push(String::from_utf8_lossy(&manifest).to_string());
    shown.fails(&target, &format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'{with}")).await;
    shown.fails(&target, &format!("SHOW BACKUP '/2000/01/01-000000.00' IN '{uri}'{with}")).await;
    shown.assert_free_of(secrets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_two_incrementals_through_s3() {
    let Some(endpoint) = s3_endpoint() else { return };
    for encrypted in [false, true] {
        round_trip(&s3_uri(&endpoint, S3_BUCKETS[1], &unique("chain")), encrypted, &[S3_SECRET]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_two_incrementals_through_azure() {
    let Some(server) = azure_server() else { return };
    for encrypted in [false, true] {
        round_trip(&azure_uri(&server, &unique("chain")), encrypted, &[&server.1]).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_and_two_incrementals_through_webdav() {
    let Some(url) = webdav_url() else { return };
    let password = webdav_password(&url);
    for encrypted in [false, true] {
        round_trip(&webdav_uri(&url, &unique("chain")), encrypted, &[&password]).await;
    }
}

/// `BACKUP … INTO (default on S3 bucket A, region=us-west on S3 bucket B, region=us-east on
/// WebDAV)` from a source whose tables live in those regions (and one elsewhere), then an
/// incremental, encrypted: each data file is in the location of its table's locality (the
/// other table's in the default one), the manifest records it, and the restore from the same
/// list equals the source. A restore missing a locality's URI says which.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn locality_aware_backup_to_two_buckets_and_webdav() {
    let (Some(endpoint), Some(url)) = (s3_endpoint(), webdav_url()) else { return };
    let dir = unique("locality");
    let default = format!("{}&COCKROACH_LOCALITY=default", s3_uri(&endpoint, S3_BUCKETS[0], &dir));
    let west = format!("{}&COCKROACH_LOCALITY=region%3Dus-west", s3_uri(&endpoint, S3_BUCKETS[1], &dir));
    let east = format!("{}?COCKROACH_LOCALITY=region%3Dus-east", webdav_uri(&url, &dir));
    let list = format!("('{default}', '{west}', '{east}')");
    let with = format!(" WITH encryption_passphrase = '{PASSPHRASE}'");
    let shown = Shown::default();

    let opener = opener();
    let source = Arc::new(LocalityKv::new());
    let exec = Executor::new(source.clone(), opener.clone()).with_entropy(os_entropy()).with_kdf_params(cheap_kdf());
    for stmt in ["CREATE DATABASE bank", "CREATE TABLE bank.west", "CREATE TABLE bank.east", "CREATE TABLE bank.other"]
    {
        shown.run(&exec, stmt).await;
    }
    let placement = [("west", Some("region=us-west")), ("east", Some("region=us-east,zone=e1")), ("other", None)];
    for (table, locality) in placement {
        if let Some(l) = locality {
            source.place(keys::table_span(table_id(&exec, table).await), l);
        }
        write(&exec, table, (0..100).map(|i| (format!("{table}{i:03}"), value(i, 0)))).await;
    }
    shown.run(&exec, &format!("BACKUP DATABASE bank INTO {list}{with}")).await;
    for (table, _) in placement {
        write(&exec, table, (50..150).map(|i| (format!("{table}{i:03}"), value(i, 1)))).await;
        write(&exec, table, (0..10).map(|i| (format!("{table}{i:03}"), None))).await;
    }
    shown.run(&exec, &format!("BACKUP DATABASE bank INTO LATEST IN {list}{with}")).await;
    shown.run(&exec, &format!("SHOW BACKUP LATEST IN {list}{with}")).await;

    // Where each file is: the manifest (in the default location) says, and the file is there
    // and nowhere else.
    let layers = vec![vec![default.clone(), west.clone(), east.clone()]];
    let source_list = BackupSource { subdir: Some(Subdir::Latest), layers };
    let chain = exec.open_chain_with_keys(&source_list, KeyRequest::new(Some(PASSPHRASE), &[])).await.unwrap();
    assert_eq!(chain.layers.len(), 2);
    let locations: Vec<(Option<&str>, Arc<dyn ExternalStorage>)> = vec![
        (None, opener.open(&default).unwrap()),
        (Some("region=us-west"), opener.open(&west).unwrap()),
        (Some("region=us-east"), opener.open(&east).unwrap()),
    ];
    let latest = String::from_utf8(locations[0].1.get("LATEST").await.unwrap().to_vec()).unwrap();
    let full_dir = latest.trim_matches('/').to_string();
    let mut seen = [0usize; 3];
    for (layer, manifest) in chain.layers.iter().map(|l| &l.manifest).enumerate() {
        let layer_dir = if layer == 0 {
            full_dir.clone()
        } else {
            let name = &chain.layers[layer].name;
            format!("{full_dir}/incrementals/{}", name.split("/incrementals/").nth(1).unwrap())
        };
        assert!(!manifest.files.is_empty());
        for file in &manifest.files {
            let table = placement
                .iter()
                .find(|(t, _)| {
                    let id = futures::executor::block_on(exec.table_id("bank", t, None)).unwrap();
                    keys::table_span(id).overlaps(&file.span)
                })
                .unwrap();
            let expected = table.1.map(|l| l.split(',').next().unwrap());
            assert_eq!(file.locality.as_deref(), expected, "{} of bank.{}", file.path, table.0);
            for (i, (locality, storage)) in locations.iter().enumerate() {
                let there = storage.size(&format!("{layer_dir}/{}", file.path)).await.is_ok();
                assert_eq!(there, *locality == expected, "{} of bank.{} in {}", file.path, table.0, storage.describe());
                if there {
                    seen[i] += 1;
                }
            }
        }
    }
    assert!(seen.iter().all(|n| *n >= 2), "every location holds files of both layers: {seen:?}");
    // The manifests, LATEST and ENCRYPTION-INFO live in the default location only.
    for (i, (_, storage)) in locations.iter().enumerate() {
        let has_manifest = storage.size(&format!("{full_dir}/{MANIFEST_NAME}")).await.is_ok();
        assert_eq!(has_manifest, i == 0, "{}", storage.describe());
        assert_eq!(storage.size("LATEST").await.is_ok(), i == 0, "{}", storage.describe());
    }

    // Integrity checks find each file in its locality's location, with the key (SHOW BACKUP,
    // from the manifest) and without it (as `strata verify`, from BACKUP-FILES); a file missing
    // there is named.
    let show_check = format!("SHOW BACKUP LATEST IN {list} WITH check_files, encryption_passphrase = '{PASSPHRASE}'");
    let r = shown.run(&exec, &show_check).await;
    assert!(r.rows.is_empty(), "check_files found problems in an intact backup: {r}");
    let keyless = exec.check_files(&source_list, KeyRequest::new(None, &[]), false).await.unwrap();
    assert!(keyless.problems.is_empty(), "{:?}", keyless.problems);
    let west_file =
        chain.layers[0].manifest.files.iter().find(|f| f.locality.as_deref() == Some("region=us-west")).unwrap();
    let west_path = format!("{full_dir}/{}", west_file.path);
    let saved = locations[1].1.get(&west_path).await.unwrap();
    locations[1].1.delete(&west_path).await.unwrap();
    let r = shown.run(&exec, &show_check).await;
    let keyless = exec.check_files(&source_list, KeyRequest::new(None, &[]), false).await.unwrap().to_result();
    for r in [r, keyless] {
        assert_eq!(r.rows.len(), 1, "{r}");
        let (path, problem) = (r.rows[0][0].to_string(), r.rows[0][1].to_string());
        assert!(path.ends_with(&west_file.path) && problem.starts_with("missing"), "{r}");
    }
    locations[1].1.put(&west_path, saved).await.unwrap();

    let target = Executor::new(Arc::new(MemKv::new()), opener.clone());
    let err =
        shown.fails(&target, &format!("RESTORE DATABASE bank FROM LATEST IN ('{default}', '{west}'){with}")).await;
    assert!(
        err.contains(
            "is stored in locality region=us-east, but no URI with COCKROACH_LOCALITY=region%3Dus-east was given"
        ),
        "{err}"
    );
    let err = shown.fails(&target, &format!("BACKUP DATABASE bank INTO ('{west}', '{east}')")).await;
    assert!(err.contains("exactly one must"), "{err}");
    shown.run(&target, &format!("RESTORE DATABASE bank FROM LATEST IN {list}{with}")).await;
    for (table, _) in placement {
        assert!(rows(&target, table).await == rows(&exec, table).await, "bank.{table} differs after restore");
    }
    shown.assert_free_of(&[S3_SECRET, &webdav_password(&url)]);
}

/// The CLI against real servers: what it prints (results, errors) never holds a secret.
#[test]
fn cli_output_never_shows_secrets() {
    let (Some(endpoint), Some(url)) = (s3_endpoint(), webdav_url()) else { return };
    let password = webdav_password(&url);
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let s3 = s3_uri(&endpoint, S3_BUCKETS[0], &unique("cli"));
    let dav = webdav_uri(&url, &unique("cli"));
    let bad_dav = dav.replace(&format!(":{password}@"), ":wrong-password@");
    let mut outputs = Vec::new();
    for args in [
        vec!["workload", "init", "bank", "--rows", "200"],
        vec!["sql", &format!("BACKUP DATABASE bank INTO '{s3}'")],
        vec!["sql", &format!("BACKUP DATABASE bank INTO LATEST IN '{s3}'")],
        vec!["sql", &format!("SHOW BACKUP LATEST IN '{s3}'")],
        vec!["--format", "json", "sql", &format!("SHOW BACKUP LATEST IN '{s3}'")],
        vec!["sql", &format!("BACKUP DATABASE bank INTO '{dav}' WITH encryption_passphrase = '{PASSPHRASE}'")],
        vec!["sql", &format!("SHOW BACKUPS IN '{dav}'")],
        vec!["sql", &format!("SHOW BACKUP LATEST IN '{bad_dav}'")],
        vec!["sql", &format!("BACKUP DATABASE bank INTO '{s3}&AWS_BOGUS=1'")],
        vec!["sql", &format!("RESTORE DATABASE bank FROM LATEST IN '{dav}'")],
    ] {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_strata"))
            .arg("--store")
            .arg(&store)
            .args(&args)
            .output()
            .unwrap();
        outputs.push((
            args.join(" "),
            String::from_utf8_lossy(&output.stdout).to_string(),
            String::from_utf8_lossy(&output.stderr).to_string(),
            output.status.success(),
        ));
    }
    assert!(outputs[1].3 && outputs[2].3 && outputs[5].3, "the backups succeed: {outputs:#?}");
    assert!(!outputs[7].3 && outputs[7].2.contains("permission denied"), "{:?}", outputs[7]);
    assert!(!outputs[8].3 && outputs[8].2.contains("unknown parameter \"AWS_BOGUS\""), "{:?}", outputs[8]);
    for (args, stdout, stderr, _) in &outputs {
        for secret in [S3_SECRET, &encode(S3_SECRET), &password, PASSPHRASE, "wrong-password"] {
            assert!(
                !stdout.contains(secret) && !stderr.contains(secret),
                "`strata {args}` showed a secret:\n{stdout}\n{stderr}"
            );
        }
    }
    let _ = Bytes::new();
}
