//! Planning and running a backup: targets become spans, spans become data files, and the
//! manifest is written last.

use std::sync::Arc;

use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DescId, Descriptor};
use crate::error::{Error, Result};
use crate::format::datafile::{DataFileOptions, DataFileWriter};
use crate::format::manifest::{
    manifest_checksum, sha256, BackupScope, FileInfo, Manifest, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME,
};
use crate::keys;
use crate::kv::{KvSource, MvccFilter, ScanRequest, WorkUnit};
use crate::span::Span;
use crate::sql::{TableName, Targets};
use crate::storage::ExternalStorage;
use crate::timestamp::Timestamp;

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
    /// The spans to export.
    pub spans: Vec<Span>,
    /// Spans exported from time zero because they are new in this layer.
    pub introduced_spans: Vec<Span>,
    /// Descriptors of the targets and their databases at `end_time`.
    pub descriptors: Vec<Descriptor>,
    /// Earlier layers this one extends, oldest first.
    pub dependencies: Vec<String>,
    /// The statement, secrets redacted.
    pub statement: String,
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
}

impl Default for BackupOptions {
    fn default() -> Self {
        BackupOptions {
            concurrency: 4,
            target_file_size: 64 << 20,
            page_bytes: 4 << 20,
            data_file: DataFileOptions::default(),
        }
    }
}

impl BackupOptions {
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

/// Plans a full backup of `targets` as of `end_time`.
pub fn plan_full_backup(
    catalog: &Catalog,
    targets: &Targets,
    end_time: Timestamp,
    statement: String,
) -> Result<BackupPlan> {
    let (scope, descriptors) = resolve_targets(catalog, targets)?;
    let is_full_cluster = scope == BackupScope::Cluster;
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
    // One span per table (adjacent tables are not merged), so each data file belongs to one table:
    // a restore of one table reads only its files, and SHOW BACKUP sizes are exact.
    spans.sort();
    spans.dedup();
    Ok(BackupPlan {
        scope,
        is_full_cluster,
        start_time: Timestamp::ZERO,
        end_time,
        mvcc_filter: MvccFilter::Latest,
        introduced_spans: Vec::new(),
        spans,
        descriptors,
        dependencies: Vec::new(),
        statement,
    })
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
    for span in &plan.spans {
        let threshold = source.gc_threshold(span).await?;
        let needed = if plan.start_time.is_zero() && plan.mvcc_filter == MvccFilter::Latest {
            plan.end_time
        } else {
            plan.start_time
        };
        if needed < threshold {
            return Err(Error::InvalidTime(format!(
                "cannot back up {span} as of {needed}: it is below the GC threshold {threshold}; \
                 take a full backup at a later time"
            )));
        }
    }
    let mut units: Vec<WorkUnit> = Vec::new();
    for span in &plan.spans {
        units.extend(source.split(span).await?);
    }
    let written: futures::lock::Mutex<Vec<String>> = futures::lock::Mutex::new(Vec::new());
    let file_prefix = plan_file_prefix(plan);
    let result = write_backup(source, &storage, plan, options, &units, &file_prefix, &written).await;
    match result {
        Ok(manifest) => Ok(manifest),
        // Another backup of the same plan finished first: its manifest names files of the same
        // names and contents, so nothing of ours may be removed.
        Err(e @ Error::AlreadyExists { .. }) => Err(e),
        Err(e) => {
            // Best effort: without a manifest these files are not a backup either way.
            for path in written.lock().await.iter() {
                let _ = storage.delete(path).await;
            }
            let _ = storage.delete(MANIFEST_CHECKSUM_NAME).await;
            Err(e)
        }
    }
}

/// A prefix for data file names unique to the plan (its time window and statement), so two
/// backups racing into one directory never overwrite each other's files, while a re-run of the
/// same plan names its files the same way.
fn plan_file_prefix(plan: &BackupPlan) -> String {
    let encoded = postcard::to_allocvec(plan).expect("plans always serialize");
    hex::encode(&sha256(&encoded)[..4])
}

async fn write_backup(
    source: &dyn KvSource,
    storage: &Arc<dyn ExternalStorage>,
    plan: &BackupPlan,
    options: &BackupOptions,
    units: &[WorkUnit],
    file_prefix: &str,
    written: &futures::lock::Mutex<Vec<String>>,
) -> Result<Manifest> {
    let files: Vec<Vec<FileInfo>> = stream::iter(units.iter().enumerate())
        .map(|(i, unit)| export_unit(source, storage, plan, options, file_prefix, i, unit, written))
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
        descriptor_changes: Vec::new(),
        files,
        dependencies: plan.dependencies.clone(),
        statement: plan.statement.clone(),
    };
    let bytes = manifest.encode();
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
    plan: &BackupPlan,
    options: &BackupOptions,
    file_prefix: &str,
    unit_index: usize,
    unit: &WorkUnit,
    written: &futures::lock::Mutex<Vec<String>>,
) -> Result<Vec<FileInfo>> {
    // A full backup of latest values needs no tombstones: nothing older is restored with it.
    let drop_tombstones = plan.start_time.is_zero() && plan.mvcc_filter == MvccFilter::Latest;
    let mut request = ScanRequest::new(unit.span.clone(), plan.start_time, plan.end_time, plan.mvcc_filter);
    request.target_bytes = options.page_bytes;
    let mut files = Vec::new();
    let mut writer = DataFileWriter::new(options.data_file.clone());
    let mut file_start = unit.span.start.clone();
    loop {
        let page = source.scan(request.clone()).await?;
        for e in &page.entries {
            if drop_tombstones && e.value.is_none() {
                continue;
            }
            writer.add(&e.key, e.ts, e.value.as_deref());
        }
        let file_end = page.resume_key.clone().unwrap_or_else(|| unit.span.end.clone());
        let last = page.resume_key.is_none();
        if writer.entries() > 0 && (last || writer.estimated_size() >= options.target_file_size) {
            let full = std::mem::replace(&mut writer, DataFileWriter::new(options.data_file.clone()));
            let path = format!("data/{file_prefix}-{unit_index:06}-{:04}.sst", files.len());
            let span = Span::new(std::mem::replace(&mut file_start, file_end.clone()), file_end);
            let (bytes, stats) = full.finish();
            let info = FileInfo {
                path: path.clone(),
                span,
                size: bytes.len() as u64,
                sha256: sha256(&bytes),
                entries: stats.entries,
                rows: stats.rows,
                logical_bytes: stats.logical_bytes,
                locality: None,
            };
            written.lock().await.push(path.clone());
            storage.put(&path, Bytes::from(bytes)).await?;
            files.push(info);
        }
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => return Ok(files),
        }
    }
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
    }
}
