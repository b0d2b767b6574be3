//! Detached backup jobs driven by hand: the test's spawner keeps the jobs' futures and polls
//! them itself, and the storage lets a set number of data files through, so a job can be caught
//! mid-way and paused, resumed or canceled.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

mod common;

use async_trait::async_trait;
use common::{Call, Hook, HookedOpener};
use futures::executor::block_on;
use futures::task::noop_waker;
use strata_core::{
    keys, BackupOptions, Executor, JobFuture, JobSpawner, MemKv, MemoryOpener, QueryResult, Result, StorageOpener,
    Value, MANIFEST_NAME, PLAN_NAME,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

thread_local! {
    /// Spawned jobs, polled by the test on its own thread.
    static JOBS: RefCell<Vec<JobFuture>> = const { RefCell::new(Vec::new()) };
}

/// Keeps spawned jobs (in this thread) for the test to poll.
#[derive(Default)]
struct HandSpawner;

impl JobSpawner for HandSpawner {
    fn spawn(&self, job: JobFuture) {
        JOBS.with(|j| j.borrow_mut().push(job));
    }
}

impl HandSpawner {
    /// Polls every job once (each runs until it waits for a permit or finishes); drops finished ones.
    fn poll(&self) {
        let waker = noop_waker();
        let mut cx = Context::from_waker(&waker);
        let mut jobs = JOBS.with(|j| std::mem::take(&mut *j.borrow_mut()));
        jobs.retain_mut(|j| j.as_mut().poll(&mut cx) == Poll::Pending);
        JOBS.with(|j| j.borrow_mut().extend(jobs));
    }
    fn pending(&self) -> usize {
        JOBS.with(|j| j.borrow().len())
    }
}

struct Permit(Arc<AtomicUsize>);

impl std::future::Future for Permit {
    type Output = ();
    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        let taken = self.0.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| p.checked_sub(1));
        if taken.is_ok() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Data file puts wait for a permit.
struct Gate(Arc<AtomicUsize>);

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Gate {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if call == Call::Put && path.contains("/data/") {
            Permit(self.0.clone()).await;
        }
        Ok(())
    }
}

struct Setup {
    kv: MemKv,
    exec: Executor,
    memory: MemoryOpener,
    spawner: Arc<HandSpawner>,
    permits: Arc<AtomicUsize>,
}

fn setup() -> Setup {
    let kv = MemKv::new();
    let memory = MemoryOpener::default();
    let permits = Arc::new(AtomicUsize::new(usize::MAX / 2));
    let spawner = Arc::new(HandSpawner);
    let exec = Executor::new(
        Arc::new(kv.clone()),
        Arc::new(HookedOpener { inner: memory.clone(), hook: Arc::new(Gate(permits.clone())) }),
    )
    .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024).with_concurrency(1))
    .with_job_spawner(spawner.clone());
    block_on(async {
        exec.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = exec.table_id("d", t, None).await.unwrap();
            kv.write_sync((0..300u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![7; 60]))).collect());
        }
    });
    Setup { kv, exec, memory, spawner, permits }
}

impl Setup {
    fn sql(&self, s: &str) -> QueryResult {
        block_on(self.exec.execute(s)).unwrap_or_else(|e| panic!("{s}: {e}"))
    }
    fn job(&self, id: i64) -> Vec<(String, String)> {
        self.sql(&format!("SHOW JOB {id}"))
            .to_objects()
            .remove(0)
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }
    fn field(&self, id: i64, name: &str) -> String {
        self.job(id).into_iter().find(|(k, _)| k == name).unwrap().1
    }
    fn files(&self, uri: &str) -> Vec<String> {
        block_on(self.memory.open(uri).unwrap().list("")).unwrap().into_iter().map(|o| o.path).collect()
    }
}

fn job_id(r: &QueryResult) -> i64 {
    match r.get(0, "job_id") {
        Some(Value::Int(id)) => *id,
        v => panic!("{v:?}"),
    }
}

#[test]
fn detached_backup_pause_resume_and_succeed() {
    let s = setup();
    s.permits.store(4, Ordering::SeqCst);
    let r = s.sql("BACKUP DATABASE d INTO 'memory://c' WITH detached");
    assert_eq!(r.columns, ["job_id", "status"]);
    let id = job_id(&r);
    assert_eq!(s.field(id, "status"), "running");
    assert_eq!(s.field(id, "description"), "BACKUP DATABASE d INTO 'memory://c'");
    // It runs until the fifth data file waits for a permit.
    s.spawner.poll();
    assert_eq!(s.spawner.pending(), 1);
    assert!(s.field(id, "bytes").parse::<u64>().unwrap() > 0, "{:?}", s.job(id));
    assert!(s.field(id, "rows").parse::<u64>().unwrap() > 0);

    s.sql(&format!("PAUSE JOB {id}"));
    s.spawner.poll(); // it stops at its await
    assert_eq!(s.spawner.pending(), 0);
    assert_eq!(s.field(id, "status"), "paused");
    let files = s.files("memory://c");
    assert!(files.iter().any(|f| f.ends_with(PLAN_NAME)), "{files:?}");
    assert!(!files.iter().any(|f| f.ends_with(MANIFEST_NAME)));
    let err = block_on(s.exec.execute(&format!("PAUSE JOB {id}"))).unwrap_err();
    assert!(err.to_string().contains("only a running job can be paused"), "{err}");

    s.permits.store(usize::MAX / 2, Ordering::SeqCst);
    s.sql(&format!("RESUME JOB {id}"));
    assert_eq!(s.field(id, "status"), "running");
    s.spawner.poll();
    assert_eq!(s.spawner.pending(), 0);
    assert_eq!(s.field(id, "status"), "succeeded", "{:?}", s.job(id));
    assert_eq!(s.field(id, "fraction_completed"), "1.000");
    assert_eq!(s.field(id, "rows"), "600");
    assert_eq!(s.sql("SHOW BACKUPS IN 'memory://c'").rows.len(), 1);
    assert!(!s.files("memory://c").iter().any(|f| f.ends_with(PLAN_NAME)));

    // It restores exactly.
    let target_kv = MemKv::new();
    let target = Executor::new(Arc::new(target_kv.clone()), Arc::new(s.memory.clone()));
    block_on(target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c' WITH new_db_name = 'e'")).unwrap();
    for t in ["a", "b"] {
        let src = block_on(s.exec.table_id("d", t, None)).unwrap();
        let dst = block_on(target.table_id("e", t, None)).unwrap();
        let now = strata_core::Timestamp::from_nanos(u64::MAX / 2);
        let strip = |rows: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            rows.into_iter().map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v)).collect()
        };
        assert_eq!(
            strip(target_kv.view_at(&keys::table_span(dst), now)),
            strip(s.kv.view_at(&keys::table_span(src), now))
        );
    }
}

#[test]
fn a_canceled_backup_leaves_no_manifest_and_no_files() {
    let s = setup();
    s.permits.store(3, Ordering::SeqCst);
    let id = job_id(&s.sql("BACKUP DATABASE d INTO 'memory://x' WITH detached"));
    s.spawner.poll();
    assert!(s.files("memory://x").iter().any(|f| f.contains("/data/")));
    s.sql(&format!("CANCEL JOB {id}"));
    assert_eq!(s.field(id, "status"), "canceled");
    s.spawner.poll(); // it stops, then removes its files
    assert_eq!(s.spawner.pending(), 0);
    assert_eq!(s.files("memory://x"), Vec::<String>::new());
    let err = block_on(s.exec.execute(&format!("RESUME JOB {id}"))).unwrap_err();
    assert!(err.to_string().contains("only a paused job can be resumed"), "{err}");

    // A paused job is canceled (and cleaned up) at once.
    s.permits.store(2, Ordering::SeqCst);
    let id = job_id(&s.sql("BACKUP DATABASE d INTO 'memory://y' WITH detached"));
    s.spawner.poll();
    s.sql(&format!("PAUSE JOB {id}"));
    s.spawner.poll();
    assert!(!s.files("memory://y").is_empty());
    s.sql(&format!("CANCEL JOB {id}"));
    assert_eq!(s.files("memory://y"), Vec::<String>::new());
    assert_eq!(s.sql("SHOW JOBS").rows.len(), 2);
}

#[test]
fn without_a_spawner_a_detached_backup_waits_for_a_host_to_adopt_it() {
    let s = setup();
    let plain = Executor::new(Arc::new(s.kv.clone()), Arc::new(s.memory.clone()));
    let r = block_on(plain.execute("BACKUP DATABASE d INTO 'memory://p' WITH detached")).unwrap();
    assert_eq!(r.get(0, "status"), Some(&Value::from("pending")));
    let id = job_id(&r);
    assert!(s.files("memory://p").is_empty());
    // A host with a spawner adopts it.
    assert_eq!(block_on(s.exec.adopt_jobs()).unwrap(), vec![id as u64]);
    s.spawner.poll();
    assert_eq!(s.field(id, "status"), "succeeded");
    assert_eq!(s.sql("SHOW BACKUPS IN 'memory://p'").rows.len(), 1);
}

/// Every value of every version in `kv`, as one byte string to search.
fn every_byte(kv: &MemKv) -> Vec<u8> {
    use strata_core::{KvSource, MvccFilter, ScanRequest, Span, Timestamp};
    let mut request =
        ScanRequest::new(Span::new(vec![], vec![0xff; 8]), Timestamp::ZERO, Timestamp::MAX, MvccFilter::AllRevisions);
    let mut out = Vec::new();
    loop {
        let page = block_on(kv.scan(request.clone())).unwrap();
        for e in page.entries {
            out.extend_from_slice(&e.key);
            out.extend(e.value.iter().flat_map(|v| v.to_vec()));
        }
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => return out,
        }
    }
}

fn holds(bytes: &[u8], secret: &str) -> bool {
    bytes.windows(secret.len()).any(|w| w == secret.as_bytes())
}

/// Issue 13 §1: a detached job runs with the secrets typed into its statement while the process
/// that started it lives, and its record never holds them; another process cannot run it and
/// says why.
#[test]
fn a_detached_job_keeps_typed_secrets_in_memory_only() {
    let s = setup();
    let exec = s
        .exec
        .clone()
        .with_entropy(strata_core::Entropy::new(|b| {
            b.fill(3);
            Ok(())
        }))
        .with_kdf_params(strata_core::KdfParams::argon2id(256, 1, 1).unwrap());
    let sql = |q: &str| block_on(exec.execute(q)).unwrap_or_else(|e| panic!("{q}: {e}"));
    let r = sql("BACKUP DATABASE d INTO 'memory://e?AWS_SECRET_ACCESS_KEY=Zq9awsKey' WITH encryption_passphrase = 'Zq9hunter2', detached");
    let done = job_id(&r);
    s.spawner.poll();
    assert_eq!(s.field(done, "status"), "succeeded", "{:?}", s.job(done));
    sql("SHOW BACKUP LATEST IN 'memory://e' WITH encryption_passphrase = 'Zq9hunter2'");
    // A second one stays running (no data file may be written) when its process "dies".
    s.permits.store(0, Ordering::SeqCst);
    let stuck = job_id(&sql("BACKUP DATABASE d INTO 'memory://f' WITH encryption_passphrase = 'Zq9other', detached"));
    s.spawner.poll();
    assert_eq!(s.field(stuck, "status"), "running");
    JOBS.with(|j| j.borrow_mut().clear());
    let all = every_byte(&s.kv);
    for secret in ["Zq9hunter2", "Zq9other", "Zq9awsKey"] {
        assert!(!holds(&all, secret), "{secret} is in the store");
    }
    // Another process adopts it: it fails, naming what is missing and what to do.
    let other =
        Executor::new(Arc::new(s.kv.clone()), Arc::new(s.memory.clone())).with_job_spawner(Arc::new(HandSpawner));
    assert_eq!(block_on(other.adopt_jobs()).unwrap(), Vec::<u64>::new());
    let job = block_on(other.job(stuck as u64)).unwrap();
    assert_eq!(job.status, strata_core::JobStatus::Failed);
    let error = job.error.unwrap();
    assert!(error.contains("the encryption passphrase was typed into its statement"), "{error}");
    assert!(error.contains("Run the statement again") && !error.contains("Zq9other"), "{error}");
    assert_eq!(
        s.field(done, "description"),
        "BACKUP DATABASE d INTO 'memory://e?AWS_SECRET_ACCESS_KEY=redacted' WITH encryption_passphrase = 'redacted'"
    );
}
