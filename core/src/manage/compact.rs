//! Compacting a backup chain: its full backup and incremental layers merged into one new full
//! backup at the chain's end time, read from the backup alone (never from the source store).
//!
//! ```text
//!   Chain (open, unlocked) ──file boundaries──▶ key intervals, each covered by ≤ 1 file per layer
//!       per interval: every layer's entries (each file read whole, SHA-256 checked, decrypted)
//!       ──merge: (key, newest first), one version per (key, ts)──▶ keep all (revision history)
//!                                                              or newest per key, no deletions
//!       ──DataFileWriter──▶ data/compacted-…sst (sealed with the chain's key)
//!   then ENCRYPTION-INFO (the chain's), BACKUP-FILES, BACKUP_MANIFEST (create-only), checksum
//! ```
//!
//! The new manifest takes the last layer's targets, spans and descriptors; with revision history
//! kept, every layer's descriptor changes and the full backup's revision start, so it restores
//! to every time the chain could; dropped, only to its end time. A restore from it equals one
//! from the chain. At most the files overlapping one interval are held in memory.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::chain::Chain;
use crate::crypto::keyring::{KeyRequest, Keyring};
use crate::error::{Error, Result};
use crate::format::datafile::{read_all, DataFileOptions, DataFileWriter};
use crate::format::files_list::encode_files_list;
use crate::format::manifest::{manifest_checksum, sha256, FileInfo, Manifest, Origin};
use crate::kv::{Entry, MvccFilter};
use crate::layout::{
    dated_subdir, full_backups, new_layer_dir, read_latest, writer_data_file_path, ENCRYPTION_INFO_NAME,
    FILES_LIST_NAME, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME,
};
use crate::locality::Locations;
use crate::span::{Span, SpanSet};
use crate::storage::ExternalStorageExt;

/// The file prefix of a compacted backup's data files.
pub const COMPACTED_PREFIX: &str = "compacted";

/// How [`compact_chain`] writes.
#[derive(Debug, Clone)]
pub struct CompactOptions {
    /// Keep every revision when the chain has revision history; `false` keeps each key's
    /// version at the end time only (a chain without revision history has nothing more).
    pub keep_history: bool,
    /// Bytes of a data file before the next one starts.
    pub target_file_size: usize,
    /// How data files are encoded.
    pub data_file: DataFileOptions,
}

impl Default for CompactOptions {
    fn default() -> Self {
        CompactOptions { keep_history: true, target_file_size: 64 << 20, data_file: DataFileOptions::default() }
    }
}

/// Reads one data file of a layer whole, checks it against its manifest entry and decodes it.
async fn read_file(chain: &Chain, layer: usize, f: &FileInfo) -> Result<Vec<Entry>> {
    let dir = &chain.layers[layer].dir;
    let storage = dir.for_file(f)?;
    let shown = format!("{}/{}", storage.describe(), f.path);
    let bytes = storage.get(&f.path).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::corrupt(&shown, "data file named by the manifest is missing"),
        e => e,
    })?;
    if bytes.len() as u64 != f.size || sha256(&bytes) != f.sha256 {
        return Err(Error::corrupt(&shown, "size or SHA-256 does not match the manifest"));
    }
    let plain = chain.codec.open(&f.path, bytes, &shown)?;
    read_all(&plain, &shown)
}

/// Writes a compacted backup of `chain` into the empty directory `dst`; returns its manifest.
/// With `keep_history`, every layer must have revision history.
pub async fn compact_chain(chain: &Chain, dst: &Locations, options: &CompactOptions) -> Result<Manifest> {
    let (Some(first), Some(last)) = (chain.layers.first(), chain.last()) else {
        return Err(Error::not_found("backup", "an empty chain"));
    };
    // A chain's layers share their revision-history setting (validated when it is opened).
    let keep_history = options.keep_history && chain.layers.iter().all(|l| l.manifest.has_revision_history());
    let storage = dst.storage().clone();
    if !storage.list("").await?.is_empty() {
        return Err(Error::exists("backup", storage.describe()));
    }
    // Every file of every layer, and the boundaries of their spans.
    let files: Vec<(usize, &FileInfo)> =
        chain.layers.iter().enumerate().flat_map(|(i, l)| l.manifest.files.iter().map(move |f| (i, f))).collect();
    // The new backup covers what a restore of the chain can restore: the last layer's spans, and
    // with revision history every layer's (a table dropped during the chain restores as of a time
    // before it was dropped). Their boundaries cut intervals too, so each interval lies wholly
    // inside or outside them.
    let covered: Vec<Span> = if keep_history {
        let all = SpanSet::from_spans(chain.layers.iter().flat_map(|l| l.manifest.spans.iter().cloned()));
        all.spans().to_vec()
    } else {
        last.spans.clone()
    };
    let spans = SpanSet::from_spans(covered.iter().cloned());
    let mut bounds: Vec<&[u8]> = files
        .iter()
        .flat_map(|(_, f)| [&f.span.start[..], &f.span.end[..]])
        .chain(covered.iter().flat_map(|s| [&s.start[..], &s.end[..]]))
        .collect();
    bounds.sort();
    bounds.dedup();
    // Files being read (their entries), by index in `files`; dropped once passed.
    let mut open: BTreeMap<usize, Vec<Entry>> = BTreeMap::new();
    let mut written: Vec<FileInfo> = Vec::new();
    let mut writer = DataFileWriter::new(options.data_file.clone());
    let mut file_start: Vec<u8> = bounds.first().map(|b| b.to_vec()).unwrap_or_default();
    for pair in bounds.windows(2) {
        let interval = Span::new(pair[0], pair[1]);
        if !spans.contains(pair[0]) {
            // Outside the backup's spans (a table dropped during the chain): a file ends before
            // such a gap, the next starts after it.
            if writer.entries() > 0 {
                let full = std::mem::replace(&mut writer, DataFileWriter::new(options.data_file.clone()));
                let span = Span::new(std::mem::take(&mut file_start), pair[0].to_vec());
                written.push(store_file(chain, &storage, full, span, written.len()).await?);
            }
            file_start = pair[1].to_vec();
            open.retain(|i, _| files[*i].1.span.end.as_slice() > pair[1]);
            continue;
        }
        for (i, (layer, f)) in files.iter().enumerate() {
            if f.span.overlaps(&interval) && !open.contains_key(&i) {
                open.insert(i, read_file(chain, *layer, f).await?);
            }
        }
        // (key, newest first, newest layer first): the restore's merge order.
        let mut entries: Vec<(usize, &Entry)> = open
            .iter()
            .flat_map(|(i, es)| {
                let layer = files[*i].0;
                es.iter().filter(|e| interval.contains(&e.key)).map(move |e| (layer, e))
            })
            .collect();
        entries.sort_by(|a, b| a.1.key.cmp(&b.1.key).then(b.1.ts.cmp(&a.1.ts)).then(b.0.cmp(&a.0)));
        let mut previous: Option<(&Bytes, crate::timestamp::Timestamp)> = None;
        for (_, e) in entries {
            if e.ts > last.end_time {
                continue;
            }
            let same_key = previous.is_some_and(|(k, _)| *k == e.key);
            if same_key && (!keep_history || previous.is_some_and(|(_, ts)| ts == e.ts)) {
                continue;
            }
            previous = Some((&e.key, e.ts));
            if !keep_history && e.value.is_none() {
                continue;
            }
            writer.add(&e.key, e.ts, e.value.as_deref());
        }
        open.retain(|i, _| files[*i].1.span.end.as_slice() > pair[1]);
        let last_interval = pair[1] == *bounds.last().expect("two bounds at least");
        if writer.entries() > 0 && (last_interval || writer.estimated_size() >= options.target_file_size) {
            let full = std::mem::replace(&mut writer, DataFileWriter::new(options.data_file.clone()));
            let span = Span::new(std::mem::replace(&mut file_start, pair[1].to_vec()), pair[1].to_vec());
            written.push(store_file(chain, &storage, full, span, written.len()).await?);
        } else if writer.entries() == 0 {
            file_start = pair[1].to_vec();
        }
    }
    let mut changes = Vec::new();
    if keep_history {
        for l in &chain.layers {
            changes.extend(l.manifest.descriptor_changes.iter().cloned());
        }
        changes.sort_by_key(|c| c.ts);
    }
    let manifest = Manifest {
        created_by: format!("strata {}", env!("CARGO_PKG_VERSION")),
        start_time: crate::timestamp::Timestamp::ZERO,
        end_time: last.end_time,
        mvcc_filter: if keep_history { MvccFilter::AllRevisions } else { MvccFilter::Latest },
        scope: last.scope.clone(),
        is_full_cluster: last.is_full_cluster,
        spans: covered.clone(),
        introduced_spans: Vec::new(),
        descriptors: last.descriptors.clone(),
        descriptor_changes: changes,
        files: written,
        dependencies: Vec::new(),
        statement: format!("COMPACT {} ({} layers)", first.name, chain.layers.len()),
        revision_start_time: if keep_history { first.manifest.revision_start_time } else { last.end_time },
        // The chain's source store; the run that committed it is this compaction.
        origin: Some(Origin {
            store: last.origin.as_ref().and_then(|o| o.store.clone()),
            run: format!("{COMPACTED_PREFIX}-{}", last.end_time),
        }),
    };
    if chain.codec.is_encrypted() {
        let info = first.dir.storage().get(ENCRYPTION_INFO_NAME).await?;
        storage.put_if_absent(ENCRYPTION_INFO_NAME, info).await?;
        storage.put(FILES_LIST_NAME, Bytes::from(encode_files_list(&manifest))).await?;
    }
    let bytes = chain.codec.seal(MANIFEST_NAME, manifest.encode());
    let checksum = manifest_checksum(&bytes);
    storage.put_if_absent(MANIFEST_NAME, Bytes::from(bytes)).await?;
    if let Err(e) = storage.put(MANIFEST_CHECKSUM_NAME, Bytes::from(checksum)).await {
        let _ = storage.delete(MANIFEST_NAME).await;
        return Err(e);
    }
    Ok(manifest)
}

/// Compacts a chain of the collection `root` (its `full` backup directory, or the one `LATEST`
/// names) into a new full backup of the collection, in the dated directory of the chain's end
/// time (or the next free hundredth of a second after it). Returns that directory and its manifest. `LATEST` is left as it is.
pub async fn compact_in_collection(
    root: &Locations,
    full: Option<&str>,
    keyring: &Keyring,
    keys: KeyRequest<'_>,
    options: &CompactOptions,
) -> Result<(String, Manifest)> {
    let full = match full {
        Some(f) => f.trim_matches('/').to_string(),
        None => read_latest(root.storage().as_ref()).await?.trim_matches('/').to_string(),
    };
    if !full_backups(root.storage().as_ref()).await?.contains(&full) {
        return Err(Error::not_found("backup", format!("{}/{full}", root.describe())));
    }
    let chain = Chain::open_dir(&root.subdir(&full), keyring, keys).await?;
    if chain.layers.len() < 2 {
        return Err(Error::Precondition(format!(
            "{}/{full} has no incremental layers: there is nothing to compact",
            root.describe()
        )));
    }
    // The dated directory of the end time; when a backup is there already (one ended in the
    // same hundredth of a second, e.g. the chain's own full backup), the next free hundredth.
    let end = chain.last().expect("an open chain has a layer").end_time;
    let mut at = end;
    let (dir, dst) = loop {
        let dir = dated_subdir(at);
        match new_layer_dir(root, &dir).await {
            Ok(dst) => break (dir, dst),
            Err(Error::AlreadyExists { .. }) if at.wall < end.wall + 100 * 10_000_000 => {
                at = crate::timestamp::Timestamp::from_nanos(at.wall + 10_000_000)
            }
            Err(e) => return Err(e),
        }
    };
    let manifest = compact_chain(&chain, &dst, options).await?;
    Ok((dir, manifest))
}

/// Seals and stores the `index`th file of a compacted backup, covering `span`.
async fn store_file(
    chain: &Chain,
    storage: &std::sync::Arc<dyn crate::storage::ExternalStorage>,
    full: DataFileWriter,
    span: Span,
    index: usize,
) -> Result<FileInfo> {
    let path = writer_data_file_path(COMPACTED_PREFIX, 0, COMPACTED_PREFIX, index);
    let (bytes, stats) = full.finish();
    let bytes = chain.codec.seal(&path, bytes);
    let info = FileInfo {
        path,
        span,
        size: bytes.len() as u64,
        sha256: sha256(&bytes),
        entries: stats.entries,
        rows: stats.rows,
        logical_bytes: stats.logical_bytes,
        locality: None,
    };
    storage.put(&info.path, Bytes::from(bytes)).await?;
    Ok(info)
}
