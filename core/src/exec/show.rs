//! Statements about existing backups, which read them without restoring: `SHOW BACKUP`,
//! `SHOW BACKUPS`, `SHOW BACKUP … WITH check_files` and the key-less verification behind
//! `strata verify`; and `ALTER BACKUP … ADD NEW_KMS / NEW_PASSPHRASE`, which rewrites only a
//! chain's `ENCRYPTION-INFO`. Stateless: each takes the executor's [`Context`].

use super::{open_source_chain_noting, source_dir, Context};
use crate::crypto::keyring::KeyRequest;
use crate::error::{Error, Result};
use crate::format::manifest::Manifest;
use crate::keys::pretty_key;
use crate::layout::{full_backup_dirs, full_backups, SkipReason, ENCRYPTION_INFO_NAME, MANIFEST_NAME};
use crate::locality::Locations;
use crate::result::{QueryResult, Value};
use crate::sql::{
    AlterBackupStmt, BackupDetails, BackupSource, KeyChange, Secret, ShowBackupStmt, Statement, TableName,
};
use crate::storage::ExternalStorageExt;
use crate::verify::{layer_dirs, verify_chain, FileProblem, VerifyReport};

/// `SHOW BACKUP`: the chain's contents, or with `check_files` its verification.
pub(super) async fn show_backup_statement(cx: &Context, s: &ShowBackupStmt) -> Result<QueryResult> {
    let keys = KeyRequest::new(s.options.encryption_passphrase.as_ref().map(Secret::expose), &s.options.kms);
    if s.options.check_files {
        return Ok(check_files(cx, &s.source, keys, true).await?.to_result());
    }
    let (chain, skipped) = open_source_chain_noting(cx, &s.source, keys).await?;
    let mut r = show_backup(&chain.layers);
    // A layer directory left out of the chain gets a row too: `SHOW BACKUP` shows what a restore
    // would read, and says what it would not.
    for s in &skipped {
        let kind = match s.layer.reason {
            SkipReason::ManifestMissing => format!("skipped (no {MANIFEST_NAME}): {}", s.layer.dir),
            SkipReason::Unfinished => format!("skipped (unfinished): {}", s.layer.dir),
        };
        let mut row = vec![Value::Null, Value::Null, kind.into()];
        row.resize(r.columns.len(), Value::Null);
        r.push(row);
        r.notices.push(s.notice(&chain));
    }
    Ok(r)
}

/// `SHOW BACKUPS IN`: the full backups of a collection.
pub(super) async fn show_backups(cx: &Context, collection: &[String]) -> Result<QueryResult> {
    let root = cx.open_uris(collection)?;
    let storage = root.storage().as_ref();
    let mut r = QueryResult::new(&["path"]);
    for dir in full_backups(storage).await? {
        r.push(vec![format!("/{dir}").into()]);
    }
    // No backups is an answer; nothing at all there is a collection that does not exist (most
    // likely a mistyped URI), an error as for every other statement reading backups.
    if r.rows.is_empty() && storage.list("").await?.is_empty() {
        return Err(Error::not_found(
            "backup collection",
            format!("{} (nothing is stored there: it is empty or does not exist)", root.describe()),
        ));
    }
    Ok(r)
}

/// `ALTER BACKUP … ADD NEW_KMS = … WITH OLD_KMS = …` (or `NEW_PASSPHRASE`/`OLD_PASSPHRASE`):
/// wraps the chain's data key with the new keys too, rewriting only its `ENCRYPTION-INFO`.
pub(super) async fn alter_backup(cx: &Context, a: &AlterBackupStmt) -> Result<QueryResult> {
    if a.source.layers.len() > 1 {
        return Err(Error::invalid("ALTER BACKUP", "name the full backup's directory, not a list of layers"));
    }
    let uris = a.source.layers.first().map_or(&[][..], |l| &l[..]);
    let (root, _) = source_dir(cx, uris, a.source.subdir.as_ref()).await?;
    let root = root.storage();
    let (old, new) = match &a.change {
        KeyChange::Kms { new, old } => (KeyRequest::new(None, old), KeyRequest::new(None, new)),
        KeyChange::Passphrase { new, old } => {
            (KeyRequest::new(Some(old.expose()), &[]), KeyRequest::new(Some(new.expose()), &[]))
        }
    };
    let keys = crate::chain::add_keys(root.as_ref(), &cx.keyring, old, new).await?;
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
    let uris = source.layers.first().map_or(&[][..], |l| &l[..]);
    let (dir, _) = source_dir(cx, uris, source.subdir.as_ref()).await?;
    let storage = dir.storage();
    if source.subdir.is_none() && storage.size(MANIFEST_NAME).await.is_err() {
        let fulls = full_backup_dirs(storage.as_ref()).await?;
        if !fulls.is_empty() {
            let mut report = VerifyReport::default();
            for full in fulls {
                let full = dir.subdir(&full);
                report.extend(check_chain(cx, &full, layer_dirs(&full).await?, keys, require_keys).await?);
            }
            return Ok(report);
        }
        if storage.list("").await?.is_empty() {
            return Err(Error::not_found("backup", format!("{} (it is empty or does not exist)", dir.describe())));
        }
    }
    check_chain(cx, &dir, layer_dirs(&dir).await?, keys, require_keys).await
}

async fn check_chain(
    cx: &Context,
    root: &Locations,
    layers: Vec<Locations>,
    keys: KeyRequest<'_>,
    require_keys: bool,
) -> Result<VerifyReport> {
    let mut problems = Vec::new();
    let codec = if keys.is_empty() && !require_keys {
        None
    } else {
        match crate::chain::unlock(root.storage().as_ref(), &cx.keyring, keys).await {
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

/// The rows of `SHOW BACKUP`: for each layer of the chain, one per database and one per table.
pub fn show_backup<M: AsRef<Manifest>>(chain: &[M]) -> QueryResult {
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
        "end_time_decimal",
    ]);
    for m in chain.iter().map(AsRef::as_ref) {
        let catalog = m.catalog();
        let kind: Value = if m.is_full() { "full" } else { "incremental" }.into();
        // As CockroachDB shows them: UTC times, and NULL for a full backup's start. The exact end
        // time, which `AS OF SYSTEM TIME` needs to restore a layer without revision history,
        // is the last column.
        let start_time: Value = if m.is_full() { Value::Null } else { m.start_time.to_utc_string().into() };
        let head = |db: &str, table: Value| {
            vec![db.into(), table, kind.clone(), start_time.clone(), m.end_time.to_utc_string().into()]
        };
        let tail = [m.is_full_cluster.into(), m.has_revision_history().into(), m.end_time.to_string().into()];
        for db in catalog.databases.values() {
            let mut row = head(&db.name, Value::Null);
            row.extend([Value::Null, Value::Null]);
            row.extend(tail.clone());
            r.push(row);
            for t in catalog.tables_in(db.id) {
                let span = t.span();
                let files = m.files.iter().filter(|f| span.overlaps(&f.span));
                // CockroachDB's size_bytes: the logical size (keys and values), as BACKUP's and
                // RESTORE's `bytes` and the progress bar count it.
                let (size, rows) = files.fold((0u64, 0u64), |(s, n), f| (s + f.logical_bytes, n + f.rows));
                let mut row = head(&db.name, t.name.clone().into());
                row.extend([size.into(), rows.into()]);
                row.extend(tail.clone());
                r.push(row);
            }
        }
    }
    r
}

/// `SHOW BACKUP FILES | RANGES | SCHEMAS`, with CockroachDB's columns:
/// - `FILES`: `path` (below the collection for `… IN`, else below the full backup's directory),
///   `backup_type`, `start_pretty`, `end_pretty`, `start_key`, `end_key` (hex, `\x…`),
///   `size_bytes` (the logical key and value bytes, as CockroachDB's data size), `rows`,
///   `locality` (NULL unless the backup is locality-aware), `file_bytes` (the stored size);
/// - `RANGES`: `start_pretty`, `end_pretty`, `start_key`, `end_key` for each span of each layer;
/// - `SCHEMAS`: `SHOW BACKUP`'s rows and `create_statement` (strata's tables have no columns:
///   `CREATE TABLE db.t`, and `CREATE DATABASE db` on a database's row).
pub(super) async fn show_backup_details(
    cx: &Context,
    details: BackupDetails,
    s: &ShowBackupStmt,
) -> Result<QueryResult> {
    if details == BackupDetails::Schemas {
        let mut r = show_backup_statement(cx, s).await?;
        r.columns.push("create_statement".into());
        for row in &mut r.rows {
            let statement = match (&row[0], &row[1]) {
                (Value::Text(db), Value::Null) => {
                    Statement::CreateDatabase { name: db.clone(), if_not_exists: false }.to_string().into()
                }
                (Value::Text(db), Value::Text(t)) => {
                    let name = TableName { database: Some(db.clone()), table: t.clone() };
                    Statement::CreateTable { name, if_not_exists: false }.to_string().into()
                }
                _ => Value::Null,
            };
            row.push(statement);
        }
        return Ok(r);
    }
    if s.options.check_files {
        return Err(Error::invalid("SHOW BACKUP", "check_files goes with SHOW BACKUP, not FILES or RANGES"));
    }
    let keys = KeyRequest::new(s.options.encryption_passphrase.as_ref().map(Secret::expose), &s.options.kms);
    let (chain, skipped) = open_source_chain_noting(cx, &s.source, keys).await?;
    let hex = |key: &[u8]| -> Value {
        let mut out = String::from("\\x");
        for b in key {
            out.push_str(&format!("{b:02x}"));
        }
        out.into()
    };
    let key_cells = |span: &crate::span::Span| {
        [pretty_key(&span.start).into(), pretty_key(&span.end).into(), hex(&span.start), hex(&span.end)]
    };
    let mut r = match details {
        BackupDetails::Ranges => {
            let mut r = QueryResult::new(&["start_pretty", "end_pretty", "start_key", "end_key"]);
            for layer in &chain.layers {
                for span in &layer.manifest.spans {
                    r.push(key_cells(span).to_vec());
                }
            }
            r
        }
        _ => {
            let mut r = QueryResult::new(&[
                "path",
                "backup_type",
                "start_pretty",
                "end_pretty",
                "start_key",
                "end_key",
                "size_bytes",
                "rows",
                "locality",
                "file_bytes",
            ]);
            // Paths below the collection, as CockroachDB prints them, when the statement names one.
            let full_dir = match (&s.source.subdir, &s.source.layers[..]) {
                (Some(sub), [uris]) => source_dir(cx, uris, Some(sub)).await?.1,
                _ => String::new(),
            };
            let base = chain.layers.first().map(|l| l.name.trim_end_matches('/').to_string()).unwrap_or_default();
            let locality_aware = chain.layers.iter().any(|l| l.manifest.files.iter().any(|f| f.locality.is_some()));
            for layer in &chain.layers {
                let m = &layer.manifest;
                let below_full = layer.name.strip_prefix(&base).unwrap_or("").trim_matches('/');
                let dir: Vec<&str> =
                    [full_dir.trim_matches('/'), below_full].into_iter().filter(|p| !p.is_empty()).collect();
                let kind = if m.is_full() { "full" } else { "incremental" };
                for f in &m.files {
                    let mut path = String::from("/");
                    for part in &dir {
                        path.push_str(part);
                        path.push('/');
                    }
                    path.push_str(&f.path);
                    let locality: Value = match (&f.locality, locality_aware) {
                        (Some(l), _) => l.clone().into(),
                        (None, true) => "default".into(),
                        (None, false) => Value::Null,
                    };
                    let mut row = vec![path.into(), kind.into()];
                    row.extend(key_cells(&f.span));
                    row.extend([f.logical_bytes.into(), f.rows.into(), locality, f.size.into()]);
                    r.push(row);
                }
            }
            r
        }
    };
    r.notices = skipped.iter().map(|s| s.notice(&chain)).collect();
    Ok(r)
}
