//! Running a backup plan: a thin driver. Given a plan, a source, the backup directory and the
//! records of finished units (see [`crate::backup::resume`]), it exports what is not finished,
//! then writes the manifest last.
//!
//! ```text
//!   plan.units ──(not done)──▶ export_unit: scan pages ─▶ DataFileWriter ─▶ seal (CpuPool) ─▶ put
//!                                        │ each stored file updates its unit's done record
//!   every unit done ──▶ BACKUP-FILES (encrypted) ─▶ BACKUP_MANIFEST (create-only) ─▶ checksum
//! ```

use std::sync::Arc;

use bytes::Bytes;
use futures::future::maybe_done;
use futures::stream::{self, StreamExt, TryStreamExt};

use crate::backup::plan::{BackupPlan, ExportTask};
use crate::backup::resume::{encode_plan, encode_unit_record, read_run, stored_plan_id, UnitRecord};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::datafile::{DataFileOptions, DataFileWriter};
use crate::format::manifest::{manifest_checksum, sha256, FileInfo, Manifest};
use crate::kv::{KvSource, MvccFilter, ScanPage, ScanRequest};
use crate::layout::{
    self, data_file_path, unit_record_path, CHECKPOINT_NAME, FILES_LIST_NAME, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME,
    PLAN_NAME, PROGRESS_DIR,
};
use crate::locality::Locations;
use crate::progress::{Cancel, Progress, ProgressOperation, ProgressReporter};
use crate::span::Span;
use crate::stage::{output, settle, start};
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;

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
}

/// Exports a planned backup into `dir` (a backup directory): data files under `data/` (each in
/// the location of its unit's locality), then `BACKUP-FILES` for an encrypted backup,
/// `BACKUP_MANIFEST` (create-only: the commit point) and its checksum. A run of the same plan
/// left unfinished in `dir` (by a killed process) is resumed: finished units are not exported
/// again, and a unit in progress continues after its last stored file. Fails if the directory
/// already holds a backup. On failure the files this run wrote are removed, unless a manifest
/// appeared meanwhile (another run of the same plan committed: its files have these names).
/// A run whose `BACKUP-PLAN` was replaced by another plan's run does not commit.
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
    let runner = Runner::start(dir, plan, &options.codec, &options.progress).await?;
    match write_backup(source, dir, plan, options, &runner).await {
        Ok(manifest) => {
            runner.clear().await;
            Ok(manifest)
        }
        // Another backup of the same plan finished first: its manifest names files of the same
        // names and contents, so nothing of ours may be removed.
        Err(e @ Error::AlreadyExists { .. }) => Err(e),
        Err(e) => {
            // Another run of the same plan may have committed meanwhile: its manifest names
            // files of the very names this run wrote, so nothing may be removed.
            if storage.size(MANIFEST_NAME).await.is_ok() {
                runner.clear_own_records().await;
                return Err(e);
            }
            // Best effort: without a manifest these files are not a backup either way.
            for path in runner.written.lock().await.iter() {
                let _ = dir.delete_everywhere(path).await;
            }
            if !runner.owns_dir().await {
                // A run of another plan took the directory over: its plan and records stay.
                runner.clear_own_records().await;
                return Err(e);
            }
            runner.clear().await;
            let _ = storage.delete(MANIFEST_CHECKSUM_NAME).await;
            if options.codec.is_encrypted() {
                let _ = storage.delete(FILES_LIST_NAME).await;
            }
            Err(e)
        }
    }
}

/// What a run's progress reports count.
#[derive(Debug, Clone, Copy, Default)]
struct Counted {
    units_done: usize,
    rows: u64,
    bytes: u64,
    storage_bytes: u64,
    files: u64,
}

impl Counted {
    fn add(&mut self, f: &FileInfo) {
        self.rows += f.rows;
        self.bytes += f.logical_bytes;
        self.storage_bytes += f.size;
        self.files += 1;
    }
}

/// The state of a run: its plan's done records, kept in memory and written to the backup
/// directory as work finishes (each unit's record by that unit's export only).
struct Runner {
    storage: Arc<dyn ExternalStorage>,
    codec: FileCodec,
    plan_id: String,
    prefix: String,
    units: Vec<futures::lock::Mutex<UnitRecord>>,
    /// Paths of every data file the run's records name (to remove if it fails).
    written: futures::lock::Mutex<Vec<String>>,
    progress: ProgressReporter,
    /// For progress reports: units done, and the files stored so far.
    counted: std::sync::Mutex<Counted>,
}

impl Runner {
    /// Adopts the directory's run of this very plan (its records; a legacy checkpoint is
    /// converted), or removes what a run of another plan left, then writes this plan.
    async fn start(
        dir: &Locations,
        plan: &BackupPlan,
        codec: &FileCodec,
        progress: &ProgressReporter,
    ) -> Result<Runner> {
        let storage = dir.storage().clone();
        let mut records: Vec<UnitRecord> = plan
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| UnitRecord {
                plan: plan.id.clone(),
                unit: i as u32,
                files: Vec::new(),
                next_key: u.unit.span.start.clone(),
                done: false,
            })
            .collect();
        let mut adopted = false;
        let mut legacy = false;
        let mut stale = None;
        if let Some(found) = read_run(storage.as_ref(), codec).await {
            if found.plan.id == plan.id {
                legacy = found.legacy;
                for r in found.units {
                    let i = r.unit as usize;
                    records[i] = r;
                }
                adopted = !legacy;
            } else {
                // A run of another plan (an earlier run with another end time, e.g. a paused
                // `BACKUP TO` job run again): its files are no backup and will not be used. Its
                // plan goes first, so that run, should it still be alive, sees it lost the
                // directory before it commits (see `owns_dir`); its files once ours is written.
                storage.delete(PLAN_NAME).await?;
                stale = Some(found);
            }
        }
        let runner = Runner {
            storage: storage.clone(),
            codec: codec.clone(),
            plan_id: plan.id.clone(),
            prefix: plan.file_prefix().to_string(),
            units: Vec::new(),
            written: futures::lock::Mutex::new(Vec::new()),
            progress: progress.clone(),
            counted: std::sync::Mutex::new(Counted::default()),
        };
        if legacy {
            // A converted checkpoint of an older strata: its records in today's form first, so
            // that a run killed before its plan is written still finds the checkpoint.
            for (i, record) in records.iter().enumerate() {
                if !record.files.is_empty() || record.done {
                    runner.write(i, record).await?;
                }
            }
        }
        if !adopted {
            match storage.put_if_absent(PLAN_NAME, Bytes::from(encode_plan(plan, codec))).await {
                Ok(()) => {}
                Err(Error::AlreadyExists { .. }) => {
                    return Err(Error::Precondition(format!(
                        "another backup run is using {}: wait for it to finish, or remove its {PLAN_NAME}",
                        storage.describe()
                    )))
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(found) = stale {
            for f in found.files() {
                dir.delete_everywhere(&f.path).await?;
            }
            layout::remove_run_files(dir, found.plan.file_prefix()).await?;
            storage.delete(CHECKPOINT_NAME).await?;
        }
        let files = || records.iter().flat_map(|r| r.files.iter());
        let written = files().map(|f| f.path.clone()).collect();
        let mut counted = Counted { units_done: records.iter().filter(|r| r.done).count(), ..Counted::default() };
        files().for_each(|f| counted.add(f));
        let runner = Runner {
            units: records.into_iter().map(futures::lock::Mutex::new).collect(),
            written: futures::lock::Mutex::new(written),
            counted: std::sync::Mutex::new(counted),
            ..runner
        };
        if legacy {
            runner.storage.delete(CHECKPOINT_NAME).await?;
        }
        runner.report();
        Ok(runner)
    }

    fn report(&self) {
        if self.progress.is_set() {
            let c = *self.counted.lock().expect("progress lock");
            let total = self.units.len();
            let fraction = if total == 0 { 1.0 } else { c.units_done as f64 / total as f64 };
            self.progress.report(&Progress {
                operation: ProgressOperation::Backup,
                fraction,
                bytes: c.bytes,
                rows: c.rows,
                storage_bytes: c.storage_bytes,
                files: c.files,
            });
        }
    }

    async fn write(&self, i: usize, record: &UnitRecord) -> Result<()> {
        let path = unit_record_path(&self.prefix, i);
        // A record lost in a crash costs only redone work: it is not synced to disk.
        self.storage.put_volatile(&path, Bytes::from(encode_unit_record(record, &path, &self.codec))).await
    }

    /// Unit `i`'s progress: (finished files, where the rest starts, done).
    async fn unit(&self, i: usize) -> (Vec<FileInfo>, Vec<u8>, bool) {
        let r = self.units[i].lock().await;
        (r.files.clone(), r.next_key.clone(), r.done)
    }

    /// Records a stored file of unit `i` (the rest of the unit starts at `next_key`), and
    /// whether it was the unit's last: one write of the unit's record.
    async fn file_done(&self, i: usize, info: &FileInfo, next_key: &[u8], unit_done: bool) -> Result<()> {
        let mut r = self.units[i].lock().await;
        r.files.push(info.clone());
        r.next_key = next_key.to_vec();
        r.done = unit_done;
        self.write(i, &r).await?;
        {
            let mut counted = self.counted.lock().expect("progress lock");
            counted.units_done += usize::from(unit_done);
            counted.add(info);
        }
        self.report();
        Ok(())
    }

    /// Records that unit `i` is finished (a unit whose last file was recorded before it knew).
    async fn unit_done(&self, i: usize) -> Result<()> {
        let mut r = self.units[i].lock().await;
        r.done = true;
        self.write(i, &r).await?;
        self.counted.lock().expect("progress lock").units_done += 1;
        self.report();
        Ok(())
    }

    /// Whether the directory's `BACKUP-PLAN` is still this run's plan (a run of another plan
    /// takes over a directory whose run it believes dead).
    async fn owns_dir(&self) -> bool {
        stored_plan_id(self.storage.as_ref(), &self.codec).await.as_deref() == Some(self.plan_id.as_str())
    }

    /// Removes the plan and every done record of the run (best effort).
    async fn clear(&self) {
        let _ = layout::remove_records(self.storage.as_ref(), &self.prefix).await;
    }

    /// Removes the done records of this run only (best effort): the plan file is another's.
    async fn clear_own_records(&self) {
        if let Ok(listed) = self.storage.list(&format!("{PROGRESS_DIR}/{}-", self.prefix)).await {
            for o in listed {
                let _ = self.storage.delete(&o.path).await;
            }
        }
    }
}

async fn write_backup(
    source: &dyn KvSource,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
    runner: &Runner,
) -> Result<Manifest> {
    let storage = dir.storage();
    let files: Vec<Vec<FileInfo>> = stream::iter(0..plan.units.len())
        .map(|i| export_unit(source, dir, plan, options, i, runner))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    let mut files: Vec<FileInfo> = files.into_iter().flatten().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    let manifest = Manifest {
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
    };
    // A run of another plan that took the directory over (believing this run dead) removes this
    // run's files: such a run must not commit.
    if !runner.owns_dir().await {
        return Err(Error::Precondition(format!(
            "another backup run took over {} while this one ran: this run's files may be gone, so it does not commit",
            storage.describe()
        )));
    }
    if options.codec.is_encrypted() {
        // The data files' stored sizes and digests in plaintext, for checks without the key.
        storage.put(FILES_LIST_NAME, Bytes::from(crate::verify::encode_files_list(&manifest))).await?;
    }
    let bytes = options.codec.seal(MANIFEST_NAME, manifest.encode());
    let checksum = manifest_checksum(&bytes);
    // The manifest is the commit point: written once, only if no other backup wrote one first.
    // Its checksum follows (CockroachDB's order); a reader refuses a manifest without one.
    storage.put_if_absent(MANIFEST_NAME, Bytes::from(bytes)).await?;
    if let Err(e) = storage.put(MANIFEST_CHECKSUM_NAME, Bytes::from(checksum)).await {
        // Take the commit back: a manifest without its checksum is refused by readers anyway.
        let _ = storage.delete(MANIFEST_NAME).await;
        return Err(e);
    }
    Ok(manifest)
}

async fn export_unit(
    source: &dyn KvSource,
    dir: &Locations,
    plan: &BackupPlan,
    options: &BackupOptions,
    unit_index: usize,
    runner: &Runner,
) -> Result<Vec<FileInfo>> {
    let planned = &plan.units[unit_index];
    let (task, unit): (&ExportTask, _) = (&plan.tasks[planned.task as usize], &planned.unit);
    // A resumed backup keeps the unit's finished files and continues after them.
    let (mut files, next_key, done) = runner.unit(unit_index).await;
    if done {
        return Ok(files);
    }
    // A locality-aware backup writes the unit's files to the location of its locality.
    let (storage, locality) = dir.route(unit.locality.as_deref());
    let mut request = ScanRequest::new(unit.span.clone(), task.start, task.end, task.filter);
    request.span.start = next_key.clone();
    request.target_bytes = options.page_bytes;
    let mut writer = DataFileWriter::new(options.data_file.clone());
    let mut file_start = next_key;
    // Changes since a previous layer come from the source's change index when it has one.
    let use_changes = !task.start.is_zero();
    // The pipeline of one unit, each stage bounded to one item: the source reads page n+1 while
    // page n is encoded, and file k uploads while file k+1 is encoded. A source or storage that
    // works on other threads (the native ones do) thus overlaps reading, encoding (compressing,
    // encrypting, hashing) and uploading; one that works in `poll` runs them in turn.
    let mut reading = Box::pin(maybe_done(next_page(source, request.clone(), use_changes, &options.cancel)));
    let mut uploading = None;
    loop {
        let (page, use_changes) = match output(reading.as_mut()).await {
            Ok(read) => read,
            Err(e) => {
                // Let an upload in flight end before the caller deletes what was written, so no
                // file lands after that cleanup.
                let _ = settle(&mut uploading).await;
                return Err(e);
            }
        };
        let last = page.resume_key.is_none();
        if let Some(k) = &page.resume_key {
            request.span.start.clone_from(k);
            reading.set(maybe_done(next_page(source, request.clone(), use_changes, &options.cancel)));
            start(reading.as_mut()).await;
        }
        for e in &page.entries {
            if task.drop_tombstones && e.value.is_none() {
                continue;
            }
            writer.add(&e.key, e.ts, e.value.as_deref());
        }
        // Move the file in flight along: a file sealed on a CPU pool starts uploading now.
        if let Some(upload) = uploading.as_mut() {
            start(upload.as_mut()).await;
        }
        // Whether this page's file is the unit's last (its done record records the unit done).
        let mut last_file = false;
        if writer.entries() > 0 && (last || writer.estimated_size() >= options.target_file_size) {
            last_file = last;
            let file_end = page.resume_key.clone().unwrap_or_else(|| unit.span.end.clone());
            let full = std::mem::replace(&mut writer, DataFileWriter::new(options.data_file.clone()));
            let path = data_file_path(&runner.prefix, unit_index, files.len() + usize::from(uploading.is_some()));
            let span = Span::new(std::mem::replace(&mut file_start, file_end.clone()), file_end);
            let file = FileToSeal { path: path.clone(), span, writer: full, locality: locality.clone() };
            // One file sealing or uploading at a time: the previous file must be stored (and
            // checkpointed, in order) before this one starts.
            let upload = upload_file(&storage, runner, options, unit_index, file, file_start.clone(), last);
            if let Some(mut previous) = uploading.replace(Box::pin(maybe_done(upload))) {
                files.push(output(previous.as_mut()).await?);
            }
            runner.written.lock().await.push(path);
            if let Some(upload) = uploading.as_mut() {
                start(upload.as_mut()).await;
            }
        }
        if last {
            if let Some(info) = settle(&mut uploading).await {
                files.push(info?);
            }
            if !last_file {
                runner.unit_done(unit_index).await?;
            }
            return Ok(files);
        }
    }
}

/// A data file whose entries are all added.
struct FileToSeal {
    path: String,
    span: Span,
    writer: DataFileWriter,
    locality: Option<String>,
}

/// Seals one finished data file (index and footer, encryption, hash; on the options' CPU pool if
/// any), stores it and records it in the checkpoint (with `unit_done` when it is its unit's
/// last); returns its entry.
async fn upload_file(
    storage: &Arc<dyn ExternalStorage>,
    runner: &Runner,
    options: &BackupOptions,
    unit_index: usize,
    file: FileToSeal,
    next_key: Vec<u8>,
    unit_done: bool,
) -> Result<FileInfo> {
    let FileToSeal { path, span, writer, locality } = file;
    let (codec, sealed_path) = (options.codec.clone(), path.clone());
    let (bytes, stats, digest) = options
        .offload
        .run(move || {
            let (bytes, stats) = writer.finish();
            let bytes = codec.seal(&sealed_path, bytes);
            let digest = sha256(&bytes);
            (bytes, stats, digest)
        })
        .await?;
    let info = FileInfo {
        path,
        span,
        size: bytes.len() as u64,
        sha256: digest,
        entries: stats.entries,
        rows: stats.rows,
        logical_bytes: stats.logical_bytes,
        locality,
    };
    storage.put(&info.path, Bytes::from(bytes)).await?;
    runner.file_done(unit_index, &info, &next_key, unit_done).await?;
    Ok(info)
}

/// The next page of a unit's scan, and whether to keep reading from the change index: a source
/// without one answers `None` once, and the unit falls back to full scans. Fails instead once
/// the backup is canceled.
async fn next_page(
    source: &dyn KvSource,
    request: ScanRequest,
    use_changes: bool,
    cancel: &Cancel,
) -> Result<(ScanPage, bool)> {
    cancel.check()?;
    if use_changes {
        if let Some(page) = source.scan_changes(request.clone()).await? {
            return Ok((page, true));
        }
    }
    Ok((source.scan(request).await?, false))
}
