//! The BACKUP statement: where the new layer goes (a new backup, an incremental layer appended
//! to one, a dated full backup in a collection, or a resumed unfinished run), the chain it
//! extends, the plan, the run, and the collection's `LATEST`.

use bytes::Bytes;
use serde::Serialize;

use super::{source_dir, Context};
use crate::backup::identity::ensure_store_id;
use crate::backup::lease::{remove_abandoned_runs, Heartbeat};
use crate::backup::plan::{plan_backup, read_descriptor_history, split_units, BackupPlan, BackupSpec};
use crate::backup::resume::{find_unfinished, superseded_runs, RunKeys};
use crate::backup::run::{new_run_id, run_backup, BackupOptions, CommitGate};
use crate::chain::{prepare_keys, write_keys, Chain, KeysWritten, NewKeys};
use crate::crypto::keyring::KeyRequest;
use crate::error::{Error, Result};
use crate::format::manifest::sha256;
use crate::layout::{
    dated_subdir_candidates, is_dated_subdir_of, layer_dir, new_layer_dir, ENCRYPTION_INFO_NAME, INCREMENTALS_DIR,
    LATEST_NAME, MANIFEST_NAME,
};
use crate::locality::Locations;
use crate::progress::{Cancel, ProgressReporter};
use crate::redact::redact_uri;
use crate::result::QueryResult;
use crate::span::Span;
use crate::sql::{BackupDestination, BackupStmt, Secret, Statement, Subdir, Targets};
use crate::storage::ExternalStorageExt;
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

    /// The same service reporting progress to `progress` and stopped by `cancel`.
    pub(super) fn with_control(&self, progress: ProgressReporter, cancel: Cancel) -> BackupService {
        BackupService { options: self.options.clone().with_progress(progress).with_cancel(cancel) }
    }

    /// Runs `BACKUP` (`stmt` is `b` as a statement, whose text the manifest records) to the
    /// end. (`WITH detached` is the job service's: see `jobs.rs`.)
    pub(super) async fn run(&self, cx: &Context, b: &BackupStmt, stmt: &Statement) -> Result<QueryResult> {
        let keys = KeyRequest::new(b.options.encryption_passphrase.as_ref().map(Secret::expose), &b.options.kms);
        // Whose data this is: runs of another store are never adopted.
        let store = ensure_store_id(cx.store.as_ref(), cx.keyring.entropy().ok()).await?;
        let now = cx.store.now().await?;
        let mut end_time = match &b.as_of {
            Some(a) => resolve_as_of(&a.0, now)?,
            None => now,
        };
        let request = request_key(b);
        let statement = stmt.to_string();
        // Where the new layer goes, the chain it extends (if any), an unfinished run of the same
        // request to resume (its plan), and a LATEST to update.
        let mut latest: Option<(Locations, String)> = None;
        let mut resumed: Option<BackupPlan> = None;
        // A new directory is claimed create-only (two runs never share one unless they run the
        // same plan from the same store); a `BACKUP TO` location is taken over from a run of
        // another plan or store.
        let mut new_directory = false;
        // Where unfinished runs of this request that this run supersedes are looked for.
        let mut superseded: Option<(Locations, String, String)> = None;
        // Where abandoned runs of any request or store are looked for once this run committed
        // (the collection, or the `BACKUP TO` location), and this run's directory below it.
        let collection: (Locations, String);
        let (dir, chain, shown_path) = match &b.destination {
            BackupDestination::To(uris) if !b.incremental_from.is_empty() => {
                let dest = cx.open_uris(uris)?;
                if dest.storage().size(MANIFEST_NAME).await.is_ok() {
                    return Err(Error::exists("backup", dest.describe()));
                }
                let layers = b
                    .incremental_from
                    .iter()
                    .map(|uri| Ok((Locations::single(cx.opener.open(uri)?), redact_uri(uri))))
                    .collect::<Result<Vec<_>>>()?;
                let chain = Chain::open_layers(layers, &cx.keyring, keys).await?;
                let shown = dest.describe();
                collection = (dest.clone(), String::new());
                (dest, Some(chain), shown)
            }
            BackupDestination::To(uris) => {
                let dest = cx.open_uris(uris)?;
                if dest.storage().size(MANIFEST_NAME).await.is_ok() {
                    // BACKUP TO a location holding a backup appends an incremental layer.
                    let chain = Chain::open_dir(&dest, &cx.keyring, keys).await?;
                    let dir = layer_dir(end_time);
                    let shown = format!("{}/{dir}", dest.describe());
                    let layer = new_layer_dir(&dest, &dir).await?;
                    collection = (dest, dir);
                    (layer, Some(chain), shown)
                } else {
                    let shown = dest.describe();
                    collection = (dest.clone(), String::new());
                    (dest, None, shown)
                }
            }
            BackupDestination::Into { subdir: None, uris } => {
                if !b.incremental_from.is_empty() {
                    return Err(Error::invalid("BACKUP INTO", "INCREMENTAL FROM goes with BACKUP TO"));
                }
                let root = cx.open_uris(uris)?;
                // The same request re-run from the same store after its process was killed
                // resumes the unfinished backup: same directory, same plan (see
                // `backup::resume`); an encrypted one's key comes from its ENCRYPTION-INFO
                // through the same passphrase or KMS key.
                let unfinished = find_unfinished(
                    root.storage(),
                    "",
                    &request,
                    &statement,
                    store.as_deref(),
                    RunKeys::Unlock(&cx.keyring, keys),
                    is_dated_subdir_of,
                )
                .await?;
                let dir = match unfinished {
                    Some((dir, run, _)) if b.as_of.is_none() || run.plan.end_time == end_time => {
                        resumed = Some(run.plan);
                        dir
                    }
                    // The first free one of the backup's dated subdirectories: another run (of
                    // another store, or another statement) may hold the first.
                    _ => free_dated_subdir(&root, end_time).await?,
                };
                new_directory = resumed.is_none();
                let layer = if resumed.is_some() { root.subdir(&dir) } else { new_layer_dir(&root, &dir).await? };
                superseded = Some((root.clone(), String::new(), dir.clone()));
                collection = (root.clone(), dir.clone());
                latest = Some((root, format!("/{dir}")));
                (layer, None, format!("/{dir}"))
            }
            BackupDestination::Into { subdir: Some(sub), uris } => {
                if !b.incremental_from.is_empty() {
                    return Err(Error::invalid("BACKUP INTO", "INCREMENTAL FROM goes with BACKUP TO"));
                }
                let (full, full_dir) = source_dir(cx, uris, Some(sub)).await?;
                let chain = Chain::open_dir(&full, &cx.keyring, keys).await?;
                // A re-run after a killed run resumes its unfinished layer (see `backup::resume`).
                let last_end = chain.last().map(|m| m.end_time).unwrap_or_default();
                let prefix = format!("{INCREMENTALS_DIR}/");
                let unfinished = find_unfinished(
                    full.storage(),
                    &prefix,
                    &request,
                    &statement,
                    store.as_deref(),
                    RunKeys::Codec(&chain.codec),
                    |end, dir| layer_dir(end) == dir,
                )
                .await?;
                let dir = match unfinished {
                    Some((dir, run, _))
                        if run.plan.start_time == last_end && (b.as_of.is_none() || run.plan.end_time == end_time) =>
                    {
                        resumed = Some(run.plan);
                        dir
                    }
                    _ => layer_dir(end_time),
                };
                new_directory = resumed.is_none();
                let layer = if resumed.is_some() { full.subdir(&dir) } else { new_layer_dir(&full, &dir).await? };
                superseded = Some((full.clone(), prefix.clone(), dir.clone()));
                collection = (cx.open_uris(uris)?, format!("{}/{dir}", full_dir.trim_matches('/')));
                let shown = format!("/{}/{dir}", full_dir.trim_matches('/'));
                (layer, Some(chain), shown)
            }
        };
        let plan = match resumed {
            Some(plan) => plan,
            None => {
                let spec = BackupSpec::new(b.targets.clone(), end_time)
                    .with_revision_history(b.options.revision_history)
                    .with_statement(statement)
                    .with_request(request);
                self.plan(cx, &spec, chain.as_ref()).await?
            }
        };
        end_time = plan.end_time;
        // The chain's codec: found from the chain's ENCRYPTION-INFO when extending one; made
        // (with a new ENCRYPTION-INFO) just before a new full backup runs.
        let run_id = match cx.keyring.entropy() {
            Ok(entropy) => Some(new_run_id(entropy)?),
            Err(_) => None,
        };
        // A new encrypted full backup writes its ENCRYPTION-INFO before its plan: its lease goes
        // first, so that a run killed in between leaves a directory later runs can judge (and
        // remove once the lease is stale), never a lone ENCRYPTION-INFO nobody can tell about.
        if let (None, Some(run)) = (&chain, &run_id) {
            if !keys.is_empty() && dir.storage().size(ENCRYPTION_INFO_NAME).await.is_err() {
                Heartbeat::new(dir.storage().clone(), run, store.clone(), self.options.stale_after)
                    .start(cx.store.as_ref())
                    .await?;
            }
        }
        // A new encrypted chain's fresh data key is wrapped (the passphrase's argon2id
        // derivation: a fraction of a second on the CPU pool) and its ENCRYPTION-INFO written
        // while the run already scans and encrypts with it; the run commits only once it is.
        let (codec, new_key) = match &chain {
            Some(chain) => (chain.codec.clone(), None),
            None => match prepare_keys(dir.storage().as_ref(), &cx.keyring, keys).await? {
                NewKeys::Ready(codec) => (codec, None),
                NewKeys::Generated(key) => (cx.keyring.codec(key.clone()), Some(key)),
            },
        };
        let key_check = codec.key().map(|k| k.check_value());
        let plan = if plan.key_check == key_check { plan } else { plan.with_key_check(key_check) };
        let mut options = self
            .options
            .clone()
            .with_codec(codec.clone())
            .with_source_store(store.clone())
            .with_new_directory(new_directory)
            .with_require_encryption_info(chain.is_none() && codec.is_encrypted());
        if let Some(run_id) = run_id {
            options = options.with_run_id(run_id);
        }
        // Whether this run wrote the directory's ENCRYPTION-INFO (removed again if it fails).
        let (manifest, created_info) = match new_key {
            None => (run_backup(cx.store.as_ref(), &dir, &plan, &options).await, false),
            Some(key) => {
                let (gate, open) = CommitGate::new();
                let options = options.with_commit_gate(gate);
                let write = async {
                    let written = match write_keys(dir.storage().as_ref(), &cx.keyring, keys, &key, &self.options.offload)
                        .await
                    {
                        Ok(KeysWritten::Ours) => Ok(()),
                        // Another run wrote its key first: this run's files are sealed with
                        // another key, so it must not commit.
                        Ok(KeysWritten::Theirs(_)) => Err(Error::Precondition(format!(
                            "another backup wrote {}/{ENCRYPTION_INFO_NAME} while this one started; run the backup again",
                            dir.storage().describe()
                        ))),
                        Err(e) => Err(e),
                    };
                    let _ = open.send(written.clone());
                    written
                };
                // The key's half first: inline (no CPU pool) it is done before the run starts.
                let (written, manifest) = futures::join!(write, run_backup(cx.store.as_ref(), &dir, &plan, &options));
                let created = written.is_ok();
                (manifest.and_then(|m| written.map(|()| m)), created)
            }
        };
        let manifest = match manifest {
            Ok(m) => m,
            Err(e) => {
                if created_info && !matches!(e, Error::AlreadyExists { .. }) {
                    // Best effort, like the data files: without a manifest this is no backup.
                    let _ = dir.storage().delete(ENCRYPTION_INFO_NAME).await;
                }
                return Err(e);
            }
        };
        if let Some((root, dir)) = latest {
            root.storage().put(LATEST_NAME, Bytes::from(dir)).await?;
        }
        // Earlier runs of this request from this store that this one superseded (killed, and
        // not resumed: another end time) are abandoned: their files go.
        if let Some((root, prefix, keep)) = superseded {
            let run_keys = match &chain {
                Some(chain) => RunKeys::Codec(&chain.codec),
                None => RunKeys::Unlock(&cx.keyring, keys),
            };
            let runs =
                superseded_runs(root.storage(), &prefix, &request_key(b), store.as_deref(), run_keys, &keep).await?;
            for (dir, run) in runs {
                remove_abandoned(&root.subdir(&dir), &run).await?;
            }
        }
        // Runs of any request, store or key abandoned in the collection (their lease not
        // refreshed for longer than the threshold, by this store's clock): their files go.
        let (root, keep) = collection;
        let run_keys = match &chain {
            Some(chain) => RunKeys::Codec(&chain.codec),
            None => RunKeys::Unlock(&cx.keyring, keys),
        };
        // This backup is committed whatever happens here: a failure is a notice, not an error.
        let cleanup = match cx.store.now().await {
            Ok(now) => remove_abandoned_runs(&root, &keep, now, self.options.stale_after, run_keys).await,
            Err(e) => Err(e),
        };
        // `rows` and `bytes` as CockroachDB counts them (`bytes`: keys and values, the logical
        // size RESTORE's `bytes`, SHOW BACKUP's `size_bytes` and the progress bar count too);
        // `stored_bytes`: the size of the data files written. `end_time`: the exact decimal
        // `AS OF SYSTEM TIME` takes (SHOW BACKUP shows it as a UTC time too).
        let mut r =
            QueryResult::new(&["status", "backup_type", "path", "end_time", "files", "rows", "bytes", "stored_bytes"]);
        if let Err(e) = cleanup {
            r.notices.push(format!(
                "the backup succeeded, but abandoned runs in {} were not all removed ({e}); the next backup \
                 there tries again",
                root.describe()
            ));
        }
        r.push(vec![
            "succeeded".into(),
            if manifest.is_full() { "full" } else { "incremental" }.into(),
            shown_path.into(),
            end_time.to_string().into(),
            (manifest.files.len() as u64).into(),
            manifest.files.iter().map(|f| f.rows).sum::<u64>().into(),
            manifest.files.iter().map(|f| f.logical_bytes).sum::<u64>().into(),
            manifest.files.iter().map(|f| f.size).sum::<u64>().into(),
        ]);
        Ok(r)
    }

    /// Plans a new layer: the catalog at its end time, the descriptor history of its window
    /// (with revision history), the source's GC threshold, the chain it extends, and the work
    /// units the source cuts its spans into.
    pub(super) async fn plan(&self, cx: &Context, spec: &BackupSpec, chain: Option<&Chain>) -> Result<BackupPlan> {
        let end_time = spec.end_time;
        let catalog = cx.store.catalog_at(end_time).await?;
        let previous = chain.and_then(Chain::last);
        let everything = Span::new(vec![0u8], vec![0xff]);
        let gc_threshold = cx.store.gc_threshold(&everything).await?;
        let history = if spec.revision_history {
            let (base, start) = match previous {
                Some(p) => (None, p.end_time),
                None => (Some(gc_threshold), gc_threshold),
            };
            read_descriptor_history(cx.store.as_ref(), base.filter(|b| !b.is_zero()), start, end_time).await?
        } else {
            Vec::new()
        };
        let dependencies = chain.map(Chain::names).unwrap_or_default();
        let plan = plan_backup(&catalog, spec, previous, &history, gc_threshold, dependencies)?;
        split_units(cx.store.as_ref(), plan).await
    }
}

/// The first of the dated subdirectories a full backup ending at `end` may take (see
/// [`crate::layout::dated_subdir_candidates`]) that holds nothing.
async fn free_dated_subdir(root: &Locations, end: Timestamp) -> Result<String> {
    for dir in dated_subdir_candidates(end) {
        if root.storage().list(&format!("{dir}/")).await?.is_empty() {
            return Ok(dir);
        }
    }
    Err(Error::Precondition(format!(
        "every dated subdirectory of a backup ending at {end} in {} is taken",
        root.describe()
    )))
}

/// Removes a superseded run's directory contents: its plan first (a run still alive sees it lost
/// the directory before it commits, or takes its commit back right after), then, unless it
/// committed meanwhile, everything else it left (see [`crate::layout::remove_unfinished`]).
async fn remove_abandoned(dir: &Locations, run: &crate::backup::resume::RunState) -> Result<()> {
    let storage = dir.storage();
    storage.delete(crate::layout::PLAN_NAME).await?;
    if storage.size(MANIFEST_NAME).await.is_ok() {
        return Ok(());
    }
    let files: Vec<String> = run.files().map(|f| f.path.clone()).collect();
    crate::layout::remove_unfinished(dir, Some(run.plan.file_prefix()), &files).await
}

/// A key for what a BACKUP statement asks, from its structured parts (never its printed text):
/// what it backs up, with or without revision history, where (URIs redacted), extending what,
/// encrypted or not. A re-run of the same request resumes its unfinished run.
pub(super) fn request_key(b: &BackupStmt) -> String {
    #[derive(Serialize)]
    struct Request<'a> {
        targets: &'a Targets,
        revision_history: bool,
        into: bool,
        subdir: Option<String>,
        uris: Vec<String>,
        incremental_from: Vec<String>,
        encrypted: bool,
    }
    let (into, subdir, uris) = match &b.destination {
        BackupDestination::To(uris) => (false, None, uris),
        BackupDestination::Into { subdir, uris } => (
            true,
            subdir.as_ref().map(|s| match s {
                Subdir::Latest => "LATEST".to_string(),
                Subdir::Path(p) => p.clone(),
            }),
            uris,
        ),
    };
    let request = Request {
        targets: &b.targets,
        revision_history: b.options.revision_history,
        into,
        subdir,
        uris: uris.iter().map(|u| redact_uri(u)).collect(),
        incremental_from: b.incremental_from.iter().map(|u| redact_uri(u)).collect(),
        encrypted: b.options.encryption_passphrase.is_some() || !b.options.kms.is_empty(),
    };
    hex::encode(sha256(&postcard::to_allocvec(&request).expect("requests serialize")))
}

pub(super) fn resolve_as_of(text: &str, now: Timestamp) -> Result<Timestamp> {
    let t = Timestamp::parse_as_of(text, now)?;
    if t > now {
        return Err(Error::InvalidTime(format!("AS OF SYSTEM TIME {t} is in the future (now is {now})")));
    }
    Ok(t)
}
