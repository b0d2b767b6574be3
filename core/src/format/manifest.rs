//! The backup manifest: what a backup holds and where, written last.
//!
//! ```text
//! BACKUP_MANIFEST          = magic "STRATAMF" | version: u16 LE | postcard(Manifest)
//! BACKUP_MANIFEST-CHECKSUM = hex SHA-256 of BACKUP_MANIFEST, then "\n"
//! ```

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::catalog::{Catalog, DescId, Descriptor, FIRST_USER_ID};
pub use crate::envelope::sha256;
use crate::envelope::MANIFEST;
use crate::error::{Error, Result};
use crate::kv::MvccFilter;
use crate::span::{Span, SpanSet};
use crate::timestamp::Timestamp;

/// The manifest's magic.
pub const MANIFEST_MAGIC: &[u8; 8] = MANIFEST.magic();
/// The manifest format version this build writes.
pub const MANIFEST_VERSION: u16 = MANIFEST.version();

/// What a backup was asked to cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupScope {
    /// Every database and table, and the system span.
    Cluster,
    /// These databases (ids at backup time) with all their tables.
    Databases(Vec<DescId>),
    /// These tables (ids at backup time); a database's id among them stands for a `db.*`
    /// target: every table of that database, those created later included (so an incremental
    /// picks them up, as CockroachDB's does). Backups by earlier strata builds list a `db.*`
    /// target's tables one by one; an incremental extending one keeps that form.
    Tables(Vec<DescId>),
}

/// One data file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileInfo {
    /// Path relative to the backup directory, e.g. `data/000001-0000.sst`.
    pub path: String,
    /// The keys the file covers (its work unit's span).
    pub span: Span,
    /// Stored size in bytes.
    pub size: u64,
    /// SHA-256 of the stored bytes.
    pub sha256: [u8; 32],
    /// MVCC entries in the file.
    pub entries: u64,
    /// Entries with a value (rows).
    pub rows: u64,
    /// Key and value bytes before encoding.
    pub logical_bytes: u64,
    /// The locality the file was written to (`None`: the default location).
    pub locality: Option<String>,
}

/// A descriptor's change inside a backup's time window (revision history).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescriptorRevision {
    /// When the change happened.
    pub ts: Timestamp,
    /// The descriptor's id.
    pub id: DescId,
    /// The new descriptor, or `None` when it was dropped.
    pub descriptor: Option<Descriptor>,
}

/// Everything a restore needs to know about one backup layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// The strata version that wrote it, e.g. `strata 0.1.0`.
    pub created_by: String,
    /// Exclusive start of the layer's time window (zero for a full backup).
    pub start_time: Timestamp,
    /// Inclusive end of the window: the time the backup is as of.
    pub end_time: Timestamp,
    /// Whether every revision in the window is kept.
    pub mvcc_filter: MvccFilter,
    /// What was targeted.
    pub scope: BackupScope,
    /// Whether this is a full-cluster backup.
    pub is_full_cluster: bool,
    /// The key spans the backup covers.
    pub spans: Vec<Span>,
    /// Spans new in this layer, exported from time zero.
    pub introduced_spans: Vec<Span>,
    /// Descriptors of the targets (and their databases) at `end_time`.
    pub descriptors: Vec<Descriptor>,
    /// Descriptor changes in the window (with revision history).
    pub descriptor_changes: Vec<DescriptorRevision>,
    /// The data files.
    pub files: Vec<FileInfo>,
    /// Paths of the earlier layers this one extends, oldest first (empty for a full backup).
    pub dependencies: Vec<String>,
    /// The statement that made it, secrets redacted.
    pub statement: String,
    /// With revision history: the earliest time this layer can restore to (every version after it
    /// is kept). For a full backup this is the source's GC threshold at backup time (or zero); for
    /// an incremental, its `start_time`. Without revision history, equal to `end_time`.
    pub revision_start_time: Timestamp,
    /// The id of the store the backup was taken from (see `strata_core::store_id`), and of the
    /// run that committed it; `None` before version 3 (or for a store without an id).
    pub origin: Option<Origin>,
}

/// Whose backup a manifest is (version 3 on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The source store's id (`None`: a store without one).
    pub store: Option<String>,
    /// The id of the run (or shared job) that wrote the files and committed the manifest.
    pub run: String,
}

/// Version 2 of the manifest, frozen: decoded and converted, never written.
#[derive(Deserialize)]
struct ManifestV2 {
    created_by: String,
    start_time: Timestamp,
    end_time: Timestamp,
    mvcc_filter: MvccFilter,
    scope: BackupScope,
    is_full_cluster: bool,
    spans: Vec<Span>,
    introduced_spans: Vec<Span>,
    descriptors: Vec<Descriptor>,
    descriptor_changes: Vec<DescriptorRevision>,
    files: Vec<FileInfo>,
    dependencies: Vec<String>,
    statement: String,
    revision_start_time: Timestamp,
}

impl From<ManifestV2> for Manifest {
    fn from(m: ManifestV2) -> Manifest {
        Manifest {
            created_by: m.created_by,
            start_time: m.start_time,
            end_time: m.end_time,
            mvcc_filter: m.mvcc_filter,
            scope: m.scope,
            is_full_cluster: m.is_full_cluster,
            spans: m.spans,
            introduced_spans: m.introduced_spans,
            descriptors: m.descriptors,
            descriptor_changes: m.descriptor_changes,
            files: m.files,
            dependencies: m.dependencies,
            statement: m.statement,
            revision_start_time: m.revision_start_time,
            origin: None,
        }
    }
}

/// Version 1 of the manifest, frozen: decoded and converted, never written.
#[derive(Deserialize)]
struct ManifestV1 {
    created_by: String,
    start_time: Timestamp,
    end_time: Timestamp,
    mvcc_filter: MvccFilter,
    scope: BackupScope,
    is_full_cluster: bool,
    spans: Vec<Span>,
    introduced_spans: Vec<Span>,
    descriptors: Vec<Descriptor>,
    descriptor_changes: Vec<DescriptorRevision>,
    files: Vec<FileInfo>,
    dependencies: Vec<String>,
    statement: String,
}

impl From<ManifestV1> for Manifest {
    fn from(m: ManifestV1) -> Manifest {
        Manifest {
            revision_start_time: if m.mvcc_filter == MvccFilter::AllRevisions { m.start_time } else { m.end_time },
            created_by: m.created_by,
            start_time: m.start_time,
            end_time: m.end_time,
            mvcc_filter: m.mvcc_filter,
            scope: m.scope,
            is_full_cluster: m.is_full_cluster,
            spans: m.spans,
            introduced_spans: m.introduced_spans,
            descriptors: m.descriptors,
            descriptor_changes: m.descriptor_changes,
            files: m.files,
            dependencies: m.dependencies,
            statement: m.statement,
            origin: None,
        }
    }
}

impl Manifest {
    /// The catalog the backup holds.
    pub fn catalog(&self) -> Catalog {
        Catalog::from_descriptors(self.descriptors.iter().cloned())
    }

    /// Whether this layer keeps every revision in its window.
    pub fn has_revision_history(&self) -> bool {
        self.mvcc_filter == MvccFilter::AllRevisions
    }

    /// Whether the data as of `t` can be read from this layer (given its predecessors): at its end
    /// time, or anywhere in its revision-history window.
    pub fn can_restore_to(&self, t: Timestamp) -> bool {
        t == self.end_time || (self.has_revision_history() && self.revision_start_time <= t && t <= self.end_time)
    }

    /// Whether this layer is a full backup.
    pub fn is_full(&self) -> bool {
        self.start_time.is_zero()
    }

    /// Encodes the manifest: magic, version, postcard body.
    pub fn encode(&self) -> Vec<u8> {
        MANIFEST.encode(self)
    }

    /// Decodes a manifest read from `path`, accepting every version this build knows.
    pub fn decode(bytes: &[u8], path: &str) -> Result<Manifest> {
        let (version, body) = MANIFEST.open(bytes, path)?;
        let undecodable = |e: postcard::Error| MANIFEST.undecodable(path, e);
        let manifest: Manifest = match version {
            1 => postcard::from_bytes::<ManifestV1>(body).map(Manifest::from).map_err(undecodable),
            2 => postcard::from_bytes::<ManifestV2>(body).map(Manifest::from).map_err(undecodable),
            MANIFEST_VERSION => postcard::from_bytes(body).map_err(undecodable),
            // `open` refuses versions past the current one; an older one without an arm here
            // is a build that forgot its frozen struct.
            v => Err(MANIFEST.undecodable(path, format!("no reader for version {v}"))),
        }?;
        manifest.check(path)?;
        Ok(manifest)
    }

    /// Checks what a checksum cannot: that the manifest is one a backup could have written.
    /// Descriptor ids are user ids (not 0, not reserved, not `u32::MAX`) and unique; database
    /// names are unique, and table names within their database; each file is named once, lies
    /// inside the backup's spans, has no more rows than entries and a relative path without `.`,
    /// `..` or empty segments; the time window is ordered.
    /// [`Manifest::decode`] runs it, so nothing is ingested from a manifest that fails it.
    pub fn check(&self, path: &str) -> Result<()> {
        let bad = |what: String| Err(Error::corrupt(path, what));
        let valid_id = |id: DescId| (FIRST_USER_ID..u32::MAX).contains(&id);
        if self.start_time > self.end_time || self.revision_start_time > self.end_time {
            return bad(format!(
                "its time window is out of order (from {} to {}, revisions from {})",
                self.start_time, self.end_time, self.revision_start_time
            ));
        }
        let scope_ids = match &self.scope {
            BackupScope::Cluster => &[][..],
            BackupScope::Databases(ids) | BackupScope::Tables(ids) => &ids[..],
        };
        if let Some(id) = scope_ids.iter().find(|id| !valid_id(**id)) {
            return bad(format!("its scope names descriptor id {id}, which is not a valid user id"));
        }
        let mut ids = BTreeSet::new();
        let mut names = BTreeSet::new();
        for d in &self.descriptors {
            let (id, parent) = match d {
                Descriptor::Database(db) => (db.id, None),
                Descriptor::Table(t) => (t.id, Some(t.parent_id)),
            };
            if !valid_id(id) || parent.is_some_and(|p| !valid_id(p)) {
                return bad(format!("descriptor {:?} has id {id} (parent {parent:?}): not a valid user id", d.name()));
            }
            if !ids.insert(id) {
                return bad(format!("two descriptors have id {id}"));
            }
            if !names.insert((parent, d.name())) {
                let kind = if parent.is_some() { "tables" } else { "databases" };
                return bad(format!("two {kind} are named {:?} in the same scope", d.name()));
            }
        }
        for r in &self.descriptor_changes {
            if !valid_id(r.id) || r.descriptor.as_ref().is_some_and(|d| d.id() != r.id) {
                return bad(format!("a descriptor change at {} names an invalid id {}", r.ts, r.id));
            }
        }
        let spans = SpanSet::from_spans(self.spans.iter().cloned());
        let mut paths = BTreeSet::new();
        for f in &self.files {
            // A file name read from a backup never leaves the backup's directory, whatever
            // storage (a JS plugin included) resolves it.
            let escapes = f.path.is_empty()
                || f.path.starts_with('/')
                || f.path.chars().any(|c| c == '\\' || c.is_control())
                || f.path.split('/').any(|s| s.is_empty() || s == "." || s == "..");
            if escapes {
                return bad(format!(
                    "names the data file {:?}, which is not a relative path inside the backup",
                    f.path
                ));
            }
            if !paths.insert(f.path.as_str()) {
                return bad(format!("names the data file {} twice", f.path));
            }
            if f.span.is_empty() || !spans.covers(&SpanSet::from_spans([f.span.clone()])) {
                return bad(format!("data file {} covers keys outside the backup's spans", f.path));
            }
            if f.rows > f.entries {
                return bad(format!("data file {} has {} rows but only {} entries", f.path, f.rows, f.entries));
            }
        }
        Ok(())
    }
}

/// The contents of `BACKUP_MANIFEST-CHECKSUM` for manifest bytes.
pub fn manifest_checksum(manifest_bytes: &[u8]) -> String {
    format!("{}\n", hex::encode(sha256(manifest_bytes)))
}

/// Checks manifest bytes against the checksum file's contents.
pub fn verify_manifest_checksum(manifest_bytes: &[u8], checksum_file: &[u8], path: &str) -> Result<()> {
    let expected = std::str::from_utf8(checksum_file).map(str::trim).unwrap_or("");
    if expected != hex::encode(sha256(manifest_bytes)) {
        return Err(Error::corrupt(path, "manifest does not match BACKUP_MANIFEST-CHECKSUM"));
    }
    Ok(())
}
