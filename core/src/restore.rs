//! Planning and running a restore: choose what to bring back, give it new ids, ingest only the
//! blocks that hold it, and publish everything in one step at the end.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::backup::expand_table_name;
use crate::catalog::{Catalog, DatabaseDescriptor, DescId, Descriptor, DescriptorChange, TableDescriptor};
use crate::error::{Error, Result};
use crate::format::datafile::{decode_block, decode_footer, decode_index, BlockHandle, FOOTER_LEN};
use crate::format::manifest::{sha256, FileInfo, Manifest, MANIFEST_NAME};
use crate::keys;
use crate::kv::KvSink;
use crate::span::{Span, SpanSet};
use crate::sql::{RestoreOptions, Targets};
use crate::storage::ExternalStorage;
use crate::timestamp::Timestamp;

/// A database the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatabaseRestore {
    /// Its id in the backup.
    pub old_id: DescId,
    /// The descriptor it gets in the target (new id, maybe new name).
    pub descriptor: DatabaseDescriptor,
}

/// A table the restore creates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRestore {
    /// Its id in the backup (its keys' prefix there).
    pub old_id: DescId,
    /// The descriptor it gets in the target (new id, new parent).
    pub descriptor: TableDescriptor,
}

/// What a restore will do, as plain data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestorePlan {
    /// The time the restored data is as of.
    pub as_of: Timestamp,
    /// Databases to create.
    pub databases: Vec<DatabaseRestore>,
    /// Tables to create.
    pub tables: Vec<TableRestore>,
    /// Whether the system span's state is restored too (full-cluster restore).
    pub restore_system: bool,
    /// The data files to read (paths relative to the backup directory).
    pub files: Vec<FileInfo>,
}

impl RestorePlan {
    /// The spans, in the target, the restore writes into.
    pub fn target_spans(&self) -> Vec<Span> {
        self.tables.iter().map(|t| t.descriptor.span()).collect()
    }

    /// Old table id → new table id.
    pub fn rewrites(&self) -> BTreeMap<DescId, DescId> {
        self.tables.iter().map(|t| (t.old_id, t.descriptor.id)).collect()
    }

    /// Backup spans to read.
    pub fn source_spans(&self) -> SpanSet {
        let mut spans: Vec<Span> = self.tables.iter().map(|t| keys::table_span(t.old_id)).collect();
        if self.restore_system {
            spans.push(keys::system_span());
        }
        SpanSet::from_spans(spans)
    }
}

enum Parent {
    /// A database restored alongside (its id in the backup).
    Restored(DescId),
    /// A database already in the target.
    Existing(DescId),
}

/// What a restore will bring back, checked against the target but not yet given ids:
/// [`RestoreSelection::ids_needed`] fresh ids turn it into a [`RestorePlan`].
pub struct RestoreSelection<'a> {
    manifest: &'a Manifest,
    dbs: Vec<(DatabaseDescriptor, String)>,
    tables: Vec<(TableDescriptor, Parent)>,
    restore_system: bool,
}

/// Chooses what to restore and checks it against the target's catalog (names that already
/// exist, a non-empty cluster, objects missing from the backup); pure.
pub fn prepare_restore<'a>(
    manifest: &'a Manifest,
    target: &Catalog,
    targets: &Targets,
    options: &RestoreOptions,
) -> Result<RestoreSelection<'a>> {
    let backup = manifest.catalog();
    let mut dbs: Vec<(&DatabaseDescriptor, String)> = Vec::new();
    let mut tables: Vec<(&TableDescriptor, Parent)> = Vec::new();
    let mut restore_system = false;
    match targets {
        Targets::Cluster => {
            if !manifest.is_full_cluster {
                return Err(Error::Precondition(
                    "the backup is not a full cluster backup; use RESTORE DATABASE or RESTORE TABLE".into(),
                ));
            }
            if !target.has_no_user_objects() {
                return Err(Error::Precondition(
                    "full cluster restore can only be run on a cluster with no user-created databases or tables".into(),
                ));
            }
            restore_system = true;
            for db in backup.databases.values() {
                dbs.push((db, db.name.clone()));
            }
            for t in backup.tables.values() {
                tables.push((t, Parent::Restored(t.parent_id)));
            }
        }
        Targets::Databases(names) => {
            if options.new_db_name.is_some() && names.len() != 1 {
                return Err(Error::invalid("new_db_name", "can only be used when restoring a single database"));
            }
            for name in names {
                let db = backup.database(name).ok_or_else(|| Error::not_found("database in backup", name.clone()))?;
                let new_name = options.new_db_name.clone().unwrap_or_else(|| name.clone());
                if target.database(&new_name).is_some() {
                    return Err(Error::exists("database", new_name));
                }
                dbs.push((db, new_name));
                for t in backup.tables_in(db.id) {
                    tables.push((t, Parent::Restored(db.id)));
                }
            }
        }
        Targets::Tables(names) => {
            if options.new_db_name.is_some() {
                return Err(Error::invalid("new_db_name", "is only valid with RESTORE DATABASE"));
            }
            for name in names {
                let ids = expand_table_name(&backup, name).map_err(|e| match e {
                    Error::NotFound { what, name } => Error::NotFound { what: format!("{what} in backup"), name },
                    e => e,
                })?;
                for id in ids {
                    let t = &backup.tables[&id];
                    let db_name =
                        options.into_db.clone().unwrap_or_else(|| backup.database_name(t.parent_id).to_string());
                    let db = target.database(&db_name).ok_or_else(|| {
                        Error::Precondition(format!(
                            "a database named {db_name} needs to exist to restore table {}.{} (create it, or use WITH into_db)",
                            backup.database_name(t.parent_id),
                            t.name
                        ))
                    })?;
                    if target.tables_in(db.id).any(|x| x.name == t.name) {
                        return Err(Error::exists("table", format!("{db_name}.{}", t.name)));
                    }
                    if !tables.iter().any(|(x, _)| x.id == t.id) {
                        tables.push((t, Parent::Existing(db.id)));
                    }
                }
            }
        }
    }
    Ok(RestoreSelection {
        manifest,
        dbs: dbs.into_iter().map(|(d, n)| (d.clone(), n)).collect(),
        tables: tables.into_iter().map(|(t, p)| (t.clone(), p)).collect(),
        restore_system,
    })
}

impl RestoreSelection<'_> {
    /// How many fresh descriptor ids the restore needs.
    pub fn ids_needed(&self) -> u32 {
        (self.dbs.len() + self.tables.len()) as u32
    }

    /// The plan, giving the restored objects ids `first_id..first_id + ids_needed()`.
    pub fn plan(self, first_id: DescId) -> Result<RestorePlan> {
        let manifest = self.manifest;
        let mut next = first_id;
        let mut db_map = BTreeMap::new();
        let mut plan = RestorePlan {
            as_of: manifest.end_time,
            databases: Vec::new(),
            tables: Vec::new(),
            restore_system: self.restore_system,
            files: Vec::new(),
        };
        for (db, name) in self.dbs {
            db_map.insert(db.id, next);
            plan.databases.push(DatabaseRestore {
                old_id: db.id,
                descriptor: DatabaseDescriptor { id: next, name, version: 1, modification_time: manifest.end_time },
            });
            next += 1;
        }
        for (t, parent) in self.tables {
            let parent_id = match parent {
                Parent::Restored(old) => *db_map.get(&old).ok_or_else(|| {
                    Error::corrupt(MANIFEST_NAME, format!("table {} has no database in the backup", t.name))
                })?,
                Parent::Existing(id) => id,
            };
            plan.tables.push(TableRestore {
                old_id: t.id,
                descriptor: TableDescriptor {
                    id: next,
                    parent_id,
                    version: 1,
                    modification_time: manifest.end_time,
                    ..t
                },
            });
            next += 1;
        }
        let needed = plan.source_spans();
        plan.files =
            manifest.files.iter().filter(|f| needed.spans().iter().any(|s| s.overlaps(&f.span))).cloned().collect();
        Ok(plan)
    }
}

/// How a restore runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RestoreRunOptions {
    /// Files read at once.
    pub concurrency: usize,
    /// Bytes of key/value pairs per ingest call.
    pub batch_bytes: usize,
}

impl Default for RestoreRunOptions {
    fn default() -> Self {
        RestoreRunOptions { concurrency: 4, batch_bytes: 4 << 20 }
    }
}

/// What a finished restore did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreSummary {
    /// Rows written.
    pub rows: u64,
    /// Key and value bytes written.
    pub bytes: u64,
    /// Commit timestamp of the publish step.
    pub published_at: Timestamp,
}

/// Runs a restore plan: ingests the data, validates, and publishes the new descriptors at once.
/// On any failure everything ingested is discarded and nothing becomes visible.
pub async fn run_restore(
    sink: &dyn KvSink,
    storage: Arc<dyn ExternalStorage>,
    plan: &RestorePlan,
    options: &RestoreRunOptions,
) -> Result<RestoreSummary> {
    let spans = plan.target_spans();
    match ingest_and_publish(sink, storage, plan, options).await {
        Ok(summary) => Ok(summary),
        Err(e) => {
            // Best effort: the data is invisible without its descriptors either way.
            let _ = sink.discard(&spans).await;
            Err(e)
        }
    }
}

async fn ingest_and_publish(
    sink: &dyn KvSink,
    storage: Arc<dyn ExternalStorage>,
    plan: &RestorePlan,
    options: &RestoreRunOptions,
) -> Result<RestoreSummary> {
    let needed = plan.source_spans();
    let rewrites = plan.rewrites();
    let totals: Vec<(u64, u64)> = stream::iter(plan.files.iter())
        .map(|f| restore_file(sink, &storage, f, &needed, &rewrites, plan.restore_system, options))
        .buffer_unordered(options.concurrency.max(1))
        .try_collect()
        .await?;
    for t in &plan.tables {
        sink.validate_indexes(&t.descriptor).await?;
    }
    let changes = plan
        .databases
        .iter()
        .map(|d| DescriptorChange::Put(Descriptor::Database(d.descriptor.clone())))
        .chain(plan.tables.iter().map(|t| DescriptorChange::Put(Descriptor::Table(t.descriptor.clone()))))
        .collect();
    let published_at = sink.publish(changes).await?;
    Ok(RestoreSummary { rows: totals.iter().map(|t| t.0).sum(), bytes: totals.iter().map(|t| t.1).sum(), published_at })
}

async fn restore_file(
    sink: &dyn KvSink,
    storage: &Arc<dyn ExternalStorage>,
    file: &FileInfo,
    needed: &SpanSet,
    rewrites: &BTreeMap<DescId, DescId>,
    restore_system: bool,
    options: &RestoreRunOptions,
) -> Result<(u64, u64)> {
    let where_ = format!("{}/{}", storage.describe(), file.path);
    let size = storage.size(&file.path).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::corrupt(&where_, "data file named by the manifest is missing"),
        e => e,
    })?;
    if size != file.size {
        return Err(Error::corrupt(&where_, format!("size is {size} bytes, the manifest says {}", file.size)));
    }
    let spans: Vec<Span> = needed.spans().iter().map(|s| s.intersect(&file.span)).filter(|s| !s.is_empty()).collect();
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut batch_bytes = 0usize;
    let (mut rows, mut bytes) = (0u64, 0u64);
    let blocks = read_blocks(storage, file, &where_, &spans).await?;
    for (i, handle, data) in blocks {
        let mut entries = Vec::with_capacity(handle.entries as usize);
        decode_block(&data, &handle, i, &where_, |e| entries.push(e))?;
        for e in entries {
            let Some(value) = e.value else { continue };
            if !spans.iter().any(|s| s.contains(&e.key)) {
                continue;
            }
            let mut key = e.key;
            if let Some((old, _)) = keys::decode_table_key(&key) {
                let Some(new) = rewrites.get(&old) else { continue };
                keys::rewrite_table_key(&mut key, *new);
            } else if !(restore_system && is_restorable_system_key(&key)) {
                continue;
            }
            rows += 1;
            bytes += (key.len() + value.len()) as u64;
            batch_bytes += key.len() + value.len();
            batch.push((key, value));
            if batch_bytes >= options.batch_bytes {
                sink.ingest(std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
        }
    }
    if !batch.is_empty() {
        sink.ingest(batch).await?;
    }
    Ok((rows, bytes))
}

/// System keys a full-cluster restore carries over: everything but descriptors (rewritten and
/// published separately) and the id counter (the target's own).
fn is_restorable_system_key(key: &[u8]) -> bool {
    keys::system_span().contains(key) && !keys::descriptor_span().contains(key) && key != keys::ID_COUNTER_KEY
}

/// Reads the blocks of a data file that may hold keys of `spans`. When every block is needed the
/// whole file is fetched and its SHA-256 checked; otherwise the footer, the index and just the
/// needed blocks are fetched with ranged reads (each block carries its own checksum).
async fn read_blocks(
    storage: &Arc<dyn ExternalStorage>,
    file: &FileInfo,
    where_: &str,
    spans: &[Span],
) -> Result<Vec<(usize, BlockHandle, bytes::Bytes)>> {
    let whole = spans.iter().any(|s| s.start <= file.span.start && file.span.end <= s.end);
    let size = file.size;
    if size < FOOTER_LEN {
        return Err(Error::corrupt(where_, "file is too short to hold a data file footer"));
    }
    if whole {
        let data = storage.get(&file.path).await?;
        if sha256(&data) != file.sha256 {
            return Err(Error::corrupt(where_, "SHA-256 does not match the manifest"));
        }
        let footer = decode_footer(&data[(size - FOOTER_LEN) as usize..], size, where_)?;
        let start = footer.index_offset as usize;
        let index = decode_index(&data[start..start + footer.index_len as usize], &footer, where_)?;
        return Ok(index
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                let r = h.range();
                let block = data.slice(r.start as usize..r.end as usize);
                (i, h, block)
            })
            .collect());
    }
    let footer_bytes = storage.get_range(&file.path, size - FOOTER_LEN..size).await?;
    let footer = decode_footer(&footer_bytes, size, where_)?;
    let index_bytes =
        storage.get_range(&file.path, footer.index_offset..footer.index_offset + footer.index_len as u64).await?;
    let index = decode_index(&index_bytes, &footer, where_)?;
    let wanted: Vec<(usize, BlockHandle)> =
        index.into_iter().enumerate().filter(|(_, h)| spans.iter().any(|s| h.overlaps(s))).collect();
    // Coalesce adjacent blocks into one ranged read.
    let mut out = Vec::with_capacity(wanted.len());
    let mut i = 0;
    while i < wanted.len() {
        let mut j = i;
        while j + 1 < wanted.len() && wanted[j + 1].0 == wanted[j].0 + 1 {
            j += 1;
        }
        let start = wanted[i].1.offset;
        let end = wanted[j].1.offset + wanted[j].1.len as u64;
        let data = storage.get_range(&file.path, start..end).await?;
        for (bi, h) in &wanted[i..=j] {
            let r = (h.offset - start) as usize..(h.offset - start + h.len as u64) as usize;
            out.push((*bi, h.clone(), data.slice(r)));
        }
        i = j + 1;
    }
    Ok(out)
}
