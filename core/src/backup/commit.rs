//! Finishing a backup once every unit is done: the one way a manifest is written, whether by a
//! single-process run or by whichever worker of a shared job sees every unit done.
//!
//! ```text
//!   done records ─▶ HEAD every file (size = what was hashed) ─▶ BACKUP-FILES (encrypted)
//!     ─▶ BACKUP_MANIFEST (create-only: the commit point) ─▶ checksum
//!     ─▶ the run's checks after the commit (else it is taken back)
//!     ─▶ sweep: every other data file of the plan (fenced claims', killed uploads'), the records,
//!        the leases
//! ```

use bytes::Bytes;

use crate::backup::plan::BackupPlan;
use crate::backup::resume::{stored_run_info, UnitRecord};
use crate::backup::run::BackupOptions;
use crate::backup::unit::check_stored;
use crate::error::{Error, Result, Status};
use crate::format::manifest::{manifest_checksum, FileInfo, Manifest, Origin};
use crate::layout::{
    data_files_prefix, CHECKPOINT_NAME, ENCRYPTION_INFO_NAME, FILES_LIST_NAME, LEASES_DIR, MANIFEST_CHECKSUM_NAME,
    MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
use crate::locality::Locations;
use crate::storage::ExternalStorageExt;

/// What a committing run checks right after its manifest landed; if any fails, it takes the
/// commit back (a reader never trusts a manifest without its checksum, and the checksum is
/// written last).
#[derive(Debug, Clone, Default)]
pub(crate) struct CommitChecks {
    /// The id of the run whose `BACKUP-PLAN` must still be the directory's (a run of another
    /// plan may have taken the directory over, and removed files meanwhile).
    pub(crate) owner: Option<(String, String)>,
    /// The records of other writers whose files the run adopted: they must still be there (a
    /// failing run withdraws its record before it removes its files).
    pub(crate) adopted: Vec<String>,
}

/// The manifest of `plan` naming `files`, written by run `run` from store `store`.
fn manifest_of(plan: &BackupPlan, mut files: Vec<FileInfo>, origin: Origin) -> Manifest {
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Manifest {
        created_by: format!("strata {}", env!("CARGO_PKG_VERSION")),
        start_time: plan.start_time,
        end_time: plan.end_time,
        mvcc_filter: plan.mvcc_filter,
        scope: plan.scope.clone(),
        is_full_cluster: plan.is_full_cluster,
        spans: plan.spans.clone(),
        introduced_spans: plan.introduced_spans.clone(),
        descriptors: plan.descriptors.clone(),
        descriptor_changes: plan.descriptor_changes.clone(),
        files,
        dependencies: plan.dependencies.clone(),
        statement: plan.statement.clone(),
        revision_start_time: plan.revision_start_time,
        origin: Some(origin),
    }
}

/// Whether the checks after a commit hold: the directory is still the run's, and every adopted
/// file's writer record is still there. An error names what failed.
async fn still_valid(dir: &Locations, plan: &BackupPlan, options: &BackupOptions, checks: &CommitChecks) -> Result<()> {
    let storage = dir.storage();
    if let Some((plan_id, run)) = &checks.owner {
        let info = stored_run_info(storage.as_ref(), &options.codec).await;
        if !info.is_some_and(|i| &i.plan.id == plan_id && (i.run.is_empty() || run.is_empty() || &i.run == run)) {
            return Err(Error::Precondition(format!(
                "another backup run took over {} while this one ran: this run's files may be gone, so it does not commit",
                storage.describe()
            )));
        }
    }
    if options.require_encryption_info && storage.size(ENCRYPTION_INFO_NAME).await.is_err() {
        return Err(Error::Precondition(format!(
            "{}/{ENCRYPTION_INFO_NAME} is gone (removed with an abandoned run's files?): this encrypted backup \
             could not be opened, so it does not commit; run the backup again",
            storage.describe()
        )));
    }
    for record in &checks.adopted {
        if storage.size(record).await.is_err() {
            return Err(Error::Storage {
                path: format!("{}/{record}", storage.describe()),
                message: format!(
                    "the run that wrote its files (of plan {}) withdrew them while this run committed; \
                     run the backup again",
                    plan.file_prefix()
                ),
                status: Status::Temporary,
            });
        }
    }
    Ok(())
}

/// Writes the manifest of `plan` naming the files of `records` (one done record per unit) into
/// `dir` (its origin: `options`' source store and run `run`), each file first checked to be stored with the size that was hashed. The manifest is
/// written create-only: [`Error::AlreadyExists`] if another run committed first. Then `checks`;
/// if they fail the commit is taken back. On success, sweeps what the backup does not name.
pub(crate) async fn commit(
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
    records: &[UnitRecord],
    run: &str,
    checks: &CommitChecks,
) -> Result<Manifest> {
    let storage = dir.storage();
    if records.len() != plan.units.len() || records.iter().enumerate().any(|(i, r)| !r.done || r.unit as usize != i) {
        return Err(Error::Precondition(format!(
            "the backup at {} cannot be committed: not every unit of its plan is done",
            storage.describe()
        )));
    }
    let files: Vec<FileInfo> = records.iter().flat_map(|r| r.files.iter().cloned()).collect();
    still_valid(dir, plan, options, checks).await?;
    for f in &files {
        check_stored(dir.for_file(f)?.as_ref(), f).await?;
    }
    let origin = Origin { store: options.source_store.clone(), run: run.to_string() };
    let manifest = manifest_of(plan, files, origin);
    if options.codec.is_encrypted() {
        // The data files' stored sizes and digests in plaintext, for checks without the key.
        storage.put(FILES_LIST_NAME, Bytes::from(crate::verify::encode_files_list(&manifest))).await?;
    }
    let bytes = options.codec.seal(MANIFEST_NAME, manifest.encode());
    let checksum = manifest_checksum(&bytes);
    // The manifest is the commit point: written once, only if no other backup wrote one first.
    storage.put_if_absent(MANIFEST_NAME, Bytes::from(bytes)).await?;
    // What this run checked before may have changed while it committed: check again, after.
    if let Err(e) = still_valid(dir, plan, options, checks).await {
        let _ = storage.delete(MANIFEST_NAME).await;
        return Err(e);
    }
    // Its checksum follows (CockroachDB's order); a reader refuses a manifest without one.
    if let Err(e) = storage.put(MANIFEST_CHECKSUM_NAME, Bytes::from(checksum)).await {
        // Take the commit back: a manifest without its checksum is refused by readers anyway.
        let _ = storage.delete(MANIFEST_NAME).await;
        return Err(e);
    }
    sweep(dir, plan, &manifest).await;
    Ok(manifest)
}

/// After a commit, removes (best effort) what the backup does not name: data files of the
/// plan's prefix that are not in `manifest` (files of fenced claims, of withdrawn or superseded
/// writers), in every location; the plan's records; its `BACKUP-PLAN` and a legacy checkpoint.
pub(crate) async fn sweep(dir: &Locations, plan: &BackupPlan, manifest: &Manifest) {
    let named: std::collections::BTreeSet<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    for location in dir.all() {
        let Ok(listed) = location.list(&data_files_prefix(plan.file_prefix())).await else { continue };
        for o in listed.iter().filter(|o| !named.contains(o.path.as_str())) {
            let _ = location.delete(&o.path).await;
        }
    }
    let storage = dir.storage();
    if let Ok(listed) = storage.list(&format!("{PROGRESS_DIR}/{}-", plan.file_prefix())).await {
        for o in listed {
            let _ = storage.delete(&o.path).await;
        }
    }
    let _ = storage.delete(PLAN_NAME).await;
    let _ = storage.delete(CHECKPOINT_NAME).await;
    // The directory is a backup now: no run's lease is needed in it any more.
    if let Ok(listed) = storage.list(&format!("{LEASES_DIR}/")).await {
        for o in listed {
            let _ = storage.delete(&o.path).await;
        }
    }
}
