//! Abandoned runs (issue 13 §6, last clause): a run killed and never coming back is removed by
//! the next run into its collection — whatever that run's statement, store or key — once its
//! lease is stale; never a run that is still refreshing its lease, never a committed backup.
//!
//! Time is a value: both stores read one shared clock the test moves (no sleeps). Runs are
//! stopped at chosen data-file puts by a hook and either dropped (killed) or let go.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::collisions::{exec, fill_source};
use crate::common::{Call, Hook, HookedOpener};
use async_trait::async_trait;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::FutureExt;
use strata_core::crypto::kdf::KdfParams;
use strata_core::sql::BackupSource;
use strata_core::{
    BackupOptions, Executor, ExternalStorageExt, KeyRequest, MemKv, MemoryOpener, Result, RunLease, StorageOpener,
    LEASES_DIR, MANIFEST_NAME, PLAN_NAME,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

const BASE: u64 = 1_700_000_000_000_000_000;
const MINUTE: u64 = 60_000_000_000;

/// A wall clock the test sets, shared by every store of a test (as machines' clocks roughly are).
#[derive(Clone)]
struct TestClock(Arc<AtomicU64>);

impl TestClock {
    fn new() -> TestClock {
        TestClock(Arc::new(AtomicU64::new(BASE)))
    }
    fn advance_minutes(&self, minutes: u64) {
        self.0.fetch_add(minutes * MINUTE, Ordering::SeqCst);
    }
}

/// A hook that holds the `n`-th put of a data file at each of its stops until the stop's
/// sender is used (forever while the sender lives and is not used).
struct Stops {
    seen: AtomicUsize,
    stops: Mutex<BTreeMap<usize, oneshot::Receiver<()>>>,
}

impl Stops {
    fn at(ns: &[usize]) -> (Arc<Stops>, Vec<oneshot::Sender<()>>) {
        let mut stops = BTreeMap::new();
        let mut senders = Vec::new();
        for &n in ns {
            let (tx, rx) = oneshot::channel();
            stops.insert(n, rx);
            senders.push(tx);
        }
        (Arc::new(Stops { seen: AtomicUsize::new(0), stops: Mutex::new(stops) }), senders)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Stops {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if matches!(call, Call::Put | Call::PutIfAbsent) && path.contains("/data/") {
            let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
            let stop = self.stops.lock().unwrap().remove(&n);
            if let Some(rx) = stop {
                let _ = rx.await;
            }
        }
        Ok(())
    }
}

/// A store on `clock`: database `d` with tables `a` and `b` of 300 rows, values `fill`.
fn source(clock: &TestClock, fill: u8) -> MemKv {
    let c = clock.0.clone();
    fill_source(MemKv::with_clock(Arc::new(move || c.load(Ordering::SeqCst))), fill, 300)
}

/// Every file of the collection `memory://c` with its bytes.
async fn list_files(memory: &MemoryOpener) -> BTreeMap<String, Bytes> {
    let root = memory.open("memory://c").unwrap();
    let mut out = BTreeMap::new();
    for o in root.list("").await.unwrap() {
        let bytes = root.get(&o.path).await.unwrap();
        out.insert(o.path, bytes);
    }
    out
}

fn files(memory: &MemoryOpener) -> BTreeMap<String, Bytes> {
    block_on(list_files(memory))
}

/// The files of `all` below directory `dir`.
fn below(all: &BTreeMap<String, Bytes>, dir: &str) -> BTreeMap<String, Bytes> {
    let dir = format!("{}/", dir.trim_matches('/'));
    all.iter().filter(|(p, _)| p.starts_with(&dir)).map(|(p, b)| (p.clone(), b.clone())).collect()
}

/// The directory a killed run left (the one holding a plan).
fn killed_dir(all: &BTreeMap<String, Bytes>) -> String {
    let plan = all.keys().find(|p| p.ends_with(PLAN_NAME)).expect("the killed run's plan");
    plan.strip_suffix(&format!("/{PLAN_NAME}")).unwrap().to_string()
}

/// `verify` of the whole collection, without keys: its problems.
fn problems(exec: &Executor) -> Vec<String> {
    let source = BackupSource { layers: vec![vec!["memory://c".to_string()]], subdir: None };
    let report = block_on(exec.check_files(&source, KeyRequest::default(), false)).unwrap();
    report.problems.iter().map(|p| format!("{p:?}")).collect()
}

/// Runs `statement` on `exec` until its 4th data file, then drops it (a killed process); the
/// sender must outlive the test's checks.
fn kill_at_fourth_file(exec: &Executor, statement: &str) {
    assert!(
        block_on(async { exec.execute(statement).now_or_never() }).is_none(),
        "the run should stop at its 4th file"
    );
}

/// The lease of the run in `dir`.
fn lease_in(all: &BTreeMap<String, Bytes>, dir: &str) -> RunLease {
    let all = below(all, dir);
    let leases: Vec<_> = all.iter().filter(|(p, _)| p.contains(&format!("/{LEASES_DIR}/"))).collect();
    assert_eq!(leases.len(), 1, "{:?}", all.keys());
    RunLease::decode(leases[0].1, leases[0].0).unwrap()
}

/// A committed backup of store S2 (statement B, plain), then a run of statement A from store
/// S1, encrypted with K1, killed mid-way; then `minutes` later statement B runs again from S2.
/// Returns the files before B's second run, after it, the killed run's directory, the committed
/// backup's directory, and the executor of S2.
fn killed_then_other_statement(
    minutes: u64,
) -> (BTreeMap<String, Bytes>, BTreeMap<String, Bytes>, String, String, Executor) {
    let clock = TestClock::new();
    let (s1, s2) = (source(&clock, 1), source(&clock, 2));
    let memory = MemoryOpener::default();
    let b = "BACKUP TABLE d.a INTO 'memory://c'";
    let a = "BACKUP DATABASE d INTO 'memory://c' WITH encryption_passphrase = 'K1-secret'";
    let e2 = exec(&s2, &memory, 2, None);
    let committed = block_on(e2.execute(b)).unwrap().get(0, "path").unwrap().to_string();
    let (stops, senders) = Stops::at(&[4]);
    let e1 = exec(&s1, &memory, 1, Some(stops));
    kill_at_fourth_file(&e1, a);
    drop(e1);
    let killed = killed_dir(&files(&memory));
    let before = files(&memory);
    let left = below(&before, &killed);
    for part in ["/ENCRYPTION-INFO", "/BACKUP-PLAN", "/data/", &format!("/{LEASES_DIR}/")] {
        assert!(left.keys().any(|p| p.contains(part)), "the killed run left no {part}: {left:?}");
    }
    clock.advance_minutes(minutes);
    block_on(e2.execute(b)).unwrap();
    drop(senders);
    (before, files(&memory), killed, committed, e2)
}

#[test]
fn a_killed_run_of_another_statement_store_and_key_is_removed_past_the_threshold() {
    let (before, after, killed, committed, e2) = killed_then_other_statement(31);
    assert!(
        below(&after, &killed).is_empty(),
        "the abandoned run's files are left: {:?}",
        below(&after, &killed).keys()
    );
    // The committed backup is untouched, byte for byte.
    assert_eq!(below(&after, &committed), below(&before, &committed));
    assert_eq!(after.keys().filter(|p| p.ends_with(MANIFEST_NAME)).count(), 2);
    assert_eq!(problems(&e2), Vec::<String>::new(), "verify of the collection");
    // Nothing of the key or passphrase in any lease, or anywhere.
    assert!(!before.values().any(|b| b.windows(9).any(|w| w == b"K1-secret")));
}

#[test]
fn a_killed_run_is_left_alone_before_the_threshold() {
    let (before, after, killed, _, e2) = killed_then_other_statement(29);
    assert_eq!(below(&after, &killed), below(&before, &killed), "a run that may be alive was touched");
    let found = problems(&e2);
    assert!(found.iter().any(|p| p.contains(&killed) && p.contains(MANIFEST_NAME)), "{found:?}");
}

#[test]
fn a_live_run_refreshes_its_lease_is_never_removed_and_commits() {
    let clock = TestClock::new();
    let (s1, s2) = (source(&clock, 1), source(&clock, 2));
    let memory = MemoryOpener::default();
    let (stops, mut senders) = Stops::at(&[3, 6]);
    let e1 = exec(&s1, &memory, 1, Some(stops));
    let e2 = exec(&s2, &memory, 2, None);
    block_on(async {
        let mut a = Box::pin(e1.execute("BACKUP DATABASE d INTO 'memory://c'"));
        assert!(futures::poll!(a.as_mut()).is_pending(), "A should stop at its 3rd file");
        let dir = killed_dir(&list_files(&memory).await);
        assert_eq!(lease_in(&list_files(&memory).await, &dir).refreshed.wall, BASE);
        // 20 minutes on, A goes on working: it refreshes its lease as it reads.
        clock.advance_minutes(20);
        senders.remove(0).send(()).unwrap();
        assert!(futures::poll!(a.as_mut()).is_pending(), "A should stop at its 6th file");
        let lease = lease_in(&list_files(&memory).await, &dir);
        assert_eq!(lease.refreshed.wall, BASE + 20 * MINUTE, "{lease:?}");
        assert_eq!(lease.started.wall, BASE);
        assert_eq!(lease.store, strata_core::store_id(&s1).await.unwrap());
        // 40 minutes after A started, 20 after its refresh: another statement of another store
        // runs, and leaves A alone.
        clock.advance_minutes(20);
        let before = below(&list_files(&memory).await, &dir);
        e2.execute("BACKUP TABLE d.a INTO 'memory://c'").await.unwrap();
        assert_eq!(below(&list_files(&memory).await, &dir), before, "a live run was touched");
        senders.remove(0).send(()).unwrap();
        a.await.expect("the live run commits");
    });
    let all = files(&memory);
    assert_eq!(all.keys().filter(|p| p.ends_with(MANIFEST_NAME)).count(), 2);
    assert!(!all.keys().any(|p| p.contains(&format!("/{LEASES_DIR}/")) || p.ends_with(PLAN_NAME)), "{:?}", all.keys());
    assert_eq!(problems(&e2), Vec::<String>::new());
}

#[test]
fn a_run_taken_for_abandoned_stops_before_committing() {
    let clock = TestClock::new();
    let (s1, s2) = (source(&clock, 1), source(&clock, 2));
    let memory = MemoryOpener::default();
    let (stops, mut senders) = Stops::at(&[3]);
    let e1 = exec(&s1, &memory, 1, Some(stops));
    let e2 = exec(&s2, &memory, 2, None);
    let (result, dir) = block_on(async {
        let mut a = Box::pin(e1.execute("BACKUP DATABASE d INTO 'memory://c'"));
        assert!(futures::poll!(a.as_mut()).is_pending(), "A should stop at its 3rd file");
        let dir = killed_dir(&list_files(&memory).await);
        // A is silent past the threshold (a suspended machine): B takes it for abandoned.
        clock.advance_minutes(31);
        e2.execute("BACKUP TABLE d.a INTO 'memory://c'").await.unwrap();
        assert!(!list_files(&memory).await.keys().any(|p| p.ends_with(PLAN_NAME)), "A's plan should be gone");
        senders.remove(0).send(()).unwrap();
        (a.await, dir)
    });
    let err = result.expect_err("a run whose directory was removed must not commit").to_string();
    assert!(err.contains("abandoned") || err.contains("took over"), "{err}");
    let all = files(&memory);
    assert!(below(&all, &dir).is_empty(), "{:?}", below(&all, &dir).keys());
    assert_eq!(all.keys().filter(|p| p.ends_with(MANIFEST_NAME)).count(), 1);
    assert_eq!(problems(&e2), Vec::<String>::new());
}

#[test]
fn a_run_without_a_lease_is_judged_by_its_plan_if_it_can_be_read() {
    let clock = TestClock::new();
    let (s1, s2) = (source(&clock, 1), source(&clock, 2));
    let memory = MemoryOpener::default();
    // Two runs of an older strata (no lease) killed: one plain, one encrypted with K1.
    let (stops, _plain_never) = Stops::at(&[4]);
    kill_at_fourth_file(&exec(&s1, &memory, 1, Some(stops)), "BACKUP DATABASE d INTO 'memory://c'");
    let plain = killed_dir(&files(&memory));
    let (stops, _sealed_never) = Stops::at(&[4]);
    kill_at_fourth_file(
        &exec(&s1, &memory, 3, Some(stops)),
        "BACKUP DATABASE d INTO 'memory://c' WITH encryption_passphrase = 'K1-secret'",
    );
    let all = files(&memory);
    let sealed = all
        .keys()
        .filter_map(|p| p.strip_suffix(&format!("/{PLAN_NAME}")))
        .find(|d| *d != plain)
        .expect("the encrypted run's directory")
        .to_string();
    let root = memory.open("memory://c").unwrap();
    for p in all.keys().filter(|p| p.contains(&format!("/{LEASES_DIR}/"))) {
        block_on(root.delete(p)).unwrap();
    }
    let sealed_left = below(&files(&memory), &sealed);
    clock.advance_minutes(31);
    let e2 = exec(&s2, &memory, 2, None);
    block_on(e2.execute("BACKUP TABLE d.a INTO 'memory://c'")).unwrap();
    let after = files(&memory);
    assert!(below(&after, &plain).is_empty(), "{:?}", below(&after, &plain).keys());
    // The encrypted one cannot be read without K1: it is left, and verify still says so.
    assert_eq!(below(&after, &sealed), sealed_left);
    let found = problems(&e2);
    assert!(found.iter().all(|p| p.contains(&sealed)) && !found.is_empty(), "{found:?}");
}

#[test]
fn an_encrypted_full_backup_whose_encryption_info_went_does_not_commit() {
    // What a run that came back to a directory another run was cleaning could see: its
    // ENCRYPTION-INFO removed while it ran. Committing then would make a backup nobody can open.
    let clock = TestClock::new();
    let s1 = source(&clock, 1);
    let memory = MemoryOpener::default();
    let (stops, mut senders) = Stops::at(&[3]);
    let e1 = exec(&s1, &memory, 1, Some(stops));
    let result = block_on(async {
        let mut a = Box::pin(e1.execute("BACKUP DATABASE d INTO 'memory://c' WITH encryption_passphrase = 'K1'"));
        assert!(futures::poll!(a.as_mut()).is_pending(), "A should stop at its 3rd file");
        let dir = killed_dir(&list_files(&memory).await);
        let root = memory.open("memory://c").unwrap();
        root.delete(&format!("{dir}/ENCRYPTION-INFO")).await.unwrap();
        senders.remove(0).send(()).unwrap();
        a.await
    });
    let err = result.expect_err("no encrypted backup without its ENCRYPTION-INFO").to_string();
    assert!(err.contains("ENCRYPTION-INFO is gone"), "{err}");
    assert!(!files(&memory).keys().any(|p| p.ends_with(MANIFEST_NAME)));
}

/// Fails every delete of a path containing `pattern`.
struct FailDeletes(&'static str);

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for FailDeletes {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if matches!(call, Call::Delete) && path.contains(self.0) {
            return Err(strata_core::Error::Storage {
                path: path.to_string(),
                message: "permission denied".into(),
                status: strata_core::Status::Permanent,
            });
        }
        Ok(())
    }
}

#[test]
fn a_backup_that_cannot_remove_an_abandoned_run_still_succeeds_and_says_so() {
    let clock = TestClock::new();
    let (s1, s2) = (source(&clock, 1), source(&clock, 2));
    let memory = MemoryOpener::default();
    let (stops, _never) = Stops::at(&[4]);
    kill_at_fourth_file(&exec(&s1, &memory, 1, Some(stops)), "BACKUP DATABASE d INTO 'memory://c'");
    let killed = killed_dir(&files(&memory));
    clock.advance_minutes(31);
    let opener = Arc::new(HookedOpener { inner: memory.clone(), hook: Arc::new(FailDeletes("/data/")) });
    let e2 = Executor::new(Arc::new(s2.clone()), opener)
        .with_entropy(super::collisions::entropy(2))
        .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024));
    let r = block_on(e2.execute("BACKUP TABLE d.a INTO 'memory://c'")).expect("the backup itself succeeded");
    assert_eq!(r.get(0, "status").unwrap().to_string(), "succeeded");
    assert!(
        r.notices.iter().any(|n| n.contains("abandoned runs") && n.contains("permission denied")),
        "{:?}",
        r.notices
    );
    // Its plan went first: the next run with working deletes finishes the job.
    assert!(!below(&files(&memory), &killed).is_empty());
    block_on(exec(&s2, &memory, 3, None).execute("BACKUP TABLE d.a INTO 'memory://c'")).unwrap();
    assert!(below(&files(&memory), &killed).is_empty(), "{:?}", below(&files(&memory), &killed).keys());
}

/// Holds, forever, the first put after the put of `ENCRYPTION-INFO`: a run killed right after
/// it wrote its key file.
struct StopAfterKeyFile(std::sync::atomic::AtomicBool);

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for StopAfterKeyFile {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if matches!(call, Call::Put | Call::PutIfAbsent) {
            if path.ends_with("ENCRYPTION-INFO") {
                self.0.store(true, Ordering::SeqCst);
            } else if self.0.load(Ordering::SeqCst) {
                futures::future::pending::<()>().await;
            }
        }
        Ok(())
    }
}

#[test]
fn a_run_killed_right_after_its_key_file_is_removed_past_the_threshold() {
    let clock = TestClock::new();
    let (s1, s2) = (source(&clock, 1), source(&clock, 2));
    let memory = MemoryOpener::default();
    let b = "BACKUP TABLE d.a INTO 'memory://c'";
    let e2 = exec(&s2, &memory, 2, None);
    block_on(e2.execute(b)).unwrap();
    let hook = Arc::new(StopAfterKeyFile(std::sync::atomic::AtomicBool::new(false)));
    let e1 = Executor::new(Arc::new(s1.clone()), Arc::new(HookedOpener { inner: memory.clone(), hook }))
        .with_entropy(super::collisions::entropy(1))
        .with_kdf_params(KdfParams::argon2id(256, 1, 1).unwrap());
    kill_at_fourth_file(&e1, "BACKUP DATABASE d INTO 'memory://c' WITH encryption_passphrase = 'K1-secret'");
    drop(e1);
    let before = files(&memory);
    let info = before.keys().find(|p| p.ends_with("/ENCRYPTION-INFO")).expect("the killed run's key file").clone();
    let killed = info.strip_suffix("/ENCRYPTION-INFO").unwrap().to_string();
    assert!(!below(&before, &killed).keys().any(|p| p.ends_with(PLAN_NAME)), "{:?}", before.keys());
    clock.advance_minutes(31);
    block_on(e2.execute(b)).unwrap();
    let after = files(&memory);
    assert!(below(&after, &killed).is_empty(), "left: {:?}", below(&after, &killed).keys());
    assert_eq!(problems(&e2), Vec::<String>::new(), "verify of the collection");
}
