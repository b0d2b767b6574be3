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
use crate::storage::StorageOpener;
use crate::workqueue::{Claim, Completion, JobInfo, UnitState, WorkQueue};

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

    fn locations(&self, opener: &dyn StorageOpener) -> Result<(crate::locality::Locations, crate::locality::Locations)> {
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
    let Some(manifest) = finish_backup_job(queue, &job.id, &dir, &queued.plan, options).await? else {
        return Ok(None);
    };
    if let Some(latest) = &queued.latest {
        root.storage().put(LATEST_NAME, Bytes::from(latest.clone())).await?;
    }
    let rows: u64 = manifest.files.iter().map(|f| f.rows).sum();
    let bytes: u64 = manifest.files.iter().map(|f| f.logical_bytes).sum();
    Ok(Some(Bytes::from(format!("succeeded: {} files, {rows} rows, {bytes} bytes", manifest.files.len()))))
}

/// A queued job's state as `SHOW JOBS` shows it: (fraction done, rows, bytes, outcome). Rows and
/// bytes are counted once the job is finished (done records are sealed with the chain's codec).
pub(super) async fn queued_progress(queue: &dyn WorkQueue, id: u64) -> Result<Option<(f64, Option<String>)>> {
    let job = queue_job_id(id);
    let Some(info) = queue.job(&job).await? else { return Ok(None) };
    if let Some(outcome) = info.outcome {
        return Ok(Some((1.0, Some(String::from_utf8_lossy(&outcome).into_owned()))));
    }
    let states = queue.units(&job).await?;
    let done = states.iter().filter(|s| matches!(s, UnitState::Done { .. })).count();
    let fraction = if states.is_empty() { 0.0 } else { done as f64 / states.len() as f64 };
    Ok(Some((fraction, None)))
}
