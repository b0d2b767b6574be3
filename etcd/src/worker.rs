//! A worker process's loop: claim a unit of any unfinished job in the etcd queue, run it, complete
//! it fenced by the claim's token, and finish a job once every unit of it is done.
//!
//! ```text
//!   register (lease, TTL s) ── renewed every TTL/3 in the background; lost ─▶ register again
//!   loop: rev ← revision; for each job without outcome:
//!           claim ─▶ runner.run_unit: export, complete(claim, record) fenced by the token
//!                                         └ Fenced ─▶ the claim's files are removed
//!           no free unit ─▶ runner.finish: every unit done? manifest (create-only) ─▶ finish_job
//!         nothing to do ─▶ watch the queue from rev+1 (a claim expiring, a new job, a unit done)
//! ```
//!
//! There is no coordinator: every worker runs the same loop, and whichever sees every unit done
//! finishes the job (the runner's commit is create-only, so two finishers agree).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use strata_core::{
    finish_queued_backup, run_queued_unit, BackupOptions, Claim, Completion, Error, JobInfo, KvStore, Lease, Result,
    Status, StorageOpener, UnitState, WorkQueue,
};

use crate::queue::EtcdQueue;

/// The longest a worker waits for a change before it reads the queue again anyway.
const IDLE_WAIT: Duration = Duration::from_secs(30);

/// What a worker runs: the units of a job, and the commit of a job whose units are all done.
#[async_trait(?Send)]
pub trait JobRunner {
    /// Runs `claim`'s unit of `job` (everything it writes named with `claim.token`) and
    /// completes it in `queue`, fenced by the token; when fenced, removes what it wrote.
    async fn run_unit(&self, queue: &dyn WorkQueue, job: &JobInfo, claim: &Claim) -> Result<Completion>;
    /// Commits `job` if every unit of it is done; its outcome then (`None` while a unit is not
    /// done). Idempotent: several workers may finish one job, and agree.
    async fn finish(&self, queue: &dyn WorkQueue, job: &JobInfo) -> Result<Option<Bytes>>;
}

/// How a worker runs.
#[derive(Clone)]
#[non_exhaustive]
pub struct WorkerOptions {
    /// The worker's name in claims (and `SHOW JOBS`).
    pub name: String,
    /// Its lease's time to live, in seconds.
    pub ttl_seconds: u64,
    /// Return once no job has work left, instead of waiting for new jobs.
    pub until_idle: bool,
    /// Where the worker says what it does (one line per event).
    pub log: Arc<dyn Fn(&str) + Send + Sync>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            name: format!("worker-{}", std::process::id()),
            ttl_seconds: 10,
            until_idle: false,
            log: Arc::new(|line| eprintln!("{line}")),
        }
    }
}

impl WorkerOptions {
    /// Sets the worker's name.
    pub fn with_name(mut self, name: impl Into<String>) -> Self {
        self.name = name.into();
        self
    }
    /// Sets the lease TTL in seconds.
    pub fn with_ttl(mut self, seconds: u64) -> Self {
        self.ttl_seconds = seconds.max(1);
        self
    }
    /// Returns once no job has work left.
    pub fn with_until_idle(mut self, on: bool) -> Self {
        self.until_idle = on;
        self
    }
    /// Sets where the worker logs.
    pub fn with_log(mut self, log: impl Fn(&str) + Send + Sync + 'static) -> Self {
        self.log = Arc::new(log);
        self
    }
}

/// What a worker did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerSummary {
    /// Units it completed.
    pub completed: u64,
    /// Units whose completion was fenced.
    pub fenced: u64,
    /// Jobs it finished.
    pub finished: u64,
}

/// A lease renewed in the background until dropped.
struct LiveLease {
    lease: Lease,
    lost: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Drop for LiveLease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

async fn live_lease(queue: &EtcdQueue, options: &WorkerOptions) -> Result<LiveLease> {
    let lease = queue.register(&options.name, options.ttl_seconds).await?;
    let lost = Arc::new(AtomicBool::new(false));
    let period = Duration::from_millis(options.ttl_seconds * 1000 / 3);
    let (q, l, flag) = (queue.clone(), lease.clone(), lost.clone());
    let keeper = tokio::spawn(async move {
        loop {
            tokio::time::sleep(period).await;
            // Expired on the server (the worker was frozen past its TTL), or no member renews it.
            if !q.keep_alive(&l).await.unwrap_or(false) {
                flag.store(true, Ordering::SeqCst);
                return;
            }
        }
    });
    (options.log)(&format!("{}: lease {:x} ({} s)", options.name, lease.id, options.ttl_seconds));
    Ok(LiveLease { lease, lost, keeper })
}

/// The outcome a job is finished with when a unit fails for good.
pub fn failed_outcome(e: &Error) -> Bytes {
    Bytes::from(format!("failed: {e}"))
}

/// Runs the worker loop on `queue` with `runner` until an error that retrying cannot help (or,
/// with [`WorkerOptions::until_idle`], until no job has work left).
pub async fn run_worker(queue: &EtcdQueue, runner: &dyn JobRunner, options: &WorkerOptions) -> Result<WorkerSummary> {
    let log = |line: String| (options.log)(&line);
    let mut summary = WorkerSummary::default();
    let mut live = live_lease(queue, options).await?;
    loop {
        if live.lost.load(Ordering::SeqCst) {
            log(format!("{}: lease {:x} lost; registering again", options.name, live.lease.id));
            live = live_lease(queue, options).await?;
        }
        let revision = queue.revision().await?;
        let mut open = false;
        let mut worked = false;
        for id in queue.jobs().await? {
            let Some(job) = queue.job(&id).await? else { continue };
            if job.outcome.is_some() {
                continue;
            }
            open = true;
            let claim = match queue.claim(&live.lease, &id).await {
                Ok(c) => c,
                Err(Error::Precondition(_)) => {
                    live.lost.store(true, Ordering::SeqCst);
                    worked = true;
                    break;
                }
                Err(e) => return Err(e),
            };
            match claim {
                Some(claim) => {
                    log(format!("{}: claimed job {id} unit {} token {}", options.name, claim.unit, claim.token));
                    run_claim(queue, runner, &job, &claim, &mut summary, options).await?;
                    worked = true;
                    break;
                }
                None => {
                    if finish_if_done(queue, runner, &job, options).await? {
                        summary.finished += 1;
                        worked = true;
                    }
                }
            }
        }
        if !open && options.until_idle {
            let _ = queue.revoke(&live.lease).await;
            return Ok(summary);
        }
        if !worked {
            queue.wait_change(None, revision, IDLE_WAIT).await?;
        }
    }
}

async fn run_claim(
    queue: &EtcdQueue,
    runner: &dyn JobRunner,
    job: &JobInfo,
    claim: &Claim,
    summary: &mut WorkerSummary,
    options: &WorkerOptions,
) -> Result<()> {
    let (name, id, unit, token) = (&options.name, &job.id, claim.unit, claim.token);
    match runner.run_unit(queue, job, claim).await {
        Ok(Completion::Completed) => {
            summary.completed += 1;
            (options.log)(&format!("{name}: completed job {id} unit {unit} token {token}"));
        }
        Ok(Completion::Fenced) => {
            summary.fenced += 1;
            (options.log)(&format!("{name}: fenced job {id} unit {unit} token {token}: its files removed"));
        }
        Err(e) if e.status() == Status::Temporary => {
            // Let another worker try: ending this lease frees the unit (a worker holds one claim).
            (options.log)(&format!("{name}: job {id} unit {unit} failed, released: {e}"));
            queue.revoke(&claim.lease).await?;
        }
        Err(e) => {
            (options.log)(&format!("{name}: job {id} unit {unit} failed: {e}"));
            queue.finish_job(id, failed_outcome(&e)).await?;
        }
    }
    Ok(())
}

/// Finishes `job` if every unit is done; whether this call finished it.
async fn finish_if_done(
    queue: &EtcdQueue,
    runner: &dyn JobRunner,
    job: &JobInfo,
    options: &WorkerOptions,
) -> Result<bool> {
    let outcome = match runner.finish(queue, job).await {
        Ok(Some(o)) => o,
        Ok(None) => return Ok(false),
        Err(e) if e.status() == Status::Temporary => {
            // Another worker is committing, or storage is down for now: the next change of the
            // queue (that worker's outcome) or the idle wait brings this worker back.
            (options.log)(&format!("{}: job {} not finished yet: {e}", options.name, job.id));
            return Ok(false);
        }
        Err(e) => failed_outcome(&e),
    };
    let stored = queue.finish_job(&job.id, outcome.clone()).await?;
    (options.log)(&format!(
        "{}: finished job {}: {}",
        options.name,
        job.id,
        String::from_utf8_lossy(&stored).lines().next().unwrap_or("")
    ));
    Ok(stored == outcome)
}

/// A job's progress, from its units: (units done, units).
pub async fn job_progress(queue: &EtcdQueue, job: &str) -> Result<(u32, u32)> {
    let states = queue.units(job).await?;
    let done = states.iter().filter(|s| matches!(s, UnitState::Done { .. })).count();
    Ok((done as u32, states.len() as u32))
}

/// Runs the queue jobs of detached backups (`BACKUP … WITH detached` on an executor with a work
/// queue): units with [`strata_core::run_queued_unit`], the commit with
/// [`strata_core::finish_queued_backup`].
pub struct BackupJobRunner {
    source: Arc<dyn KvStore>,
    opener: Arc<dyn StorageOpener>,
    options: BackupOptions,
}

impl BackupJobRunner {
    /// A runner reading from `source` and writing backups through `opener`, with `options`.
    pub fn new(source: Arc<dyn KvStore>, opener: Arc<dyn StorageOpener>, options: BackupOptions) -> BackupJobRunner {
        BackupJobRunner { source, opener, options }
    }
}

#[async_trait(?Send)]
impl JobRunner for BackupJobRunner {
    async fn run_unit(&self, queue: &dyn WorkQueue, job: &JobInfo, claim: &Claim) -> Result<Completion> {
        run_queued_unit(queue, job, claim, self.source.as_ref(), self.opener.as_ref(), &self.options).await
    }

    async fn finish(&self, queue: &dyn WorkQueue, job: &JobInfo) -> Result<Option<Bytes>> {
        finish_queued_backup(queue, job, self.opener.as_ref(), &self.options).await
    }
}
