//! The jobs that are not detached backups, listed by `SHOW JOBS` beside them: the backups
//! schedules start (with their schedule's id, as CockroachDB's jobs name the schedule that
//! created them), and detached restores (`RESTORE … WITH detached`).
//!
//! ```text
//!   schedule tick ──▶ run record (running, schedule id) ──backup──▶ succeeded | failed
//!   RESTORE … WITH detached ──▶ run record (pending | running) ──spawner──▶ restore ──▶ succeeded | failed
//!        host without a job runner: pending until a host that runs jobs adopts it
//!   CANCEL JOB ──▶ the restore's cancel signal: it stops and discards what it ingested
//! ```
//!
//! Their records share the job ids (the job counter) and the `job` key prefix, so a full-cluster
//! restore leaves them out as it does job records. A restore's record holds its statement
//! without secrets, as a detached backup's does (`crate::secrets`): a passphrase or URI secret
//! typed into it is kept only in the memory of the process that started it.

use std::sync::{Arc, Mutex};

use futures::future::{AbortHandle, Abortable};
use serde::{Deserialize, Serialize};

use super::super::restore::RestoreService;
use super::super::Context;
use super::{Intent, JobService, JobStatus, Live};
use crate::error::{Error, Result};
use crate::kv::KvStore;
use crate::progress::{Cancel, Progress, ProgressReporter};
use crate::records::{RecordStore, JOB_NEXT_ID};
use crate::result::{QueryResult, Value};
use crate::schedule::BackupKind;
use crate::secrets::{resolve_uri, typed_secrets_error, uri_without_secrets, SecretResolver, TYPED_PASSPHRASE};
use crate::sql::{AsOf, BackupSource, RestoreStmt, RestoreStmtOptions, Statement, Targets};
use crate::timestamp::Timestamp;

/// Run records: `system_key(b"job-run/" ++ id u64 BE)`, ids from the job counter.
const RUNS: RecordStore<RunRecord> = RecordStore::new("job", b"job-run/", JOB_NEXT_ID, crate::envelope::JOB_RUN_RECORD);

/// What a run record's job does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) enum RunWhat {
    /// A backup started by schedule `schedule_id`.
    Scheduled {
        /// The schedule.
        schedule_id: u64,
        /// Full or incremental.
        kind: BackupKind,
    },
    /// A detached restore.
    Restore(StoredRestore),
}

/// A scheduled run or a detached restore, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunRecord {
    id: u64,
    what: RunWhat,
    /// The statement as shown (no secret).
    description: String,
    status: JobStatus,
    created: u64,
    finished: Option<u64>,
    error: Option<String>,
    fraction: f64,
    rows: u64,
    bytes: u64,
}

impl RunRecord {
    fn new(id: u64, what: RunWhat, description: String, status: JobStatus, now: u64) -> RunRecord {
        RunRecord {
            id,
            what,
            description,
            status,
            created: now,
            finished: None,
            error: None,
            fraction: 0.0,
            rows: 0,
            bytes: 0,
        }
    }

    /// Records the outcome of its statement at `now`.
    fn finish(&mut self, now: u64, result: &Result<QueryResult>) {
        self.finished = Some(now);
        match result {
            Ok(r) => {
                self.status = JobStatus::Succeeded;
                self.fraction = 1.0;
                let number = |names: &[&str]| {
                    names.iter().find_map(|n| match r.get(0, n) {
                        Some(Value::Int(v)) => u64::try_from(*v).ok(),
                        _ => None,
                    })
                };
                self.rows = number(&["rows"]).unwrap_or(self.rows);
                self.bytes = number(&["bytes", "size_bytes", "logical_bytes"]).unwrap_or(self.bytes);
            }
            Err(e) => {
                self.status = JobStatus::Failed;
                self.error = Some(e.to_string());
            }
        }
    }

    /// `SHOW JOBS`' row: its columns, then `schedule_id`.
    pub(super) fn row(&self) -> Vec<Value> {
        let (job_type, schedule) = match &self.what {
            RunWhat::Scheduled { schedule_id, .. } => ("BACKUP", Value::from(*schedule_id)),
            RunWhat::Restore(_) => ("RESTORE", Value::Null),
        };
        vec![
            self.id.into(),
            job_type.into(),
            self.description.clone().into(),
            self.status.as_str().into(),
            format!("{:.3}", self.fraction).into(),
            self.bytes.into(),
            self.rows.into(),
            Timestamp::from_nanos(self.created).to_utc_string().into(),
            self.finished.map(|t| Timestamp::from_nanos(t).to_utc_string()).into(),
            self.error.clone().into(),
            schedule,
        ]
    }

    pub(super) fn id(&self) -> u64 {
        self.id
    }

    fn restore(&self) -> Option<&StoredRestore> {
        match &self.what {
            RunWhat::Restore(r) => Some(r),
            RunWhat::Scheduled { .. } => None,
        }
    }
}

/// A RESTORE statement as a run record keeps it: URI secrets replaced by `redacted`, no
/// passphrase, and a note of what was typed in.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StoredRestore {
    targets: Targets,
    source: BackupSource,
    as_of: Option<AsOf>,
    into_db: Option<String>,
    new_db_name: Option<String>,
    kms: Vec<String>,
    skip_missing_foreign_keys: bool,
    typed_secrets: Vec<String>,
}

impl StoredRestore {
    fn new(r: &RestoreStmt) -> StoredRestore {
        let mut typed = Vec::new();
        if r.options.encryption_passphrase.is_some() {
            typed.push(TYPED_PASSPHRASE.to_string());
        }
        let mut source = r.source.clone();
        for uri in source.layers.iter_mut().flatten() {
            *uri = uri_without_secrets(uri, &mut typed);
        }
        let kms = r.options.kms.iter().map(|u| uri_without_secrets(u, &mut typed)).collect();
        StoredRestore {
            targets: r.targets.clone(),
            source,
            as_of: r.as_of.clone(),
            into_db: r.options.into_db.clone(),
            new_db_name: r.options.new_db_name.clone(),
            kms,
            skip_missing_foreign_keys: r.options.skip_missing_foreign_keys,
            typed_secrets: typed,
        }
    }

    /// The statement to run: its `${NAME}` references read through `resolver` (by the host
    /// that runs it).
    fn resolved(&self, resolver: &dyn SecretResolver) -> Result<RestoreStmt> {
        resolve_restore(self.statement(), resolver)
    }

    fn statement(&self) -> RestoreStmt {
        RestoreStmt {
            targets: self.targets.clone(),
            source: self.source.clone(),
            as_of: self.as_of.clone(),
            options: RestoreStmtOptions {
                into_db: self.into_db.clone(),
                new_db_name: self.new_db_name.clone(),
                kms: self.kms.clone(),
                skip_missing_foreign_keys: self.skip_missing_foreign_keys,
                ..Default::default()
            },
        }
    }
}

/// `r` with every `${NAME}` of its URIs read through `resolver`.
fn resolve_restore(mut r: RestoreStmt, resolver: &dyn SecretResolver) -> Result<RestoreStmt> {
    for uri in r.source.layers.iter_mut().flatten().chain(r.options.kms.iter_mut()) {
        *uri = resolve_uri(uri, resolver)?;
    }
    Ok(r)
}

/// Records that schedule `schedule_id` started a `kind` backup (`description`) at `now`;
/// returns the run's job id.
pub(in crate::exec) async fn start_scheduled_run(
    store: &dyn KvStore,
    schedule_id: u64,
    kind: BackupKind,
    description: String,
    now: u64,
) -> Result<u64> {
    let id = RUNS.allocate_ids(store, 1).await?;
    let what = RunWhat::Scheduled { schedule_id, kind };
    RUNS.put(store, id, &RunRecord::new(id, what, description, JobStatus::Running, now)).await?;
    Ok(id)
}

/// Records how scheduled run `id` ended (a run started before runs were recorded has no
/// record: nothing to do).
pub(in crate::exec) async fn finish_scheduled_run(
    store: &dyn KvStore,
    id: u64,
    now: u64,
    result: &Result<QueryResult>,
) -> Result<()> {
    match RUNS.get(store, id).await {
        Ok(mut r) => {
            r.finish(now, result);
            RUNS.put(store, id, &r).await
        }
        Err(Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

/// Marks scheduled runs recorded as running as failed: their process died (see
/// `Executor::recover_schedules`).
pub(in crate::exec) async fn forget_scheduled_runs(store: &dyn KvStore, ids: &[u64]) -> Result<()> {
    let now = store.now().await?.wall;
    for id in ids {
        if let Ok(mut r) = RUNS.get(store, *id).await {
            if r.status == JobStatus::Running {
                r.status = JobStatus::Failed;
                r.finished = Some(now);
                r.error = Some("the process running it stopped before it finished".into());
                RUNS.put(store, *id, &r).await?;
            }
        }
    }
    Ok(())
}

impl JobService {
    /// Every run record, by id, with live progress for restores running here.
    pub(super) async fn runs(&self, store: &dyn KvStore) -> Result<Vec<RunRecord>> {
        let mut runs = RUNS.all(store).await?;
        if let Some(rt) = &self.runtime {
            let live = rt.live.lock().expect("jobs lock");
            for r in runs.iter_mut().filter(|r| r.status == JobStatus::Running) {
                if let Some(p) = live.get(&r.id).and_then(|l| *l.progress.lock().expect("progress lock")) {
                    (r.fraction, r.bytes, r.rows) = (p.fraction, p.bytes, p.rows);
                }
            }
        }
        Ok(runs)
    }

    /// The status of job `id`, whatever it runs.
    pub(in crate::exec) async fn status(&self, store: &dyn KvStore, id: u64) -> Result<JobStatus> {
        match self.run(store, id).await? {
            Some(r) => Ok(r.status),
            None => Ok(self.get(store, id).await?.status),
        }
    }

    /// Run record `id`, if there is one.
    pub(super) async fn run(&self, store: &dyn KvStore, id: u64) -> Result<Option<RunRecord>> {
        match RUNS.get(store, id).await {
            Ok(r) => Ok(Some(r)),
            Err(Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `RESTORE … WITH detached`: records the job and runs it here if this host runs jobs, else
    /// leaves it pending for one that does. Returns its id.
    pub(in crate::exec) async fn start_restore(
        &self,
        cx: &Context,
        restore: &RestoreService,
        r: &RestoreStmt,
    ) -> Result<QueryResult> {
        let store = cx.store.as_ref();
        let mut live = r.clone();
        live.options.detached = false;
        let stored = StoredRestore::new(&live);
        if self.runtime.is_none() && !stored.typed_secrets.is_empty() {
            return Err(Error::Precondition(format!(
                "this host runs no jobs, so a detached restore waits in the store for one that does, and a record \
                 never holds a secret: {} typed into the statement would be lost. Give the host that runs it its \
                 credentials in its environment (${{NAME}} as a URI parameter's value or password, a kms URI), or \
                 run the restore without detached",
                stored.typed_secrets.join(", ")
            )));
        }
        // Run here: its references are read now, by this host (a pending job's by the host
        // that adopts it).
        let run = match self.runtime {
            Some(_) => Some(resolve_restore(live.clone(), cx.secrets.as_ref())?),
            None => None,
        };
        let now = store.now().await?.wall;
        let id = RUNS.allocate_ids(store, 1).await?;
        let status = if self.runtime.is_some() { JobStatus::Running } else { JobStatus::Pending };
        let description = Statement::Restore(live.clone()).to_string();
        let record = RunRecord::new(id, RunWhat::Restore(stored), description, status, now);
        RUNS.put(store, id, &record).await?;
        if let Some(run) = run {
            self.launch_restore(cx, restore, id, run);
        }
        let mut out = QueryResult::new(&["job_id", "status"]);
        out.push(vec![id.into(), status.as_str().into()]);
        Ok(out)
    }

    /// Runs restore job `id` in the background, if there is a runtime.
    fn launch_restore(&self, cx: &Context, restore: &RestoreService, id: u64, statement: RestoreStmt) {
        let Some(rt) = self.runtime.clone() else { return };
        let progress: Arc<Mutex<Option<Progress>>> = Arc::default();
        let p = progress.clone();
        let reporter = ProgressReporter::new(move |x: &Progress| *p.lock().expect("progress lock") = Some(*x));
        // CANCEL JOB stops it through its own signal: the restore then discards what it ingested.
        let cancel = Cancel::default();
        let restore = restore.with_control(reporter, cancel.clone());
        let (abort, registration) = AbortHandle::new_pair();
        let live = Live { abort, intent: Arc::default(), progress, cancel: Some(cancel) };
        rt.live.lock().expect("jobs lock").insert(id, live);
        let (cx, runtime) = (cx.clone(), rt.clone());
        let task = async move {
            let run = Box::pin(async { restore.run(&cx, &statement).await });
            let outcome = Abortable::new(run, registration).await;
            runtime.live.lock().expect("jobs lock").remove(&id);
            let store = cx.store.as_ref();
            let Ok(outcome) = outcome else { return };
            let now = store.now().await.map(|t| t.wall).unwrap_or_default();
            let Ok(mut r) = RUNS.get(store, id).await else { return };
            if r.status != JobStatus::Running {
                return; // canceled meanwhile: CANCEL JOB recorded it
            }
            r.finish(now, &outcome);
            let _ = RUNS.put(store, id, &r).await;
        };
        rt.spawner.spawn(Box::pin(task));
    }

    /// Starts every pending restore job; a running one that no process runs failed with the
    /// process that ran it (a restore publishes nothing before it finishes: run it again).
    pub(super) async fn adopt_restores(&self, cx: &Context, restore: &RestoreService) -> Result<Vec<u64>> {
        let Some(rt) = &self.runtime else { return Ok(Vec::new()) };
        let store = cx.store.as_ref();
        let mut adopted = Vec::new();
        for mut r in RUNS.all(store).await? {
            let Some(stored) = r.restore().cloned() else { continue };
            if rt.live.lock().expect("jobs lock").contains_key(&r.id) {
                continue;
            }
            match r.status {
                JobStatus::Pending if stored.typed_secrets.is_empty() => match stored.resolved(cx.secrets.as_ref()) {
                    Ok(statement) => {
                        r.status = JobStatus::Running;
                        RUNS.put(store, r.id, &r).await?;
                        self.launch_restore(cx, restore, r.id, statement);
                        adopted.push(r.id);
                    }
                    Err(e) => {
                        r.finish(store.now().await?.wall, &Err(e));
                        RUNS.put(store, r.id, &r).await?;
                    }
                },
                JobStatus::Pending | JobStatus::Running => {
                    r.status = JobStatus::Failed;
                    r.finished = Some(store.now().await?.wall);
                    r.error = Some(if stored.typed_secrets.is_empty() {
                        "the process running it stopped before it finished; nothing was published: run the \
                         RESTORE again"
                            .into()
                    } else {
                        typed_secrets_error(&format!("job {}", r.id), &stored.typed_secrets).to_string()
                    });
                    RUNS.put(store, r.id, &r).await?;
                }
                _ => {}
            }
        }
        Ok(adopted)
    }

    /// `PAUSE | RESUME | CANCEL JOB id` of a run record: only a restore can be canceled.
    pub(super) async fn control_run(
        &self,
        store: &dyn KvStore,
        mut r: RunRecord,
        intent: Option<Intent>,
    ) -> Result<()> {
        let id = r.id;
        if let RunWhat::Scheduled { schedule_id, .. } = r.what {
            return Err(Error::unsupported(format!(
                "controlling job {id}, a run of schedule {schedule_id}: PAUSE, RESUME or DROP SCHEDULE {schedule_id}"
            )));
        }
        if intent != Some(Intent::Cancel) {
            return Err(Error::unsupported(format!(
                "pausing or resuming restore job {id} (CANCEL JOB stops it and discards what it restored)"
            )));
        }
        if !matches!(r.status, JobStatus::Running | JobStatus::Pending) {
            return Err(Error::Precondition(format!("job {id} is {}: it cannot be canceled", r.status.as_str())));
        }
        r.status = JobStatus::Canceled;
        r.finished = Some(store.now().await?.wall);
        RUNS.put(store, id, &r).await?;
        self.stop(id, Intent::Cancel);
        Ok(())
    }
}
