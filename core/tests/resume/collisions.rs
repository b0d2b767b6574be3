//! Runs that meet in one collection (issue 13 §3 and §6): two copies of one database backing up
//! at once with the same AS OF SYSTEM TIME, a run of one store killed and the same statement
//! then run from another, an encrypted run killed and run again, a killed run superseded by a
//! later one. Every "succeeded" backup must restore exactly its own source, and a successful run
//! leaves nothing of earlier attempts behind.
//!
//! The runs are interleaved deterministically: a hook holds one run's chosen storage call until
//! the test lets it go (no sleeps).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{Call, Hook, HookedOpener};
use async_trait::async_trait;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::FutureExt;
use strata_core::crypto::kdf::KdfParams;
use strata_core::manifest::sha256;
use strata_core::sql::BackupSource;
use strata_core::{
    keys, BackupOptions, Entropy, Executor, KeyRequest, KvSource, MemKv, MemoryOpener, QueryResult, Result,
    StorageOpener, Timestamp, MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Deterministic "randomness" for tests: SHA-256 of a seed and a counter (each store gets its
/// own seed, so its ids differ from the other store's).
pub(crate) fn entropy(seed: u64) -> Entropy {
    let counter = AtomicU64::new(0);
    Entropy::new(move |buf| {
        for chunk in buf.chunks_mut(32) {
            let n = counter.fetch_add(1, Ordering::Relaxed);
            let mut input = seed.to_le_bytes().to_vec();
            input.extend_from_slice(&n.to_le_bytes());
            chunk.copy_from_slice(&sha256(&input)[..chunk.len()]);
        }
        Ok(())
    })
}

/// A hook on puts of paths containing `pattern`: the `at`-th such put waits until its gate is
/// opened (forever without one).
struct Gate {
    pattern: &'static str,
    at: usize,
    seen: AtomicUsize,
    open: Mutex<Option<oneshot::Receiver<()>>>,
}

impl Gate {
    fn new(pattern: &'static str, at: usize) -> (Arc<Gate>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        (Arc::new(Gate { pattern, at, seen: AtomicUsize::new(0), open: Mutex::new(Some(rx)) }), tx)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Gate {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        let put = matches!(call, Call::Put | Call::PutIfAbsent);
        if put && path.contains(self.pattern) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let rx = self.open.lock().unwrap().take();
            match rx {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => futures::future::pending::<()>().await,
            }
        }
        Ok(())
    }
}

/// A source: database `d` with tables `a` and `b` of 400 rows each, every value `fill` bytes.
/// Two sources made with different `fill`s have the same tables (same ids, same timestamps)
/// and different rows.
fn source(fill: u8) -> MemKv {
    fill_source(MemKv::new(), fill, 400)
}

/// Fills `kv` with database `d`, tables `a` and `b` of `rows` rows each, every value 100 bytes
/// of `fill`; returns it.
pub(crate) fn fill_source(kv: MemKv, fill: u8, rows: u32) -> MemKv {
    let setup = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()));
    block_on(async {
        setup.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            setup.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = setup.table_id("d", t, None).await.unwrap();
            let rows = (0..rows).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![fill; 100]))).collect();
            kv.write_sync(rows);
        }
    });
    kv
}

/// An executor over `kv` with its own entropy (seed), small files, and storage `memory`
/// behind `hook`.
pub(crate) fn exec(kv: &MemKv, memory: &MemoryOpener, seed: u64, hook: Option<Arc<dyn Hook>>) -> Executor {
    let opener: Arc<dyn StorageOpener> = match hook {
        Some(hook) => Arc::new(HookedOpener { inner: memory.clone(), hook }),
        None => Arc::new(memory.clone()),
    };
    Executor::new(Arc::new(kv.clone()), opener)
        .with_entropy(entropy(seed))
        .with_kdf_params(KdfParams::argon2id(256, 1, 1).unwrap())
        .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024))
}

/// The rows of `d.a` and `d.b` as the user sees them in `kv` at `ts` (`exec` resolves ids).
fn rows(kv: &MemKv, exec: &Executor, ts: Timestamp) -> Vec<Vec<(Vec<u8>, Vec<u8>)>> {
    ["a", "b"]
        .iter()
        .map(|t| {
            let id = block_on(exec.table_id("d", t, None)).unwrap();
            kv.view_at(&keys::table_span(id), ts)
                .into_iter()
                .map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v))
                .collect()
        })
        .collect()
}

/// Checks that the backup a `BACKUP INTO 'memory://c'` result names restores exactly `kv` as
/// of the result's end time.
fn assert_restores_its_source(memory: &MemoryOpener, result: &QueryResult, kv: &MemKv, source: &Executor, with: &str) {
    let path = result.get(0, "path").unwrap().to_string();
    let end: Timestamp = result.get(0, "end_time").unwrap().to_string().parse().unwrap();
    let target_kv = MemKv::new();
    let target = exec(&target_kv, memory, 99, None);
    block_on(target.execute(&format!("RESTORE DATABASE d FROM '{path}' IN 'memory://c'{with}"))).unwrap();
    let now = block_on(target_kv.now()).unwrap();
    let got = rows(&target_kv, &target, now);
    assert_eq!(got[0].len(), 400);
    assert!(got == rows(kv, source, end), "the backup at {path} does not restore its own source");
}

/// A time both sources can back up as of (each source's clock is at or past it).
fn common_time(kvs: &[&MemKv]) -> Timestamp {
    kvs.iter().map(|kv| block_on(kv.now()).unwrap()).max().unwrap()
}

#[test]
fn two_stores_backing_up_into_one_collection_at_once_never_make_a_corrupt_backup() {
    let (kv1, kv2) = (source(1), source(2));
    let memory = MemoryOpener::default();
    let t = common_time(&[&kv1, &kv2]);
    let statement = format!("BACKUP DATABASE d INTO 'memory://c' AS OF SYSTEM TIME '{t}'");
    // The first run is held at its third data file; the second runs meanwhile.
    let (gate, release) = Gate::new("/data/", 3);
    let first_exec = exec(&kv1, &memory, 1, Some(gate));
    let second_exec = exec(&kv2, &memory, 2, None);
    let (first, second) = block_on(async {
        let mut first = Box::pin(first_exec.execute(&statement));
        assert!(futures::poll!(first.as_mut()).is_pending(), "the first run should wait at its third file");
        let second = second_exec.execute(&statement).await;
        release.send(()).unwrap();
        (first.await, second)
    });
    let mut succeeded = 0;
    for (result, kv, exec) in [(&first, &kv1, &first_exec), (&second, &kv2, &second_exec)] {
        match result {
            Ok(r) => {
                succeeded += 1;
                assert_restores_its_source(&memory, r, kv, exec, "");
            }
            Err(e) => {
                let text = e.to_string();
                assert!(text.contains("another store") || text.contains("being written"), "unclear error: {text}");
            }
        }
    }
    assert!(succeeded >= 1, "one of the runs should succeed: {first:?} / {second:?}");
}

#[test]
fn a_run_killed_in_one_store_is_not_adopted_by_another() {
    let (kv1, kv2) = (source(1), source(2));
    let memory = MemoryOpener::default();
    let statement = "BACKUP DATABASE d INTO 'memory://c'";
    let (gate, _never) = Gate::new("/data/", 5);
    let killed = exec(&kv1, &memory, 1, Some(gate));
    assert!(block_on(async { killed.execute(statement).now_or_never() }).is_none(), "the run should hang");
    drop(killed);
    let other = exec(&kv2, &memory, 2, None);
    let r = block_on(other.execute(statement)).unwrap();
    assert_restores_its_source(&memory, &r, &kv2, &other, "");
    // The manifest says whose backup it is; the two stores have different ids.
    let path = r.get(0, "path").unwrap().to_string();
    let dir = memory.open(&format!("memory://c{path}")).unwrap();
    let manifest = block_on(strata_core::read_manifest(dir.as_ref(), &strata_core::FileCodec::plain())).unwrap();
    let (id1, id2) = (block_on(strata_core::store_id(&kv1)).unwrap(), block_on(strata_core::store_id(&kv2)).unwrap());
    assert!(id1.is_some() && id1 != id2, "{id1:?} {id2:?}");
    assert_eq!(manifest.origin.unwrap().store, id2);
}

#[test]
fn a_killed_encrypted_backup_resumes_in_its_directory() {
    let kv = source(3);
    let memory = MemoryOpener::default();
    let statement = "BACKUP DATABASE d INTO 'memory://c' WITH encryption_passphrase = 'pass'";
    let (gate, _never) = Gate::new("/data/", 6);
    let killed = exec(&kv, &memory, 3, Some(gate));
    assert!(block_on(async { killed.execute(statement).now_or_never() }).is_none(), "the run should hang");
    let root = memory.open("memory://c").unwrap();
    let plan = block_on(root.list("")).unwrap().into_iter().find(|o| o.path.ends_with(PLAN_NAME)).unwrap().path;
    let dir = plan.strip_suffix(&format!("/{PLAN_NAME}")).unwrap().to_string();
    let finished: Vec<String> =
        block_on(root.list(&format!("{dir}/data/"))).unwrap().into_iter().map(|o| o.path).collect();
    assert!(finished.len() >= 4, "{finished:?}");

    let rerun = exec(&kv, &memory, 3, None);
    let r = block_on(rerun.execute(statement)).unwrap();
    assert_eq!(r.get(0, "path").unwrap().to_string(), format!("/{dir}"), "resumed in the same directory");
    // Finished files are kept (not written again), and nothing else is left.
    let listed: Vec<String> = block_on(root.list("")).unwrap().into_iter().map(|o| o.path).collect();
    for f in &finished[..finished.len() - 1] {
        assert!(listed.contains(f), "{f} of the killed run was not kept");
    }
    assert!(listed.iter().all(|p| p.starts_with(&dir) || p == "LATEST"), "another directory: {listed:?}");
    assert!(!listed.iter().any(|p| p.contains(&format!("/{PROGRESS_DIR}/")) || p.ends_with(PLAN_NAME)), "{listed:?}");
    assert_no_problems(&rerun, "pass");
    assert_restores_its_source(&memory, &r, &kv, &rerun, " WITH encryption_passphrase = 'pass'");
}

#[test]
fn a_superseded_killed_run_is_removed_by_the_next_run_in_the_collection() {
    let kv = source(4);
    let memory = MemoryOpener::default();
    // A run as of t1 is killed; the same statement as of a later t2 runs in a directory of its
    // own: the killed run is abandoned, and that run removes it.
    let t1 = block_on(kv.now()).unwrap();
    let (gate, _never) = Gate::new("/data/", 4);
    let killed = exec(&kv, &memory, 4, Some(gate));
    let at = |t: Timestamp| format!("BACKUP DATABASE d INTO 'memory://c' AS OF SYSTEM TIME '{t}'");
    assert!(block_on(async { killed.execute(&at(t1)).now_or_never() }).is_none(), "the run should hang");
    kv.write_sync(vec![(b"\x10later".to_vec(), Some(b"x".to_vec()))]);
    for _ in 0..20 {
        block_on(kv.now()).unwrap();
    }
    let t2 = block_on(kv.now()).unwrap();
    let next = exec(&kv, &memory, 4, None);
    let r = block_on(next.execute(&at(t2))).unwrap();
    let dir = r.get(0, "path").unwrap().to_string();
    let root = memory.open("memory://c").unwrap();
    let listed: Vec<String> = block_on(root.list("")).unwrap().into_iter().map(|o| o.path).collect();
    let elsewhere: Vec<&String> =
        listed.iter().filter(|p| !p.starts_with(dir.trim_start_matches('/')) && *p != "LATEST").collect();
    assert!(elsewhere.is_empty(), "the abandoned run's files are left: {elsewhere:?}");
    assert_no_problems(&next, "");
    assert!(block_on(root.list("")).unwrap().iter().filter(|o| o.path.ends_with(MANIFEST_NAME)).count() == 1);
}

/// `verify` of the whole collection finds nothing wrong.
fn assert_no_problems(exec: &Executor, passphrase: &str) {
    let source = BackupSource { layers: vec![vec!["memory://c".to_string()]], subdir: None };
    let keys = if passphrase.is_empty() { KeyRequest::default() } else { KeyRequest::new(Some(passphrase), &[]) };
    let report = block_on(exec.check_files(&source, keys, false)).unwrap();
    assert!(report.problems.is_empty(), "verify of the collection: {:?}", report.problems);
}

#[test]
fn two_stores_claiming_the_same_new_directory_at_once_get_a_clear_error() {
    let (kv1, kv2) = (source(5), source(6));
    let memory = MemoryOpener::default();
    let t = common_time(&[&kv1, &kv2]);
    let statement = format!("BACKUP DATABASE d INTO 'memory://c' AS OF SYSTEM TIME '{t}'");
    // The first run has found its directory free and is about to claim it (its lease is the
    // first thing it writes there) when the second run finds the same directory free too.
    let (gate, release) = Gate::new("/leases/", 1);
    let first_exec = exec(&kv1, &memory, 5, Some(gate));
    let (gate, release_second) = Gate::new("/data/", 2);
    let second_exec = exec(&kv2, &memory, 6, Some(gate));
    let (first, second) = block_on(async {
        let mut first = Box::pin(first_exec.execute(&statement));
        assert!(futures::poll!(first.as_mut()).is_pending());
        let mut second = Box::pin(second_exec.execute(&statement));
        assert!(futures::poll!(second.as_mut()).is_pending(), "the second run should wait at a data file");
        release.send(()).unwrap();
        let first = first.await;
        release_second.send(()).unwrap();
        (first, second.await)
    });
    let second = second.unwrap();
    assert_restores_its_source(&memory, &second, &kv2, &second_exec, "");
    let err = first.unwrap_err().to_string();
    assert!(err.contains("a backup of another store is being written into"), "{err}");
    // The loser wrote nothing: one directory, one backup.
    let root = memory.open("memory://c").unwrap();
    let listed = block_on(root.list("")).unwrap();
    assert_eq!(listed.iter().filter(|o| o.path.ends_with(MANIFEST_NAME)).count(), 1);
    assert!(!listed.iter().any(|o| o.path.ends_with(PLAN_NAME)), "{listed:?}");
}
