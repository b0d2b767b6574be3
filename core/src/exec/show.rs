//! Statements about existing backups, which read them without restoring: `SHOW BACKUP`,
//! `SHOW BACKUPS`, `SHOW BACKUP … WITH check_files` and the key-less verification behind
//! `strata verify`; and `ALTER BACKUP … ADD NEW_KMS / NEW_PASSPHRASE`, which rewrites only a
//! chain's `ENCRYPTION-INFO`. Stateless: each takes the executor's [`Context`].

use std::sync::Arc;

use super::chain_io::{open_chain, resolve_subdir, INCREMENTALS_DIR};
use super::Context;
use crate::backup::is_dated_subdir;
use crate::crypto::info::ENCRYPTION_INFO_NAME;
use crate::crypto::keys::KeyRequest;
use crate::error::{Error, Result};
use crate::format::manifest::{Manifest, MANIFEST_NAME};
use crate::result::{QueryResult, Value};
use crate::sql::{AlterBackupStmt, BackupSource, KeyChange, Secret, ShowBackupStmt};
use crate::storage::{subdir, ExternalStorage};
use crate::verify::{layer_dirs, verify_chain, FileProblem, VerifyReport};

/// `SHOW BACKUP`: the chain's contents, or with `check_files` its verification.
pub(super) async fn show_backup_statement(cx: &Context, s: &ShowBackupStmt) -> Result<QueryResult> {
    let keys = KeyRequest::new(s.options.encryption_passphrase.as_ref().map(Secret::expose), &s.options.kms);
    if s.options.check_files {
        return Ok(check_files(cx, &s.source, keys, true).await?.to_result());
    }
    let chain = open_chain(cx.opener.as_ref(), &cx.keyring, &s.source, keys).await?;
    Ok(show_backup(&chain.manifests))
}

/// `SHOW BACKUPS IN`: the full backups of a collection.
pub(super) async fn show_backups(cx: &Context, collection: &[String]) -> Result<QueryResult> {
    let root = cx.open_uris(collection)?;
    let mut r = QueryResult::new(&["path"]);
    let suffix = format!("/{MANIFEST_NAME}");
    for o in root.list("").await? {
        if let Some(dir) = o.path.strip_suffix(&suffix) {
            if is_dated_subdir(dir) {
                r.push(vec![format!("/{dir}").into()]);
            }
        }
    }
    Ok(r)
}

/// `ALTER BACKUP … ADD NEW_KMS = … WITH OLD_KMS = …` (or `NEW_PASSPHRASE`/`OLD_PASSPHRASE`):
/// wraps the chain's data key with the new keys too, rewriting only its `ENCRYPTION-INFO`.
pub(super) async fn alter_backup(cx: &Context, a: &AlterBackupStmt) -> Result<QueryResult> {
    if a.source.layers.len() > 1 {
        return Err(Error::invalid("ALTER BACKUP", "name the full backup's directory, not a list of layers"));
    }
    let root = source_dir(cx, &a.source).await?;
    let (old, new) = match &a.change {
        KeyChange::Kms { new, old } => (KeyRequest::new(None, old), KeyRequest::new(None, new)),
        KeyChange::Passphrase { new, old } => {
            (KeyRequest::new(Some(old.expose()), &[]), KeyRequest::new(Some(new.expose()), &[]))
        }
    };
    let keys = cx.keyring.add_keys(root.as_ref(), old, new).await?;
    let mut r = QueryResult::new(&["status", "path", "keys"]);
    r.push(vec!["succeeded".into(), root.describe().into(), (keys as u64).into()]);
    Ok(r)
}

/// Checks that every file of the backup `source` names exists with the size and SHA-256
/// its manifest records, without restoring: each layer's manifest against its checksum,
/// `ENCRYPTION-INFO`, and every data file. A backup directory is checked with the incremental
/// layers appended to it; a collection (no `IN`) has each of its full backups checked.
///
/// An encrypted backup is checked without its key when `keys` is empty and `require_keys`
/// is false (its plaintext `BACKUP-FILES` lists the data files); with keys, its manifests are
/// decrypted and used. With `require_keys` (as `SHOW BACKUP … WITH check_files`), the keys
/// must match the backup as for any other `SHOW BACKUP`.
pub(super) async fn check_files(
    cx: &Context,
    source: &BackupSource,
    keys: KeyRequest<'_>,
    require_keys: bool,
) -> Result<VerifyReport> {
    if source.layers.len() > 1 {
        if source.subdir.is_some() {
            return Err(Error::invalid("backup source", "a list of layers cannot be combined with IN"));
        }
        let mut dirs = Vec::new();
        for layer in &source.layers {
            dirs.push(cx.open_uris(layer)?);
        }
        return check_chain(cx, &dirs[0].clone(), dirs, keys, require_keys).await;
    }
    let dir = source_dir(cx, source).await?;
    if source.subdir.is_none() && dir.size(MANIFEST_NAME).await.is_err() {
        let fulls = collection_backups(dir.as_ref()).await?;
        if !fulls.is_empty() {
            let mut report = VerifyReport::default();
            for full in fulls {
                let full = subdir(&dir, &full);
                report.extend(check_chain(cx, &full, layer_dirs(&full).await?, keys, require_keys).await?);
            }
            return Ok(report);
        }
        if dir.list("").await?.is_empty() {
            return Err(Error::not_found("backup", format!("{} (it is empty)", dir.describe())));
        }
    }
    check_chain(cx, &dir, layer_dirs(&dir).await?, keys, require_keys).await
}

async fn check_chain(
    cx: &Context,
    root: &Arc<dyn ExternalStorage>,
    layers: Vec<Arc<dyn ExternalStorage>>,
    keys: KeyRequest<'_>,
    require_keys: bool,
) -> Result<VerifyReport> {
    let mut problems = Vec::new();
    let codec = if keys.is_empty() && !require_keys {
        None
    } else {
        match cx.keyring.open_chain(root.as_ref(), keys).await {
            Ok(codec) => Some(codec),
            // A damaged or missing ENCRYPTION-INFO is a finding; the rest is checked without it.
            Err(Error::Corrupt { path, message }) => {
                if !path.ends_with(ENCRYPTION_INFO_NAME) {
                    problems.push(FileProblem { path, problem: message });
                }
                None
            }
            Err(e) => return Err(e),
        }
    };
    let mut report = verify_chain(root, &layers, codec.as_ref()).await;
    report.problems.splice(0..0, problems);
    Ok(report)
}

/// The directory a single-location source names (resolving `LATEST IN` / `'subdir' IN`).
async fn source_dir(cx: &Context, source: &BackupSource) -> Result<Arc<dyn ExternalStorage>> {
    let root = cx.open_uris(source.layers.first().map_or(&[][..], |l| &l[..]))?;
    Ok(match &source.subdir {
        None => root,
        Some(sub) => {
            let dir = resolve_subdir(&root, sub).await?;
            subdir(&root, &dir)
        }
    })
}

/// The rows of `SHOW BACKUP`: for each layer of the chain, one per database and one per table.
pub fn show_backup(chain: &[Manifest]) -> QueryResult {
    let mut r = QueryResult::new(&[
        "database_name",
        "table_name",
        "backup_type",
        "start_time",
        "end_time",
        "size_bytes",
        "rows",
        "is_full_cluster",
        "revision_history",
    ]);
    for m in chain {
        let catalog = m.catalog();
        let kind: Value = if m.is_full() { "full" } else { "incremental" }.into();
        let head = |db: &str, table: Value| {
            vec![db.into(), table, kind.clone(), m.start_time.to_string().into(), m.end_time.to_string().into()]
        };
        let tail = [m.is_full_cluster.into(), m.has_revision_history().into()];
        for db in catalog.databases.values() {
            let mut row = head(&db.name, Value::Null);
            row.extend([Value::Null, Value::Null]);
            row.extend(tail.clone());
            r.push(row);
            for t in catalog.tables_in(db.id) {
                let span = t.span();
                let files = m.files.iter().filter(|f| span.overlaps(&f.span));
                let (size, rows) = files.fold((0u64, 0u64), |(s, n), f| (s + f.size, n + f.rows));
                let mut row = head(&db.name, t.name.clone().into());
                row.extend([size.into(), rows.into()]);
                row.extend(tail.clone());
                r.push(row);
            }
        }
    }
    r
}

/// The full backups of a collection (`2026/11/23-101500.00`, …): dated directories holding any
/// file, whether or not their manifest survived.
async fn collection_backups(dir: &dyn ExternalStorage) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for o in dir.list("").await? {
        let p = &o.path;
        if p.len() > 21 && is_dated_subdir(&p[..20]) && p.as_bytes()[20] == b'/' && !p.starts_with(INCREMENTALS_DIR) {
            let d = p[..20].to_string();
            if out.last() != Some(&d) {
                out.push(d);
            }
        }
    }
    out.dedup();
    Ok(out)
}
