//! Runs statements against a [`KvStore`] and storage opened through a [`StorageOpener`].

use std::sync::Arc;

use bytes::Bytes;

use crate::backup::{dated_subdir, is_dated_subdir, plan_full_backup, run_backup, BackupOptions};
use crate::catalog::{DatabaseDescriptor, Descriptor, DescriptorChange, IndexDescriptor, IndexState, TableDescriptor};
use crate::error::{Error, Result};
use crate::format::manifest::{verify_manifest_checksum, Manifest, MANIFEST_CHECKSUM_NAME, MANIFEST_NAME};
use crate::keys;
use crate::kv::KvStore;
use crate::redact::redact_uri;
use crate::restore::{prepare_restore, run_restore, RestoreRunOptions};
use crate::result::{QueryResult, Value};
use crate::sql::{self, BackupDestination, BackupSource, BackupStmt, RestoreStmt, Statement, Subdir, TableName};
use crate::storage::{subdir, ExternalStorage, StorageOpener};
use crate::timestamp::Timestamp;

/// Name of the file in a collection that names its newest full backup.
pub const LATEST_NAME: &str = "LATEST";

/// Runs statements: DDL against the store, BACKUP/RESTORE/SHOW against storage.
pub struct Executor {
    store: Arc<dyn KvStore>,
    opener: Arc<dyn StorageOpener>,
    backup_options: BackupOptions,
    restore_options: RestoreRunOptions,
}

/// A backup directory found from a statement's source, with its manifest.
pub struct OpenedBackup {
    /// The backup directory.
    pub storage: Arc<dyn ExternalStorage>,
    /// Its manifest.
    pub manifest: Manifest,
}

impl Executor {
    /// An executor over `store`, opening storage URIs with `opener`.
    pub fn new(store: Arc<dyn KvStore>, opener: Arc<dyn StorageOpener>) -> Executor {
        Executor {
            store,
            opener,
            backup_options: BackupOptions::default(),
            restore_options: RestoreRunOptions::default(),
        }
    }

    /// Sets how backups run.
    pub fn with_backup_options(mut self, options: BackupOptions) -> Self {
        self.backup_options = options;
        self
    }

    /// Sets how restores run.
    pub fn with_restore_options(mut self, options: RestoreRunOptions) -> Self {
        self.restore_options = options;
        self
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
                reject_encryption(s.options.encryption_passphrase.is_some(), !s.options.kms.is_empty())?;
                if s.options.check_files {
                    return Err(Error::unsupported("SHOW BACKUP … WITH check_files"));
                }
                let opened = self.open_backup(&s.source).await?;
                Ok(show_backup(&opened.manifest))
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
            Statement::AlterBackup(_) => Err(Error::unsupported("ALTER BACKUP (key rotation)")),
            Statement::CreateSchedule(_)
            | Statement::ShowSchedules
            | Statement::PauseSchedule(_)
            | Statement::ResumeSchedule(_)
            | Statement::DropSchedule(_) => Err(Error::unsupported("backup schedules")),
            Statement::ShowJobs
            | Statement::ShowJob(_)
            | Statement::PauseJob(_)
            | Statement::ResumeJob(_)
            | Statement::CancelJob(_) => Err(Error::unsupported("jobs")),
        }
    }

    async fn backup(&self, b: &BackupStmt, stmt: &Statement) -> Result<QueryResult> {
        if b.options.revision_history {
            return Err(Error::unsupported("revision_history"));
        }
        reject_encryption(b.options.encryption_passphrase.is_some(), !b.options.kms.is_empty())?;
        if b.options.detached {
            return Err(Error::unsupported("detached backup jobs"));
        }
        if !b.incremental_from.is_empty() {
            return Err(Error::unsupported("incremental backups (INCREMENTAL FROM)"));
        }
        let now = self.store.now().await?;
        let end_time = match &b.as_of {
            Some(a) => resolve_as_of(&a.0, now)?,
            None => now,
        };
        let (storage, collection) = match &b.destination {
            BackupDestination::To(uris) => {
                let storage = self.opener.open(single_uri(uris)?)?;
                if storage.size(MANIFEST_NAME).await.is_ok() {
                    return Err(Error::unsupported(format!(
                        "incremental backups (BACKUP TO {}, which already holds a backup)",
                        storage.describe()
                    )));
                }
                (storage, None)
            }
            BackupDestination::Into { subdir: None, uris } => {
                let root = self.opener.open(single_uri(uris)?)?;
                let dir = dated_subdir(end_time);
                if !root.list(&format!("{dir}/")).await?.is_empty() {
                    return Err(Error::exists("backup", format!("{}/{dir}", root.describe())));
                }
                (subdir(&root, &dir), Some((root, dir)))
            }
            BackupDestination::Into { subdir: Some(_), .. } => {
                return Err(Error::unsupported("incremental backups (BACKUP INTO … IN)"));
            }
        };
        let catalog = self.store.catalog_at(end_time).await?;
        let plan = plan_full_backup(&catalog, &b.targets, end_time, stmt.to_string())?;
        let manifest = run_backup(self.store.as_ref(), storage.clone(), &plan, &self.backup_options).await?;
        if let Some((root, dir)) = &collection {
            root.put(LATEST_NAME, Bytes::from(format!("/{dir}"))).await?;
        }
        let mut r = QueryResult::new(&["status", "path", "end_time", "files", "rows", "bytes"]);
        r.push(vec![
            "succeeded".into(),
            collection.map_or_else(|| storage.describe(), |(_, dir)| format!("/{dir}")).into(),
            end_time.to_string().into(),
            (manifest.files.len() as u64).into(),
            manifest.files.iter().map(|f| f.rows).sum::<u64>().into(),
            manifest.files.iter().map(|f| f.size).sum::<u64>().into(),
        ]);
        Ok(r)
    }

    async fn restore(&self, r: &RestoreStmt) -> Result<QueryResult> {
        reject_encryption(r.options.encryption_passphrase.is_some(), !r.options.kms.is_empty())?;
        if r.options.detached {
            return Err(Error::unsupported("detached restore jobs"));
        }
        let opened = self.open_backup(&r.source).await?;
        if let Some(a) = &r.as_of {
            let now = self.store.now().await?;
            let t = resolve_as_of(&a.0, now)?;
            if t != opened.manifest.end_time {
                return Err(Error::InvalidTime(format!(
                    "cannot restore as of {t}: the backup at {} holds only its end time {} \
                     (restoring other times needs a backup taken WITH revision_history)",
                    opened.storage.describe(),
                    opened.manifest.end_time
                )));
            }
        }
        let catalog = self.store.catalog().await?;
        // Ids are allocated only once every check has passed.
        let selection = prepare_restore(&opened.manifest, &catalog, &r.targets, &r.options)?;
        let first = match selection.ids_needed() {
            0 => 0,
            n => self.store.allocate_ids(n).await?,
        };
        let plan = selection.plan(first)?;
        let summary = run_restore(self.store.as_ref(), opened.storage.clone(), &plan, &self.restore_options).await?;
        let mut out = QueryResult::new(&["status", "databases", "tables", "rows", "bytes"]);
        out.push(vec![
            "succeeded".into(),
            (plan.databases.len() as u64).into(),
            (plan.tables.len() as u64).into(),
            summary.rows.into(),
            summary.bytes.into(),
        ]);
        Ok(out)
    }

    /// Finds the backup directory a source names and reads its manifest.
    pub async fn open_backup(&self, source: &BackupSource) -> Result<OpenedBackup> {
        if source.layers.len() != 1 {
            return Err(Error::unsupported("restoring from a list of incremental layers"));
        }
        let uri = single_uri(&source.layers[0])?;
        let root = self.opener.open(uri)?;
        let storage = match &source.subdir {
            None => root,
            Some(Subdir::Latest) => {
                let latest = root.get(LATEST_NAME).await.map_err(|e| match e {
                    Error::NotFound { .. } => Error::not_found("backup collection (no LATEST file)", root.describe()),
                    e => e,
                })?;
                let dir = String::from_utf8_lossy(&latest).trim().to_string();
                subdir(&root, &dir)
            }
            Some(Subdir::Path(p)) => subdir(&root, p),
        };
        let manifest = read_manifest(storage.as_ref()).await?;
        Ok(OpenedBackup { storage, manifest })
    }

    async fn show_backups(&self, collection: &[String]) -> Result<QueryResult> {
        let root = self.opener.open(single_uri(collection)?)?;
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

/// Reads and checks a backup directory's manifest.
pub async fn read_manifest(storage: &dyn ExternalStorage) -> Result<Manifest> {
    let where_ = format!("{}/{MANIFEST_NAME}", storage.describe());
    let bytes = storage.get(MANIFEST_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::not_found("backup", format!("{} (no {MANIFEST_NAME})", storage.describe())),
        e => e,
    })?;
    let checksum = storage.get(MANIFEST_CHECKSUM_NAME).await.map_err(|e| match e {
        Error::NotFound { .. } => Error::corrupt(&where_, format!("{MANIFEST_CHECKSUM_NAME} is missing")),
        e => e,
    })?;
    verify_manifest_checksum(&bytes, &checksum, &where_)?;
    Manifest::decode(&bytes, &where_)
}

/// The rows of `SHOW BACKUP`: one per database, one per table.
pub fn show_backup(m: &Manifest) -> QueryResult {
    let catalog = m.catalog();
    let mut r = QueryResult::new(&[
        "database_name",
        "table_name",
        "start_time",
        "end_time",
        "size_bytes",
        "rows",
        "is_full_cluster",
    ]);
    let times = |r: &mut Vec<Value>| {
        r.push(m.start_time.to_string().into());
        r.push(m.end_time.to_string().into());
    };
    for db in catalog.databases.values() {
        let mut row = vec![db.name.clone().into(), Value::Null];
        times(&mut row);
        row.extend([Value::Null, Value::Null, m.is_full_cluster.into()]);
        r.push(row);
        for t in catalog.tables_in(db.id) {
            let span = t.span();
            let files = m.files.iter().filter(|f| span.overlaps(&f.span));
            let (size, rows) = files.fold((0u64, 0u64), |(s, n), f| (s + f.size, n + f.rows));
            let mut row = vec![db.name.clone().into(), t.name.clone().into()];
            times(&mut row);
            row.extend([size.into(), rows.into(), m.is_full_cluster.into()]);
            r.push(row);
        }
    }
    r
}

fn resolve_as_of(text: &str, now: Timestamp) -> Result<Timestamp> {
    let t = Timestamp::parse_as_of(text, now)?;
    if t > now {
        return Err(Error::InvalidTime(format!("AS OF SYSTEM TIME {t} is in the future (now is {now})")));
    }
    Ok(t)
}

fn single_uri(uris: &[String]) -> Result<&str> {
    match uris {
        [one] => Ok(one),
        [] => Err(Error::invalid("backup location", "no URI given")),
        many => Err(Error::unsupported(format!(
            "locality-aware backups (a list of {} URIs: {})",
            many.len(),
            many.iter().map(|u| redact_uri(u)).collect::<Vec<_>>().join(", ")
        ))),
    }
}

fn qualified(name: &TableName) -> Result<&str> {
    name.database.as_deref().ok_or_else(|| {
        Error::invalid(
            "table name",
            format!("'{}' must be qualified with its database, as db.{}", name.table, name.table),
        )
    })
}

fn reject_encryption(passphrase: bool, kms: bool) -> Result<()> {
    if passphrase {
        return Err(Error::unsupported("encrypted backups (encryption_passphrase)"));
    }
    if kms {
        return Err(Error::unsupported("encrypted backups (kms)"));
    }
    Ok(())
}
