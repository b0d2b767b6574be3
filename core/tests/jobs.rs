//! Detached backup jobs driven by hand: the test's spawner keeps the jobs' futures and polls
//! them itself, and the storage lets a set number of data files through, so a job can be caught
//! mid-way and paused, resumed or canceled.

use std::cell::RefCell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::common;
#[path = "jobs/restores_and_runs.rs"]
mod restores_and_runs;

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

/// `BACKUP … WITH detached` on an executor with a work queue: the statement plans the backup and
/// creates a queue job; "workers" (here, calls on the test's thread) claim and run its units, a
/// frozen worker's late completion is fenced and its files removed, whoever sees every unit done
/// commits; `SHOW JOB` follows the queue, and the backup restores exactly.
#[test]
fn a_detached_backup_through_a_queue_is_run_by_its_workers() {
    use strata_core::{finish_queued_backup, queue_job_id, run_queued_unit, Completion, MemQueue, WorkQueue};
    let s = setup();
    let queue = MemQueue::new();
    let exec = Executor::new(Arc::new(s.kv.clone()), Arc::new(s.memory.clone()))
        .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024))
        .with_work_queue(Arc::new(queue.clone()));
    let sql = |q: &str| block_on(exec.execute(q)).unwrap_or_else(|e| panic!("{q}: {e}"));
    let field = |id: i64, name: &str| {
        let r = sql(&format!("SHOW JOB {id}"));
        r.to_objects().remove(0).into_iter().find(|(k, _)| k == name).unwrap().1.to_string()
    };
    let options = BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024);
    let run = |job: &str, claim: &strata_core::Claim| {
        let info = block_on(queue.job(job)).unwrap().unwrap();
        block_on(run_queued_unit(&queue, &info, claim, &s.kv, &s.memory, &options)).unwrap()
    };
    let finish = |job: &str| {
        let info = block_on(queue.job(job)).unwrap().unwrap();
        let outcome = block_on(finish_queued_backup(&queue, &info, &s.memory, &options)).unwrap()?;
        Some(block_on(queue.finish_job(job, outcome)).unwrap())
    };

    for (statement, layer) in [
        ("BACKUP DATABASE d INTO 'memory://q' WITH detached", "full"),
        ("BACKUP DATABASE d INTO LATEST IN 'memory://q' WITH detached", "incremental"),
    ] {
        if layer == "incremental" {
            let id = block_on(exec.table_id("d", "a", None)).unwrap();
            s.kv.write_sync((0..50u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![9; 60]))).collect());
        }
        let r = sql(statement);
        let id = job_id(&r);
        assert_eq!(r.get(0, "status"), Some(&Value::from("running")));
        let job = queue_job_id(id as u64);
        let units = block_on(queue.job(&job)).unwrap().expect("the queue job").units;
        assert!(units >= 2, "{layer}: the plan has {units} units");
        assert_eq!(field(id, "status"), "running");
        assert_eq!(field(id, "fraction_completed"), "0.000");

        let w1 = block_on(queue.register("w1", 10)).unwrap();
        let w2 = block_on(queue.register("w2", 10)).unwrap();
        let first = block_on(queue.claim(&w1, &job)).unwrap().unwrap();
        assert_eq!(run(&job, &first), Completion::Completed);
        assert_eq!(field(id, "fraction_completed"), format!("{:.3}", 1.0 / units as f64), "{layer}");
        // w2 claims a unit, freezes past its lease; w3 takes the unit over and completes it.
        let stale = block_on(queue.claim(&w2, &job)).unwrap().unwrap();
        queue.expire("w2");
        let w3 = block_on(queue.register("w3", 10)).unwrap();
        let again = block_on(queue.claim(&w3, &job)).unwrap().unwrap();
        assert_eq!(again.unit, stale.unit);
        assert_eq!(run(&job, &again), Completion::Completed);
        // w2 wakes up and runs its copy of the unit: fenced, and its files are gone.
        assert_eq!(run(&job, &stale), Completion::Fenced);
        let stale_tag = format!("-{}-{}-", strata_core::job_run_id(&job), stale.token);
        assert!(!s.files("memory://q").iter().any(|f| f.contains(&stale_tag)), "{layer}: the fenced files stay");
        if units > 2 {
            assert_eq!(finish(&job), None, "{layer}: finished before every unit is done");
        }
        while let Some(c) = block_on(queue.claim(&w3, &job)).unwrap() {
            assert_eq!(run(&job, &c), Completion::Completed);
        }
        let outcome = finish(&job).expect("every unit is done");
        assert!(outcome.starts_with(b"succeeded"), "{}", String::from_utf8_lossy(&outcome));
        assert_eq!(field(id, "status"), "succeeded");
        assert_eq!(field(id, "fraction_completed"), "1.000");
        // A second finisher agrees.
        assert_eq!(finish(&job), Some(outcome));
        let rows: u64 = field(id, "rows").parse().unwrap();
        assert_eq!(rows, if layer == "full" { 600 } else { 50 }, "{layer}");
    }

    // It restores exactly.
    let target_kv = MemKv::new();
    let target = Executor::new(Arc::new(target_kv.clone()), Arc::new(s.memory.clone()));
    block_on(target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://q'")).unwrap();
    let now = strata_core::Timestamp::from_nanos(u64::MAX / 2);
    for t in ["a", "b"] {
        let src = block_on(exec.table_id("d", t, None)).unwrap();
        let dst = block_on(target.table_id("d", t, None)).unwrap();
        let strip = |rows: Vec<(Vec<u8>, Vec<u8>)>| -> Vec<(Vec<u8>, Vec<u8>)> {
            rows.into_iter().map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v)).collect()
        };
        assert_eq!(
            strip(target_kv.view_at(&keys::table_span(dst), now)),
            strip(s.kv.view_at(&keys::table_span(src), now))
        );
    }
}
