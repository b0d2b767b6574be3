//! What a running backup keeps in its directory so that a killed run resumes, and several
//! runners can share one plan without lost updates:
//!
//! ```text
//!   BACKUP-PLAN                 the plan, the source store's id and the id of the run that
//!                               claimed the directory: written once (create-only)
//!   progress/<plan>-<unit>-<writer>   each writer's record of one work unit: its finished
//!                               files, where the rest of the unit starts, whether it is done;
//!                               written only by that writer (a run's claim of the unit), as each
//!                               of its files is stored
//!   progress/<plan>-<unit>      an older strata's record (one writer per directory), still read
//!   BACKUP-CHECKPOINT           what older strata kept instead (one object rewritten whole);
//!                               read, converted and removed when such a run is resumed
//! ```
//!
//! A run adopts what it finds only when it is the same plan from the same source store (a
//! run from another store is never adopted, whatever its plan). Each file is stored through the
//! chain's [`FileCodec`], like the manifest, in an [`Envelope`](crate::envelope::Envelope). All
//! of it is removed once the manifest is written, or when the run fails cleanly.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backup::plan::{BackupPlan, ExportTask, PlannedUnit};
use crate::catalog::Descriptor;
use crate::crypto::aead::is_sealed;
use crate::crypto::FileCodec;
use crate::envelope::Envelope;
use crate::error::{Error, Result};
use crate::format::manifest::{sha256, BackupScope, DescriptorRevision, FileInfo};
use crate::kv::{MvccFilter, WorkUnit};
use crate::layout::{self, CHECKPOINT_NAME, PLAN_NAME, PROGRESS_DIR};
use crate::span::Span;
use crate::storage::ExternalStorageExt;
use crate::storage::{subdir, ExternalStorage};
use crate::timestamp::Timestamp;
use std::sync::Arc;

/// The format of `BACKUP-PLAN`.
pub const PLAN_FORMAT: Envelope = crate::envelope::BACKUP_PLAN;
/// The format of a unit's done record.
pub const UNIT_RECORD_FORMAT: Envelope = crate::envelope::UNIT_RECORD;
/// The format of the legacy `BACKUP-CHECKPOINT` (its version was written big-endian: 1 is
/// stored as `00 01`).
const CHECKPOINT_MAGIC: &[u8; 8] = b"STRATACK";

/// One work unit's progress, as its done record holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitRecord {
    /// The id of the plan the unit belongs to.
    pub plan: String,
    /// The unit's index in [`BackupPlan::units`].
    pub unit: u32,
    /// Data files finished, in order.
    pub files: Vec<FileInfo>,
    /// Where the unfinished rest of the unit starts.
    pub next_key: Vec<u8>,
    /// Every file of the unit is written.
    pub done: bool,
}

/// What `BACKUP-PLAN` holds (version 2): the plan, and whose run it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    /// The plan being run.
    pub plan: BackupPlan,
    /// The id of the source store the plan reads (see [`crate::store_id`]), `None` for a store
    /// without one (or a run of an older strata).
    pub store: Option<String>,
    /// The id of the run that claimed the directory (empty for an older strata's run).
    pub run: String,
}

/// A run found in a backup directory: its plan and the records of the units it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunState {
    /// The plan being run.
    pub plan: BackupPlan,
    /// The best record of each started unit (a done one, else the one with the most files),
    /// by unit index; units without one have not started.
    pub units: Vec<UnitRecord>,
    /// Every record found, with its path (several writers may have worked on one unit).
    pub records: Vec<(String, UnitRecord)>,
    /// The source store the run reads (`None`: unknown).
    pub store: Option<String>,
    /// The id of the run that claimed the directory (empty: unknown).
    pub run: String,
    /// Whether it came from an older strata's `BACKUP-CHECKPOINT`.
    pub legacy: bool,
}

impl RunState {
    /// Files finished so far, over every record of every unit (each once).
    pub fn files(&self) -> impl Iterator<Item = &FileInfo> {
        let mut seen = std::collections::BTreeSet::new();
        self.records.iter().flat_map(|(_, r)| r.files.iter()).filter(move |f| seen.insert(f.path.as_str()))
    }

    /// Whether a run from store `store` may adopt this run: the same store, or either unknown
    /// (a store without an id, or a run of an older strata).
    pub fn same_store(&self, store: Option<&str>) -> bool {
        match (self.store.as_deref(), store) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        }
    }
}

/// The stored bytes of a run's `BACKUP-PLAN`.
pub fn encode_run_info(info: &RunInfo, codec: &FileCodec) -> Vec<u8> {
    codec.seal(PLAN_NAME, PLAN_FORMAT.encode(info))
}

/// The stored bytes of a unit's done record at `path`.
pub fn encode_unit_record(record: &UnitRecord, path: &str, codec: &FileCodec) -> Vec<u8> {
    codec.seal(path, UNIT_RECORD_FORMAT.encode(record))
}

/// Opens what `codec` sealed at `path`; `None` when it is not sealed the way the chain is.
fn unseal(stored: Bytes, path: &str, codec: &FileCodec, shown: &str) -> Result<Bytes> {
    if is_sealed(&stored) != codec.is_encrypted() {
        return Err(Error::corrupt(shown, "is not stored the way the backup chain is (plain or encrypted)"));
    }
    if codec.is_encrypted() {
        codec.open(path, stored, shown)
    } else {
        Ok(stored)
    }
}

/// Decodes a unit record stored at `path` (sealed with `codec`).
pub fn decode_unit_record(stored: Bytes, path: &str, codec: &FileCodec, shown: &str) -> Result<UnitRecord> {
    let bytes = unseal(stored, path, codec, shown)?;
    UNIT_RECORD_FORMAT.decode::<UnitRecord>(&bytes, shown)
}

/// Reads the run a directory holds, if any: its `BACKUP-PLAN` (checked against its id) and the
/// records of that plan's units, or an older strata's `BACKUP-CHECKPOINT` converted. An
/// unreadable one (damaged, another codec's) is `None`: the backup then starts over.
pub async fn read_run(dir: &dyn ExternalStorage, codec: &FileCodec) -> Option<RunState> {
    let shown = format!("{}/{PLAN_NAME}", dir.describe());
    let info = match dir.get(PLAN_NAME).await {
        Ok(stored) => decode_run_info(stored, codec, &shown)?,
        Err(_) => return read_legacy_checkpoint(dir, codec).await,
    };
    let plan = info.plan;
    let mut records = Vec::new();
    let prefix = format!("{PROGRESS_DIR}/{}-", plan.file_prefix());
    for o in dir.list(&prefix).await.ok()? {
        let shown = format!("{}/{}", dir.describe(), o.path);
        let Ok(stored) = dir.get(&o.path).await else { continue };
        let Ok(record) = decode_unit_record(stored, &o.path, codec, &shown) else { continue };
        if record.plan == plan.id && (record.unit as usize) < plan.units.len() {
            records.push((o.path, record));
        }
    }
    let units = best_records(records.iter().map(|(_, r)| r));
    Some(RunState { plan, units, records, store: info.store, run: info.run, legacy: false })
}

/// The best record of each unit among `records` (done first, then most files), by unit index.
pub(crate) fn best_records<'a>(records: impl Iterator<Item = &'a UnitRecord>) -> Vec<UnitRecord> {
    let mut best: std::collections::BTreeMap<u32, &UnitRecord> = Default::default();
    for r in records {
        let better = |old: &&UnitRecord| (r.done, r.files.len()) > (old.done, old.files.len());
        if best.get(&r.unit).is_none_or(better) {
            best.insert(r.unit, r);
        }
    }
    best.into_values().cloned().collect()
}

/// Decodes a stored `BACKUP-PLAN` (version 1 held the plan alone); `None` if it does not open
/// with `codec`, does not decode, or its plan's id does not match its content.
pub(crate) fn decode_run_info(stored: Bytes, codec: &FileCodec, shown: &str) -> Option<RunInfo> {
    let bytes = unseal(stored, PLAN_NAME, codec, shown).ok()?;
    let (version, body) = PLAN_FORMAT.open(&bytes, shown).ok()?;
    let info = match version {
        1 => RunInfo { plan: postcard::from_bytes(body).ok()?, store: None, run: String::new() },
        _ => postcard::from_bytes(body).ok()?,
    };
    info.plan.is_intact().then_some(info)
}

/// The directory's `BACKUP-PLAN`, if it holds a readable, intact one (read with `codec`): which
/// run the directory belongs to now.
pub(crate) async fn stored_run_info(dir: &dyn ExternalStorage, codec: &FileCodec) -> Option<RunInfo> {
    let shown = format!("{}/{PLAN_NAME}", dir.describe());
    let stored = dir.get(PLAN_NAME).await.ok()?;
    decode_run_info(stored, codec, &shown)
}

/// How [`find_unfinished`] reads the runs it finds.
#[derive(Clone, Copy)]
pub enum RunKeys<'a> {
    /// With one codec (a plain chain's, or an incremental's: its chain's).
    Codec(&'a FileCodec),
    /// A new full backup's run: each directory's own `ENCRYPTION-INFO` opened with these keys
    /// (a plain directory is read plain).
    Unlock(&'a crate::crypto::keyring::Keyring, crate::crypto::keyring::KeyRequest<'a>),
}

/// Finds the newest unfinished run of `request` (see [`BackupPlan::request`]) from source store
/// `store` below `root` under `prefix` (`""` for a collection's full backups, `incrementals/`
/// below a full backup) whose directory is the one its plan's end time gives (`expected_dir`),
/// read with `keys`; with the codec that opened it. A run of another store is never returned. A
/// legacy checkpoint is matched by its statement (`statement`, as printed), the only identity
/// older strata recorded; its plan is given `request`, so that once converted the run is still
/// found if it is killed again.
pub async fn find_unfinished(
    root: &Arc<dyn ExternalStorage>,
    prefix: &str,
    request: &str,
    statement: &str,
    store: Option<&str>,
    keys: RunKeys<'_>,
    dir_of: impl Fn(Timestamp, &str) -> bool,
) -> Result<Option<(String, RunState, FileCodec)>> {
    let mut found: Option<(String, RunState, FileCodec)> = None;
    for dir in layout::unfinished_dirs(root.as_ref(), prefix).await? {
        let location = subdir(root, &dir);
        let codec = match keys {
            RunKeys::Codec(codec) => codec.clone(),
            RunKeys::Unlock(keyring, request) => {
                if request.is_empty() {
                    FileCodec::plain()
                } else {
                    match crate::chain::unlock(location.as_ref(), keyring, request).await {
                        Ok(codec) => codec,
                        Err(_) => continue,
                    }
                }
            }
        };
        let Some(mut run) = read_run(location.as_ref(), &codec).await else { continue };
        let same = if run.legacy { run.plan.statement == statement } else { run.plan.request == request };
        let newer = found.as_ref().is_none_or(|(_, r, _)| r.plan.end_time < run.plan.end_time);
        if same && run.same_store(store) && dir_of(run.plan.end_time, &dir) && newer {
            // The request is not part of the plan's id: the converted plan stays the same plan.
            run.plan.request = request.to_string();
            found = Some((dir, run, codec));
        }
    }
    Ok(found)
}

/// The unfinished runs of `request` from store `store` below `root` under `prefix` other than
/// the one in `keep`: runs the request's newer run superseded (killed, and not resumed because
/// their end time differs). Read as [`find_unfinished`] reads them.
pub async fn superseded_runs(
    root: &Arc<dyn ExternalStorage>,
    prefix: &str,
    request: &str,
    store: Option<&str>,
    keys: RunKeys<'_>,
    keep: &str,
) -> Result<Vec<(String, RunState)>> {
    let mut out = Vec::new();
    for dir in layout::unfinished_dirs(root.as_ref(), prefix).await? {
        if dir == keep {
            continue;
        }
        let location = subdir(root, &dir);
        let codec = match keys {
            RunKeys::Codec(codec) => codec.clone(),
            RunKeys::Unlock(keyring, key_request) => {
                if key_request.is_empty() {
                    FileCodec::plain()
                } else {
                    match crate::chain::unlock(location.as_ref(), keyring, key_request).await {
                        Ok(codec) => codec,
                        Err(_) => continue,
                    }
                }
            }
        };
        let Some(run) = read_run(location.as_ref(), &codec).await else { continue };
        if !run.legacy && run.plan.request == request && run.store.as_deref() == store && store.is_some() {
            out.push((dir, run));
        }
    }
    Ok(out)
}

// ---- the legacy BACKUP-CHECKPOINT (frozen: never change these structs) -------------------

/// `BackupPlan` as older strata wrote it in its checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupPlanV1 {
    /// See [`BackupPlan::scope`].
    pub scope: BackupScope,
    /// See [`BackupPlan::is_full_cluster`].
    pub is_full_cluster: bool,
    /// See [`BackupPlan::start_time`].
    pub start_time: Timestamp,
    /// See [`BackupPlan::end_time`].
    pub end_time: Timestamp,
    /// See [`BackupPlan::mvcc_filter`].
    pub mvcc_filter: MvccFilter,
    /// See [`BackupPlan::revision_start_time`].
    pub revision_start_time: Timestamp,
    /// See [`BackupPlan::spans`].
    pub spans: Vec<Span>,
    /// See [`BackupPlan::introduced_spans`].
    pub introduced_spans: Vec<Span>,
    /// See [`BackupPlan::tasks`].
    pub tasks: Vec<ExportTask>,
    /// See [`BackupPlan::descriptors`].
    pub descriptors: Vec<Descriptor>,
    /// See [`BackupPlan::descriptor_changes`].
    pub descriptor_changes: Vec<DescriptorRevision>,
    /// See [`BackupPlan::dependencies`].
    pub dependencies: Vec<String>,
    /// See [`BackupPlan::statement`].
    pub statement: String,
}

/// One unit of a legacy checkpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCheckpointV1 {
    /// Index of its task in the plan.
    pub task: u32,
    /// The unit.
    pub unit: WorkUnit,
    /// Data files finished, in order.
    pub files: Vec<FileInfo>,
    /// Where the unfinished rest of the unit starts.
    pub next_key: Vec<u8>,
    /// Every file of the unit is written.
    pub done: bool,
}

/// What an older strata's `BACKUP-CHECKPOINT` held.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckpointV1 {
    /// The plan being run.
    pub plan: BackupPlanV1,
    /// Its work units, in export order.
    pub units: Vec<UnitCheckpointV1>,
}

impl CheckpointV1 {
    /// The checkpoint's bytes (before sealing), as older strata wrote them.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = CHECKPOINT_MAGIC.to_vec();
        out.extend_from_slice(&1u16.to_be_bytes());
        out.extend(postcard::to_allocvec(self).expect("checkpoints serialize"));
        out
    }

    /// Decodes a legacy checkpoint's bytes; `shown` names the file in errors.
    pub fn decode(bytes: &[u8], shown: &str) -> Result<CheckpointV1> {
        if bytes.len() < 10 || &bytes[..8] != CHECKPOINT_MAGIC {
            return Err(Error::corrupt(shown, "is not a strata backup checkpoint"));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != 1 {
            return Err(Error::corrupt(shown, format!("checkpoint version {version} is not supported")));
        }
        postcard::from_bytes(&bytes[10..]).map_err(|e| Error::corrupt(shown, format!("does not decode: {e}")))
    }

    /// The prefix older strata gave this plan's data files.
    pub fn file_prefix(&self) -> String {
        let encoded = postcard::to_allocvec(&self.plan).expect("plans always serialize");
        hex::encode(&sha256(&encoded)[..4])
    }

    /// The run this checkpoint describes, as today's plan and done records.
    pub fn into_run(self, key_check: Option<[u8; 16]>) -> RunState {
        let p = self.plan;
        let units = self.units.iter().map(|u| PlannedUnit { task: u.task, unit: u.unit.clone() }).collect();
        let plan = BackupPlan {
            id: String::new(),
            request: String::new(),
            scope: p.scope,
            is_full_cluster: p.is_full_cluster,
            start_time: p.start_time,
            end_time: p.end_time,
            mvcc_filter: p.mvcc_filter,
            revision_start_time: p.revision_start_time,
            spans: p.spans,
            introduced_spans: p.introduced_spans,
            tasks: p.tasks,
            units: Vec::new(),
            key_check: None,
            descriptors: p.descriptors,
            descriptor_changes: p.descriptor_changes,
            dependencies: p.dependencies,
            statement: p.statement,
        }
        .with_units(units)
        .with_key_check(key_check);
        let units: Vec<UnitRecord> = self
            .units
            .into_iter()
            .enumerate()
            .map(|(i, u)| UnitRecord {
                plan: plan.id.clone(),
                unit: i as u32,
                files: u.files,
                next_key: u.next_key,
                done: u.done,
            })
            .collect();
        let records = units.iter().map(|u| (String::new(), u.clone())).collect();
        RunState { plan, units, records, store: None, run: String::new(), legacy: true }
    }
}

async fn read_legacy_checkpoint(dir: &dyn ExternalStorage, codec: &FileCodec) -> Option<RunState> {
    let shown = format!("{}/{CHECKPOINT_NAME}", dir.describe());
    let stored = dir.get(CHECKPOINT_NAME).await.ok()?;
    let bytes = unseal(stored, CHECKPOINT_NAME, codec, &shown).ok()?;
    let checkpoint = CheckpointV1::decode(&bytes, &shown).ok()?;
    if checkpoint.units.iter().any(|u| u.task as usize >= checkpoint.plan.tasks.len()) {
        return None;
    }
    Some(checkpoint.into_run(codec.key().map(|k| k.check_value())))
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn decode_refuses_what_is_not_a_checkpoint() {
        let e = CheckpointV1::decode(b"BACKUP_MANIFEST", "x/BACKUP-CHECKPOINT").unwrap_err();
        assert_eq!(e, Error::corrupt("x/BACKUP-CHECKPOINT", "is not a strata backup checkpoint"));
        let mut b = CHECKPOINT_MAGIC.to_vec();
        b.extend_from_slice(&9u16.to_be_bytes());
        assert!(CheckpointV1::decode(&b, "x").unwrap_err().to_string().contains("version 9"));
    }
}
