//! One backup shared by several processes through a [`WorkQueue`]: each worker runs the units it
//! claims ([`run_claimed_unit`]), and whichever process sees every unit done writes the manifest
//! ([`finish_backup_job`]) — no coordinator to lose.
//!
//! ```text
//!   creator:  queue.create_job(job, plan.units.len(), payload)        (the payload is the caller's)
//!             claim_backup_dir(source, dir, plan, options.with_run_id(job_run_id(job)))
//!   worker:   lease = queue.register(name, ttl); keep it alive
//!             while let Some(claim) = queue.claim(&lease, job):
//!                 run_claimed_unit(queue, &claim, source, dir, plan, options)
//!                 finish_backup_job(queue, job, dir, plan, options)   (None until every unit is done)
//! ```
//!
//! A claim's files are named with the job's run tag ([`job_run_id`]) and the claim's fencing
//! token, so a worker that lost its claim (frozen past its lease) never overwrites the files of
//! the claim that won the unit; its completion is refused, and it removes what it wrote. The
//! done record of each unit (sealed with the chain's codec: it names keys) is what the queue
//! holds; the manifest names exactly the files of those records, and the finisher sweeps every
//! other file of the plan (a fenced worker's that it could not remove itself).

use bytes::Bytes;

use crate::backup::commit::{commit, sweep, CommitChecks};
use crate::backup::lease::Heartbeat;
use crate::backup::plan::BackupPlan;
use crate::backup::resume::{decode_unit_record, encode_unit_record, UnitRecord};
use crate::backup::run::BackupOptions;
use crate::backup::unit::UnitWriter;
use crate::error::{Error, Result};
use crate::format::manifest::{sha256, Manifest};
use crate::kv::KvSource;
use crate::layout::{writer_record_path, writer_tag};
use crate::locality::Locations;
use crate::workqueue::{Claim, Completion, UnitState, WorkQueue};

/// The run id that names the files of job `job`'s claims: the job id itself when it is 1 to 16
/// lowercase hex digits or letters, else the first 16 hex digits of its SHA-256.
pub fn job_run_id(job: &str) -> String {
    let plain = !job.is_empty() && job.len() <= 16 && job.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if plain {
        job.to_string()
    } else {
        hex::encode(&sha256(job.as_bytes())[..8])
    }
}

/// Where the done record of `claim`'s unit is named (and written while the unit runs).
fn claim_record_path(plan: &BackupPlan, job: &str, unit: u32, token: u64) -> String {
    writer_record_path(plan.file_prefix(), unit as usize, &writer_tag(&job_run_id(job), token))
}

/// Exports the unit `claim` holds into `dir` — files named with the job's run id and the
/// claim's token — and completes it in `queue` with its done record, fenced by the token.
/// Answers [`Completion::Fenced`] when the claim was lost meanwhile (its lease ended, the unit was
/// claimed again): the files it wrote are removed then, and nothing of it is the backup's. On an
/// export error its files are removed too and the error returned (the claim stays until its lease
/// ends or it is claimed again). The caller keeps the lease alive meanwhile.
pub async fn run_claimed_unit(
    queue: &dyn WorkQueue,
    claim: &Claim,
    source: &dyn KvSource,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
) -> Result<Completion> {
    if claim.unit as usize >= plan.units.len() {
        return Err(Error::invalid(
            "claim",
            format!("unit {} is not in the plan ({} units)", claim.unit, plan.units.len()),
        ));
    }
    // The job's lease, where its creator claimed the directory (see `claim_backup_dir`).
    let run = job_run_id(&claim.job);
    let heartbeat =
        Heartbeat::new(dir.storage().clone(), &run, options.source_store.clone(), options.stale_after).joining();
    let writer = UnitWriter {
        source,
        dir,
        plan,
        options,
        unit: claim.unit as usize,
        tag: writer_tag(&job_run_id(&claim.job), claim.token),
        tally: None,
        heartbeat: Some(&heartbeat),
    };
    let record = match writer.export(None).await {
        Ok(record) => record,
        Err(e) => {
            let _ = writer.remove_own().await;
            return Err(e);
        }
    };
    let path = writer.record_path();
    let sealed = encode_unit_record(&record, &path, &options.codec);
    match queue.complete(claim, Bytes::from(sealed)).await? {
        Completion::Completed => Ok(Completion::Completed),
        Completion::Fenced => {
            writer.remove_own().await?;
            Ok(Completion::Fenced)
        }
    }
}

/// Writes the backup of job `job` if every one of its units is done: the manifest (create-only)
/// naming exactly the files of the units' done records (each checked stored with its recorded
/// size), then sweeps every other file of the plan (fenced claims') and its records. Returns
/// `None` while a unit is not done; the manifest when this call or an earlier one (of any
/// process) committed it. Recording the job's outcome (`WorkQueue::finish_job`) is the caller's.
pub async fn finish_backup_job(
    queue: &dyn WorkQueue,
    job: &str,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
) -> Result<Option<Manifest>> {
    let mut records: Vec<UnitRecord> = Vec::new();
    for (unit, state) in queue.units(job).await?.into_iter().enumerate() {
        let UnitState::Done { token, record } = state else { return Ok(None) };
        let path = claim_record_path(plan, job, unit as u32, token);
        let shown = format!("the done record of unit {unit} of job {job}");
        let record = decode_unit_record(record, &path, &options.codec, &shown)?;
        if record.plan != plan.id || record.unit as usize != unit {
            return Err(Error::corrupt(
                shown,
                format!("is not a record of unit {unit} of plan {}", plan.file_prefix()),
            ));
        }
        records.push(record);
    }
    if records.len() != plan.units.len() {
        return Err(Error::invalid(
            "backup job",
            format!("job {job} has {} units, its plan {}", records.len(), plan.units.len()),
        ));
    }
    match commit(dir, plan, options, &records, &job_run_id(job), &CommitChecks::default()).await {
        Ok(manifest) => Ok(Some(manifest)),
        Err(Error::AlreadyExists { .. }) => {
            // Another process finished first: its manifest is this job's.
            let manifest = crate::chain::read_manifest(dir.storage().as_ref(), &options.codec).await?;
            if manifest.end_time != plan.end_time {
                return Err(Error::exists("backup", format!("{} (of another plan)", dir.storage().describe())));
            }
            sweep(dir, plan, &manifest).await;
            Ok(Some(manifest))
        }
        Err(e) => Err(e),
    }
}
