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
use crate::kv::{Entry, KvSource, ScanPage, ScanRequest};
use crate::layout::{writer_data_file_path, writer_files_prefix, writer_record_path};
use crate::locality::Locations;
use crate::progress::{Cancel, Progress, ProgressOperation, ProgressReporter};
use crate::span::Span;
use crate::stage::{output, settle, start};
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;

/// What a run's progress reports count.
#[derive(Debug, Clone, Copy, Default)]
struct Counted {
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

/// A run's progress: what is counted so far, reported as it grows.
///
/// `fraction` weighs each unit by its weight (the source's [`KvSource::estimate_bytes`] of its
/// span, when known): a done unit counts whole, a unit in progress by the logical bytes it has
/// read (or, for a resumed unit, stored), up to 99% of its weight (an estimate may be low, or
/// count versions a latest-only backup does not export). Units without an estimate weigh the
/// mean of the others (1 if none has one) and count only when done.
///
/// It reports after each stored file and finished unit, and after a page read that moves the
/// fraction by a thousandth or more (only units with an estimate move it between files).
pub(crate) struct Tally {
    state: std::sync::Mutex<TallyState>,
    /// Per unit: its weight, and whether it counts by bytes (it has an estimate).
    weights: Vec<(f64, bool)>,
    progress: ProgressReporter,
}

struct TallyState {
    counted: Counted,
    /// Per unit: logical bytes of its stored files, of the pages it read, and whether it is done.
    units: Vec<UnitCount>,
    /// The fraction last reported.
    reported: f64,
}

#[derive(Debug, Clone, Copy, Default)]
struct UnitCount {
    stored: u64,
    read: u64,
    done: bool,
}

impl Tally {
    /// A tally of `estimates.len()` units, weighed by `estimates` (see [`Tally`]).
    pub(crate) fn new(estimates: &[Option<u64>], progress: ProgressReporter) -> Tally {
        let known: Vec<u64> = estimates.iter().flatten().copied().collect();
        let total: u64 = known.iter().sum();
        let mean = if total == 0 { 1.0 } else { total as f64 / known.len() as f64 };
        let weights = estimates
            .iter()
            .map(|e| match e {
                // A store whose estimates are all zero (stale, or empty spans) weighs units the same.
                Some(bytes) if total > 0 => (*bytes as f64, true),
                _ => (mean, false),
            })
            .collect();
        let units = vec![UnitCount::default(); estimates.len()];
        let state = TallyState { counted: Counted::default(), units, reported: 0.0 };
        Tally { state: std::sync::Mutex::new(state), weights, progress }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, TallyState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts files stored for `unit` (by this run, or by an earlier run it continues), and
    /// whether the unit is done.
    pub(crate) fn adopt(&self, unit: usize, files: &[FileInfo], done: bool) {
        let mut state = self.state();
        for f in files {
            state.counted.add(f);
            if let Some(u) = state.units.get_mut(unit) {
                u.stored += f.logical_bytes;
            }
        }
        if let Some(u) = state.units.get_mut(unit) {
            u.done |= done;
        }
    }

    /// Counts a page of `bytes` (keys and values) read for `unit`; reports if that moved the
    /// fraction by a thousandth or more.
    pub(crate) fn read(&self, unit: usize, bytes: u64) {
        if !self.progress.is_set() || !self.weights.get(unit).is_some_and(|w| w.1) {
            return;
        }
        let moved = {
            let mut state = self.state();
            if let Some(u) = state.units.get_mut(unit) {
                u.read += bytes;
            }
            self.fraction(&state) >= state.reported + 0.001
        };
        if moved {
            self.report();
        }
    }

    pub(crate) fn file(&self, unit: usize, info: &FileInfo, unit_done: bool) {
        self.adopt(unit, std::slice::from_ref(info), unit_done);
        self.report();
    }

    pub(crate) fn unit_done(&self, unit: usize) {
        self.adopt(unit, &[], true);
        self.report();
    }

    /// The share of the run done, between 0 and 1.
    fn fraction(&self, state: &TallyState) -> f64 {
        let total: f64 = self.weights.iter().map(|w| w.0).sum();
        if self.weights.is_empty() || total <= 0.0 {
            return if state.units.iter().all(|u| u.done) { 1.0 } else { 0.0 };
        }
        let done: f64 = self
            .weights
            .iter()
            .zip(&state.units)
            .map(|(&(weight, by_bytes), u)| match (u.done, by_bytes) {
                (true, _) => weight,
                (false, true) => (u.stored.max(u.read) as f64).min(weight * 0.99),
                (false, false) => 0.0,
            })
            .sum();
        (done / total).clamp(0.0, 1.0)
    }

    pub(crate) fn report(&self) {
        if self.progress.is_set() {
            let (fraction, c) = {
                let mut state = self.state();
                let fraction = self.fraction(&state);
                state.reported = fraction;
                (fraction, state.counted)
            };
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
            if let Some(t) = self.tally {
                t.read(unit_index, page.entries.iter().map(Entry::bytes).sum());
            }
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
                            t.unit_done(unit_index);
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
            t.file(self.unit, &info, unit_done);
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

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    fn file(logical_bytes: u64) -> FileInfo {
        FileInfo {
            path: String::new(),
            span: Span::new(Vec::new(), Vec::new()),
            size: 1,
            sha256: [0; 32],
            entries: 1,
            rows: 1,
            logical_bytes,
            locality: None,
        }
    }

    fn tally(estimates: &[Option<u64>]) -> (Tally, Arc<Mutex<Vec<f64>>>) {
        let seen: Arc<Mutex<Vec<f64>>> = Arc::default();
        let s = seen.clone();
        (Tally::new(estimates, ProgressReporter::new(move |p: &Progress| s.lock().unwrap().push(p.fraction))), seen)
    }

    #[test]
    fn units_weigh_their_estimates_and_count_their_bytes() {
        let (t, seen) = tally(&[Some(100), Some(900)]);
        t.file(1, &file(450), false);
        t.unit_done(0);
        t.file(1, &file(10_000), false);
        t.file(1, &file(1), true);
        assert_eq!(*seen.lock().unwrap(), vec![0.45, 0.55, 0.991, 1.0]);
    }

    #[test]
    fn pages_read_move_units_with_an_estimate_between_files() {
        let (t, seen) = tally(&[Some(1000), None]);
        t.read(0, 500);
        t.read(0, 0); // did not move: no report
        t.read(1, 10_000); // no estimate: counts when done
        t.file(0, &file(100), false); // stored less than read
        t.read(0, 10_000);
        t.file(0, &file(1), true);
        assert_eq!(*seen.lock().unwrap(), vec![0.25, 0.25, 0.495, 0.5]);
    }

    #[test]
    fn units_without_an_estimate_weigh_the_mean_and_count_when_done() {
        let (t, seen) = tally(&[Some(100), None, Some(300)]);
        t.file(1, &file(1_000), false);
        t.unit_done(1);
        t.adopt(0, &[file(50)], false);
        t.report();
        // Weights 100, 200 (the mean), 300.
        assert_eq!(*seen.lock().unwrap(), vec![0.0, 200.0 / 600.0, 250.0 / 600.0]);
        // No estimate at all, or only zeros: units count the same, when done.
        for estimates in [vec![None, None], vec![Some(0), Some(0)]] {
            let (t, seen) = tally(&estimates);
            t.file(0, &file(10), false);
            t.unit_done(0);
            assert_eq!(*seen.lock().unwrap(), vec![0.0, 0.5]);
        }
        let (t, seen) = tally(&[]);
        t.report();
        assert_eq!(*seen.lock().unwrap(), vec![1.0]);
    }
}
