//! The statements strata understands, as plain data.

use serde::{Deserialize, Serialize};

/// A secret string (passphrase, key): printed as `'redacted'`, never its value, and never
/// serialized: it implements neither `Serialize` nor `Deserialize`, nor does any type holding one
/// (a test in `crate::secrets` fails if that changes). Job and schedule records store a
/// [`SecretSource`] instead (see [`crate::SecretResolver`]).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl Secret {
    /// The secret's value. Call only where the value is used, never where it could be shown.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Where a secret is read when a statement runs (`encryption_passphrase_env = 'NAME'`,
/// `encryption_passphrase_file = '/path'`, `${NAME}` in a URI). Holds no secret: job and schedule
/// records store it. See `crate::secrets`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum SecretSource {
    /// The environment variable of this name, in the process that runs the statement.
    Env(String),
    /// The contents of this file (a trailing newline removed), read by that process.
    File(String),
}

impl std::fmt::Display for SecretSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "environment variable {name}"),
            SecretSource::File(path) => write!(f, "file {path}"),
        }
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret('redacted')")
    }
}

/// A table name, `db.table` or `table` (resolved against a default database), or `db.*`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableName {
    /// The database, if given.
    pub database: Option<String>,
    /// The table, or `*` for every table of the database.
    pub table: String,
}

/// What a BACKUP or RESTORE covers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Targets {
    /// The whole cluster, system span included (no TABLE/DATABASE clause).
    Cluster,
    /// `DATABASE a, b`.
    Databases(Vec<String>),
    /// `TABLE a.t, a.u, b.*`.
    Tables(Vec<TableName>),
}

/// The time expression of `AS OF SYSTEM TIME`: kept as written, resolved at execution
/// with `Timestamp::parse_as_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AsOf(pub String);

/// Which backup of a collection a statement names: `LATEST IN 'uri'` or `'subdir' IN 'uri'`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Subdir {
    /// `LATEST`: the newest full backup of the collection.
    Latest,
    /// A subdirectory as printed by `SHOW BACKUPS IN`, e.g. `/2026/11/23-101500.00`.
    Path(String),
}

/// Where BACKUP writes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackupDestination {
    /// `TO 'uri'` or `TO ('uri1', 'uri2')`: a backup directory (a list = locality-aware).
    To(Vec<String>),
    /// `INTO 'uri'` (new full backup in a dated subdirectory), `INTO LATEST IN 'uri'` or
    /// `INTO 'subdir' IN 'uri'` (append an incremental). `uris` is a list for locality-aware backups.
    Into {
        /// The subdirectory to append to, if any.
        subdir: Option<Subdir>,
        /// The collection URI(s).
        uris: Vec<String>,
    },
}

/// Options of the BACKUP statement (`WITH …`), as stored in job and schedule records; how a
/// run goes (file sizes, concurrency, progress) is the run's options, not these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackupStmtOptions {
    /// `revision_history` (or `revision_history = true|false`).
    pub revision_history: bool,
    /// `encryption_passphrase = '…'`.
    pub encryption_passphrase: Option<Secret>,
    /// `encryption_passphrase_env = 'NAME'` or `encryption_passphrase_file = '/path'`: where the
    /// passphrase is read when the backup runs (strata's extension, for jobs and schedules,
    /// whose records never hold a passphrase).
    pub encryption_passphrase_from: Option<SecretSource>,
    /// `kms = 'uri'` or `kms = ('uri1', 'uri2')`.
    pub kms: Vec<String>,
    /// `detached`.
    pub detached: bool,
}

/// `BACKUP targets {TO|INTO} … [AS OF SYSTEM TIME x] [INCREMENTAL FROM 'a', 'b'] [WITH options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStmt {
    /// What to back up.
    pub targets: Targets,
    /// Where to write it.
    pub destination: BackupDestination,
    /// `AS OF SYSTEM TIME`.
    pub as_of: Option<AsOf>,
    /// `INCREMENTAL FROM 'full', 'inc1', …`: the explicit chain this backup extends.
    pub incremental_from: Vec<String>,
    /// `WITH …`.
    pub options: BackupStmtOptions,
}

/// Where RESTORE and SHOW BACKUP read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSource {
    /// `LATEST IN` / `'subdir' IN`; `None` when the URIs name backup directories directly.
    pub subdir: Option<Subdir>,
    /// The layers: `FROM 'full', 'inc1'` gives two layers of one URI each; `FROM ('a', 'b')`
    /// gives one layer with two locality URIs. With `IN`, exactly one entry (the collection).
    pub layers: Vec<Vec<String>>,
}

/// Options of the RESTORE statement (`WITH …`), as stored in job records; how a run goes
/// (concurrency, progress) is the run's options, not these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestoreStmtOptions {
    /// `into_db = 'name'`: restore tables into this existing database.
    pub into_db: Option<String>,
    /// `new_db_name = 'name'`: restore a single database under a new name.
    pub new_db_name: Option<String>,
    /// `encryption_passphrase = '…'`.
    pub encryption_passphrase: Option<Secret>,
    /// `kms = 'uri'` or a list.
    pub kms: Vec<String>,
    /// `skip_missing_foreign_keys`.
    pub skip_missing_foreign_keys: bool,
    /// `detached`.
    pub detached: bool,
}

/// `RESTORE [targets] FROM source [AS OF SYSTEM TIME x] [WITH options]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreStmt {
    /// What to restore; `Cluster` when no TABLE/DATABASE clause is given.
    pub targets: Targets,
    /// The backup to read.
    pub source: BackupSource,
    /// `AS OF SYSTEM TIME`.
    pub as_of: Option<AsOf>,
    /// `WITH …`.
    pub options: RestoreStmtOptions,
}

/// Options of SHOW BACKUP (`WITH …`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShowBackupOptions {
    /// `check_files`: verify every file's existence, size and checksum.
    pub check_files: bool,
    /// `encryption_passphrase = '…'`.
    pub encryption_passphrase: Option<Secret>,
    /// `kms = 'uri'` or a list.
    pub kms: Vec<String>,
}

/// `SHOW BACKUP [LATEST IN | 'subdir' IN] 'uri' [WITH …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShowBackupStmt {
    /// The backup to describe.
    pub source: BackupSource,
    /// `WITH …`.
    pub options: ShowBackupOptions,
}

/// `RECURRING …` or `FULL BACKUP …` cadence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Recurrence {
    /// A cron expression or `@hourly`, `@daily`, `@weekly`, … as written.
    Cron(String),
    /// `NEVER` (RECURRING only): run once.
    Never,
    /// `ALWAYS` (FULL BACKUP only): every run is a full backup.
    Always,
}

/// `CREATE SCHEDULE [IF NOT EXISTS] label FOR BACKUP … RECURRING … [FULL BACKUP …] [WITH SCHEDULE OPTIONS …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateScheduleStmt {
    /// `IF NOT EXISTS`.
    pub if_not_exists: bool,
    /// The label (name), if given.
    pub label: Option<String>,
    /// The backup to run (always `INTO`).
    pub backup: BackupStmt,
    /// `RECURRING …`.
    pub recurring: Recurrence,
    /// `FULL BACKUP …`, if given.
    pub full_backup: Option<Recurrence>,
    /// `WITH SCHEDULE OPTIONS name = value, …` in order, values unquoted.
    pub schedule_options: Vec<(String, String)>,
}

/// Which key-encryption key ALTER BACKUP adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// `ADD NEW_KMS = 'uri' WITH OLD_KMS = 'uri'`.
    Kms {
        /// The KMS URIs to add.
        new: Vec<String>,
        /// A KMS URI that opens the backup today.
        old: Vec<String>,
    },
    /// `ADD NEW_PASSPHRASE = '…' WITH OLD_PASSPHRASE = '…'` (strata's extension).
    Passphrase {
        /// The passphrase to add.
        new: Secret,
        /// A passphrase that opens the backup today.
        old: Secret,
    },
}

/// `ALTER BACKUP [… IN] 'uri' ADD NEW_KMS = … WITH OLD_KMS = …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterBackupStmt {
    /// The backup to change.
    pub source: BackupSource,
    /// The key to add.
    pub change: KeyChange,
}

/// Every statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// `BACKUP …`.
    Backup(BackupStmt),
    /// `RESTORE …`.
    Restore(RestoreStmt),
    /// `SHOW BACKUP …`.
    ShowBackup(ShowBackupStmt),
    /// `SHOW BACKUPS IN 'uri'` (a list of URIs for locality-aware collections).
    ShowBackups {
        /// The collection URI(s).
        collection: Vec<String>,
    },
    /// `ALTER BACKUP …`.
    AlterBackup(AlterBackupStmt),
    /// `CREATE SCHEDULE … FOR BACKUP …`.
    CreateSchedule(CreateScheduleStmt),
    /// `SHOW SCHEDULES`.
    ShowSchedules,
    /// `PAUSE SCHEDULE id`.
    PauseSchedule(u64),
    /// `RESUME SCHEDULE id`.
    ResumeSchedule(u64),
    /// `DROP SCHEDULE id`.
    DropSchedule(u64),
    /// `SHOW JOBS`.
    ShowJobs,
    /// `SHOW JOB id`.
    ShowJob(u64),
    /// `PAUSE JOB id`.
    PauseJob(u64),
    /// `RESUME JOB id`.
    ResumeJob(u64),
    /// `CANCEL JOB id`.
    CancelJob(u64),
    /// `CREATE DATABASE [IF NOT EXISTS] name`.
    CreateDatabase {
        /// The name.
        name: String,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `CREATE TABLE [IF NOT EXISTS] db.name` (strata tables are key-value: no column list, or an
    /// ignored one).
    CreateTable {
        /// The table.
        name: TableName,
        /// `IF NOT EXISTS`.
        if_not_exists: bool,
    },
    /// `DROP DATABASE [IF EXISTS] name [CASCADE]`.
    DropDatabase {
        /// The name.
        name: String,
        /// `IF EXISTS`.
        if_exists: bool,
        /// `CASCADE`: drop its tables too.
        cascade: bool,
    },
    /// `DROP TABLE [IF EXISTS] db.name`.
    DropTable {
        /// The table.
        name: TableName,
        /// `IF EXISTS`.
        if_exists: bool,
    },
    /// `SHOW DATABASES`.
    ShowDatabases,
    /// `SHOW TABLES [FROM db]`.
    ShowTables {
        /// The database, if given.
        database: Option<String>,
    },
    /// `SHOW BACKUP FILES | RANGES | SCHEMAS [FROM] …`.
    ShowBackupDetails {
        /// Which details.
        details: BackupDetails,
        /// The backup and the options, as for `SHOW BACKUP`.
        show: ShowBackupStmt,
    },
    /// `SHOW SCHEDULE id`.
    ShowSchedule(u64),
    /// `ALTER BACKUP SCHEDULE id cmd, …`.
    AlterBackupSchedule(AlterBackupScheduleStmt),
}

/// What `SHOW BACKUP FILES | RANGES | SCHEMAS` lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupDetails {
    /// `FILES`: one row per data file of each layer.
    Files,
    /// `RANGES`: one row per span each layer covers.
    Ranges,
    /// `SCHEMAS`: `SHOW BACKUP`'s rows with each object's `CREATE` statement.
    Schemas,
}

/// A backup option `ALTER BACKUP SCHEDULE … SET WITH` changes (one per command, as in
/// CockroachDB). An empty string unsets a string option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScheduleBackupOption {
    /// `revision_history [= true|false]`.
    RevisionHistory(bool),
    /// `encryption_passphrase = '…'` (only `''`, unset, is accepted when it runs: a schedule
    /// stores no secret).
    EncryptionPassphrase(Secret),
    /// `encryption_passphrase_env = 'NAME'` or `encryption_passphrase_file = '/path'`; `''`
    /// unsets.
    EncryptionPassphraseFrom {
        /// `env` or `file`.
        env: bool,
        /// The name or path; empty to unset.
        value: String,
    },
    /// `kms = 'uri'` or a list; `''` unsets.
    Kms(Vec<String>),
}

/// One command of `ALTER BACKUP SCHEDULE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlterScheduleCmd {
    /// `SET LABEL 'name'`.
    SetLabel(String),
    /// `SET INTO 'uri'` or `SET INTO ('uri', …)`.
    SetInto(Vec<String>),
    /// `SET WITH option`.
    SetWith(ScheduleBackupOption),
    /// `SET RECURRING 'cron'`.
    SetRecurring(String),
    /// `SET FULL BACKUP 'cron' | ALWAYS`.
    SetFullBackup(Recurrence),
    /// `SET SCHEDULE OPTION name = value` (value unquoted, as in CREATE SCHEDULE).
    SetScheduleOption(String, String),
    /// `EXECUTE IMMEDIATELY` (`full`: `EXECUTE FULL IMMEDIATELY`).
    ExecuteImmediately {
        /// Run the full backup schedule rather than the incremental one.
        full: bool,
    },
}

/// `ALTER BACKUP SCHEDULE id cmd [, cmd …]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlterBackupScheduleStmt {
    /// The schedule (either of a full/incremental pair).
    pub id: u64,
    /// The commands, in order.
    pub commands: Vec<AlterScheduleCmd>,
}
