//! Detached backup jobs: `BACKUP … WITH detached` returns a job id at once; `SHOW JOBS`,
//! `SHOW JOB id`, `PAUSE JOB`, `RESUME JOB`, `CANCEL JOB`.
//!
//! The core has no threads, so a job runs only where the host gives the executor a
//! [`JobSpawner`] ([`Executor::with_job_spawner`], which gives this service its [`JobRuntime`]): a long-lived process such as
//! `strata schedule run`, a server, or a wasm page (a spawner on the JS event loop). Without a
//! spawner — a one-shot CLI process, which must exit and, with the embedded store, holds the
//! store's only lock — the job is recorded as `pending` and the next host with a spawner that
//! calls [`Executor::adopt_jobs`] runs it. That is also how jobs survive a restart: a `running`
//! job whose process died is adopted again, and resumes from its backup's done records.
//!
//! ```text
//!   BACKUP … WITH detached ──▶ job record (system span) ──spawner──▶ backup ──▶ succeeded | failed
//!   PAUSE JOB  ──▶ stop at the next await (files and run records stay) ──▶ paused
//!   RESUME JOB ──▶ run the statement again: resumes from the run's records
//!   CANCEL JOB ──▶ stop, then delete the unfinished backup's files ──▶ canceled
//! ```
//!
//! A job's record holds its statement without secrets (`crate::secrets`): references
//! (`encryption_passphrase_env`, `${NAME}` in URIs, a KMS URI) are read when it runs; secrets
//! typed into the statement are kept only in the memory of the process that started it. A job
//! holding those runs only there: adopted elsewhere it fails, and `RESUME JOB` refuses it, saying
//! which secrets to supply by running the statement again (which resumes its backup). A host
//! without a job runner refuses such a job at once: it would wait in the store without them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::{AbortHandle, Abortable};
use serde::{Deserialize, Serialize};

use super::backup::{request_key, BackupService};
use super::Context;
#[cfg(doc)]
use super::Executor;
use crate::backup::resume::read_run;
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::kv::{KvStore, MaybeSendSync};
use crate::layout;
use crate::progress::{Progress, ProgressReporter};
use crate::records::{RecordStore, JOB_ENVELOPE, JOB_NEXT_ID, JOB_PREFIX};
use crate::result::{QueryResult, Value};
use crate::secrets::{resolve_backup, typed_secrets_error, LegacyBackup, StoredBackup};
use crate::sql::{BackupDestination, BackupStmt, Statement};
use crate::timestamp::Timestamp;
use crate::workqueue::WorkQueue;

use super::queued::{queue_job_id, queued_progress, start_queued, CANCELED};
use super::restore::RestoreService;

mod runs;
pub(super) use runs::{finish_scheduled_run, forget_scheduled_runs, start_scheduled_run};

/// Job records (see [`crate::records`]).
const JOBS: RecordStore<JobRecord> = RecordStore::new("job", JOB_PREFIX, JOB_NEXT_ID, JOB_ENVELOPE)
    .with_legacy(3, |_, body| postcard::from_bytes::<LegacyJob>(body).map(LegacyJob::into_record));

/// Decodes a stored job record (any version), as `SHOW JOBS` reads it: for the fuzz targets.
pub(crate) fn decode_job_record(bytes: &[u8]) -> crate::error::Result<Job> {
    JOBS.decode(bytes).map(|r| r.job())
}

/// A job's future, as handed to a [`JobSpawner`]. It is not `Send` (the backup's future is not
/// provably `Send` to today's compiler): run it on the spawning thread, e.g. with
/// tokio's `task::spawn_local` inside a `LocalSet`, or `wasm_bindgen_futures::spawn_local`.
pub type JobFuture = futures::future::LocalBoxFuture<'static, ()>;

/// Runs detached jobs' futures to completion in the background.
///
/// # Contract
/// `spawn` returns at once and polls the future until it completes, on the calling thread
/// (tokio's `task::spawn_local` in a `LocalSet`, or `wasm_bindgen_futures::spawn_local`).
/// Dropping it unpolled leaves the job `running` until a host adopts it again.
pub trait JobSpawner: MaybeSendSync {
    /// Starts `job` in the background.
    fn spawn(&self, job: JobFuture);
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JobStatus {
    /// Recorded by a host without a job runner; runs when one adopts it.
    Pending,
    /// Running (or its process died, and it runs again when adopted).
    Running,
    /// Paused by `PAUSE JOB`.
    Paused,
    /// Finished.
    Succeeded,
    /// Failed; see its error.
    Failed,
    /// Canceled by `CANCEL JOB`; its files are removed.
    Canceled,
}

impl JobStatus {
    /// The status as `SHOW JOBS` prints it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Running => "running",
            JobStatus::Paused => "paused",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Canceled => "canceled",
        }
    }
}

/// A job, as stored.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// The backup it runs (without `detached`), as its record keeps it: references to its
    /// secrets, never a secret.
    pub statement: BackupStmt,
    /// Secrets typed into the statement, which the record does not keep (as `the encryption
    /// passphrase`): only the process that started the job has them.
    pub typed_secrets: Vec<String>,
    /// Its state.
    pub status: JobStatus,
    /// When it was created (wall nanoseconds).
    pub created: u64,
    /// When it finished.
    pub finished: Option<u64>,
    /// Why it failed.
    pub error: Option<String>,
    /// Progress when last recorded: fraction, bytes, rows.
    pub fraction: f64,
    /// Key and value bytes exported.
    pub bytes: u64,
    /// Rows exported.
    pub rows: u64,
}

impl Job {
    /// The statement as shown (secrets redacted; a passphrase typed in shows as `'redacted'`).
    pub fn description(&self) -> String {
        let mut statement = self.statement.clone();
        if self.typed_secrets.iter().any(|t| t == crate::secrets::TYPED_PASSPHRASE) {
            statement.options.encryption_passphrase = Some(crate::sql::Secret(crate::redact::REDACTED.into()));
        }
        Statement::Backup(statement).to_string()
    }
}

/// A job as its record (version 3) stores it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JobRecord {
    id: u64,
    backup: StoredBackup,
    status: JobStatus,
    created: u64,
    finished: Option<u64>,
    error: Option<String>,
    fraction: f64,
    bytes: u64,
    rows: u64,
}

impl JobRecord {
    fn new(j: &Job) -> JobRecord {
        let mut backup = StoredBackup::new(&j.statement);
        backup.add_typed(&j.typed_secrets);
        JobRecord {
            id: j.id,
            backup,
            status: j.status,
            created: j.created,
            finished: j.finished,
            error: j.error.clone(),
            fraction: j.fraction,
            bytes: j.bytes,
            rows: j.rows,
        }
    }

    fn job(&self) -> Job {
        let (statement, typed_secrets) = self.backup.statement();
        Job {
            id: self.id,
            statement,
            typed_secrets,
            status: self.status,
            created: self.created,
            finished: self.finished,
            error: self.error.clone(),
            fraction: self.fraction,
            bytes: self.bytes,
            rows: self.rows,
        }
    }
}

/// A job as records of versions 1 and 2 stored it (the statement with its secrets).
#[derive(Deserialize)]
struct LegacyJob {
    id: u64,
    statement: LegacyBackup,
    status: JobStatus,
    created: u64,
    finished: Option<u64>,
    error: Option<String>,
    fraction: f64,
    bytes: u64,
    rows: u64,
}

impl LegacyJob {
    fn into_record(self) -> JobRecord {
        JobRecord {
            id: self.id,
            backup: self.statement.stored(),
            status: self.status,
            created: self.created,
            finished: self.finished,
            error: self.error,
            fraction: self.fraction,
            bytes: self.bytes,
            rows: self.rows,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Intent {
    Pause,
    Cancel,
}

struct Live {
    abort: AbortHandle,
    intent: Arc<Mutex<Option<Intent>>>,
    progress: Arc<Mutex<Option<Progress>>>,
    /// The job's own cancel signal, for a job that cleans up after itself when canceled (a
    /// restore); other jobs are aborted.
    cancel: Option<crate::progress::Cancel>,
}

/// The job runner: the host's spawner and the jobs running in this process.
pub(super) struct JobRuntime {
    spawner: Arc<dyn JobSpawner>,
    live: Mutex<HashMap<u64, Live>>,
}

/// Detached jobs: their records, and the runtime that runs them here (if the host gave one), or
/// the work queue whose workers run them (see `queued.rs`).
#[derive(Clone)]
pub(super) struct JobService {
    records: RecordStore<JobRecord>,
    runtime: Option<Arc<JobRuntime>>,
    queue: Option<Arc<dyn WorkQueue>>,
}

impl Default for JobService {
    fn default() -> Self {
        JobService { records: JOBS, runtime: None, queue: None }
    }
}

impl JobService {
    /// The service running jobs with `spawner`.
    pub(super) fn with_spawner(spawner: Arc<dyn JobSpawner>) -> JobService {
        let runtime = Some(Arc::new(JobRuntime { spawner, live: Mutex::new(HashMap::new()) }));
        JobService { records: JOBS, runtime, queue: None }
    }

    /// The same service, its detached backups run by the workers of `queue`.
    pub(super) fn with_queue(mut self, queue: Arc<dyn WorkQueue>) -> JobService {
        self.queue = Some(queue);
        self
    }

    /// Every job, by id, with live progress for those running here.
    pub(super) async fn all(&self, store: &dyn KvStore) -> Result<Vec<Job>> {
        let mut jobs: Vec<Job> = self.records.all(store).await?.iter().map(JobRecord::job).collect();
        if let Some(rt) = &self.runtime {
            let live = rt.live.lock().expect("jobs lock");
            for j in &mut jobs {
                if let Some(p) = live.get(&j.id).and_then(|l| *l.progress.lock().expect("progress lock")) {
                    if j.status == JobStatus::Running {
                        (j.fraction, j.bytes, j.rows) = (p.fraction, p.bytes, p.rows);
                    }
                }
            }
        }
        if let Some(queue) = &self.queue {
            for j in jobs.iter_mut().filter(|j| j.status == JobStatus::Running) {
                if let Some(state) = queued_progress(queue.as_ref(), j.id).await? {
                    state.apply(j);
                    if j.status != JobStatus::Running {
                        // Finished: the record says so from now on.
                        j.finished = Some(store.now().await?.wall);
                        self.save(store, j).await?;
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// One job.
    pub(super) async fn get(&self, store: &dyn KvStore, id: u64) -> Result<Job> {
        self.all(store).await?.into_iter().find(|j| j.id == id).ok_or_else(|| Error::not_found("job", id.to_string()))
    }

    pub(super) async fn save(&self, store: &dyn KvStore, j: &Job) -> Result<()> {
        self.records.put(store, j.id, &JobRecord::new(j)).await
    }

    /// `BACKUP … WITH detached`: records the job, starts it if there is a runtime, and returns
    /// its id. `backup` is the service that runs it.
    pub(super) async fn start(&self, cx: &Context, backup: &BackupService, b: &BackupStmt) -> Result<QueryResult> {
        let store = cx.store.as_ref();
        let mut live = b.clone();
        live.options.detached = false;
        let (statement, typed_secrets) = crate::secrets::without_secrets(&live);
        if self.runtime.is_none() && !typed_secrets.is_empty() {
            return Err(Error::Precondition(format!(
                "this host runs no jobs, so a detached job waits in the store for one that does, and a record \
                 never holds a secret: {} typed into the statement would be lost. Write references instead \
                 (encryption_passphrase_env = 'NAME' or encryption_passphrase_file = '/path', a kms URI, \
                 ${{NAME}} as a URI parameter's value or password), or run the backup without detached",
                typed_secrets.join(", ")
            )));
        }
        let now = store.now().await?;
        let id = self.records.allocate_ids(store, 1).await?;
        if let Some(queue) = &self.queue {
            if !typed_secrets.is_empty() {
                return Err(Error::Precondition(format!(
                    "a detached backup on this store is run by worker processes, which get no secret typed into \
                     the statement ({}): write references instead (e.g. ${{NAME}} as a URI parameter's value, read \
                     from each worker's environment), or run the backup without detached",
                    typed_secrets.join(", ")
                )));
            }
            return start_queued(self, queue.as_ref(), cx, backup, statement, id, now.wall).await;
        }
        let status = if self.runtime.is_some() { JobStatus::Running } else { JobStatus::Pending };
        let job = Job {
            id,
            statement,
            typed_secrets,
            status,
            created: now.wall,
            finished: None,
            error: None,
            fraction: 0.0,
            bytes: 0,
            rows: 0,
        };
        self.save(store, &job).await?;
        self.launch(cx, backup, &job, Some(live));
        let mut r = QueryResult::new(&["job_id", "status"]);
        r.push(vec![id.into(), status.as_str().into()]);
        Ok(r)
    }

    /// See [`Executor::adopt_jobs`].
    pub(super) async fn adopt(
        &self,
        cx: &Context,
        backup: &BackupService,
        restore: &RestoreService,
    ) -> Result<Vec<u64>> {
        let Some(rt) = &self.runtime else { return Ok(Vec::new()) };
        let mut adopted = self.adopt_restores(cx, restore).await?;
        for mut j in self.all(cx.store.as_ref()).await? {
            let live = rt.live.lock().expect("jobs lock").contains_key(&j.id);
            if live || !matches!(j.status, JobStatus::Pending | JobStatus::Running) {
                continue;
            }
            if !j.typed_secrets.is_empty() {
                // Its secrets died with the process that started it.
                j.status = JobStatus::Failed;
                j.error = Some(typed_secrets_error(&format!("job {}", j.id), &j.typed_secrets).to_string());
                j.finished = Some(cx.store.now().await?.wall);
                self.save(cx.store.as_ref(), &j).await?;
                continue;
            }
            j.status = JobStatus::Running;
            self.save(cx.store.as_ref(), &j).await?;
            self.launch(cx, backup, &j, None);
            adopted.push(j.id);
        }
        adopted.sort_unstable();
        Ok(adopted)
    }

    /// Runs `job` in the background with `backup`, if there is a runtime: `live`, the statement
    /// with the secrets typed into it, when this process started the job; else its record's.
    fn launch(&self, cx: &Context, backup: &BackupService, job: &Job, live: Option<BackupStmt>) {
        let Some(rt) = self.runtime.clone() else { return };
        let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
        let intent: Arc<Mutex<Option<Intent>>> = Arc::default();
        let p = progress.clone();
        let reporter = ProgressReporter::new(move |x: &Progress| *p.lock().expect("progress lock") = Some(*x));
        // The job reports to its record, and only PAUSE or CANCEL JOB stop it: it outlives the
        // call that started it, whose cancellation is not the job's.
        let backup = backup.with_control(reporter, crate::progress::Cancel::default());
        let (abort, registration) = AbortHandle::new_pair();
        rt.live
            .lock()
            .expect("jobs lock")
            .insert(job.id, Live { abort, intent: intent.clone(), progress: progress.clone(), cancel: None });
        let id = job.id;
        let statement = live.unwrap_or_else(|| job.statement.clone());
        let run = execute_boxed(cx.clone(), backup, statement.clone());
        let (cx, jobs, runtime) = (cx.clone(), self.clone(), rt.clone());
        let task = async move {
            let outcome = Abortable::new(run, registration).await;
            runtime.live.lock().expect("jobs lock").remove(&id);
            let store = cx.store.as_ref();
            let now = store.now().await.map(|t| t.wall).unwrap_or_default();
            let Ok(mut j) = jobs.get(store, id).await else { return };
            match outcome {
                Ok(result) => {
                    if j.status != JobStatus::Running {
                        return;
                    }
                    let last = *progress.lock().expect("progress lock");
                    match result {
                        Ok(_) => {
                            j.status = JobStatus::Succeeded;
                            j.fraction = 1.0;
                        }
                        Err(e) => {
                            j.status = JobStatus::Failed;
                            j.error = Some(e.to_string());
                        }
                    }
                    if let Some(p) = last {
                        (j.bytes, j.rows) = (p.bytes, p.rows);
                    }
                    j.finished = Some(now);
                    let _ = jobs.save(store, &j).await;
                }
                // Stopped by PAUSE or CANCEL JOB, which recorded the status.
                Err(_aborted) => {
                    if *intent.lock().expect("intent lock") == Some(Intent::Cancel) {
                        let _ = discard_unfinished_backup(&cx, &statement).await;
                    }
                }
            }
        };
        rt.spawner.spawn(Box::pin(task));
    }

    /// Stops a live job (it stops at its next await); returns whether it was live here.
    fn stop(&self, id: u64, intent: Intent) -> bool {
        let Some(rt) = &self.runtime else { return false };
        match rt.live.lock().expect("jobs lock").get(&id) {
            Some(l) => {
                *l.intent.lock().expect("intent lock") = Some(intent);
                match (&l.cancel, intent) {
                    (Some(cancel), Intent::Cancel) => cancel.cancel(),
                    _ => l.abort.abort(),
                }
                true
            }
            None => false,
        }
    }

    /// `PAUSE JOB id`.
    pub(super) async fn pause(&self, store: &dyn KvStore, id: u64) -> Result<QueryResult> {
        if let Some(r) = self.run(store, id).await? {
            self.control_run(store, r, Some(Intent::Pause)).await?;
        }
        let mut j = self.get(store, id).await?;
        if let Some(queue) = &self.queue {
            if queue.job(&queue_job_id(id)).await?.is_some() {
                return Err(Error::unsupported("PAUSE JOB of a backup run by workers (CANCEL JOB stops it)"));
            }
        }
        if !matches!(j.status, JobStatus::Running | JobStatus::Pending) {
            return Err(Error::Precondition(format!(
                "job {id} is {}: only a running job can be paused",
                j.status.as_str()
            )));
        }
        j.status = JobStatus::Paused;
        self.save(store, &j).await?;
        self.stop(id, Intent::Pause);
        Ok(QueryResult::default())
    }

    /// `RESUME JOB id`: runs its backup again with `backup` (it resumes from its run's records).
    pub(super) async fn resume(&self, cx: &Context, backup: &BackupService, id: u64) -> Result<QueryResult> {
        if let Some(r) = self.run(cx.store.as_ref(), id).await? {
            self.control_run(cx.store.as_ref(), r, None).await?;
        }
        let mut j = self.get(cx.store.as_ref(), id).await?;
        if j.status != JobStatus::Paused {
            return Err(Error::Precondition(format!(
                "job {id} is {}: only a paused job can be resumed",
                j.status.as_str()
            )));
        }
        if !j.typed_secrets.is_empty() {
            return Err(typed_secrets_error(&format!("job {id}"), &j.typed_secrets));
        }
        j.status = if self.runtime.is_some() { JobStatus::Running } else { JobStatus::Pending };
        self.save(cx.store.as_ref(), &j).await?;
        self.launch(cx, backup, &j, None);
        Ok(QueryResult::default())
    }

    /// `CANCEL JOB id`: stops it and removes its unfinished backup's files.
    pub(super) async fn cancel(&self, cx: &Context, id: u64) -> Result<QueryResult> {
        let store = cx.store.as_ref();
        if let Some(r) = self.run(store, id).await? {
            self.control_run(store, r, Some(Intent::Cancel)).await?;
            return Ok(QueryResult::default());
        }
        let mut j = self.get(store, id).await?;
        if matches!(j.status, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled) {
            return Err(Error::Precondition(format!("job {id} is {}: it cannot be canceled", j.status.as_str())));
        }
        j.status = JobStatus::Canceled;
        j.finished = Some(store.now().await?.wall);
        self.save(store, &j).await?;
        if let Some(queue) = &self.queue {
            // Workers claim no unit of a finished queue job; its unfinished layer is no backup.
            let job = queue_job_id(id);
            if queue.job(&job).await?.is_some() {
                queue.finish_job(&job, bytes::Bytes::from_static(CANCELED.as_bytes())).await?;
                return Ok(QueryResult::default());
            }
        }
        if !self.stop(id, Intent::Cancel) && j.typed_secrets.is_empty() {
            // Not running here: clean up now. (A live job cleans up once it has stopped. Without
            // the secrets typed into its statement, its storage cannot be opened: its files stay,
            // for the next backup into that collection to remove.)
            discard_unfinished_backup(cx, &j.statement).await?;
        }
        Ok(QueryResult::default())
    }

    /// `SHOW JOBS`, or `SHOW JOB id` (`only`).
    pub(super) async fn show(&self, store: &dyn KvStore, only: Option<u64>) -> Result<QueryResult> {
        let mut r = QueryResult::new(&[
            "job_id",
            "job_type",
            "description",
            "status",
            "fraction_completed",
            "bytes",
            "rows",
            "created",
            "finished",
            "error",
            "schedule_id",
        ]);
        let jobs = self.all(store).await?;
        // Scheduled runs and detached restores, merged in by id.
        let mut runs: Vec<(u64, Vec<Value>)> = self.runs(store).await?.iter().map(|r| (r.id(), r.row())).collect();
        runs.retain(|(id, _)| only.is_none_or(|only| only == *id));
        if let Some(id) = only {
            if !jobs.iter().any(|j| j.id == id) && runs.is_empty() {
                return Err(Error::not_found("job", id.to_string()));
            }
        }
        let mut runs = runs.into_iter().peekable();
        for j in jobs.into_iter().filter(|j| only.is_none_or(|id| id == j.id)) {
            while let Some((_, row)) = runs.next_if(|(id, _)| *id < j.id) {
                r.push(row);
            }
            r.push(vec![
                j.id.into(),
                "BACKUP".into(),
                j.description().into(),
                j.status.as_str().into(),
                format!("{:.3}", j.fraction).into(),
                j.bytes.into(),
                j.rows.into(),
                Timestamp::from_nanos(j.created).to_utc_string().into(),
                j.finished.map(|t| Timestamp::from_nanos(t).to_utc_string()).into(),
                j.error.clone().into(),
                Value::Null,
            ]);
        }
        for (_, row) in runs {
            r.push(row);
        }
        Ok(r)
    }
}

/// Removes the files of `statement`'s unfinished backup: every directory under its
/// destination holding a (plain) run of that request and no manifest loses the run's data files,
/// its records, and — once nothing else is left in it — its `ENCRYPTION-INFO`. An encrypted
/// backup's plan cannot be read without its key, so its files stay (they are no backup without
/// a manifest).
async fn discard_unfinished_backup(cx: &Context, statement: &BackupStmt) -> Result<()> {
    let statement = &resolve_backup(statement, cx.secrets.as_ref())?;
    let uris = match &statement.destination {
        BackupDestination::To(uris) | BackupDestination::Into { uris, .. } => uris,
    };
    let root = cx.open_uris(uris)?;
    let request = request_key(statement);
    let shown = Statement::Backup(statement.clone()).to_string();
    for dir in layout::unfinished_dirs(root.storage().as_ref(), "").await? {
        let location = root.subdir(&dir);
        let Some(run) = read_run(location.storage().as_ref(), &FileCodec::plain()).await else { continue };
        let same = if run.legacy { run.plan.statement == shown } else { run.plan.request == request };
        if same {
            let files: Vec<String> = run.files().map(|f| f.path.clone()).collect();
            layout::remove_unfinished(&location, Some(run.plan.file_prefix()), &files).await?;
        }
    }
    Ok(())
}

fn execute_boxed(
    cx: Context,
    backup: BackupService,
    b: BackupStmt,
) -> futures::future::LocalBoxFuture<'static, Result<QueryResult>> {
    Box::pin(async move {
        let resolved = resolve_backup(&b, cx.secrets.as_ref())?;
        backup.run(&cx, &resolved, &Statement::Backup(b)).await
    })
}
