//! Planning and running a backup: targets become spans, spans become export tasks, tasks
//! become data files, and the manifest is written last.
//!
//! A full backup exports each span from time zero. An incremental layer extends a chain: it
//! exports what changed in `(previous end, end]` — tombstones included, so deletions restore —
//! and exports spans that are new since the previous layer (tables created since) from zero.
//! With revision history every version in the window is kept, and so is every descriptor change.

use std::sync::Arc;

use bytes::Bytes;
use futures::future::maybe_done;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DescId, Descriptor};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::datafile::{DataFileOptions, DataFileWriter};
use crate::format::manifest::{
    manifest_checksum, sha256, BackupScope, DescriptorRevision, FileInfo, Manifest, MANIFEST_CHECKSUM_NAME,
    MANIFEST_NAME,
};
use crate::keys;
use crate::kv::{KvSource, MvccFilter, ScanPage, ScanRequest, WorkUnit};
use crate::span::{Span, SpanSet};
use crate::sql::{TableName, Targets};
use crate::stage::{output, settle, start};
use crate::storage::ExternalStorage;
use crate::storage::ExternalStorageExt;
use crate::timestamp::Timestamp;

/// One export: the versions of `span` in `(start, end]` that `filter` selects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportTask {
    /// The keys.
    pub span: Span,
    /// Exclusive start of the time window.
    pub start: Timestamp,
    /// Inclusive end of the time window.
    pub end: Timestamp,
    /// Latest version per key, or every version.
    pub filter: MvccFilter,
    /// Whether deletions are left out (a state exported from time zero needs none).
    pub drop_tombstones: bool,
}

/// What a backup will do, as plain data: computed from the catalog, printable, serializable, and
/// executable by [`run_backup`] on any machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPlan {
    /// What was targeted.
    pub scope: BackupScope,
    /// Whether the whole cluster (system span included) is backed up.
    pub is_full_cluster: bool,
    /// Exclusive start of the time window (zero for a full backup).
    pub start_time: Timestamp,
    /// Inclusive end: the time the backup is as of.
    pub end_time: Timestamp,
    /// Latest values only, or every revision.
    pub mvcc_filter: MvccFilter,
    /// Earliest restorable time of the layer (see [`Manifest::revision_start_time`]).
    pub revision_start_time: Timestamp,
    /// The spans the layer covers.
    pub spans: Vec<Span>,
    /// Spans exported from time zero because they are new in this layer.
    pub introduced_spans: Vec<Span>,
    /// The exports, in order.
    pub tasks: Vec<ExportTask>,
    /// Descriptors of the targets and their databases at `end_time`.
    pub descriptors: Vec<Descriptor>,
    /// Descriptor changes in the window (with revision history).
    pub descriptor_changes: Vec<DescriptorRevision>,
    /// Earlier layers this one extends, oldest first.
    pub dependencies: Vec<String>,
    /// The statement, secrets redacted.
    pub statement: String,
}

/// What a backup is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BackupSpec {
    /// What to back up.
    pub targets: Targets,
    /// The time the backup is as of.
    pub end_time: Timestamp,
    /// Whether to keep every revision (`WITH revision_history`).
    pub revision_history: bool,
    /// The statement, secrets redacted (recorded in the manifest).
    pub statement: String,
}

impl BackupSpec {
    /// A backup of `targets` as of `end_time`, latest values only.
    pub fn new(targets: Targets, end_time: Timestamp) -> BackupSpec {
        BackupSpec { targets, end_time, revision_history: false, statement: String::new() }
    }
    /// Sets revision history.
    pub fn with_revision_history(mut self, on: bool) -> Self {
        self.revision_history = on;
        self
    }
    /// Sets the recorded statement.
    pub fn with_statement(mut self, statement: impl Into<String>) -> Self {
        self.statement = statement.into();
        self
    }
}

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
    pub progress: crate::progress::ProgressReporter,
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
            offload: Default::default(),
        }
    }
}

impl BackupOptions {
    /// Sets where progress is reported.
    pub fn with_progress(mut self, progress: crate::progress::ProgressReporter) -> Self {
        self.progress = progress;
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

/// Resolves targets against the catalog at the backup's end time.
pub fn resolve_targets(catalog: &Catalog, targets: &Targets) -> Result<(BackupScope, Vec<Descriptor>)> {
    match targets {
        Targets::Cluster => Ok((BackupScope::Cluster, catalog.descriptors())),
        Targets::Databases(names) => {
            let mut descs = Vec::new();
            let mut ids = Vec::new();
            for name in names {
                let db = catalog.require_database(name)?;
                if ids.contains(&db.id) {
                    continue;
                }
                ids.push(db.id);
                descs.push(Descriptor::Database(db.clone()));
                descs.extend(catalog.tables_in(db.id).cloned().map(Descriptor::Table));
            }
            Ok((BackupScope::Databases(ids), descs))
        }
        Targets::Tables(names) => {
            let mut table_ids: Vec<DescId> = Vec::new();
            for name in names {
                for t in expand_table_name(catalog, name)? {
                    if !table_ids.contains(&t) {
                        table_ids.push(t);
                    }
                }
            }
            let mut db_ids: Vec<DescId> = table_ids.iter().map(|t| catalog.tables[t].parent_id).collect();
            db_ids.sort_unstable();
            db_ids.dedup();
            let descs = db_ids
                .iter()
                .filter_map(|id| catalog.databases.get(id).cloned().map(Descriptor::Database))
                .chain(table_ids.iter().map(|id| Descriptor::Table(catalog.tables[id].clone())))
                .collect();
            Ok((BackupScope::Tables(table_ids), descs))
        }
    }
}

/// The ids of the tables a `TABLE` name denotes (`db.t`, or every table for `db.*`).
pub fn expand_table_name(catalog: &Catalog, name: &TableName) -> Result<Vec<DescId>> {
    let Some(db) = &name.database else {
        return Err(Error::invalid(
            "table name",
            format!("'{}' must be qualified with its database, as db.{}", name.table, name.table),
        ));
    };
    if name.table == "*" {
        let db_desc = catalog.require_database(db)?;
        let ids: Vec<DescId> = catalog.tables_in(db_desc.id).map(|t| t.id).collect();
        if ids.is_empty() {
            return Err(Error::not_found("table", format!("{db}.* (database {db} has no tables)")));
        }
        return Ok(ids);
    }
    Ok(vec![catalog.require_table(db, &name.table)?.id])
}

/// The spans of a set of descriptors: one per table (adjacent tables are not merged, so each
/// data file belongs to one table), plus the system span for a full-cluster backup.
fn spans_of(descriptors: &[Descriptor], is_full_cluster: bool) -> Vec<Span> {
    let mut spans: Vec<Span> = descriptors
        .iter()
        .filter_map(|d| match d {
            Descriptor::Table(t) => Some(t.span()),
            Descriptor::Database(_) => None,
        })
        .collect();
    if is_full_cluster {
        spans.push(keys::system_span());
    }
    spans.sort();
    spans.dedup();
    spans
}

/// The tasks exporting `span`'s state as of `base` from time zero, then (with revision history)
/// every version in `(base, end]`.
fn tasks_from_zero(span: &Span, base: Timestamp, end: Timestamp, filter: MvccFilter) -> Vec<ExportTask> {
    let task =
        |start, end, filter, drop_tombstones| ExportTask { span: span.clone(), start, end, filter, drop_tombstones };
    match filter {
        MvccFilter::Latest => vec![task(Timestamp::ZERO, end, MvccFilter::Latest, true)],
        MvccFilter::AllRevisions if base.is_zero() => vec![task(Timestamp::ZERO, end, MvccFilter::AllRevisions, false)],
        MvccFilter::AllRevisions => {
            vec![
                task(Timestamp::ZERO, base, MvccFilter::Latest, true),
                task(base, end, MvccFilter::AllRevisions, false),
            ]
        }
    }
}

/// Keeps the descriptor revisions that belong to the scope: its databases and tables, and the
/// deletions of descriptors that were in it (`known` holds ids already in scope).
fn revisions_in_scope(
    scope: &BackupScope,
    history: &[DescriptorRevision],
    known: &[Descriptor],
) -> Vec<DescriptorRevision> {
    let mut ids: Vec<DescId> = known.iter().map(Descriptor::id).collect();
    // The databases of the scope's tables, in any of their versions.
    let table_parents: Vec<DescId> = known
        .iter()
        .chain(history.iter().filter_map(|r| r.descriptor.as_ref()))
        .filter_map(|d| match (d, scope) {
            (Descriptor::Table(t), BackupScope::Tables(tables)) if tables.contains(&t.id) => Some(t.parent_id),
            _ => None,
        })
        .collect();
    let mut out = Vec::new();
    for r in history {
        let keep = match (&r.descriptor, scope) {
            (_, BackupScope::Cluster) => true,
            (Some(Descriptor::Database(d)), BackupScope::Databases(dbs)) => dbs.contains(&d.id),
            (Some(Descriptor::Table(t)), BackupScope::Databases(dbs)) => dbs.contains(&t.parent_id),
            (Some(Descriptor::Table(t)), BackupScope::Tables(tables)) => tables.contains(&t.id),
            (Some(Descriptor::Database(d)), BackupScope::Tables(_)) => table_parents.contains(&d.id),
            (None, _) => ids.contains(&r.id),
        };
        if keep {
            ids.push(r.id);
            out.push(r.clone());
        }
    }
    out
}

/// Plans a backup. Without `previous` it is a full backup; with it, an incremental layer
/// extending the chain whose newest layer is `previous` (checked: same targets, same
/// revision-history setting, a later end time).
///
/// `catalog` is the source's catalog at `spec.end_time`. `history` holds the descriptor
/// revisions of the window, for revision history (see [`read_descriptor_history`]).
/// `gc_threshold` is the source's GC threshold: a full backup with revision history can restore
/// only from there on.
pub fn plan_backup(
    catalog: &Catalog,
    spec: &BackupSpec,
    previous: Option<&Manifest>,
    history: &[DescriptorRevision],
    gc_threshold: Timestamp,
    dependencies: Vec<String>,
) -> Result<BackupPlan> {
    let (scope, descriptors) = resolve_targets(catalog, &spec.targets)?;
    let is_full_cluster = scope == BackupScope::Cluster;
    let filter = if spec.revision_history { MvccFilter::AllRevisions } else { MvccFilter::Latest };
    let known = previous.map(|p| p.descriptors.clone()).unwrap_or_default();
    let descriptor_changes =
        if spec.revision_history { revisions_in_scope(&scope, history, &known) } else { Vec::new() };
    // With revision history, every table in scope at any moment of the window is covered — those
    // alive at its start, created in it, or dropped before its end — so that a restore to any time
    // inside the window finds their data.
    let mut covered: Vec<Descriptor> = descriptors.clone();
    if spec.revision_history {
        covered.extend(known.iter().cloned());
        covered.extend(descriptor_changes.iter().filter_map(|r| r.descriptor.clone()));
    }
    let spans = spans_of(&covered, is_full_cluster);
    let end = spec.end_time;
    let mut introduced = Vec::new();
    let mut tasks = Vec::new();
    let (start, revision_start) = match previous {
        None => {
            let base = if spec.revision_history { gc_threshold } else { end };
            for span in &spans {
                tasks.extend(tasks_from_zero(span, base, end, filter));
            }
            (Timestamp::ZERO, base)
        }
        Some(prev) => {
            check_extends(prev, &scope, filter, end)?;
            let start = prev.end_time;
            let covered = SpanSet::from_spans(prev.spans.iter().cloned());
            for span in &spans {
                if covered.covers(&SpanSet::from_spans([span.clone()])) {
                    tasks.push(ExportTask { span: span.clone(), start, end, filter, drop_tombstones: false });
                } else {
                    introduced.push(span.clone());
                    tasks.extend(tasks_from_zero(span, start, end, filter));
                }
            }
            (start, if spec.revision_history { start } else { end })
        }
    };
    Ok(BackupPlan {
        scope,
        is_full_cluster,
        start_time: start,
        end_time: end,
        mvcc_filter: filter,
        revision_start_time: revision_start,
        spans,
        introduced_spans: introduced,
        tasks,
        descriptors,
        descriptor_changes,
        dependencies,
        statement: spec.statement.clone(),
    })
}

/// Plans a full backup of `targets` as of `end_time`, latest values only.
pub fn plan_full_backup(
    catalog: &Catalog,
    targets: &Targets,
    end_time: Timestamp,
    statement: String,
) -> Result<BackupPlan> {
    let spec = BackupSpec::new(targets.clone(), end_time).with_statement(statement);
    plan_backup(catalog, &spec, None, &[], Timestamp::ZERO, Vec::new())
}

fn check_extends(prev: &Manifest, scope: &BackupScope, filter: MvccFilter, end: Timestamp) -> Result<()> {
    if &prev.scope != scope {
        return Err(Error::Precondition(format!(
            "an incremental backup must have the same targets as the backup it extends: that one covers {}, this one {}",
            describe_scope(&prev.scope, &prev.catalog()),
            describe_scope(scope, &prev.catalog())
        )));
    }
    if prev.mvcc_filter != filter {
        let with = |f: MvccFilter| if f == MvccFilter::AllRevisions { "with" } else { "without" };
        return Err(Error::Precondition(format!(
            "the backup being extended was taken {} revision_history; an incremental must be taken {} it too",
            with(prev.mvcc_filter),
            with(prev.mvcc_filter),
        )));
    }
    if end <= prev.end_time {
        return Err(Error::InvalidTime(format!(
            "an incremental backup must end after the backup it extends (which ends at {}), not at {end}",
            prev.end_time
        )));
    }
    Ok(())
}

/// A scope in words: `the whole cluster`, `database bank`, `tables bank.accounts, …`.
pub fn describe_scope(scope: &BackupScope, catalog: &Catalog) -> String {
    let name = |id: &DescId| {
        catalog
            .databases
            .get(id)
            .map(|d| d.name.clone())
            .or_else(|| catalog.tables.get(id).map(|t| format!("{}.{}", catalog.database_name(t.parent_id), t.name)))
            .unwrap_or_else(|| format!("#{id}"))
    };
    match scope {
        BackupScope::Cluster => "the whole cluster".into(),
        BackupScope::Databases(ids) => format!("database {}", ids.iter().map(name).collect::<Vec<_>>().join(", ")),
        BackupScope::Tables(ids) => format!("tables {}", ids.iter().map(name).collect::<Vec<_>>().join(", ")),
    }
}

/// Reads the descriptor revisions a revision-history layer records: with `base` set, the state
/// as of `base` (each descriptor's newest version at or below it), then every change in
/// `(start, end]`.
pub async fn read_descriptor_history(
    source: &dyn KvSource,
    base: Option<Timestamp>,
    start: Timestamp,
    end: Timestamp,
) -> Result<Vec<DescriptorRevision>> {
    let mut out = Vec::new();
    let mut requests = Vec::new();
    if let Some(base) = base {
        requests.push(ScanRequest::new(keys::descriptor_span(), Timestamp::ZERO, base, MvccFilter::Latest));
    }
    requests.push(ScanRequest::new(keys::descriptor_span(), start, end, MvccFilter::AllRevisions));
    for (i, mut request) in requests.into_iter().enumerate() {
        loop {
            let page = source.scan(request.clone()).await?;
            for e in page.entries {
                let Some(id) = keys::decode_descriptor_key(&e.key) else { continue };
                let descriptor = e.value.as_deref().map(Descriptor::decode).transpose()?;
                if i == 0 && base.is_some() && descriptor.is_none() {
                    continue;
                }
                out.push(DescriptorRevision { ts: e.ts, id, descriptor });
            }
            match page.resume_key {
                Some(k) => request.span.start = k,
                None => break,
            }
        }
    }
    out.sort_by_key(|r| r.ts);
    Ok(out)
}

/// Exports a planned backup into `storage` (a backup directory): data files under `data/`, then
/// `BACKUP_MANIFEST-CHECKSUM`, then `BACKUP_MANIFEST` last. Fails if the directory already holds
/// a backup. On failure the data files written so far are removed.
pub async fn run_backup(
    source: &dyn KvSource,
    storage: Arc<dyn ExternalStorage>,
    plan: &BackupPlan,
    options: &BackupOptions,
) -> Result<Manifest> {
    if storage.size(MANIFEST_NAME).await.is_ok() {
        return Err(Error::exists("backup", storage.describe()));
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
    // The work units and what is already done, from this plan's checkpoint when a killed run
    // left one (see `checkpoint.rs`).
    let tracker = crate::checkpoint::Tracker::start(source, &storage, plan, &options.codec, &options.progress).await?;
    let units = tracker.units(plan).await;
    let written: futures::lock::Mutex<Vec<String>> = futures::lock::Mutex::new(tracker.paths().await);
    let file_prefix = plan_file_prefix(plan);
    let result = write_backup(source, &storage, plan, options, &units, &file_prefix, &written, &tracker).await;
    match result {
        Ok(manifest) => {
            let _ = storage.delete(crate::checkpoint::CHECKPOINT_NAME).await;
            Ok(manifest)
        }
        // Another backup of the same plan finished first: its manifest names files of the same
        // names and contents, so nothing of ours may be removed.
        Err(e @ Error::AlreadyExists { .. }) => Err(e),
        Err(e) => {
            // Best effort: without a manifest these files are not a backup either way.
            for path in written.lock().await.iter() {
                let _ = storage.delete(path).await;
            }
            let _ = storage.delete(MANIFEST_CHECKSUM_NAME).await;
            let _ = storage.delete(crate::checkpoint::CHECKPOINT_NAME).await;
            if options.codec.is_encrypted() {
                let _ = storage.delete(crate::verify::FILES_LIST_NAME).await;
            }
            Err(e)
        }
    }
}

/// A prefix for data file names unique to the plan (its time window and statement), so two
/// backups racing into one directory never overwrite each other's files, while a re-run of the
/// same plan names its files the same way.
pub(crate) fn plan_file_prefix(plan: &BackupPlan) -> String {
    let encoded = postcard::to_allocvec(plan).expect("plans always serialize");
    hex::encode(&sha256(&encoded)[..4])
}

#[allow(clippy::too_many_arguments)]
async fn write_backup(
    source: &dyn KvSource,
    storage: &Arc<dyn ExternalStorage>,
    plan: &BackupPlan,
    options: &BackupOptions,
    units: &[(&ExportTask, WorkUnit)],
    file_prefix: &str,
    written: &futures::lock::Mutex<Vec<String>>,
    tracker: &crate::checkpoint::Tracker,
) -> Result<Manifest> {
    let files: Vec<Vec<FileInfo>> = stream::iter(units.iter().enumerate())
        .map(|(i, (task, unit))| export_unit(source, storage, task, options, file_prefix, i, unit, written, tracker))
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
    if options.codec.is_encrypted() {
        // The data files' stored sizes and digests in plaintext, for checks without the key.
        storage.put(crate::verify::FILES_LIST_NAME, Bytes::from(crate::verify::encode_files_list(&manifest))).await?;
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

#[allow(clippy::too_many_arguments)]
async fn export_unit(
    source: &dyn KvSource,
    storage: &Arc<dyn ExternalStorage>,
    task: &ExportTask,
    options: &BackupOptions,
    file_prefix: &str,
    unit_index: usize,
    unit: &WorkUnit,
    written: &futures::lock::Mutex<Vec<String>>,
    tracker: &crate::checkpoint::Tracker,
) -> Result<Vec<FileInfo>> {
    // A resumed backup keeps the unit's finished files and continues after them.
    let (mut files, next_key, done) = tracker.unit(unit_index).await;
    if done {
        return Ok(files);
    }
    // A locality-aware backup writes the unit's files to the location of its locality.
    let (storage, locality) = crate::locality::route(storage, unit.locality.as_deref());
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
    let mut reading = Box::pin(maybe_done(next_page(source, request.clone(), use_changes)));
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
            reading.set(maybe_done(next_page(source, request.clone(), use_changes)));
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
        // Whether this page's file is the unit's last (its checkpoint records the unit done).
        let mut last_file = false;
        if writer.entries() > 0 && (last || writer.estimated_size() >= options.target_file_size) {
            last_file = last;
            let file_end = page.resume_key.clone().unwrap_or_else(|| unit.span.end.clone());
            let full = std::mem::replace(&mut writer, DataFileWriter::new(options.data_file.clone()));
            let path =
                format!("data/{file_prefix}-{unit_index:06}-{:04}.sst", files.len() + usize::from(uploading.is_some()));
            let span = Span::new(std::mem::replace(&mut file_start, file_end.clone()), file_end);
            let file = FileToSeal { path: path.clone(), span, writer: full, locality: locality.clone() };
            // One file sealing or uploading at a time: the previous file must be stored (and
            // checkpointed, in order) before this one starts.
            let upload = upload_file(&storage, tracker, options, unit_index, file, file_start.clone(), last);
            if let Some(mut previous) = uploading.replace(Box::pin(maybe_done(upload))) {
                files.push(output(previous.as_mut()).await?);
            }
            written.lock().await.push(path);
            if let Some(upload) = uploading.as_mut() {
                start(upload.as_mut()).await;
            }
        }
        if last {
            if let Some(info) = settle(&mut uploading).await {
                files.push(info?);
            }
            if !last_file {
                tracker.unit_done(unit_index).await?;
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
    tracker: &crate::checkpoint::Tracker,
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
    tracker.file_done(unit_index, &info, &next_key, unit_done).await?;
    Ok(info)
}

/// The next page of a unit's scan, and whether to keep reading from the change index: a source
/// without one answers `None` once, and the unit falls back to full scans.
async fn next_page(source: &dyn KvSource, request: ScanRequest, use_changes: bool) -> Result<(ScanPage, bool)> {
    if use_changes {
        if let Some(page) = source.scan_changes(request.clone()).await? {
            return Ok((page, true));
        }
    }
    Ok((source.scan(request).await?, false))
}

/// The dated subdirectory a `BACKUP INTO` collection gives a full backup ending at `ts`:
/// `2026/11/23-101500.00` (CockroachDB's layout, hundredths of a second).
pub fn dated_subdir(ts: Timestamp) -> String {
    let c = ts.civil();
    format!(
        "{:04}/{:02}/{:02}-{:02}{:02}{:02}.{:02}",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        c.nanos / 10_000_000
    )
}

/// The directory name of an incremental layer ending at `ts`, below a backup's `incrementals/`:
/// the dated form with the full nanoseconds and logical counter, so that layers taken in quick
/// succession never collide (`2026/11/23-101500.123456789-0`).
pub fn layer_subdir(ts: Timestamp) -> String {
    let c = ts.civil();
    format!(
        "{:04}/{:02}/{:02}-{:02}{:02}{:02}.{:09}-{}",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.nanos, ts.logical
    )
}

/// Whether `path` (without leading `/`) has the shape of a dated full-backup subdirectory.
pub fn is_dated_subdir(path: &str) -> bool {
    let b = path.as_bytes();
    b.len() == 20
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'/',
            10 => *c == b'-',
            17 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn dated_subdirs() {
        let ts = Timestamp::parse_as_of("2026-11-23 10:15:00.127", Timestamp::ZERO).unwrap();
        assert_eq!(dated_subdir(ts), "2026/11/23-101500.12");
        assert!(is_dated_subdir("2026/11/23-101500.12"));
        assert!(!is_dated_subdir("2026/11/23-101500.1"));
        assert!(!is_dated_subdir("incrementals/2026/11/23-101500.12"));
        assert_eq!(layer_subdir(ts.next()), "2026/11/23-101500.127000000-1");
    }
}
