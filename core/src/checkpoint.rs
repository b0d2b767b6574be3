//! Backup checkpoints: `BACKUP-CHECKPOINT` in the backup directory records the plan, its work
//! units, and for each unit the data files finished so far and the key the rest starts at. It is
//! rewritten (through the chain's [`FileCodec`], like the manifest) each time a data file or a
//! unit finishes, and removed once the manifest is written or the backup fails cleanly.
//!
//! A backup whose process was killed leaves the checkpoint and no manifest. Running the same plan
//! into the same directory again resumes: finished units are not exported again, and a unit in
//! progress continues after its last finished file. For `BACKUP INTO`, [`find_unfinished`] finds
//! the collection's unfinished directory so the re-run statement adopts its end time (and so its
//! plan).
//!
//! Format: magic `STRATACK`, version (u16 big-endian), then postcard of [`Checkpoint`].

use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backup::{dated_subdir, layer_subdir, BackupPlan, ExportTask};
use crate::crypto::aead::is_sealed;
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::manifest::{FileInfo, MANIFEST_NAME};
use crate::kv::{KvSource, WorkUnit};
use crate::progress::{Progress, ProgressOperation, ProgressReporter};
use crate::storage::ExternalStorageExt;
use crate::storage::{subdir, ExternalStorage};
use crate::timestamp::Timestamp;

/// Name of the checkpoint file in a backup directory.
pub const CHECKPOINT_NAME: &str = "BACKUP-CHECKPOINT";
const MAGIC: &[u8; 8] = b"STRATACK";
const VERSION: u16 = 1;

/// One work unit's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnitCheckpoint {
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

/// What `BACKUP-CHECKPOINT` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The plan being run.
    pub plan: BackupPlan,
    /// Its work units, in export order.
    pub units: Vec<UnitCheckpoint>,
}

impl Checkpoint {
    /// The checkpoint's bytes (before sealing).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        out.extend_from_slice(&VERSION.to_be_bytes());
        out.extend(postcard::to_allocvec(self).expect("checkpoints serialize"));
        out
    }

    /// Decodes [`Checkpoint::encode`]'s bytes; `shown` names the file in errors.
    pub fn decode(bytes: &[u8], shown: &str) -> Result<Checkpoint> {
        if bytes.len() < 10 || &bytes[..8] != MAGIC {
            return Err(Error::corrupt(shown, "is not a strata backup checkpoint"));
        }
        let version = u16::from_be_bytes([bytes[8], bytes[9]]);
        if version != VERSION {
            return Err(Error::corrupt(shown, format!("checkpoint version {version} is not supported")));
        }
        postcard::from_bytes(&bytes[10..]).map_err(|e| Error::corrupt(shown, format!("does not decode: {e}")))
    }

    /// Files finished so far, over every unit.
    pub fn files(&self) -> impl Iterator<Item = &FileInfo> {
        self.units.iter().flat_map(|u| u.files.iter())
    }
}

/// Reads a directory's checkpoint, if it has a readable one (an unreadable one is ignored: the
/// backup then starts over).
pub async fn read_checkpoint(storage: &dyn ExternalStorage, codec: &FileCodec) -> Option<Checkpoint> {
    let shown = format!("{}/{CHECKPOINT_NAME}", storage.describe());
    let stored = storage.get(CHECKPOINT_NAME).await.ok()?;
    if is_sealed(&stored) != codec.is_encrypted() {
        return None;
    }
    let bytes = if codec.is_encrypted() { codec.open(CHECKPOINT_NAME, stored, &shown).ok()? } else { stored };
    Checkpoint::decode(&bytes, &shown).ok()
}

/// Finds a `BACKUP INTO` collection's unfinished full backup of `statement` (as printed, secrets
/// redacted): a dated directory with a plain checkpoint of that statement and no manifest.
/// Returns its directory and end time. (An encrypted full backup's checkpoint cannot be read
/// before its key is, so encrypted full backups start over.)
pub async fn find_unfinished(root: &Arc<dyn ExternalStorage>, statement: &str) -> Result<Option<(String, Timestamp)>> {
    find(root, "", statement, &FileCodec::plain(), dated_subdir).await
}

/// Finds the unfinished incremental layer of `statement` below the full backup directory
/// `full` (`incrementals/…` with a checkpoint of that statement and no manifest), read with the
/// chain's `codec`. Returns its directory (relative to `full`) and end time.
pub async fn find_unfinished_layer(
    full: &Arc<dyn ExternalStorage>,
    statement: &str,
    codec: &FileCodec,
) -> Result<Option<(String, Timestamp)>> {
    let prefix = format!("{}/", crate::exec::INCREMENTALS_DIR);
    find(full, &prefix, statement, codec, |t| format!("{prefix}{}", layer_subdir(t))).await
}

async fn find(
    root: &Arc<dyn ExternalStorage>,
    prefix: &str,
    statement: &str,
    codec: &FileCodec,
    expected_dir: impl Fn(Timestamp) -> String,
) -> Result<Option<(String, Timestamp)>> {
    let suffix = format!("/{CHECKPOINT_NAME}");
    let mut found: Option<(String, Timestamp)> = None;
    for o in root.list(prefix).await? {
        let Some(dir) = o.path.strip_suffix(&suffix) else { continue };
        let storage = subdir(root, dir);
        if storage.size(MANIFEST_NAME).await.is_ok() {
            continue;
        }
        let Some(c) = read_checkpoint(storage.as_ref(), codec).await else { continue };
        if c.plan.statement == statement && expected_dir(c.plan.end_time) == dir {
            // The newest, should there be several.
            if found.as_ref().is_none_or(|(_, t)| *t < c.plan.end_time) {
                found = Some((dir.to_string(), c.plan.end_time));
            }
        }
    }
    Ok(found)
}

/// Keeps a running backup's checkpoint and writes it as work finishes.
pub(crate) struct Tracker {
    storage: Arc<dyn ExternalStorage>,
    codec: FileCodec,
    state: futures::lock::Mutex<Checkpoint>,
    progress: ProgressReporter,
}

impl Tracker {
    /// Adopts the directory's checkpoint of this very plan, or splits the plan's tasks into work
    /// units and writes a first checkpoint.
    pub(crate) async fn start(
        source: &dyn KvSource,
        storage: &Arc<dyn ExternalStorage>,
        plan: &BackupPlan,
        codec: &FileCodec,
        progress: &ProgressReporter,
    ) -> Result<Tracker> {
        if let Some(c) = read_checkpoint(storage.as_ref(), codec).await {
            if c.plan == *plan && c.units.iter().all(|u| (u.task as usize) < plan.tasks.len()) {
                return Ok(Tracker {
                    storage: storage.clone(),
                    codec: codec.clone(),
                    state: futures::lock::Mutex::new(c),
                    progress: progress.clone(),
                });
            }
            // A checkpoint of another plan (an earlier run with another end time, e.g. a paused
            // `BACKUP TO` job run again): its files are no backup and will not be used.
            let prefix = crate::backup::plan_file_prefix(&c.plan);
            for o in storage.list(&format!("data/{prefix}-")).await? {
                let _ = storage.delete(&o.path).await;
            }
        }
        let mut units = Vec::new();
        for (i, task) in plan.tasks.iter().enumerate() {
            for unit in source.split(&task.span).await? {
                let next_key = unit.span.start.clone();
                units.push(UnitCheckpoint { task: i as u32, unit, files: Vec::new(), next_key, done: false });
            }
        }
        let tracker = Tracker {
            storage: storage.clone(),
            codec: codec.clone(),
            state: futures::lock::Mutex::new(Checkpoint { plan: plan.clone(), units }),
            progress: progress.clone(),
        };
        tracker.write(&*tracker.state.lock().await).await?;
        Ok(tracker)
    }

    async fn write(&self, c: &Checkpoint) -> Result<()> {
        if self.progress.is_set() {
            let done = c.units.iter().filter(|u| u.done).count();
            let fraction = if c.units.is_empty() { 1.0 } else { done as f64 / c.units.len() as f64 };
            let (rows, bytes) = c.files().fold((0, 0), |(r, b), f| (r + f.rows, b + f.logical_bytes));
            self.progress.report(&Progress { operation: ProgressOperation::Backup, fraction, bytes, rows });
        }
        let bytes = self.codec.seal(CHECKPOINT_NAME, c.encode());
        // A checkpoint lost in a crash costs only redone work: it is not synced to disk.
        self.storage.put_volatile(CHECKPOINT_NAME, Bytes::from(bytes)).await
    }

    /// The units to export, with their tasks.
    pub(crate) async fn units<'a>(&self, plan: &'a BackupPlan) -> Vec<(&'a ExportTask, WorkUnit)> {
        self.state.lock().await.units.iter().map(|u| (&plan.tasks[u.task as usize], u.unit.clone())).collect()
    }

    /// Unit `i`'s progress: (finished files, where the rest starts, done).
    pub(crate) async fn unit(&self, i: usize) -> (Vec<FileInfo>, Vec<u8>, bool) {
        let st = self.state.lock().await;
        let u = &st.units[i];
        (u.files.clone(), u.next_key.clone(), u.done)
    }

    /// Paths of every file the checkpoint records.
    pub(crate) async fn paths(&self) -> Vec<String> {
        self.state.lock().await.files().map(|f| f.path.clone()).collect()
    }

    /// Records a finished data file of unit `i`; the rest of the unit starts at `next_key`.
    /// Records a finished file of unit `i`, and whether it was the unit's last (one write).
    pub(crate) async fn file_done(&self, i: usize, info: &FileInfo, next_key: &[u8], unit_done: bool) -> Result<()> {
        let mut st = self.state.lock().await;
        st.units[i].files.push(info.clone());
        st.units[i].next_key = next_key.to_vec();
        st.units[i].done = unit_done;
        self.write(&st).await
    }

    /// Records that unit `i` is finished.
    pub(crate) async fn unit_done(&self, i: usize) -> Result<()> {
        let mut st = self.state.lock().await;
        st.units[i].done = true;
        self.write(&st).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn decode_refuses_what_is_not_a_checkpoint() {
        let e = Checkpoint::decode(b"BACKUP_MANIFEST", "x/BACKUP-CHECKPOINT").unwrap_err();
        assert_eq!(
            e.to_string(),
            Error::corrupt("x/BACKUP-CHECKPOINT", "is not a strata backup checkpoint").to_string()
        );
        let mut b = MAGIC.to_vec();
        b.extend_from_slice(&9u16.to_be_bytes());
        assert!(Checkpoint::decode(&b, "x").unwrap_err().to_string().contains("version 9"));
    }
}
