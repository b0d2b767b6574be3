//! Running a backup plan in one process: a thin driver. It claims the backup directory (its
//! `BACKUP-PLAN`, create-only) or adopts the run of the same plan from the same source store
//! found there, hands the plan's units out through an in-memory [`WorkQueue`] to `concurrency`
//! local workers — the very path a shared job's workers take ([`crate::backup::job`]) — and
//! writes the manifest once every unit is done ([`crate::backup::commit`]).
//!
//! ```text
//!   BACKUP-PLAN (claim or adopt) ─▶ MemQueue job ─▶ claim ─▶ unit::export (files named by the
//!   run id and the claim's token) ─▶ complete ─▶ … every unit done ─▶ commit (create-only)
//! ```

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::backup::commit::{commit, CommitChecks};
use crate::backup::lease::{Heartbeat, DEFAULT_STALE_AFTER};
use crate::backup::plan::BackupPlan;
use crate::backup::resume::{
    best_records, encode_run_info, encode_unit_record, read_run, stored_run_info, RunInfo, UnitRecord,
    UNIT_RECORD_FORMAT,
};
use crate::backup::unit::{Tally, UnitWriter};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::datafile::DataFileOptions;
use crate::format::manifest::{sha256, Manifest};
use crate::kv::{KvSource, MvccFilter};
use crate::layout::{
    self, data_files_prefix, file_writer, record_writer, writer_record_path, writer_tag, CHECKPOINT_NAME,
    FILES_LIST_NAME, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
use crate::locality::Locations;
use crate::progress::{Cancel, ProgressReporter};
use crate::storage::{ExternalStorage, ExternalStorageExt};
use crate::workqueue::{MemQueue, UnitState, WorkQueue};
use futures::channel::oneshot;
use futures::future::{FutureExt, Shared};

/// How a backup runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BackupOptions {
    /// Work units exported at once.
    pub concurrency: usize,
    /// A data file is closed once it reaches about this many bytes.
    pub target_file_size: usize,
    /// Bytes a scan page holds.
    pub page_bytes: u64,
    /// Data file encoding.
    pub data_file: DataFileOptions,
    /// How files are stored: plain, or encrypted with the chain's data key.
    pub codec: FileCodec,
    /// Where progress is reported.
    pub progress: ProgressReporter,
    /// Stops the backup before its next page read once canceled.
    pub cancel: Cancel,
    /// Where finished data files are sealed (indexed, encrypted, hashed): inline by default.
    pub offload: crate::offload::Offload,
    /// The run's id, random (see [`crate::new_run_id`]): in the name of every file the run
    /// writes. `None`: one is derived from the plan and a counter of this process.
    pub run_id: Option<String>,
    /// The id of the source store (see [`crate::store_id`]), recorded with the run: a run from
    /// another store never adopts it.
    pub source_store: Option<String>,
    /// Whether the directory must be new: the run claims it create-only and fails clearly if
    /// another run (of another plan or store) claimed it first, instead of taking it over.
    pub new_directory: bool,
    /// How long a run may go without refreshing its lease (`leases/<run>`, which it refreshes
    /// about six times per this span as it reads its source) before any later run into the
    /// collection takes it for abandoned and removes its files; also how old a lease-less run of an older strata
    /// must be (by its plan's end time). Default [`crate::DEFAULT_STALE_AFTER`], 30 minutes.
    /// Measured with the source stores' clocks (`KvSource::now`): keep it far above their skew.
    /// See "Abandoned runs" in `layout`'s docs.
    pub stale_after: Duration,
    /// Whether the run commits only while its directory holds an `ENCRYPTION-INFO` (checked
    /// before and after the manifest is written): an encrypted full backup's, which another run
    /// may remove with an abandoned run's files. The executor sets it for such backups.
    pub require_encryption_info: bool,
    /// What must be done before the run commits: a new encrypted backup's `ENCRYPTION-INFO`,
    /// written while the run scans (the executor's overlap of the passphrase's derivation).
    pub(crate) commit_gate: Option<CommitGate>,
}

/// Waits for something the commit needs; its error fails the run before it commits.
#[derive(Clone)]
pub(crate) struct CommitGate(Shared<oneshot::Receiver<Result<()>>>);

impl CommitGate {
    /// A gate and what opens it (or fails the run, with an error; dropping it fails the run
    /// as canceled).
    pub(crate) fn new() -> (CommitGate, oneshot::Sender<Result<()>>) {
        let (tx, rx) = oneshot::channel();
        (CommitGate(rx.shared()), tx)
    }

    async fn wait(&self) -> Result<()> {
        self.0.clone().await.unwrap_or_else(|_| Err(Error::Cancelled("the backup's key files were not written".into())))
    }
}

impl std::fmt::Debug for CommitGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CommitGate")
    }
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            concurrency: 4,
            target_file_size: 8 << 20,
            page_bytes: 4 << 20,
            data_file: DataFileOptions::default(),
            codec: FileCodec::plain(),
            progress: Default::default(),
            cancel: Default::default(),
            offload: Default::default(),
            run_id: None,
            source_store: None,
            new_directory: false,
            stale_after: DEFAULT_STALE_AFTER,
            require_encryption_info: false,
            commit_gate: None,
        }
    }
}

impl BackupOptions {
    /// Sets where progress is reported.
    pub fn with_progress(mut self, progress: ProgressReporter) -> Self {
        self.progress = progress;
        self
    }
    /// Sets the signal that cancels the backup.
    pub fn with_cancel(mut self, cancel: Cancel) -> Self {
        self.cancel = cancel;
        self
    }
    /// Seals finished data files on `pool` while the next file is encoded.
    pub fn with_cpu_pool(mut self, pool: Arc<dyn crate::offload::CpuPool>) -> Self {
        self.offload = crate::offload::Offload::pool(pool);
        self
    }
    /// Sets the number of work units exported at once.
    pub fn with_concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets the size at which a data file is closed.
    pub fn with_target_file_size(mut self, bytes: usize) -> Self {
        self.target_file_size = bytes.max(1);
        self
    }
    /// Sets the bytes a scan page holds (files are closed at page boundaries).
    pub fn with_page_bytes(mut self, bytes: u64) -> Self {
        self.page_bytes = bytes.max(1);
        self
    }
    /// Sets how files are stored (plain, or encrypted with a chain's data key).
    pub fn with_codec(mut self, codec: FileCodec) -> Self {
        self.codec = codec;
        self
    }
    /// Sets the data file encoding.
    pub fn with_data_file(mut self, options: DataFileOptions) -> Self {
        self.data_file = options;
        self
    }
    /// Sets the run's id (see [`BackupOptions::run_id`]).
    pub fn with_run_id(mut self, run: impl Into<String>) -> Self {
        self.run_id = Some(run.into());
        self
    }
    /// Sets the source store's id (see [`BackupOptions::source_store`]).
    pub fn with_source_store(mut self, store: Option<String>) -> Self {
        self.source_store = store;
        self
    }
    /// Sets how long a run may go without refreshing its lease (see
    /// [`BackupOptions::stale_after`]; at least one second).
    pub fn with_stale_after(mut self, stale_after: Duration) -> Self {
        self.stale_after = stale_after.max(Duration::from_secs(1));
        self
    }
    /// Sets whether the run needs its directory's `ENCRYPTION-INFO` to commit (see
    /// [`BackupOptions::require_encryption_info`]).
    pub fn with_require_encryption_info(mut self, required: bool) -> Self {
        self.require_encryption_info = required;
        self
    }
    /// Makes the run wait for `gate` before it commits.
    pub(crate) fn with_commit_gate(mut self, gate: CommitGate) -> Self {
        self.commit_gate = Some(gate);
        self
    }
    /// Sets whether the directory must be new (see [`BackupOptions::new_directory`]).
    pub fn with_new_directory(mut self, new: bool) -> Self {
        self.new_directory = new;
        self
    }
}

/// Exports a planned backup into `dir` (a backup directory): data files under `data/` (each in
/// the location of its unit's locality, named with the run's id and its claim's token), then
/// `BACKUP-FILES` for an encrypted backup, `BACKUP_MANIFEST` (create-only: the commit point)
/// and its checksum, naming only files checked to be stored as they were hashed.
///
/// A run of the same plan from the same source store left unfinished in `dir` (by a killed
/// process, or still running) is adopted: finished units are not exported again, and a unit in
/// progress continues after its last stored file. A run of another plan or store is taken over
/// (its files removed first), or, with [`BackupOptions::new_directory`], refused with a clear
/// error. Fails if the directory already holds a backup. On failure the run's files are removed,
/// except those a manifest another run committed names. A run whose `BACKUP-PLAN` was replaced
/// by another plan's run, or whose adopted files were withdrawn, does not commit.
pub async fn run_backup(
    source: &dyn KvSource,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
) -> Result<Manifest> {
    let storage = dir.storage();
    if storage.size(MANIFEST_NAME).await.is_ok() {
        return Err(Error::exists("backup", storage.describe()));
    }
    if !plan.is_intact() {
        return Err(Error::invalid("backup plan", format!("its id {} does not match its content", plan.id)));
    }
    if plan.key_check != options.codec.key().map(|k| k.check_value()) {
        return Err(Error::invalid("backup plan", "it was made for another encryption key than the one given"));
    }
    check_gc_thresholds(source, plan).await?;
    let run = options.run_id.clone().unwrap_or_else(|| derived_run_id(plan));
    // The lease first: a directory with a plan and no lease is an older strata's run.
    let heartbeat = Heartbeat::new(dir.storage().clone(), &run, options.source_store.clone(), options.stale_after);
    heartbeat.start(source).await?;
    let adopted = match claim_dir(dir, plan, options, &run).await {
        Ok(adopted) => adopted,
        Err(e) => {
            heartbeat.release().await;
            return Err(e);
        }
    };
    match execute(source, dir, plan, options, &run, adopted, &heartbeat).await {
        Ok(manifest) => Ok(manifest),
        Err(e) => {
            give_up(dir, plan, options, &run).await;
            heartbeat.release().await;
            Err(e)
        }
    }
}

/// Claims `dir` for a backup of `plan` (read from `source`) run as a shared job
/// (`backup::job`): writes the job's lease (refreshed by its workers as they export
/// units: a job no worker works on for longer than [`BackupOptions::stale_after`] is taken for
/// abandoned by later runs into the collection) and its `BACKUP-PLAN` (create-only, with
/// `options`' source store and run id — give the job's, [`crate::job_run_id`]), so a
/// single-process run of another plan or store never takes the directory over, and one of the
/// same plan and store joins the job's work instead of redoing it. Succeeds if the directory
/// already holds this plan's claim from the same store (a creator retrying); with
/// [`BackupOptions::new_directory`], fails clearly if another run claimed it.
/// [`crate::finish_backup_job`] removes the claim (and the lease) once the manifest is written.
pub async fn claim_backup_dir(
    source: &dyn KvSource,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
) -> Result<()> {
    if !plan.is_intact() {
        return Err(Error::invalid("backup plan", format!("its id {} does not match its content", plan.id)));
    }
    let run = options.run_id.clone().ok_or_else(|| Error::invalid("backup job", "its run id is not set"))?;
    let heartbeat = Heartbeat::new(dir.storage().clone(), &run, options.source_store.clone(), options.stale_after);
    heartbeat.start(source).await?;
    if let Err(e) = claim_dir(dir, plan, options, &run).await {
        heartbeat.release().await;
        return Err(e);
    }
    Ok(())
}

/// Fails unless every task reads at or above the source's GC threshold.
async fn check_gc_thresholds(source: &dyn KvSource, plan: &BackupPlan) -> Result<()> {
    for task in &plan.tasks {
        let threshold = source.gc_threshold(&task.span).await?;
        let from_zero = task.start.is_zero() && task.filter == MvccFilter::Latest;
        let needed = if from_zero { task.end } else { task.start };
        if needed < threshold {
            let what = if plan.start_time.is_zero() { "this backup" } else { "an incremental backup" };
            return Err(Error::InvalidTime(format!(
                "cannot run {what}: it reads {} as of {needed}, below the GC threshold {threshold} \
                 (older versions were garbage collected); take a full backup instead",
                task.span
            )));
        }
    }
    Ok(())
}

/// A run id for callers that give none: unique in this process (a counter), mixed with the plan.
fn derived_run_id(plan: &BackupPlan) -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let mut seed = plan.id.as_bytes().to_vec();
    seed.extend_from_slice(&n.to_le_bytes());
    hex::encode(&sha256(&seed)[..8])
}

/// A new random run id (16 hex digits) from `entropy`.
pub fn new_run_id(entropy: &crate::crypto::Entropy) -> Result<String> {
    let mut bytes = [0u8; 8];
    entropy.fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Claims the directory for the run, or joins the run of the same plan and store found there:
/// returns the records to adopt (with their paths).
async fn claim_dir(
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
    run: &str,
) -> Result<Vec<(String, UnitRecord)>> {
    let storage = dir.storage().clone();
    let codec = &options.codec;
    let store = options.source_store.as_deref();
    let ours = RunInfo { plan: plan.clone(), store: options.source_store.clone(), run: run.to_string() };
    for _ in 0..3 {
        // A run that committed meanwhile removed its plan: its directory is a backup now.
        if storage.size(MANIFEST_NAME).await.is_ok() {
            return Err(Error::exists("backup", storage.describe()));
        }
        let Some(found) = read_run(storage.as_ref(), codec).await else {
            match storage.put_if_absent(PLAN_NAME, Bytes::from(encode_run_info(&ours, codec))).await {
                Ok(()) => return Ok(Vec::new()),
                // Another run claimed it just now: look again at what it is.
                Err(Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e),
            }
        };
        if found.plan.id == plan.id && found.same_store(store) {
            if !found.legacy {
                return Ok(found.records);
            }
            // A converted checkpoint of an older strata: its records in today's form first, so
            // that a run killed before its plan is written still finds the checkpoint.
            let tag = writer_tag(run, 0);
            let mut adopted = Vec::new();
            for record in found.units.iter().filter(|r| !r.files.is_empty() || r.done) {
                let path = writer_record_path(plan.file_prefix(), record.unit as usize, &tag);
                storage.put_volatile(&path, Bytes::from(encode_unit_record(record, &path, codec))).await?;
                adopted.push((path, record.clone()));
            }
            put_plan(storage.as_ref(), &ours, codec).await?;
            storage.delete(CHECKPOINT_NAME).await?;
            return Ok(adopted);
        }
        if options.new_directory {
            let whose = if found.same_store(store) { "another backup" } else { "a backup of another store" };
            return Err(Error::Precondition(format!(
                "{whose} is being written into {} (its run {} claimed it first): this one does not \
                 share it; run the backup again for a directory of its own",
                storage.describe(),
                if found.run.is_empty() { "of an older strata" } else { found.run.as_str() },
            )));
        }
        // A run of another plan or store (an earlier run with another end time, e.g. a paused
        // `BACKUP TO` job run again): its files are no backup and will not be used. Its plan
        // goes first, so that run, should it still be alive, sees it lost the directory before
        // or right after it commits; then, unless it committed, its files.
        storage.delete(PLAN_NAME).await?;
        if storage.size(MANIFEST_NAME).await.is_ok() {
            return Err(Error::exists("backup", storage.describe()));
        }
        for f in found.files() {
            dir.delete_everywhere(&f.path).await?;
        }
        layout::remove_run_files(dir, found.plan.file_prefix()).await?;
        storage.delete(CHECKPOINT_NAME).await?;
        put_plan(storage.as_ref(), &ours, codec).await?;
        return Ok(Vec::new());
    }
    Err(Error::Precondition(format!("backup runs keep replacing each other's plan in {}", storage.describe())))
}

async fn put_plan(storage: &dyn ExternalStorage, ours: &RunInfo, codec: &FileCodec) -> Result<()> {
    match storage.put_if_absent(PLAN_NAME, Bytes::from(encode_run_info(ours, codec))).await {
        Ok(()) => Ok(()),
        Err(Error::AlreadyExists { .. }) => Err(Error::Precondition(format!(
            "another backup run is using {}: wait for it to finish, or remove its {PLAN_NAME}",
            storage.describe()
        ))),
        Err(e) => Err(e),
    }
}

/// Runs every unit not done through an in-memory queue with `concurrency` local workers, then
/// commits.
async fn execute(
    source: &dyn KvSource,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
    run: &str,
    adopted: Vec<(String, UnitRecord)>,
    heartbeat: &Heartbeat,
) -> Result<Manifest> {
    let best = best_records(adopted.iter().map(|(_, r)| r));
    let mut from: Vec<Option<UnitRecord>> = vec![None; plan.units.len()];
    // The units' weights for the progress fraction: the source's estimates (asked only when
    // someone listens; an estimate that fails is unknown, it must not fail the backup).
    let mut estimates = vec![None; plan.units.len()];
    if options.progress.is_set() {
        for (estimate, unit) in estimates.iter_mut().zip(&plan.units) {
            *estimate = source.estimate_bytes(&unit.unit.span).await.ok().flatten();
        }
    }
    let tally = Tally::new(&estimates, options.progress.clone());
    // The records of other writers this run continues: they must outlive its commit.
    let own = format!("{run}-");
    let foreign = adopted
        .iter()
        .filter(|(path, r)| best.contains(r) && record_writer(path).is_some_and(|w| !w.starts_with(&own)))
        .map(|(path, _)| path.clone())
        .collect();
    for r in best {
        let i = r.unit as usize;
        tally.adopt(i, &r.files, r.done);
        from[i] = Some(r);
    }
    tally.report();
    let queue = MemQueue::new();
    queue.create_job(run, plan.units.len() as u32, Bytes::new()).await?;
    let lease = queue.register(&format!("run {run}"), 60).await?;
    let worker = || async {
        while let Some(claim) = queue.claim(&lease, run).await? {
            let start = from[claim.unit as usize].clone();
            let record = match start {
                Some(done) if done.done => done,
                start => {
                    let writer = UnitWriter {
                        source,
                        dir,
                        plan,
                        options,
                        unit: claim.unit as usize,
                        tag: writer_tag(run, claim.token),
                        tally: Some(&tally),
                        heartbeat: Some(heartbeat),
                    };
                    writer.export(start).await?
                }
            };
            queue.complete(&claim, Bytes::from(UNIT_RECORD_FORMAT.encode(&record))).await?;
        }
        Ok::<(), Error>(())
    };
    futures::future::try_join_all((0..options.concurrency.max(1)).map(|_| worker())).await?;
    let mut records = Vec::new();
    for state in queue.units(run).await? {
        match state {
            UnitState::Done { record, .. } => records.push(UNIT_RECORD_FORMAT.decode(&record, "a unit record")?),
            other => return Err(Error::Precondition(format!("a unit is not done after the run: {other:?}"))),
        }
    }
    let checks = CommitChecks { owner: Some((plan.id.clone(), String::new())), adopted: foreign };
    if let Some(gate) = &options.commit_gate {
        gate.wait().await?;
    }
    commit(dir, plan, options, &records, run, &checks).await
}

/// After a failed run: withdraws its records, then removes its files, keeping those a manifest
/// that another run committed names. When the directory is still this plan's, the whole run
/// goes (the plan's every record and file: a failed backup leaves nothing), the plan first so
/// that any other runner of it sees it gone before its files go. Best effort.
async fn give_up(dir: &Locations, plan: &BackupPlan, options: &BackupOptions, run: &str) {
    let storage = dir.storage();
    let prefix = plan.file_prefix();
    let own = format!("{run}-");
    let ours = stored_run_info(storage.as_ref(), &options.codec).await.is_some_and(|i| i.plan.id == plan.id);
    if let Ok(listed) = storage.list(&format!("{PROGRESS_DIR}/{prefix}-")).await {
        for o in listed {
            if ours || record_writer(&o.path).is_some_and(|w| w.starts_with(&own)) {
                let _ = storage.delete(&o.path).await;
            }
        }
    }
    if ours {
        let _ = storage.delete(PLAN_NAME).await;
        let _ = storage.delete(CHECKPOINT_NAME).await;
    }
    // A manifest that appeared meanwhile (another run of the plan committed) names files this
    // run may have written or adopted: those stay.
    let committed = match storage.size(MANIFEST_NAME).await {
        Ok(_) => match committed_files(storage.as_ref(), &options.codec).await {
            Some(named) => Some(named),
            None => return,
        },
        Err(_) => None,
    };
    for location in dir.all() {
        let Ok(listed) = location.list(&data_files_prefix(prefix)).await else { continue };
        for o in listed {
            let mine = file_writer(&o.path).is_some_and(|w| w.starts_with(&own));
            let named = committed.as_ref().is_some_and(|n| n.contains(&o.path));
            if (mine || (ours && committed.is_none())) && !named {
                let _ = location.delete(&o.path).await;
            }
        }
    }
    if ours && committed.is_none() {
        let _ = storage.delete(MANIFEST_CHECKSUM_NAME).await;
        if options.codec.is_encrypted() {
            let _ = storage.delete(FILES_LIST_NAME).await;
        }
    }
}

/// The paths a stored manifest names (read without its checksum, which may not be written
/// yet); `None` if it cannot be read.
async fn committed_files(storage: &dyn ExternalStorage, codec: &FileCodec) -> Option<BTreeSet<String>> {
    let shown = format!("{}/{MANIFEST_NAME}", storage.describe());
    let stored = storage.get(MANIFEST_NAME).await.ok()?;
    let bytes = if codec.is_encrypted() { codec.open(MANIFEST_NAME, stored, &shown).ok()? } else { stored };
    let manifest = Manifest::decode(&bytes, &shown).ok()?;
    Some(manifest.files.into_iter().map(|f| f.path).collect())
}
