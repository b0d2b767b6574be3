//! The BACKUP statement: where the new layer goes (a new backup, an incremental layer appended
//! to one, a dated full backup in a collection, or a resumed unfinished run), the chain it
//! extends, the plan, the run, and the collection's `LATEST`.

use std::sync::Arc;

use bytes::Bytes;

use super::chain_io::{new_layer_dir, read_chain_with, read_manifest_with, resolve_subdir, Chain};
use super::chain_io::{INCREMENTALS_DIR, LATEST_NAME};
use super::Context;
use crate::backup::{
    dated_subdir, layer_subdir, plan_backup, read_descriptor_history, run_backup, BackupOptions, BackupSpec,
};
use crate::crypto::info::ENCRYPTION_INFO_NAME;
use crate::crypto::keys::KeyRequest;
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::manifest::MANIFEST_NAME;
use crate::progress::ProgressReporter;
use crate::redact::redact_uri;
use crate::restore::validate_chain;
use crate::result::QueryResult;
use crate::span::Span;
use crate::sql::{BackupDestination, BackupStmt, Secret, Statement};
use crate::storage::{subdir, ExternalStorage};
use crate::timestamp::Timestamp;

/// Runs backups with its options (the one part of a backup that is the executor's to set).
#[derive(Clone, Default)]
pub(super) struct BackupService {
    options: BackupOptions,
}

impl BackupService {
    pub(super) fn new(options: BackupOptions) -> BackupService {
        BackupService { options }
    }

    /// The same service reporting progress to `progress` (for a detached job).
    pub(super) fn with_progress(&self, progress: ProgressReporter) -> BackupService {
        let mut options = self.options.clone();
        options.progress = progress;
        BackupService { options }
    }

    /// Runs `BACKUP` (`stmt` is `b` as a statement, whose text names the plan) to the end.
    /// (`WITH detached` is the job service's: see `jobs.rs`.)
    pub(super) async fn run(&self, cx: &Context, b: &BackupStmt, stmt: &Statement) -> Result<QueryResult> {
        let keys = KeyRequest::new(b.options.encryption_passphrase.as_ref().map(Secret::expose), &b.options.kms);
        // The chain's codec: found from the chain's ENCRYPTION-INFO when extending one; made
        // (with a new ENCRYPTION-INFO) just before a new full backup runs.
        let mut codec = FileCodec::plain();
        let now = cx.store.now().await?;
        let mut end_time = match &b.as_of {
            Some(a) => resolve_as_of(&a.0, now)?,
            None => now,
        };
        // Where the new layer goes, the chain it extends (if any), and a LATEST to update.
        let mut latest: Option<(Arc<dyn ExternalStorage>, String)> = None;
        let (storage, chain, shown_path) = match &b.destination {
            BackupDestination::To(uris) if !b.incremental_from.is_empty() => {
                let dest = cx.open_uris(uris)?;
                if dest.size(MANIFEST_NAME).await.is_ok() {
                    return Err(Error::exists("backup", dest.describe()));
                }
                let mut chain = Chain::default();
                codec = cx.keyring.open_chain(cx.opener.open(&b.incremental_from[0])?.as_ref(), keys).await?;
                for uri in &b.incremental_from {
                    let layer = cx.opener.open(uri)?;
                    chain.push(layer.clone(), read_manifest_with(layer.as_ref(), &codec).await?, redact_uri(uri));
                }
                chain.codec = codec.clone();
                validate_chain(&chain.manifests, &chain.names)?;
                let shown = dest.describe();
                (dest, Some(chain), shown)
            }
            BackupDestination::To(uris) => {
                let dest = cx.open_uris(uris)?;
                if dest.size(MANIFEST_NAME).await.is_ok() {
                    // BACKUP TO a location holding a backup appends an incremental layer.
                    codec = cx.keyring.open_chain(dest.as_ref(), keys).await?;
                    let chain = read_chain_with(&dest, &codec).await?;
                    let dir = format!("{INCREMENTALS_DIR}/{}", layer_subdir(end_time));
                    let shown = format!("{}/{dir}", dest.describe());
                    (new_layer_dir(&dest, &dir).await?, Some(chain), shown)
                } else {
                    let shown = dest.describe();
                    (dest, None, shown)
                }
            }
            BackupDestination::Into { subdir: None, uris } => {
                if !b.incremental_from.is_empty() {
                    return Err(Error::invalid("BACKUP INTO", "INCREMENTAL FROM goes with BACKUP TO"));
                }
                let root = cx.open_uris(uris)?;
                // The same statement re-run after its process was killed resumes the unfinished
                // backup: same directory, same end time, so the same plan (see `checkpoint.rs`).
                let (dir, storage) = match crate::checkpoint::find_unfinished(&root, &stmt.to_string()).await? {
                    Some((dir, t)) if b.as_of.is_none() || t == end_time => {
                        end_time = t;
                        (dir.clone(), subdir(&root, &dir))
                    }
                    _ => {
                        let dir = dated_subdir(end_time);
                        (dir.clone(), new_layer_dir(&root, &dir).await?)
                    }
                };
                latest = Some((root, format!("/{dir}")));
                (storage, None, format!("/{dir}"))
            }
            BackupDestination::Into { subdir: Some(sub), uris } => {
                if !b.incremental_from.is_empty() {
                    return Err(Error::invalid("BACKUP INTO", "INCREMENTAL FROM goes with BACKUP TO"));
                }
                let root = cx.open_uris(uris)?;
                let full_dir = resolve_subdir(&root, sub).await?;
                let full = subdir(&root, &full_dir);
                codec = cx.keyring.open_chain(full.as_ref(), keys).await?;
                let chain = read_chain_with(&full, &codec).await?;
                // A re-run after a killed run resumes its unfinished layer (see `checkpoint.rs`).
                let last_end = chain.manifests.last().map(|m| m.end_time).unwrap_or_default();
                let (dir, layer) =
                    match crate::checkpoint::find_unfinished_layer(&full, &stmt.to_string(), &codec).await? {
                        Some((dir, t)) if t > last_end && (b.as_of.is_none() || t == end_time) => {
                            end_time = t;
                            (dir.clone(), subdir(&full, &dir))
                        }
                        _ => {
                            let dir = format!("{INCREMENTALS_DIR}/{}", layer_subdir(end_time));
                            (dir.clone(), new_layer_dir(&full, &dir).await?)
                        }
                    };
                let shown = format!("/{}/{dir}", full_dir.trim_matches('/'));
                (layer, Some(chain), shown)
            }
        };
        let catalog = cx.store.catalog_at(end_time).await?;
        let previous = chain.as_ref().map(|c| c.manifests.last().expect("chains are never empty"));
        let everything = Span::new(vec![0u8], vec![0xff]);
        let gc_threshold = cx.store.gc_threshold(&everything).await?;
        let history = if b.options.revision_history {
            let (base, start) = match previous {
                Some(p) => (None, p.end_time),
                None => (Some(gc_threshold), gc_threshold),
            };
            read_descriptor_history(cx.store.as_ref(), base.filter(|b| !b.is_zero()), start, end_time).await?
        } else {
            Vec::new()
        };
        let spec = BackupSpec::new(b.targets.clone(), end_time)
            .with_revision_history(b.options.revision_history)
            .with_statement(stmt.to_string());
        let dependencies = chain.as_ref().map(|c| c.names.clone()).unwrap_or_default();
        let plan = plan_backup(&catalog, &spec, previous, &history, gc_threshold, dependencies)?;
        let mut created_info = false;
        if chain.is_none() {
            (codec, created_info) = cx.keyring.create_chain(storage.as_ref(), keys).await?;
        }
        let options = self.options.clone().with_codec(codec);
        let manifest = match run_backup(cx.store.as_ref(), storage.clone(), &plan, &options).await {
            Ok(m) => m,
            Err(e) => {
                if created_info && !matches!(e, Error::AlreadyExists { .. }) {
                    // Best effort, like the data files: without a manifest this is no backup.
                    let _ = storage.delete(ENCRYPTION_INFO_NAME).await;
                }
                return Err(e);
            }
        };
        if let Some((root, dir)) = latest {
            root.put(LATEST_NAME, Bytes::from(dir)).await?;
        }
        let mut r = QueryResult::new(&["status", "backup_type", "path", "end_time", "files", "rows", "bytes"]);
        r.push(vec![
            "succeeded".into(),
            if manifest.is_full() { "full" } else { "incremental" }.into(),
            shown_path.into(),
            end_time.to_string().into(),
            (manifest.files.len() as u64).into(),
            manifest.files.iter().map(|f| f.rows).sum::<u64>().into(),
            manifest.files.iter().map(|f| f.size).sum::<u64>().into(),
        ]);
        Ok(r)
    }
}

fn resolve_as_of(text: &str, now: Timestamp) -> Result<Timestamp> {
    let t = Timestamp::parse_as_of(text, now)?;
    if t > now {
        return Err(Error::InvalidTime(format!("AS OF SYSTEM TIME {t} is in the future (now is {now})")));
    }
    Ok(t)
}
