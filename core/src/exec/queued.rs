//! Detached backups run by worker processes through a [`WorkQueue`] (the etcd queue of
//! `strata-etcd`): `BACKUP … WITH detached` on an executor given a queue
//! ([`crate::Executor::with_work_queue`]) plans the backup and creates a queue job holding the
//! plan; every worker claims units of it ([`run_queued_unit`]) and whichever sees every unit done
//! writes the manifest and `LATEST` ([`finish_queued_backup`]); `SHOW JOBS` reads the job's
//! progress and outcome from the queue.
//!
//! ```text
//!   BACKUP … WITH detached ─▶ job record (running) ─▶ plan ─▶ queue.create_job(backup<id>, units, QueuedBackup)
//!   worker: claim ─▶ run_queued_unit ─▶ run_claimed_unit (files named by the claim's token)
//!           no free unit ─▶ finish_queued_backup ─▶ finish_backup_job (manifest, create-only) ─▶ LATEST
//!                          ─▶ queue.finish_job("succeeded …")
//!   SHOW JOBS ─▶ units done / units, and the queue's outcome once there is one
//! ```
//!
//! The queue job's payload names the backup's location by its URIs; a URI holding a secret is
//! refused (the payload is stored in the queue as is): workers take credentials from their own
//! environment. Encrypted backups are not run through a queue yet (the workers would need the key).

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backup::job::{finish_backup_job, run_claimed_unit};
use crate::backup::plan::BackupPlan;
use crate::backup::run::BackupOptions;
use crate::envelope::QUEUED_BACKUP;
use crate::error::{Error, Result};
use crate::kv::KvSource;
use crate::layout::LATEST_NAME;
use crate::locality::open_locations;
use crate::redact::redact_uri;
use crate::result::QueryResult;
use crate::sql::BackupStmt;
use crate::storage::StorageOpener;
use crate::workqueue::{Claim, Completion, JobInfo, UnitState, WorkQueue};

use super::backup::{request_key, resolve_as_of, BackupService};
use super::jobs::{Job, JobService, JobStatus};
use super::source_dir;
use super::Context;
use crate::backup::plan::BackupSpec;
use crate::chain::Chain;
use crate::crypto::keyring::KeyRequest;
use crate::layout::{dated_subdir, layer_dir, new_layer_dir, MANIFEST_NAME};
use crate::sql::{BackupDestination, Statement};
use crate::storage::ExternalStorageExt;

/// The queue job of detached job `id`.
pub fn queue_job_id(id: u64) -> String {
    format!("backup{id}")
}

/// What a queue job of a detached backup holds: where the layer goes and its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueuedBackup {
    /// The detached job's id.
    pub job: u64,
    /// The URIs of the backup's root (a collection or a `BACKUP TO` location), without secrets.
    pub uris: Vec<String>,
    /// The layer's directory below the root (`""`: the root itself).
    pub dir: String,
    /// The plan the workers run.
    pub plan: BackupPlan,
    /// What `LATEST` at the root says once the backup is committed (`BACKUP INTO` a collection).
    pub latest: Option<String>,
}

impl QueuedBackup {
    /// The stored form.
    pub fn encode(&self) -> Bytes {
        Bytes::from(QUEUED_BACKUP.encode(self))
    }

    /// Reads a queue job's payload.
    pub fn decode(payload: &[u8], job: &str) -> Result<QueuedBackup> {
        QUEUED_BACKUP.decode(payload, &format!("the payload of queue job {job}"))
    }

    /// Refuses URIs a queue cannot hold (their secrets would be stored).
    pub fn check_uris(uris: &[String]) -> Result<()> {
        for uri in uris {
            if redact_uri(uri) != *uri {
                return Err(Error::unsupported(format!(
                    "a detached backup run by workers to a URI with credentials ({}): the queue would \
                     store them; give the workers their credentials in their environment instead",
                    redact_uri(uri)
                )));
            }
        }
        Ok(())
    }

    fn locations(
        &self,
        opener: &dyn StorageOpener,
    ) -> Result<(crate::locality::Locations, crate::locality::Locations)> {
        let root = open_locations(opener, &self.uris)?;
        let dir = if self.dir.is_empty() { root.clone() } else { root.subdir(&self.dir) };
        Ok((root, dir))
    }
}

/// Runs `claim`'s unit of the queued backup `job` from `source` and completes it in `queue`
/// (see [`run_claimed_unit`]).
pub async fn run_queued_unit(
    queue: &dyn WorkQueue,
    job: &JobInfo,
    claim: &Claim,
    source: &dyn KvSource,
    opener: &dyn StorageOpener,
    options: &BackupOptions,
) -> Result<Completion> {
    let queued = QueuedBackup::decode(&job.payload, &job.id)?;
    let (_, dir) = queued.locations(opener)?;
    run_claimed_unit(queue, claim, source, &dir, &queued.plan, options).await
}

/// Commits the queued backup `job` if every unit of it is done: its manifest (create-only),
/// then `LATEST`; the outcome to record (`succeeded: …`), or `None` while a unit is not done.
/// Any number of processes may call it: they agree on the manifest.
pub async fn finish_queued_backup(
    queue: &dyn WorkQueue,
    job: &JobInfo,
    opener: &dyn StorageOpener,
    options: &BackupOptions,
) -> Result<Option<Bytes>> {
    let queued = QueuedBackup::decode(&job.payload, &job.id)?;
    let (root, dir) = queued.locations(opener)?;
    let manifest = match finish_backup_job(queue, &job.id, &dir, &queued.plan, options).await {
        Ok(Some(manifest)) => manifest,
        Ok(None) => return Ok(None),
        // Another finisher's manifest is there but not its checksum yet (it commits now): its
        // outcome is the job's; this one tries again later.
        Err(e) if dir.storage().size(MANIFEST_NAME).await.is_ok() => {
            return Err(Error::Storage {
                path: dir.storage().describe(),
                message: format!("another worker is committing this backup ({e})"),
                status: crate::error::Status::Temporary,
            })
        }
        Err(e) => return Err(e),
    };
    if let Some(latest) = &queued.latest {
        root.storage().put(LATEST_NAME, Bytes::from(latest.clone())).await?;
    }
    let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
    let bytes: u64 = manifest.files.iter().map(|f| f.logical_bytes).sum();
    Ok(Some(Bytes::from(format!("succeeded: {} files, {rows} rows, {bytes} bytes", manifest.files.len()))))
}

/// A queued job's state as the queue knows it.
pub(super) struct QueuedState {
    fraction: f64,
    outcome: Option<String>,
}

impl QueuedState {
    /// Shows it in `j`: the fraction of units done; once finished, its status, and the rows and
    /// bytes its outcome records.
    pub(super) fn apply(&self, j: &mut Job) {
        j.fraction = self.fraction;
        let Some(outcome) = &self.outcome else { return };
        if let Some(rest) = outcome.strip_prefix("succeeded") {
            j.status = JobStatus::Succeeded;
            let number = |unit: &str| {
                rest.split(", ").find_map(|part| part.trim_start_matches(": ").strip_suffix(unit)?.trim().parse().ok())
            };
            j.rows = number(" rows").unwrap_or(j.rows);
            j.bytes = number(" bytes").unwrap_or(j.bytes);
        } else if outcome == CANCELED {
            j.status = JobStatus::Canceled;
        } else {
            j.status = JobStatus::Failed;
            j.error = Some(outcome.strip_prefix("failed: ").unwrap_or(outcome).to_string());
        }
    }
}

/// The outcome `CANCEL JOB` records: workers claim no unit of it any more.
pub(super) const CANCELED: &str = "canceled";

/// Job `id`'s state in `queue`, if the queue has it.
pub(super) async fn queued_progress(queue: &dyn WorkQueue, id: u64) -> Result<Option<QueuedState>> {
    let job = queue_job_id(id);
    let Some(info) = queue.job(&job).await? else { return Ok(None) };
    if let Some(outcome) = info.outcome {
        return Ok(Some(QueuedState { fraction: 1.0, outcome: Some(String::from_utf8_lossy(&outcome).into_owned()) }));
    }
    let states = queue.units(&job).await?;
    let done = states.iter().filter(|s| matches!(s, UnitState::Done { .. })).count();
    let fraction = if states.is_empty() { 0.0 } else { done as f64 / states.len() as f64 };
    Ok(Some(QueuedState { fraction, outcome: None }))
}

/// `BACKUP … WITH detached` with a queue: records job `id` running, plans the backup and
/// creates its queue job; returns at once (the workers run it).
pub(super) async fn start_queued(
    jobs: &JobService,
    queue: &dyn WorkQueue,
    cx: &Context,
    backup: &BackupService,
    statement: BackupStmt,
    id: u64,
    now: u64,
) -> Result<QueryResult> {
    let queued = prepare(backup, cx, &statement, id).await?;
    let job = Job {
        id,
        statement,
        status: JobStatus::Running,
        created: now,
        finished: None,
        error: None,
        fraction: 0.0,
        bytes: 0,
        rows: 0,
        typed_secrets: Vec::new(),
    };
    jobs.save(cx.store.as_ref(), &job).await?;
    queue.create_job(&queue_job_id(id), queued.plan.units.len() as u32, queued.encode()).await?;
    let mut r = QueryResult::new(&["job_id", "status"]);
    r.push(vec![id.into(), JobStatus::Running.as_str().into()]);
    Ok(r)
}

/// Plans detached backup `b` (job `id`) for the queue: where its layer goes (below its root, so
/// that workers open it from the URIs), the chain it extends, and its plan. Plain backups only.
async fn prepare(backup: &BackupService, cx: &Context, b: &BackupStmt, id: u64) -> Result<QueuedBackup> {
    if b.options.encryption_passphrase.is_some()
        || b.options.encryption_passphrase_from.is_some()
        || !b.options.kms.is_empty()
    {
        return Err(Error::unsupported("an encrypted detached backup run by workers (the workers would need its key)"));
    }
    let uris = match &b.destination {
        BackupDestination::To(uris) | BackupDestination::Into { uris, .. } => uris,
    };
    QueuedBackup::check_uris(uris)?;
    let now = cx.store.now().await?;
    let end_time = match &b.as_of {
        Some(a) => resolve_as_of(&a.0, now)?,
        None => now,
    };
    let keys = KeyRequest::default();
    let (dir, chain, latest) = match &b.destination {
        BackupDestination::To(_) if !b.incremental_from.is_empty() => {
            return Err(Error::unsupported(
                "INCREMENTAL FROM in a detached backup run by workers (use BACKUP INTO LATEST IN)",
            ));
        }
        BackupDestination::To(uris) => {
            let dest = cx.open_uris(uris)?;
            if dest.storage().size(MANIFEST_NAME).await.is_ok() {
                // BACKUP TO a location holding a backup appends an incremental layer.
                let chain = Chain::open_dir(&dest, &cx.keyring, keys).await?;
                let dir = layer_dir(end_time);
                new_layer_dir(&dest, &dir).await?;
                (dir, Some(chain), None)
            } else {
                (String::new(), None, None)
            }
        }
        BackupDestination::Into { subdir: None, uris } => {
            if !b.incremental_from.is_empty() {
                return Err(Error::invalid("BACKUP INTO", "INCREMENTAL FROM goes with BACKUP TO"));
            }
            let root = cx.open_uris(uris)?;
            let dir = dated_subdir(end_time);
            new_layer_dir(&root, &dir).await?;
            (dir.clone(), None, Some(format!("/{dir}")))
        }
        BackupDestination::Into { subdir: Some(sub), uris } => {
            if !b.incremental_from.is_empty() {
                return Err(Error::invalid("BACKUP INTO", "INCREMENTAL FROM goes with BACKUP TO"));
            }
            let (full, full_dir) = source_dir(cx, uris, Some(sub)).await?;
            let chain = Chain::open_dir(&full, &cx.keyring, keys).await?;
            let dir = layer_dir(end_time);
            new_layer_dir(&full, &dir).await?;
            let full_dir = full_dir.trim_matches('/');
            let below_root = if full_dir.is_empty() { dir } else { format!("{full_dir}/{dir}") };
            (below_root, Some(chain), None)
        }
    };
    if chain.as_ref().is_some_and(|c| c.codec.is_encrypted()) {
        return Err(Error::unsupported(
            "an incremental of an encrypted backup run by workers (the workers would need its key)",
        ));
    }
    let statement = Statement::Backup(b.clone()).to_string();
    let spec = BackupSpec::new(b.targets.clone(), end_time)
        .with_revision_history(b.options.revision_history)
        .with_statement(statement)
        .with_request(request_key(b));
    let plan = backup.plan(cx, &spec, chain.as_ref()).await?;
    Ok(QueuedBackup { job: id, uris: uris.clone(), dir, plan, latest })
}
