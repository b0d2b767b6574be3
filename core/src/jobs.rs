//! Detached backup jobs: `BACKUP … WITH detached` returns a job id at once; `SHOW JOBS`,
//! `SHOW JOB id`, `PAUSE JOB`, `RESUME JOB`, `CANCEL JOB`.
//!
//! The core has no threads, so a job runs only where the host gives the executor a
//! [`JobSpawner`] ([`Executor::with_job_spawner`]): a long-lived process such as
//! `strata schedule run`, a server, or a wasm page (a spawner on the JS event loop). Without a
//! spawner — a one-shot CLI process, which must exit and, with the embedded store, holds the
//! store's only lock — the job is recorded as `pending` and the next host with a spawner that
//! calls [`Executor::adopt_jobs`] runs it. That is also how jobs survive a restart: a `running`
//! job whose process died is adopted again, and resumes from its backup checkpoint.
//!
//! ```text
//!   BACKUP … WITH detached ──▶ job record (system span) ──spawner──▶ backup ──▶ succeeded | failed
//!   PAUSE JOB  ──▶ stop at the next await (files and BACKUP-CHECKPOINT stay) ──▶ paused
//!   RESUME JOB ──▶ run the statement again: resumes from the checkpoint
//!   CANCEL JOB ──▶ stop, then delete the unfinished backup's files ──▶ canceled
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use futures::future::{AbortHandle, Abortable};
use serde::{Deserialize, Serialize};

use crate::checkpoint::{read_checkpoint, CHECKPOINT_NAME};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::exec::Executor;
use crate::format::manifest::MANIFEST_NAME;
use crate::keys::system_key;
use crate::kv::{read_span, MaybeSendSync};
use crate::progress::{Progress, ProgressReporter};
use crate::result::QueryResult;
use crate::span::Span;
use crate::sql::{BackupDestination, BackupStmt, Statement};
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;
use crate::timestamp::Timestamp;

const JOB_PREFIX: &[u8] = b"job/";
const NEXT_ID_KEY: &[u8] = b"job-next-id";
/// The prefix (below `keys::system_key`) shared by every key of the job registry.
pub(crate) const JOB_KEYS_PREFIX: &[u8] = b"job";
const STATE_VERSION: u8 = 1;

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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Its id.
    pub id: u64,
    /// The backup it runs (without `detached`).
    pub statement: BackupStmt,
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
    /// The statement as shown (secrets redacted).
    pub fn description(&self) -> String {
        Statement::Backup(self.statement.clone()).to_string()
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
}

/// The executor's job runner: its spawner and the jobs running in this process.
pub(crate) struct JobRuntime {
    spawner: Arc<dyn JobSpawner>,
    live: Mutex<HashMap<u64, Live>>,
}

fn job_key(id: u64) -> Vec<u8> {
    let mut suffix = JOB_PREFIX.to_vec();
    suffix.extend_from_slice(&id.to_be_bytes());
    system_key(&suffix)
}

fn encode(j: &Job) -> Vec<u8> {
    let mut out = vec![STATE_VERSION];
    out.extend(postcard::to_allocvec(j).expect("jobs serialize"));
    out
}

fn decode(bytes: &[u8]) -> Result<Job> {
    match bytes.split_first() {
        Some((&STATE_VERSION, body)) => {
            postcard::from_bytes(body).map_err(|e| Error::corrupt("system span: job", format!("does not decode: {e}")))
        }
        _ => Err(Error::corrupt("system span: job", "unknown job state version")),
    }
}

fn one_key(key: Vec<u8>) -> Span {
    let mut end = key.clone();
    end.push(0);
    Span::new(key, end)
}

impl Executor {
    /// Runs detached jobs with `spawner` (see the module doc of `jobs.rs`).
    pub fn with_job_spawner(mut self, spawner: Arc<dyn JobSpawner>) -> Self {
        self.jobs = Some(Arc::new(JobRuntime { spawner, live: Mutex::new(HashMap::new()) }));
        self
    }

    /// Every job, by id, with live progress for those running here.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        let now = self.store().now().await?;
        let span = Span::prefix(&system_key(JOB_PREFIX));
        let mut jobs: Vec<Job> =
            read_span(self.store().as_ref(), span, now).await?.iter().map(|(_, v)| decode(v)).collect::<Result<_>>()?;
        if let Some(rt) = &self.jobs {
            let live = rt.live.lock().expect("jobs lock");
            for j in &mut jobs {
                if let Some(p) = live.get(&j.id).and_then(|l| *l.progress.lock().expect("progress lock")) {
                    if j.status == JobStatus::Running {
                        (j.fraction, j.bytes, j.rows) = (p.fraction, p.bytes, p.rows);
                    }
                }
            }
        }
        Ok(jobs)
    }

    /// One job.
    pub async fn job(&self, id: u64) -> Result<Job> {
        self.jobs().await?.into_iter().find(|j| j.id == id).ok_or_else(|| Error::not_found("job", id.to_string()))
    }

    async fn save_job(&self, j: &Job) -> Result<()> {
        self.store().write(vec![(job_key(j.id), Some(encode(j)))]).await?;
        Ok(())
    }

    async fn stored_job(&self, id: u64) -> Result<Job> {
        let now = self.store().now().await?;
        match read_span(self.store().as_ref(), one_key(job_key(id)), now).await?.first() {
            Some((_, v)) => decode(v),
            None => Err(Error::not_found("job", id.to_string())),
        }
    }

    /// `BACKUP … WITH detached`: records the job, starts it if this executor has a spawner, and
    /// returns its id.
    pub(crate) async fn start_backup_job(&self, b: &BackupStmt) -> Result<QueryResult> {
        let mut statement = b.clone();
        statement.options.detached = false;
        let now = self.store().now().await?;
        let key = system_key(NEXT_ID_KEY);
        let id = match read_span(self.store().as_ref(), one_key(key.clone()), now).await?.first() {
            Some((_, v)) => u64::from_be_bytes(
                v.as_slice().try_into().map_err(|_| Error::corrupt("system span: job ids", "bad counter"))?,
            ),
            None => 1,
        };
        self.store().write(vec![(key, Some((id + 1).to_be_bytes().to_vec()))]).await?;
        let status = if self.jobs.is_some() { JobStatus::Running } else { JobStatus::Pending };
        let job = Job {
            id,
            statement,
            status,
            created: now.wall,
            finished: None,
            error: None,
            fraction: 0.0,
            bytes: 0,
            rows: 0,
        };
        self.save_job(&job).await?;
        if self.jobs.is_some() {
            self.launch(&job);
        }
        let mut r = QueryResult::new(&["job_id", "status"]);
        r.push(vec![id.into(), status.as_str().into()]);
        Ok(r)
    }

    /// Starts every `pending` job, and every `running` job no process runs (its process died; it
    /// resumes from its checkpoint). Call once when a host with a spawner starts. Returns their ids.
    pub async fn adopt_jobs(&self) -> Result<Vec<u64>> {
        let Some(rt) = &self.jobs else { return Ok(Vec::new()) };
        let mut adopted = Vec::new();
        for mut j in self.jobs().await? {
            let live = rt.live.lock().expect("jobs lock").contains_key(&j.id);
            if live || !matches!(j.status, JobStatus::Pending | JobStatus::Running) {
                continue;
            }
            j.status = JobStatus::Running;
            self.save_job(&j).await?;
            self.launch(&j);
            adopted.push(j.id);
        }
        Ok(adopted)
    }

    fn launch(&self, job: &Job) {
        let Some(rt) = self.jobs.clone() else { return };
        let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
        let intent: Arc<Mutex<Option<Intent>>> = Arc::default();
        let p = progress.clone();
        let reporter = ProgressReporter::new(move |x: &Progress| *p.lock().expect("progress lock") = Some(*x));
        let mut exec = self.clone();
        exec.set_backup_progress(reporter);
        let (abort, registration) = AbortHandle::new_pair();
        rt.live
            .lock()
            .expect("jobs lock")
            .insert(job.id, Live { abort, intent: intent.clone(), progress: progress.clone() });
        let id = job.id;
        let statement = job.statement.clone();
        let run = execute_boxed(exec.clone(), statement.clone());
        let task = async move {
            let outcome = Abortable::new(run, registration).await;
            if let Some(rt) = &exec.jobs {
                rt.live.lock().expect("jobs lock").remove(&id);
            }
            let now = exec.store().now().await.map(|t| t.wall).unwrap_or_default();
            let Ok(mut j) = exec.stored_job(id).await else { return };
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
                    let _ = exec.save_job(&j).await;
                }
                // Stopped by PAUSE or CANCEL JOB, which recorded the status.
                Err(_aborted) => {
                    if *intent.lock().expect("intent lock") == Some(Intent::Cancel) {
                        let _ = exec.discard_unfinished_backup(&statement).await;
                    }
                }
            }
        };
        rt.spawner.spawn(Box::pin(task));
    }

    /// Stops a live job (it stops at its next await); returns whether it was live here.
    fn stop(&self, id: u64, intent: Intent) -> bool {
        let Some(rt) = &self.jobs else { return false };
        match rt.live.lock().expect("jobs lock").get(&id) {
            Some(l) => {
                *l.intent.lock().expect("intent lock") = Some(intent);
                l.abort.abort();
                true
            }
            None => false,
        }
    }

    /// Runs a job statement (`SHOW JOBS`, `SHOW JOB`, `PAUSE|RESUME|CANCEL JOB`).
    pub(crate) async fn job_statement(&self, stmt: &Statement) -> Result<QueryResult> {
        match stmt {
            Statement::ShowJobs => self.show_jobs(None).await,
            Statement::ShowJob(id) => self.show_jobs(Some(*id)).await,
            Statement::PauseJob(id) => {
                let mut j = self.job(*id).await?;
                if !matches!(j.status, JobStatus::Running | JobStatus::Pending) {
                    return Err(Error::Precondition(format!(
                        "job {id} is {}: only a running job can be paused",
                        j.status.as_str()
                    )));
                }
                j.status = JobStatus::Paused;
                self.save_job(&j).await?;
                self.stop(*id, Intent::Pause);
                Ok(QueryResult::default())
            }
            Statement::ResumeJob(id) => {
                let mut j = self.job(*id).await?;
                if j.status != JobStatus::Paused {
                    return Err(Error::Precondition(format!(
                        "job {id} is {}: only a paused job can be resumed",
                        j.status.as_str()
                    )));
                }
                j.status = if self.jobs.is_some() { JobStatus::Running } else { JobStatus::Pending };
                self.save_job(&j).await?;
                if self.jobs.is_some() {
                    self.launch(&j);
                }
                Ok(QueryResult::default())
            }
            Statement::CancelJob(id) => {
                let mut j = self.job(*id).await?;
                if matches!(j.status, JobStatus::Succeeded | JobStatus::Failed | JobStatus::Canceled) {
                    return Err(Error::Precondition(format!(
                        "job {id} is {}: it cannot be canceled",
                        j.status.as_str()
                    )));
                }
                j.status = JobStatus::Canceled;
                j.finished = Some(self.store().now().await?.wall);
                self.save_job(&j).await?;
                if !self.stop(*id, Intent::Cancel) {
                    // Not running here: clean up now. (A live job cleans up once it has stopped.)
                    self.discard_unfinished_backup(&j.statement).await?;
                }
                Ok(QueryResult::default())
            }
            _ => Err(Error::invalid("statement", "not a job statement")),
        }
    }

    async fn show_jobs(&self, only: Option<u64>) -> Result<QueryResult> {
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
        ]);
        let jobs = self.jobs().await?;
        if let Some(id) = only {
            if !jobs.iter().any(|j| j.id == id) {
                return Err(Error::not_found("job", id.to_string()));
            }
        }
        for j in jobs.into_iter().filter(|j| only.is_none_or(|id| id == j.id)) {
            r.push(vec![
                j.id.into(),
                "BACKUP".into(),
                j.description().into(),
                j.status.as_str().into(),
                format!("{:.3}", j.fraction).into(),
                j.bytes.into(),
                j.rows.into(),
                Timestamp::from_nanos(j.created).to_civil_string().into(),
                j.finished.map(|t| Timestamp::from_nanos(t).to_civil_string()).into(),
                j.error.clone().into(),
            ]);
        }
        Ok(r)
    }

    /// Removes the files of `statement`'s unfinished backup: every directory under its
    /// destination holding a (plain) checkpoint of that statement and no manifest loses the
    /// checkpoint, the data files named by its plan, and — once nothing else is left in it — its
    /// `ENCRYPTION-INFO`. An encrypted backup's checkpoint cannot be read without its key, so
    /// its files stay (they are no backup without a manifest).
    async fn discard_unfinished_backup(&self, statement: &BackupStmt) -> Result<()> {
        let uris = match &statement.destination {
            BackupDestination::To(uris) | BackupDestination::Into { uris, .. } => uris,
        };
        let root = self.open_uris(uris)?;
        let shown = Statement::Backup(statement.clone()).to_string();
        let suffix = format!("/{CHECKPOINT_NAME}");
        for o in root.list("").await? {
            let dir = if o.path == CHECKPOINT_NAME {
                String::new()
            } else if let Some(d) = o.path.strip_suffix(&suffix) {
                d.to_string()
            } else {
                continue;
            };
            let storage = crate::storage::subdir(&root, &dir);
            if storage.size(MANIFEST_NAME).await.is_ok() {
                continue;
            }
            let Some(c) = read_checkpoint(storage.as_ref(), &FileCodec::plain()).await else { continue };
            if c.plan.statement != shown {
                continue;
            }
            discard_dir(storage.as_ref(), &crate::backup::plan_file_prefix(&c.plan)).await?;
        }
        Ok(())
    }
}

fn execute_boxed(exec: Executor, b: BackupStmt) -> futures::future::LocalBoxFuture<'static, Result<QueryResult>> {
    Box::pin(async move { exec.backup(&b, &Statement::Backup(b.clone())).await })
}

async fn discard_dir(storage: &dyn ExternalStorage, file_prefix: &str) -> Result<()> {
    for o in storage.list(&format!("data/{file_prefix}-")).await? {
        storage.delete(&o.path).await?;
    }
    storage.delete(CHECKPOINT_NAME).await?;
    let rest = storage.list("").await?;
    if rest.iter().all(|o| o.path == crate::crypto::info::ENCRYPTION_INFO_NAME) {
        for o in rest {
            storage.delete(&o.path).await?;
        }
    }
    Ok(())
}
