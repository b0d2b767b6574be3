//! Running one work unit of a plan: the one way a unit is exported, whether by a single-process
//! run ([`crate::run_backup`]) or by a worker holding a claim of a shared job
//! ([`crate::run_claimed_unit`]).
//!
//! ```text
//!   unit ─▶ scan pages ─▶ DataFileWriter ─▶ seal (CpuPool) ─▶ put data/<plan>-<unit>-<writer>-<seq>.sst
//!                                             │ HEAD: the stored size is the size hashed
//!                                             └─▶ put progress/<plan>-<unit>-<writer> (the writer's record)
//! ```
//!
//! Every name carries the writer's tag (its run's id and its claim's fencing token), so two runs,
//! or a worker that lost its claim and the one that won it, never write the same file.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::maybe_done;

use crate::backup::lease::Heartbeat;
use crate::backup::plan::{BackupPlan, ExportTask};
use crate::backup::resume::{encode_unit_record, UnitRecord};
use crate::backup::run::BackupOptions;
use crate::error::{Error, Result, Status};
use crate::format::datafile::DataFileWriter;
use crate::format::manifest::{sha256, FileInfo};
use crate::kv::{KvSource, ScanPage, ScanRequest};
use crate::layout::{writer_data_file_path, writer_files_prefix, writer_record_path};
use crate::locality::Locations;
use crate::progress::{Cancel, Progress, ProgressOperation, ProgressReporter};
use crate::span::Span;
use crate::stage::{output, settle, start};
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;

/// What a run's progress reports count.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counted {
    pub(crate) units_done: usize,
    rows: u64,
    bytes: u64,
    storage_bytes: u64,
    files: u64,
}

impl Counted {
    pub(crate) fn add(&mut self, f: &FileInfo) {
        self.rows += f.rows;
        self.bytes += f.logical_bytes;
        self.storage_bytes += f.size;
        self.files += 1;
    }
}

/// A run's progress: what is counted so far, reported as it grows.
pub(crate) struct Tally {
    counted: std::sync::Mutex<Counted>,
    total: usize,
    progress: ProgressReporter,
}

impl Tally {
    pub(crate) fn new(counted: Counted, total: usize, progress: ProgressReporter) -> Tally {
        Tally { counted: std::sync::Mutex::new(counted), total, progress }
    }

    pub(crate) fn file(&self, info: &FileInfo, unit_done: bool) {
        {
            let mut c = self.counted.lock().unwrap_or_else(|e| e.into_inner());
            c.units_done += usize::from(unit_done);
            c.add(info);
        }
        self.report();
    }

    pub(crate) fn unit_done(&self) {
        self.counted.lock().unwrap_or_else(|e| e.into_inner()).units_done += 1;
        self.report();
    }

    pub(crate) fn report(&self) {
        if self.progress.is_set() {
            let c = *self.counted.lock().unwrap_or_else(|e| e.into_inner());
            let fraction = if self.total == 0 { 1.0 } else { c.units_done as f64 / self.total as f64 };
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
}

/// One writer of one unit: what it exports and where, under which tag.
pub(crate) struct UnitWriter<'a> {
    pub(crate) source: &'a dyn KvSource,
    pub(crate) dir: &'a Locations,
    pub(crate) plan: &'a BackupPlan,
    pub(crate) options: &'a BackupOptions,
    pub(crate) unit: usize,
    /// The writer's tag (see [`crate::layout::writer_tag`]).
    pub(crate) tag: String,
    pub(crate) tally: Option<&'a Tally>,
    /// The run's lease, refreshed as pages are read (see [`crate::backup::lease`]).
    pub(crate) heartbeat: Option<&'a Heartbeat>,
}

impl UnitWriter<'_> {
    /// Where this writer's record of the unit is.
    pub(crate) fn record_path(&self) -> String {
        writer_record_path(self.plan.file_prefix(), self.unit, &self.tag)
    }

    async fn write_record(&self, record: &UnitRecord) -> Result<()> {
        let path = self.record_path();
        let bytes = encode_unit_record(record, &path, &self.options.codec);
        // A record lost in a crash costs only redone work: it is not synced to disk.
        self.dir.storage().put_volatile(&path, Bytes::from(bytes)).await
    }

    /// Removes everything this writer wrote: its record first (so a run that adopted its files
    /// sees them withdrawn before they go), then its data files in every location.
    pub(crate) async fn remove_own(&self) -> Result<()> {
        self.dir.storage().delete(&self.record_path()).await?;
        let prefix = writer_files_prefix(self.plan.file_prefix(), self.unit, &self.tag);
        for location in self.dir.all() {
            for o in location.list(&prefix).await? {
                location.delete(&o.path).await?;
            }
        }
        Ok(())
    }

    /// Exports the unit, continuing `from` (a record of the same unit whose files are kept: the
    /// rest starts at its `next_key`), and returns the unit's done record (written to storage
    /// under this writer's name too, as each file was).
    pub(crate) async fn export(&self, from: Option<UnitRecord>) -> Result<UnitRecord> {
        let (plan, options, unit_index) = (self.plan, self.options, self.unit);
        let planned = &plan.units[unit_index];
        let (task, unit): (&ExportTask, _) = (&plan.tasks[planned.task as usize], &planned.unit);
        let mut record = from.unwrap_or_else(|| UnitRecord {
            plan: plan.id.clone(),
            unit: unit_index as u32,
            files: Vec::new(),
            next_key: unit.span.start.clone(),
            done: false,
        });
        if record.done {
            return Ok(record);
        }
        // Files this writer adds are numbered after the ones it continues.
        let first_seq = record.files.len();
        // A locality-aware backup writes the unit's files to the location of its locality.
        let (storage, locality) = self.dir.route(unit.locality.as_deref());
        let mut request = ScanRequest::new(unit.span.clone(), task.start, task.end, task.filter);
        request.span.start = record.next_key.clone();
        request.target_bytes = options.page_bytes;
        let mut writer = DataFileWriter::new(options.data_file.clone());
        let mut file_start = record.next_key.clone();
        let mut seq = first_seq;
        // Changes since a previous layer come from the source's change index when it has one.
        let use_changes = !task.start.is_zero();
        // The pipeline of one unit, each stage bounded to one item: the source reads page n+1
        // while page n is encoded, and file k uploads while file k+1 is encoded. A source or
        // storage that works on other threads (the native ones do) thus overlaps reading,
        // encoding (compressing, encrypting, hashing) and uploading; one that works in `poll`
        // runs them in turn.
        let mut reading = Box::pin(maybe_done(next_page(self.source, request.clone(), use_changes, &options.cancel)));
        let mut uploading = None;
        loop {
            let read = match output(reading.as_mut()).await {
                // The run is alive: its lease says so (and it stops if it lost its directory).
                Ok(read) => match self.heartbeat {
                    Some(heartbeat) => heartbeat.beat(self.source).await.map(|()| read),
                    None => Ok(read),
                },
                Err(e) => Err(e),
            };
            let (page, use_changes) = match read {
                Ok(read) => read,
                Err(e) => {
                    // Let an upload in flight end before the caller deletes what was written, so
                    // no file lands after that cleanup.
                    let _ = settle(&mut uploading).await;
                    return Err(e);
                }
            };
            let last = page.resume_key.is_none();
            if let Some(k) = &page.resume_key {
                request.span.start.clone_from(k);
                reading.set(maybe_done(next_page(self.source, request.clone(), use_changes, &options.cancel)));
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
            if writer.entries() > 0 && (last || writer.estimated_size() >= options.target_file_size) {
                let file_end = page.resume_key.clone().unwrap_or_else(|| unit.span.end.clone());
                let full = std::mem::replace(&mut writer, DataFileWriter::new(options.data_file.clone()));
                let path = writer_data_file_path(plan.file_prefix(), unit_index, &self.tag, seq);
                seq += 1;
                let span = Span::new(std::mem::replace(&mut file_start, file_end.clone()), file_end);
                let file = FileToSeal { path, span, writer: full, locality: locality.clone() };
                // One file sealing or uploading at a time: the previous file must be stored (and
                // recorded, in order) before this one starts.
                let upload = upload_file(&storage, options, file);
                if let Some(mut previous) = uploading.replace(Box::pin(maybe_done(upload))) {
                    let stored = output(previous.as_mut()).await?;
                    self.file_stored(&mut record, stored, false).await?;
                }
                if let Some(upload) = uploading.as_mut() {
                    start(upload.as_mut()).await;
                }
            }
            if last {
                match settle(&mut uploading).await {
                    Some(stored) => self.file_stored(&mut record, stored?, true).await?,
                    None => {
                        record.done = true;
                        record.next_key = unit.span.end.clone();
                        self.write_record(&record).await?;
                        if let Some(t) = self.tally {
                            t.unit_done();
                        }
                    }
                }
                return Ok(record);
            }
        }
    }

    /// Records a stored file (and, with `unit_done`, the end of the unit): one write of the
    /// writer's record.
    async fn file_stored(
        &self,
        record: &mut UnitRecord,
        (info, next_key): (FileInfo, Vec<u8>),
        unit_done: bool,
    ) -> Result<()> {
        record.files.push(info.clone());
        record.next_key = next_key;
        record.done = unit_done;
        self.write_record(record).await?;
        if let Some(t) = self.tally {
            t.file(&info, unit_done);
        }
        Ok(())
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
/// any), stores it, checks the stored size is the size hashed, and returns its entry and where
/// the rest of the unit starts.
async fn upload_file(
    storage: &Arc<dyn ExternalStorage>,
    options: &BackupOptions,
    file: FileToSeal,
) -> Result<(FileInfo, Vec<u8>)> {
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
    let next_key = span.end.clone();
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
    check_stored(storage.as_ref(), &info).await?;
    Ok((info, next_key))
}

/// Checks that the file `info` names is stored with the size that was hashed (a HEAD).
pub(crate) async fn check_stored(storage: &dyn ExternalStorage, info: &FileInfo) -> Result<()> {
    let size = storage.size(&info.path).await?;
    if size != info.size {
        return Err(Error::Storage {
            path: format!("{}/{}", storage.describe(), info.path),
            message: format!(
                "is {size} bytes after it was stored, but {} bytes were hashed and written \
                 (another writer replaced it, or the upload was cut short)",
                info.size
            ),
            status: Status::Temporary,
        });
    }
    Ok(())
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
