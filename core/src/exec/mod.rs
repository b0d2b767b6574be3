//! Runs statements against a [`KvStore`] and storage opened through a [`StorageOpener`].
//!
//! The [`Executor`] is a dispatcher: [`Executor::execute_statement`] hands each statement to
//! the one service that runs it, and the services share only the executor's [`Context`].
//!
//! ```text
//!   CREATE|DROP|SHOW DATABASE(S)|TABLE(S)          ──▶ ddl        (the store's catalog)
//!   BACKUP                                         ──▶ backup     (BackupService: its options)
//!   BACKUP … WITH detached, SHOW|PAUSE|RESUME|CANCEL JOB ──▶ jobs (JobService: records, runtime)
//!   RESTORE … WITH detached                        ──▶ jobs       (run records, `jobs/runs.rs`)
//!   RESTORE                                        ──▶ restore    (RestoreService: its options)
//!   SHOW BACKUP(S) [FILES|RANGES|SCHEMAS], check_files, ALTER BACKUP ──▶ show (reads backups)
//!   CREATE|SHOW|PAUSE|RESUME|DROP|ALTER … SCHEDULE(S) ──▶ schedules (ScheduleService: records)
//! ```
//!
//! Chains are opened through `crate::chain`, directory names come from `crate::layout`.

mod backup;
mod ddl;
mod jobs;
mod queued;
mod restore;
mod schedules;
mod show;

use std::sync::Arc;

pub(crate) use jobs::decode_job_record;
pub use jobs::{Job, JobFuture, JobSpawner, JobStatus};
pub use queued::{finish_queued_backup, queue_job_id, run_queued_unit, QueuedBackup};
pub use schedules::{RunOutcome, ScheduledRun};
pub use show::show_backup;

use crate::backup::run::BackupOptions;
use crate::catalog::DescId;
use crate::chain::Chain;
use crate::crypto::kdf::KdfParams;
use crate::crypto::keyring::{KeyRequest, Keyring, KmsOpener};
use crate::crypto::Entropy;
use crate::error::{Error, Result};
use crate::keys;
use crate::kv::KvStore;
use crate::layout::{read_latest, skipped_layers, SkipReason, SkippedLayer, MANIFEST_NAME};
use crate::locality::{open_locations, Locations};
use crate::progress::{Cancel, ProgressReporter};
use crate::redact::redact_uri;
use crate::restore::run::RestoreRunOptions;
use crate::result::QueryResult;
use crate::schedule::Schedule;
use crate::secrets::{resolve_backup, NoSecrets, SecretResolver};
use crate::sql::{self, BackupSource, Statement, Subdir};
use crate::storage::StorageOpener;
use crate::timestamp::Timestamp;
use crate::verify::VerifyReport;

use backup::BackupService;
use jobs::JobService;
use restore::RestoreService;
use schedules::ScheduleService;

/// What every service works through: the store statements run against, how storage URIs open,
/// and the encryption settings.
#[derive(Clone)]
struct Context {
    store: Arc<dyn KvStore>,
    opener: Arc<dyn StorageOpener>,
    /// Randomness, KMS and KDF settings for encrypted backups.
    keyring: Keyring,
    /// Reads the secrets statements refer to (`crate::secrets`).
    secrets: Arc<dyn SecretResolver>,
}

impl Context {
    /// The locations of a statement's URI, or of its list of locality URIs (see
    /// [`crate::open_locations`]).
    fn open_uris(&self, uris: &[String]) -> Result<Locations> {
        open_locations(self.opener.as_ref(), uris)
    }
}

/// The directory a single-location source names: the root `uris` name, or the subdirectory of
/// it a collection's `LATEST` or `'subdir'` names; with that subdirectory (`""` for the root).
async fn source_dir(cx: &Context, uris: &[String], sub: Option<&Subdir>) -> Result<(Locations, String)> {
    let root = cx.open_uris(uris)?;
    let dir = match sub {
        None => return Ok((root, String::new())),
        Some(Subdir::Latest) => read_latest(root.storage().as_ref()).await?,
        Some(Subdir::Path(p)) => p.clone(),
    };
    Ok((root.subdir(&dir), dir))
}

/// Opens the chain a statement's source names: a list of layers given one by one, or a backup
/// directory (with `LATEST IN` / `'subdir' IN` for a collection) holding a full backup and the
/// incrementals appended to it. `keys` must open the chain if it is encrypted, and be empty if
/// it is not.
async fn open_source_chain(cx: &Context, source: &BackupSource, keys: KeyRequest<'_>) -> Result<Chain> {
    Ok(open_source_chain_noting(cx, source, keys).await?.0)
}

/// A layer directory below a backup directory that its chain left out (it has no manifest),
/// with its location for messages.
struct Skipped {
    /// The layer's location, redacted.
    name: String,
    layer: SkippedLayer,
}

impl Skipped {
    /// The warning a statement that read `chain` without this layer gives.
    fn notice(&self, chain: &Chain) -> String {
        let end = chain.last().map_or_else(String::new, |m| m.end_time.to_string());
        match self.layer.reason {
            SkipReason::ManifestMissing => format!(
                "skipped the incremental layer {}: it holds {} files but no {MANIFEST_NAME} (lost or deleted?); \
                 without it the chain ends at {end}",
                self.name, self.layer.files
            ),
            SkipReason::Unfinished => format!(
                "skipped the incremental layer {}: a backup run that has not finished (running, or killed: \
                 resumed by the next run of its statement, or removed by a later run once its lease is stale) \
                 left it without a {MANIFEST_NAME}",
                self.name
            ),
        }
    }
}

/// [`open_source_chain`], with the layer directories of a backup directory that the chain left
/// out because they have no manifest (see [`crate::layout::skipped_layers`]). A list of layers
/// given one by one skips nothing.
async fn open_source_chain_noting(
    cx: &Context,
    source: &BackupSource,
    keys: KeyRequest<'_>,
) -> Result<(Chain, Vec<Skipped>)> {
    if source.layers.len() > 1 {
        if source.subdir.is_some() {
            return Err(Error::invalid("backup source", "a list of layers cannot be combined with IN"));
        }
        let layers = source
            .layers
            .iter()
            .map(|uris| Ok((cx.open_uris(uris)?, redact_uri(&uris[0]))))
            .collect::<Result<Vec<_>>>()?;
        return Ok((Chain::open_layers(layers, &cx.keyring, keys).await?, Vec::new()));
    }
    let uris = source.layers.first().map_or(&[][..], |l| &l[..]);
    let (dir, _) = source_dir(cx, uris, source.subdir.as_ref()).await?;
    let chain = Chain::open_dir(&dir, &cx.keyring, keys).await?;
    let skipped = skipped_layers(dir.storage().as_ref())
        .await?
        .into_iter()
        .map(|layer| Skipped { name: format!("{}/{}", dir.describe(), layer.dir), layer })
        .collect();
    Ok((chain, skipped))
}

/// Opens every location a backup statement names (its destination and `INCREMENTAL FROM`
/// layers) and checks its keys' options, writing and reading nothing: what `WITH detached` checks
/// before it queues a job, so that a URI that cannot be parsed or opened fails the statement
/// with the error a run would give, and no job is recorded.
fn check_destination(cx: &Context, b: &sql::BackupStmt) -> Result<()> {
    let uris = match &b.destination {
        sql::BackupDestination::To(uris) | sql::BackupDestination::Into { uris, .. } => uris,
    };
    cx.open_uris(uris)?;
    for uri in &b.incremental_from {
        cx.opener.open(uri)?;
    }
    KeyRequest::new(b.options.encryption_passphrase.as_ref().map(sql::Secret::expose), &b.options.kms).check()
}

/// Runs statements: DDL against the store, BACKUP/RESTORE/SHOW against storage, jobs and
/// schedules in the store's system span. Cloning shares the store, the storage and the job
/// runner.
#[derive(Clone)]
pub struct Executor {
    cx: Context,
    backup: BackupService,
    restore: RestoreService,
    jobs: JobService,
    schedules: ScheduleService,
}

impl Executor {
    /// An executor over `store`, opening storage URIs with `opener`.
    pub fn new(store: Arc<dyn KvStore>, opener: Arc<dyn StorageOpener>) -> Executor {
        Executor {
            cx: Context { store, opener, keyring: Keyring::default(), secrets: Arc::new(NoSecrets) },
            backup: BackupService::default(),
            restore: RestoreService::default(),
            jobs: JobService::default(),
            schedules: ScheduleService::default(),
        }
    }

    /// Sets how backups run.
    pub fn with_backup_options(mut self, options: BackupOptions) -> Self {
        self.backup = BackupService::new(options);
        self
    }

    /// Sets where backups and restores report progress and the signal that cancels them
    /// (keeping their other options). Clones share the store, the storage opener, the keyring and
    /// the job runner, so a host keeps one executor and runs each call on
    /// `exec.clone().with_run_control(…)`.
    pub fn with_run_control(mut self, progress: ProgressReporter, cancel: Cancel) -> Self {
        self.backup = self.backup.with_control(progress.clone(), cancel.clone());
        self.restore = self.restore.with_control(progress, cancel);
        self
    }

    /// Sets how restores run.
    pub fn with_restore_options(mut self, options: RestoreRunOptions) -> Self {
        self.restore = RestoreService::new(options);
        self
    }

    /// Runs detached jobs with `spawner` (see [`JobSpawner`]).
    pub fn with_job_spawner(mut self, spawner: Arc<dyn JobSpawner>) -> Self {
        self.jobs = JobService::with_spawner(spawner);
        self
    }

    /// Sets the source of random bytes encrypted backups need (for data keys and salts). Without
    /// one, `BACKUP … WITH encryption_passphrase` / `kms` fails saying so; restores need none.
    pub fn with_entropy(mut self, entropy: Entropy) -> Self {
        self.cx.keyring = self.cx.keyring.with_entropy(entropy);
        self
    }

    /// Sets how `kms = 'uri'` options are opened into [`crate::KeyProvider`]s.
    pub fn with_kms_opener(mut self, opener: Arc<dyn KmsOpener>) -> Self {
        self.cx.keyring = self.cx.keyring.with_kms_opener(opener);
        self
    }

    /// Sets the argon2id parameters of passphrases added from now on (default: 64 MiB, 3
    /// iterations, 4 lanes). Existing backups open with the parameters stored in their
    /// `ENCRYPTION-INFO`, whatever this is.
    pub fn with_kdf_params(mut self, params: KdfParams) -> Self {
        self.cx.keyring = self.cx.keyring.with_kdf_params(params);
        self
    }

    /// Sets how the secrets statements refer to are read: `encryption_passphrase_env`,
    /// `encryption_passphrase_file` and `${NAME}` in URIs (see [`crate::SecretSource`]). Without
    /// one, a statement with such a reference fails naming it. Job and schedule records hold
    /// only references, so a host that runs them from the store gives one.
    pub fn with_secret_resolver(mut self, resolver: Arc<dyn SecretResolver>) -> Self {
        self.cx.secrets = resolver;
        self
    }

    /// Replaces every encryption setting at once.
    pub fn with_keyring(mut self, keyring: Keyring) -> Self {
        self.cx.keyring = keyring;
        self
    }

    /// The encryption settings.
    pub fn keyring(&self) -> &Keyring {
        &self.cx.keyring
    }

    /// Runs detached backups (`BACKUP … WITH detached`) through `queue`: the statement plans
    /// the backup and creates a queue job that worker processes run (see
    /// [`run_queued_unit`], [`finish_queued_backup`]); `SHOW JOBS` reads its progress there.
    pub fn with_work_queue(mut self, queue: Arc<dyn crate::workqueue::WorkQueue>) -> Self {
        self.jobs = self.jobs.with_queue(queue);
        self
    }

    /// The store statements run against.
    pub fn store(&self) -> &Arc<dyn KvStore> {
        &self.cx.store
    }

    /// Parses and runs one statement.
    pub async fn execute(&self, statement: &str) -> Result<QueryResult> {
        let stmt = sql::parse(statement)?;
        self.execute_statement(&stmt).await
    }

    /// Runs a parsed statement: hands it to the service that runs it.
    pub async fn execute_statement(&self, stmt: &Statement) -> Result<QueryResult> {
        let cx = &self.cx;
        let store = cx.store.as_ref();
        sql::check_options(stmt)?;
        match stmt {
            Statement::Backup(b) if b.options.detached => {
                check_destination(cx, b)?;
                self.jobs.start(cx, &self.backup, b).await
            }
            Statement::Backup(b) => self.backup.run(cx, &resolve_backup(b, cx.secrets.as_ref())?, stmt).await,
            Statement::Restore(r) if r.options.detached => {
                for uris in &r.source.layers {
                    cx.open_uris(uris)?;
                }
                self.jobs.start_restore(cx, &self.restore, r).await
            }
            Statement::Restore(r) => self.restore.run(cx, r).await,
            Statement::ShowBackup(s) => show::show_backup_statement(cx, s).await,
            Statement::ShowBackups { collection } => show::show_backups(cx, collection).await,
            Statement::AlterBackup(a) => show::alter_backup(cx, a).await,
            Statement::CreateDatabase { name, if_not_exists } => {
                ddl::create_database(store, name, *if_not_exists).await
            }
            Statement::CreateTable { name, if_not_exists } => ddl::create_table(store, name, *if_not_exists).await,
            Statement::DropDatabase { name, if_exists, cascade } => {
                ddl::drop_database(store, name, *if_exists, *cascade).await
            }
            Statement::DropTable { name, if_exists } => ddl::drop_table(store, name, *if_exists).await,
            Statement::ShowDatabases => ddl::show_databases(store).await,
            Statement::ShowTables { database } => ddl::show_tables(store, database.as_deref()).await,
            Statement::CreateSchedule(s) => self.schedules.create(cx, s).await,
            Statement::ShowSchedules => self.schedules.show(store).await,
            Statement::PauseSchedule(id) => self.schedules.pause(store, *id).await,
            Statement::ResumeSchedule(id) => self.schedules.resume(store, *id).await,
            Statement::DropSchedule(id) => self.schedules.remove(store, *id).await,
            Statement::ShowJobs => self.jobs.show(store, None).await,
            Statement::ShowJob(id) => self.jobs.show(store, Some(*id)).await,
            Statement::PauseJob(id) => self.jobs.pause(store, *id).await,
            Statement::ResumeJob(id) => self.jobs.resume(cx, &self.backup, *id).await,
            Statement::CancelJob(id) => self.jobs.cancel(cx, *id).await,
            Statement::ShowBackupDetails { details, show } => show::show_backup_details(cx, *details, show).await,
            Statement::ShowSchedule(id) => self.schedules.show_one(store, *id).await,
            Statement::AlterBackupSchedule(a) => self.schedules.alter(cx, a).await,
        }
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
        open_source_chain(&self.cx, source, keys).await
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
    pub async fn check_files(
        &self,
        source: &BackupSource,
        keys: KeyRequest<'_>,
        require_keys: bool,
    ) -> Result<VerifyReport> {
        show::check_files(&self.cx, source, keys, require_keys).await
    }

    /// Every job, by id, with live progress for those running here.
    pub async fn jobs(&self) -> Result<Vec<Job>> {
        self.jobs.all(self.cx.store.as_ref()).await
    }

    /// The status of job `id`: a detached backup ([`Executor::job`]), a detached restore or a
    /// schedule's run (both listed by `SHOW JOBS`).
    pub async fn job_status(&self, id: u64) -> Result<JobStatus> {
        self.jobs.status(self.cx.store.as_ref(), id).await
    }

    /// One job.
    pub async fn job(&self, id: u64) -> Result<Job> {
        self.jobs.get(self.cx.store.as_ref(), id).await
    }

    /// Starts every `pending` job, and every `running` backup job no process runs (its process
    /// died; it resumes from its run's records). A `running` restore job no process runs is
    /// failed (it published nothing; run it again). Call once when a host with a spawner starts.
    /// Returns the ids of the jobs it started.
    pub async fn adopt_jobs(&self) -> Result<Vec<u64>> {
        self.jobs.adopt(&self.cx, &self.backup, &self.restore).await
    }

    /// Every schedule, by id.
    pub async fn schedules(&self) -> Result<Vec<Schedule>> {
        self.schedules.all(self.cx.store.as_ref()).await
    }

    /// One schedule.
    pub async fn schedule(&self, id: u64) -> Result<Schedule> {
        self.schedules.get(self.cx.store.as_ref(), id).await
    }

    /// Starts every schedule due at `now` (fulls before incrementals) and records the runs as
    /// running; returns what each due schedule did. A host that runs backups concurrently
    /// executes each [`RunOutcome::Started`] run's statement and reports it with
    /// [`Executor::finish_run`]; [`Executor::run_due_schedules`] does both in order.
    ///
    /// An incremental due at the same tick as its full backup is skipped: its layer would be empty.
    pub async fn start_due_runs(&self, now: Timestamp) -> Result<Vec<ScheduledRun>> {
        self.schedules.start_due_runs(self.cx.store.as_ref(), now).await
    }

    /// Records that a started run finished at `now` with `result`, applying the schedule's
    /// failure policy, unpausing a waiting incremental after its full's success, and dropping a
    /// one-off schedule. Sets the run's outcome. After a success, a schedule with `keep_*`
    /// options forgets the old backups of its collection (see [`ScheduledRun::forgotten`]).
    pub async fn finish_run(&self, run: &mut ScheduledRun, now: Timestamp, result: Result<QueryResult>) -> Result<()> {
        self.schedules.finish_run(&self.cx, run, now, result).await
    }

    /// Forgets runs recorded as running: call once when a scheduler starts, when no run of the
    /// store can be running (one scheduler per store), so that runs of a process that died do not
    /// hold `on_previous_running = 'wait'` schedules forever. (A killed backup resumes from its
    /// run's records when the schedule runs it again.) Returns how many runs were forgotten.
    pub async fn recover_schedules(&self) -> Result<usize> {
        self.schedules.recover(self.cx.store.as_ref()).await
    }

    /// The host's tick: starts every schedule due at `now`, runs each started backup to the end
    /// (one after another), and records the results. Returns what each due schedule did.
    pub async fn run_due_schedules(&self, now: Timestamp) -> Result<Vec<ScheduledRun>> {
        let mut runs = self.start_due_runs(now).await?;
        for run in &mut runs {
            if run.outcome == RunOutcome::Started {
                let result = self.execute_statement(&Statement::Backup(run.statement.clone())).await;
                self.finish_run(run, now, result).await?;
            }
        }
        Ok(runs)
    }

    /// Resolves `db.table` (as of `at`, or now) to its descriptor id, for row operations.
    pub async fn table_id(&self, db: &str, table: &str, at: Option<Timestamp>) -> Result<DescId> {
        ddl::table_id(self.cx.store.as_ref(), db, table, at).await
    }

    /// Resolves `db.table` to its key prefix for row operations (`put`, `get`, `scan`).
    pub async fn table_prefix(&self, db: &str, table: &str, at: Option<Timestamp>) -> Result<[u8; 5]> {
        Ok(keys::table_prefix(self.table_id(db, table, at).await?))
    }
}
