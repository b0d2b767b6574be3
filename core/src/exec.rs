//! Runs statements against a [`KvStore`] and storage opened through a [`StorageOpener`].

use std::sync::Arc;

use bytes::Bytes;

use crate::backup::{
    dated_subdir, is_dated_subdir, layer_subdir, plan_backup, read_descriptor_history, run_backup, BackupOptions,
    BackupSpec,
};
use crate::catalog::{DatabaseDescriptor, Descriptor, DescriptorChange, IndexDescriptor, IndexState, TableDescriptor};
use crate::crypto::aead::is_sealed;
use crate::crypto::info::ENCRYPTION_INFO_NAME;
use crate::crypto::keys::{KeyRequest, Keyring};
use crate::crypto::FileCodec;
use crate::error::{Error, Result};
use crate::format::manifest::{verify_manifest_checksum, Manifest, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME};
use crate::keys;
use crate::kv::KvStore;
use crate::redact::redact_uri;
use crate::restore::{prepare_restore, run_restore, validate_chain, RestoreRunOptions};
use crate::result::{QueryResult, Value};
use crate::span::Span;
use crate::sql::{
    self, BackupDestination, BackupSource, BackupStmt, RestoreStmt, Secret, Statement, Subdir, TableName,
};
use crate::storage::ExternalStorageExt;
use crate::storage::{subdir, ExternalStorage, StorageOpener};
use crate::timestamp::Timestamp;

/// Name of the file in a collection that names its newest full backup.
pub const LATEST_NAME: &str = "LATEST";

/// Runs statements: DDL against the store, BACKUP/RESTORE/SHOW against storage. Cloning shares
/// the store, the storage and the job runner.
#[derive(Clone)]
pub struct Executor {
    store: Arc<dyn KvStore>,
    pub(crate) opener: Arc<dyn StorageOpener>,
    backup_options: BackupOptions,
    restore_options: RestoreRunOptions,
    /// Randomness, KMS and KDF settings for encrypted backups (see `exec_crypto.rs`).
    pub(crate) keyring: Keyring,
    /// Runs detached jobs, if the host gave a spawner (see `jobs.rs`).
    pub(crate) jobs: Option<Arc<crate::jobs::JobRuntime>>,
}

impl Executor {
    /// An executor over `store`, opening storage URIs with `opener`.
    pub fn new(store: Arc<dyn KvStore>, opener: Arc<dyn StorageOpener>) -> Executor {
        Executor {
            store,
            opener,
            backup_options: BackupOptions::default(),
            restore_options: RestoreRunOptions::default(),
            keyring: Keyring::default(),
            jobs: None,
        }
    }

    /// Sets how backups run.
    pub fn with_backup_options(mut self, options: BackupOptions) -> Self {
        self.backup_options = options;
        self
    }

    /// Sets where backups report progress (keeping the other backup options).
    pub(crate) fn set_backup_progress(&mut self, progress: crate::progress::ProgressReporter) {
        self.backup_options.progress = progress;
    }

    /// Sets how restores run.
    pub fn with_restore_options(mut self, options: RestoreRunOptions) -> Self {
        self.restore_options = options;
        self
    }

    /// The storage of a statement's URI, or of its list of locality URIs (see
    /// [`crate::open_locations`]).
    pub(crate) fn open_uris(&self, uris: &[String]) -> Result<Arc<dyn ExternalStorage>> {
        crate::locality::open_locations(self.opener.as_ref(), uris)
    }

    /// The store statements run against.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.store
    }

    /// Parses and runs one statement.
    pub async fn execute(&self, statement: &str) -> Result<QueryResult> {
        let stmt = sql::parse(statement)?;
        self.execute_statement(&stmt).await
    }

    /// Runs a parsed statement.
    pub async fn execute_statement(&self, stmt: &Statement) -> Result<QueryResult> {
        match stmt {
            Statement::Backup(b) => self.backup(b, stmt).await,
            Statement::Restore(r) => self.restore(r).await,
            Statement::ShowBackup(s) => {
                let keys =
                    KeyRequest::new(s.options.encryption_passphrase.as_ref().map(Secret::expose), &s.options.kms);
                if s.options.check_files {
                    return Ok(self.check_files(&s.source, keys, true).await?.to_result());
                }
                let chain = self.open_chain_with_keys(&s.source, keys).await?;
                Ok(show_backup(&chain.manifests))
            }
            Statement::ShowBackups { collection } => self.show_backups(collection).await,
            Statement::CreateDatabase { name, if_not_exists } => self.create_database(name, *if_not_exists).await,
            Statement::CreateTable { name, if_not_exists } => self.create_table(name, *if_not_exists).await,
            Statement::DropDatabase { name, if_exists, cascade } => {
                self.drop_database(name, *if_exists, *cascade).await
            }
            Statement::DropTable { name, if_exists } => self.drop_table(name, *if_exists).await,
            Statement::ShowDatabases => {
                let catalog = self.store.catalog().await?;
                let mut r = QueryResult::new(&["database_name"]);
                let mut names: Vec<&str> = catalog.databases.values().map(|d| d.name.as_str()).collect();
                names.sort_unstable();
                for n in names {
                    r.push(vec![n.into()]);
                }
                Ok(r)
            }
            Statement::ShowTables { database } => {
                let catalog = self.store.catalog().await?;
                let mut r = QueryResult::new(&["database_name", "table_name"]);
                let mut rows: Vec<(String, String)> = catalog
                    .tables
                    .values()
                    .map(|t| (catalog.database_name(t.parent_id).to_string(), t.name.clone()))
                    .filter(|(db, _)| database.as_ref().is_none_or(|d| d == db))
                    .collect();
                if let Some(d) = database {
                    catalog.require_database(d)?;
                }
                rows.sort();
                for (db, t) in rows {
                    r.push(vec![db.into(), t.into()]);
                }
                Ok(r)
            }
            Statement::AlterBackup(a) => self.alter_backup(a).await,
            Statement::CreateSchedule(_)
            | Statement::ShowSchedules
            | Statement::PauseSchedule(_)
            | Statement::ResumeSchedule(_)
            | Statement::DropSchedule(_) => self.schedule_statement(stmt).await,
            Statement::ShowJobs
            | Statement::ShowJob(_)
            | Statement::PauseJob(_)
            | Statement::ResumeJob(_)
            | Statement::CancelJob(_) => self.job_statement(stmt).await,
        }
    }

    pub(crate) async fn backup(&self, b: &BackupStmt, stmt: &Statement) -> Result<QueryResult> {
        let keys = KeyRequest::new(b.options.encryption_passphrase.as_ref().map(Secret::expose), &b.options.kms);
        if b.options.detached {
            return self.start_backup_job(b).await;
        }
        // The chain's codec: found from the chain's ENCRYPTION-INFO when extending one; made
        // (with a new ENCRYPTION-INFO) just before a new full backup runs.
        let mut codec = FileCodec::plain();
        let now = self.store.now().await?;
        let mut end_time = match &b.as_of {
            Some(a) => resolve_as_of(&a.0, now)?,
            None => now,
        };
        // Where the new layer goes, the chain it extends (if any), and a LATEST to update.
        let mut latest: Option<(Arc<dyn ExternalStorage>, String)> = None;
        let (storage, chain, shown_path) = match &b.destination {
            BackupDestination::To(uris) if !b.incremental_from.is_empty() => {
                let dest = self.open_uris(uris)?;
                if dest.size(MANIFEST_NAME).await.is_ok() {
                    return Err(Error::exists("backup", dest.describe()));
                }
                let mut chain = Chain::default();
                codec = self.keyring.open_chain(self.opener.open(&b.incremental_from[0])?.as_ref(), keys).await?;
                for uri in &b.incremental_from {
                    let layer = self.opener.open(uri)?;
                    chain.push(layer.clone(), read_manifest_with(layer.as_ref(), &codec).await?, redact_uri(uri));
                }
                chain.codec = codec.clone();
                validate_chain(&chain.manifests, &chain.names)?;
                let shown = dest.describe();
                (dest, Some(chain), shown)
            }
            BackupDestination::To(uris) => {
                let dest = self.open_uris(uris)?;
                if dest.size(MANIFEST_NAME).await.is_ok() {
                    // BACKUP TO a location holding a backup appends an incremental layer.
                    codec = self.keyring.open_chain(dest.as_ref(), keys).await?;
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
                let root = self.open_uris(uris)?;
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
                let root = self.open_uris(uris)?;
                let full_dir = resolve_subdir(&root, sub).await?;
                let full = subdir(&root, &full_dir);
                codec = self.keyring.open_chain(full.as_ref(), keys).await?;
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
        let catalog = self.store.catalog_at(end_time).await?;
        let previous = chain.as_ref().map(|c| c.manifests.last().expect("chains are never empty"));
        let everything = Span::new(vec![0u8], vec![0xff]);
        let gc_threshold = self.store.gc_threshold(&everything).await?;
        let history = if b.options.revision_history {
            let (base, start) = match previous {
                Some(p) => (None, p.end_time),
                None => (Some(gc_threshold), gc_threshold),
            };
            read_descriptor_history(self.store.as_ref(), base.filter(|b| !b.is_zero()), start, end_time).await?
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
            (codec, created_info) = self.keyring.create_chain(storage.as_ref(), keys).await?;
        }
        let options = self.backup_options.clone().with_codec(codec);
        let manifest = match run_backup(self.store.as_ref(), storage.clone(), &plan, &options).await {
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

    async fn restore(&self, r: &RestoreStmt) -> Result<QueryResult> {
        let keys = KeyRequest::new(r.options.encryption_passphrase.as_ref().map(Secret::expose), &r.options.kms);
        if r.options.detached {
            return Err(Error::unsupported("detached restore jobs"));
        }
        let chain = self.open_chain_with_keys(&r.source, keys).await?;
        let as_of = match &r.as_of {
            // Bounded by the chain's window, not by this store's clock: a restore may target
            // another cluster whose clock is behind the source's.
            Some(a) => Some(Timestamp::parse_as_of(&a.0, self.store.now().await?)?),
            None => None,
        };
        let catalog = self.store.catalog().await?;
        // Ids are allocated only once every check has passed.
        let selection = prepare_restore(&chain.manifests, as_of, &catalog, &r.targets, &r.options)?;
        let first = match selection.ids_needed() {
            0 => 0,
            n => self.store.allocate_ids(n).await?,
        };
        let plan = selection.plan(first)?;
        let options = self.restore_options.clone().with_codec(chain.codec.clone());
        let summary = run_restore(self.store.as_ref(), &chain.storages, &plan, &options).await?;
        let mut out = QueryResult::new(&["status", "as_of", "databases", "tables", "rows", "bytes"]);
        out.push(vec![
            "succeeded".into(),
            plan.as_of.to_string().into(),
            (plan.databases.len() as u64).into(),
            (plan.tables.len() as u64).into(),
            summary.rows.into(),
            summary.bytes.into(),
        ]);
        Ok(out)
    }

    /// Finds the chain of layers a statement's source names, reads and validates it: a list of
    /// layers given one by one, or a backup directory (with `LATEST IN` / `'subdir' IN` for a
    /// collection) holding a full backup and the incrementals appended to it.
    pub async fn open_chain(&self, source: &BackupSource) -> Result<Chain> {
        self.open_chain_with_keys(source, KeyRequest::default()).await
    }

    /// [`Executor::open_chain`] of a chain that may be encrypted: `keys` must open it if it is,
    /// and be empty if it is not. The chain's codec is in [`Chain::codec`].
    pub async fn open_chain_with_keys(&self, source: &BackupSource, keys: KeyRequest<'_>) -> Result<Chain> {
        if source.layers.len() > 1 {
            if source.subdir.is_some() {
                return Err(Error::invalid("backup source", "a list of layers cannot be combined with IN"));
            }
            let mut chain = Chain::default();
            for layer in &source.layers {
                let storage = self.open_uris(layer)?;
                if chain.storages.is_empty() {
                    chain.codec = self.keyring.open_chain(storage.as_ref(), keys).await?;
                }
                let manifest = read_manifest_with(storage.as_ref(), &chain.codec).await?;
                chain.push(storage, manifest, redact_uri(&layer[0]));
            }
            validate_chain(&chain.manifests, &chain.names)?;
            return Ok(chain);
        }
        let root = self.open_uris(source.layers.first().map_or(&[][..], |l| &l[..]))?;
        let dir = match &source.subdir {
            None => root,
            Some(sub) => {
                let dir = resolve_subdir(&root, sub).await?;
                subdir(&root, &dir)
            }
        };
        let codec = self.keyring.open_chain(dir.as_ref(), keys).await?;
        read_chain_with(&dir, &codec).await
    }

    async fn show_backups(&self, collection: &[String]) -> Result<QueryResult> {
        let root = self.open_uris(collection)?;
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

    async fn create_database(&self, name: &str, if_not_exists: bool) -> Result<QueryResult> {
        let catalog = self.store.catalog().await?;
        if catalog.database(name).is_some() {
            return if if_not_exists { Ok(QueryResult::default()) } else { Err(Error::exists("database", name)) };
        }
        let id = self.store.allocate_ids(1).await?;
        let now = self.store.now().await?;
        let db = DatabaseDescriptor { id, name: name.to_string(), version: 1, modification_time: now };
        self.store.publish(vec![DescriptorChange::Put(Descriptor::Database(db))]).await?;
        Ok(QueryResult::default())
    }

    async fn create_table(&self, name: &TableName, if_not_exists: bool) -> Result<QueryResult> {
        let db_name = qualified(name)?;
        let catalog = self.store.catalog().await?;
        let db = catalog.require_database(db_name)?;
        if catalog.table(db_name, &name.table).is_some() {
            return if if_not_exists {
                Ok(QueryResult::default())
            } else {
                Err(Error::exists("table", format!("{db_name}.{}", name.table)))
            };
        }
        let id = self.store.allocate_ids(1).await?;
        let now = self.store.now().await?;
        let t = TableDescriptor {
            id,
            name: name.table.clone(),
            parent_id: db.id,
            version: 1,
            modification_time: now,
            indexes: vec![IndexDescriptor { id: 1, name: "primary".into(), unique: true, state: IndexState::Public }],
        };
        self.store.publish(vec![DescriptorChange::Put(Descriptor::Table(t))]).await?;
        Ok(QueryResult::default())
    }

    async fn drop_database(&self, name: &str, if_exists: bool, cascade: bool) -> Result<QueryResult> {
        let catalog = self.store.catalog().await?;
        let Some(db) = catalog.database(name) else {
            return if if_exists { Ok(QueryResult::default()) } else { Err(Error::not_found("database", name)) };
        };
        let tables: Vec<_> = catalog.tables_in(db.id).map(|t| t.id).collect();
        if !tables.is_empty() && !cascade {
            return Err(Error::Precondition(format!(
                "database {name} is not empty ({} tables); use DROP DATABASE {name} CASCADE",
                tables.len()
            )));
        }
        let changes = tables.into_iter().chain([db.id]).map(DescriptorChange::Delete).collect();
        self.store.publish(changes).await?;
        Ok(QueryResult::default())
    }

    async fn drop_table(&self, name: &TableName, if_exists: bool) -> Result<QueryResult> {
        let db_name = qualified(name)?;
        let catalog = self.store.catalog().await?;
        match catalog.require_table(db_name, &name.table) {
            Ok(t) => {
                self.store.publish(vec![DescriptorChange::Delete(t.id)]).await?;
                Ok(QueryResult::default())
            }
            Err(_) if if_exists => Ok(QueryResult::default()),
            Err(e) => Err(e),
        }
    }

    /// Resolves `db.table` (as of `at`, or now) to its descriptor id, for row operations.
    pub async fn table_id(&self, db: &str, table: &str, at: Option<Timestamp>) -> Result<crate::catalog::DescId> {
        let catalog = match at {
            Some(ts) => self.store.catalog_at(ts).await?,
            None => self.store.catalog().await?,
        };
        Ok(catalog.require_table(db, table)?.id)
    }

    /// Resolves `db.table` to its key prefix for row operations (`put`, `get`, `scan`).
    pub async fn table_prefix(&self, db: &str, table: &str, at: Option<Timestamp>) -> Result<[u8; 5]> {
        Ok(keys::table_prefix(self.table_id(db, table, at).await?))
    }
}

/// Reads and checks a backup directory's manifest (of a plain backup).
pub async fn read_manifest(storage: &dyn ExternalStorage) -> Result<Manifest> {
    read_manifest_with(storage, &FileCodec::plain()).await
}

/// Reads and checks a backup directory's manifest, decrypting it with the chain's `codec`. The
/// checksum covers the stored bytes. A plain manifest in an encrypted chain, and an encrypted
/// one read without a key, are errors.
pub async fn read_manifest_with(storage: &dyn ExternalStorage, codec: &FileCodec) -> Result<Manifest> {
    let where_ = format!("{}/{MANIFEST_NAME}", storage.describe());
    let bytes = storage.get(MANIFEST_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::not_found("backup", format!("{} (no {MANIFEST_NAME})", storage.describe())),
        e => e,
    })?;
    let checksum = storage.get(MANIFEST_CHECKSUM_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::corrupt(&where_, format!("{MANIFEST_CHECKSUM_NAME} is missing")),
        e => e,
    })?;
    if let Err(e) = verify_manifest_checksum(&bytes, &checksum, &where_) {
        return Err(crate::verify::blame_checksum_mismatch(storage, codec, &bytes).unwrap_or(e));
    }
    let bytes = match (codec.is_encrypted(), is_sealed(&bytes)) {
        (true, true) => codec.open(MANIFEST_NAME, bytes, &where_)?,
        (true, false) => return Err(Error::corrupt(&where_, "is not encrypted, but the backup chain is")),
        (false, true) => {
            return Err(Error::Precondition(format!(
                "the backup at {} is encrypted: give encryption_passphrase = '…' or kms = '…'",
                storage.describe()
            )))
        }
        (false, false) => bytes,
    };
    Manifest::decode(&bytes, &where_)
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

/// The layers of a backup chain: manifests with the storage of each layer's directory.
#[derive(Default)]
pub struct Chain {
    /// Manifests, the full backup first.
    pub manifests: Vec<Manifest>,
    /// Each layer's directory.
    pub storages: Vec<Arc<dyn ExternalStorage>>,
    /// Each layer's location, redacted, for messages and `dependencies`.
    pub names: Vec<String>,
    /// How the chain's files are stored (plain, or encrypted with the chain's data key).
    pub codec: FileCodec,
}

impl Chain {
    fn push(&mut self, storage: Arc<dyn ExternalStorage>, manifest: Manifest, name: String) {
        self.storages.push(storage);
        self.manifests.push(manifest);
        self.names.push(name);
    }
}

/// Where incremental layers appended to a backup directory live, below it.
pub const INCREMENTALS_DIR: &str = "incrementals";

/// Reads the chain rooted at a backup directory: its full backup, then every incremental layer
/// appended under `incrementals/`, in time order; validated. (A plain chain; see [`read_chain_with`].)
pub async fn read_chain(dir: &Arc<dyn ExternalStorage>) -> Result<Chain> {
    read_chain_with(dir, &FileCodec::plain()).await
}

/// [`read_chain`] of a chain whose files are stored with `codec`.
pub async fn read_chain_with(dir: &Arc<dyn ExternalStorage>, codec: &FileCodec) -> Result<Chain> {
    let mut chain = Chain { codec: codec.clone(), ..Chain::default() };
    chain.push(dir.clone(), read_manifest_with(dir.as_ref(), codec).await?, dir.describe());
    let suffix = format!("/{MANIFEST_NAME}");
    let mut layers = Vec::new();
    for o in dir.list(&format!("{INCREMENTALS_DIR}/")).await? {
        if let Some(layer_dir) = o.path.strip_suffix(&suffix) {
            let storage = subdir(dir, layer_dir);
            let manifest = read_manifest_with(storage.as_ref(), codec).await?;
            layers.push((manifest, storage, format!("{}/{layer_dir}", dir.describe())));
        }
    }
    layers.sort_by_key(|(m, _, _)| (m.end_time, m.start_time));
    for (m, storage, name) in layers {
        chain.push(storage, m, name);
    }
    validate_chain(&chain.manifests, &chain.names)?;
    Ok(chain)
}

/// A new, empty layer directory `dir` below `root` (an error if something is already there).
async fn new_layer_dir(root: &Arc<dyn ExternalStorage>, dir: &str) -> Result<Arc<dyn ExternalStorage>> {
    if !root.list(&format!("{dir}/")).await?.is_empty() {
        return Err(Error::exists("backup", format!("{}/{dir}", root.describe())));
    }
    Ok(subdir(root, dir))
}

/// The subdirectory a collection's `LATEST` or `'subdir'` names.
pub(crate) async fn resolve_subdir(root: &Arc<dyn ExternalStorage>, sub: &Subdir) -> Result<String> {
    match sub {
        Subdir::Latest => {
            let latest = root.get(LATEST_NAME).await.map_err(|e| match e {
                Error::NotFound { .. } => Error::not_found("backup collection (no LATEST file)", root.describe()),
                e => e,
            })?;
            Ok(String::from_utf8_lossy(&latest).trim().to_string())
        }
        Subdir::Path(p) => Ok(p.clone()),
    }
}

fn resolve_as_of(text: &str, now: Timestamp) -> Result<Timestamp> {
    let t = Timestamp::parse_as_of(text, now)?;
    if t > now {
        return Err(Error::InvalidTime(format!("AS OF SYSTEM TIME {t} is in the future (now is {now})")));
    }
    Ok(t)
}

fn qualified(name: &TableName) -> Result<&str> {
    name.database.as_deref().ok_or_else(|| {
        Error::invalid(
            "table name",
            format!("'{}' must be qualified with its database, as db.{}", name.table, name.table),
        )
    })
}
