//! `strata`: run CockroachDB-style BACKUP and RESTORE statements against the embedded store.

mod demo;
mod from_backup;
mod manage;
mod output;
mod progress;
mod schedule;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use strata_core::sql::{BackupSource, Subdir};
use strata_core::{escape_control, keys, Executor, KeyRequest, QueryResult, ScanRequest, Timestamp};
use strata_native::{
    generate_key_file, os_entropy, workload, EmbeddedStore, FileKmsOpener, NativeOpener, TokioCpuPool,
};

/// mimalloc instead of the system allocator: a backup allocates its 16 MiB data files on one
/// thread and frees them on another (after sealing and upload), which glibc's per-thread arenas
/// keep as resident memory; mimalloc returns it (within 250 ms: `main` sets its purge delay, see
/// `strata_native::allocator`).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "strata", version, about = "Full and incremental backups of MVCC key-value data, CockroachDB style")]
struct Cli {
    /// The store: a directory of the embedded store (created if missing), or an etcd cluster
    /// `etcd://HOST:PORT[,HOST:PORT…]`. `nodelocal://1/…` URIs resolve to DIR/extern/… (see
    /// `--nodelocal` for etcd).
    #[arg(long, global = true, env = "STRATA_STORE")]
    store: Option<String>,
    /// Where `nodelocal://1/…` URIs resolve for an etcd store (default: ./extern).
    #[arg(long, global = true, env = "STRATA_NODELOCAL")]
    nodelocal: Option<PathBuf>,
    /// The etcd key prefix of strata's own rows and records in an etcd store.
    #[arg(long, global = true, env = "STRATA_ETCD_ROOT", default_value = strata_etcd::DEFAULT_ROOT)]
    etcd_root: String,
    /// How results are printed.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    format: Format,
    #[command(subcommand)]
    command: Command,
}

/// The statement families `strata sql` runs, each with an example (`strata sql --help`).
const SQL_HELP: &str = "\
Statements (CockroachDB's syntax; nodelocal://1/… is DIR/extern/… of the store):
  Backup     BACKUP [DATABASE d | TABLE d.t] INTO 'nodelocal://1/coll' [AS OF SYSTEM TIME '-10s'] [WITH revision_history]
             BACKUP INTO LATEST IN 'nodelocal://1/coll'            (an incremental layer)
  Restore    RESTORE DATABASE bank FROM LATEST IN 'nodelocal://1/coll' [AS OF SYSTEM TIME '…'] [WITH new_db_name = 'b2']
             RESTORE TABLE bank.accounts FROM '2026/12/06-193834.12' IN 'nodelocal://1/coll'
  Inspect    SHOW BACKUPS IN 'nodelocal://1/coll'
             SHOW BACKUP FROM LATEST IN 'nodelocal://1/coll' [WITH check_files]
  Keys       ALTER BACKUP LATEST IN 'nodelocal://1/coll' ADD NEW_PASSPHRASE = 'new' WITH OLD_PASSPHRASE = 'old'
  Schedules  CREATE SCHEDULE daily FOR BACKUP INTO 'nodelocal://1/coll' RECURRING '@daily'
             SHOW SCHEDULES; PAUSE | RESUME | DROP SCHEDULE 123
  Jobs       SHOW JOBS; SHOW JOB 42; PAUSE | RESUME | CANCEL JOB 42
  Schema     CREATE DATABASE bank; CREATE TABLE bank.accounts; DROP TABLE bank.accounts; DROP DATABASE bank CASCADE
             SHOW DATABASES; SHOW TABLES FROM bank

Examples:
  strata --store ./s sql \"BACKUP DATABASE bank INTO 'nodelocal://1/backups'\"
  echo \"SHOW BACKUPS IN 'nodelocal://1/backups'\" | strata --store ./s sql -";

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum Format {
    /// An aligned table.
    Table,
    /// A JSON array of row objects.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one SQL statement (the argument, `-` for standard input, or -f FILE).
    #[command(after_help = SQL_HELP)]
    Sql {
        /// The statement (`-`: read it from standard input).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        statement: Option<String>,
        /// Read the statement from FILE (`-`: standard input), for statements too long for one
        /// argument (~128 KiB on Linux).
        #[arg(short = 'f', long = "file", value_name = "FILE")]
        file: Option<PathBuf>,
    },
    /// Write KEY = VALUE into table db.t.
    Put { table: String, key: String, value: String },
    /// Print the value of KEY in table db.t (of the store, or of a backup with --from).
    Get {
        table: String,
        key: String,
        /// Read as of this time (decimal, '-10s', or 'YYYY-MM-DD HH:MM:SS').
        #[arg(long)]
        as_of: Option<String>,
        #[command(flatten)]
        from: from_backup::FromBackup,
    },
    /// Delete KEY from table db.t.
    Delete { table: String, key: String },
    /// Print every `KEY<TAB>VALUE` of table db.t in key order (store, or backup with --from).
    Scan {
        table: String,
        /// Read as of this time.
        #[arg(long)]
        as_of: Option<String>,
        #[command(flatten)]
        from: from_backup::FromBackup,
    },
    /// Print the store's current timestamp, in the decimal form AS OF SYSTEM TIME accepts.
    Now,
    /// etcd stores: declare that table db.t keeps its rows at the etcd keys PREFIX + key.
    ///
    /// For keys other programs wrote (e.g. a Kubernetes control plane's /registry/). Creates db.t;
    /// with --for-restore, maps the table of that name a later RESTORE publishes instead.
    Map {
        /// The etcd key prefix, e.g. /registry/.
        prefix: String,
        /// The table, as db.table.
        table: String,
        /// Map the table a RESTORE will create under this name (on the restore target).
        #[arg(long)]
        for_restore: bool,
    },
    /// Check every file of a backup against its manifest (size, SHA-256), without restoring.
    ///
    /// A backup directory is checked with its incrementals, a collection with every full backup.
    /// Encrypted backups are checked without their key unless one is given. Prints one row per
    /// problem and exits non-zero if there is any.
    Verify {
        /// The backup's URI, e.g. nodelocal://1/backups.
        uri: String,
        /// Check a collection's `LATEST` full backup (or this dated subdirectory) only.
        #[arg(long = "in", value_name = "SUBDIR")]
        subdir: Option<String>,
        /// The backup's passphrase (then its manifests are decrypted and used).
        #[arg(long, env = "STRATA_PASSPHRASE", hide_env_values = true)]
        passphrase: Option<String>,
        /// A KMS key that opens the backup, e.g. file-kms:///path/to/keyfile.
        #[arg(long)]
        kms: Vec<String>,
    },
    /// Copy a backup collection (or one chain) to another storage, checking every file.
    ///
    /// Optionally re-encrypts it; an interrupted copy resumes when run again.
    Copy(manage::CopyArgs),
    /// Merge a chain (a full backup and its incrementals) into one new full backup.
    ///
    /// The new full backup of the collection is at the chain's end time, read from the backup alone.
    Compact(manage::CompactArgs),
    /// Forget old backups of a collection by a retention policy, never breaking a chain.
    ///
    /// restic's --keep-* options: prints the plan, and deletes only with --prune.
    Forget(manage::ForgetArgs),
    /// Write a new key file (32 random bytes, hex, mode 0600) for `kms = 'file-kms:///FILE'`.
    Keygen {
        /// Where to write it (an existing file is never overwritten).
        file: PathBuf,
    },
    /// Backup schedules: `schedule run` runs due schedules until stopped.
    Schedule {
        #[command(subcommand)]
        command: schedule::ScheduleCommand,
    },
    /// Sample workloads.
    Workload {
        #[command(subcommand)]
        command: WorkloadCommand,
    },
    /// On an etcd store: run the units of detached backups until stopped.
    ///
    /// Runs the units of `BACKUP … WITH detached` jobs, with any number of other workers.
    Worker(worker::WorkerArgs),
    /// The main job: back up a bank store, restore it into fresh stores, compare.
    ///
    /// Builds a bank store, backs it up, restores a table, the database and the cluster into
    /// fresh stores and compares every row.
    Demo {
        /// Accounts in the bank workload.
        #[arg(long, default_value_t = 20_000)]
        rows: u64,
    },
}

#[derive(Subcommand)]
enum WorkloadCommand {
    /// Create and fill a workload's database.
    Init {
        /// The workload: `bank` (tables customers and accounts).
        name: String,
        /// Accounts to create (customers: one per ten accounts).
        #[arg(long, default_value_t = 1000)]
        rows: u64,
    },
}

fn main() -> ExitCode {
    strata_native::allocator::return_freed_memory_promptly();
    let cli = Cli::parse();
    let nodelocal =
        cli.store.as_deref().map(|store| NativeOpener::new(nodelocal_root(&cli, &StoreLocation::parse(store))));
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of standard output stopped early (`| head`): done, quietly.
        Err(e) if output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            let message = format!("{e:#}");
            eprintln!("error: {}", escape_lines(&message));
            print_local_notes(nodelocal.as_ref(), &message, false);
            ExitCode::FAILURE
        }
    }
}

/// A message safe for a terminal, keeping its lines (a parse error points at the token on a
/// line of its own): every other control character escaped.
fn escape_lines(message: &str) -> String {
    message.split('\n').map(escape_control).collect::<Vec<_>>().join("\n")
}

/// After a message naming `nodelocal://` URIs, where each of them is on disk (and whether it
/// exists; with `only_missing`, only those that do not): such URIs are relative to the store's
/// `extern/` directory, which a user does not see.
fn print_local_notes(opener: Option<&NativeOpener>, message: &str, only_missing: bool) {
    let Some(opener) = opener else { return };
    let mut seen: Vec<&str> = Vec::new();
    for (i, _) in message.match_indices("nodelocal://") {
        let rest = &message[i..];
        let end = rest.find(|c: char| c.is_whitespace() || "'\",;()".contains(c)).unwrap_or(rest.len());
        let uri = rest[..end].trim_end_matches([':', '.']);
        if seen.contains(&uri) || seen.len() == 3 {
            continue;
        }
        seen.push(uri);
        if let Some(dir) = opener.local_dir(uri) {
            if only_missing && dir.exists() {
                continue;
            }
            let state = if dir.exists() { "" } else { " (it does not exist)" };
            eprintln!(
                "note: {} is the directory {}{state}",
                escape_control(uri),
                escape_control(&dir.to_string_lossy())
            );
        }
    }
}

/// The statement of `strata sql`: the argument, or standard input for `-`, or a file's text.
fn read_statement(statement: Option<String>, file: Option<PathBuf>) -> anyhow::Result<String> {
    use std::io::Read;
    let from_stdin = || -> anyhow::Result<String> {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("cannot read the statement from standard input")?;
        Ok(text)
    };
    match (statement, file) {
        (Some(s), _) if s == "-" => from_stdin(),
        (Some(s), _) => Ok(s),
        (None, Some(f)) if f.as_os_str() == "-" => from_stdin(),
        (None, Some(f)) => {
            std::fs::read_to_string(&f).with_context(|| format!("cannot read the statement from {}", f.display()))
        }
        (None, None) => bail!("give a statement, `-` to read it from standard input, or -f FILE"),
    }
}

/// Opens the store at `dir` with an executor whose `nodelocal://` root is `dir/extern`.
pub(crate) fn open(dir: &Path) -> anyhow::Result<Executor> {
    let store = EmbeddedStore::open(dir).with_context(|| format!("cannot open the store at {}", dir.display()))?;
    Ok(executor(Arc::new(store), dir.join("extern")))
}

/// Where `--store` points.
enum StoreLocation {
    /// A directory of the embedded store.
    Dir(PathBuf),
    /// An etcd cluster: its store URI.
    Etcd(String),
}

impl StoreLocation {
    fn parse(store: &str) -> StoreLocation {
        if store.starts_with("etcd://") {
            StoreLocation::Etcd(store.to_string())
        } else {
            StoreLocation::Dir(PathBuf::from(store))
        }
    }
}

/// Where `nodelocal://1/…` URIs resolve for `--store`: DIR/extern for a directory, `--nodelocal`
/// (default ./extern) for an etcd store.
fn nodelocal_root(cli: &Cli, location: &StoreLocation) -> PathBuf {
    match location {
        StoreLocation::Dir(dir) => dir.join("extern"),
        StoreLocation::Etcd(_) => cli.nodelocal.clone().unwrap_or_else(|| PathBuf::from("extern")),
    }
}

/// Opens `--store`: the embedded store of a directory, or an etcd cluster's store.
async fn open_location(cli: &Cli, location: &StoreLocation) -> anyhow::Result<Executor> {
    match location {
        StoreLocation::Dir(dir) => open(dir),
        StoreLocation::Etcd(uri) => {
            let mut options = strata_etcd::EtcdOptions::default().with_root(cli.etcd_root.as_bytes().to_vec());
            // The size of a backup's work units (what a worker claims at a time).
            if let Some(bytes) = std::env::var("STRATA_ETCD_UNIT_BYTES").ok().and_then(|v| v.parse().ok()) {
                options = options.with_unit_bytes(bytes);
            }
            let store = strata_etcd::EtcdKv::open_uri(uri, options)
                .await
                .with_context(|| format!("cannot open the etcd store {uri}"))?;
            Ok(executor(Arc::new(store), nodelocal_root(cli, location)))
        }
    }
}

/// Fault injection for the process tests (the hooks in `progress` and `worker`): stops the
/// whole process at once with `SIGSTOP`, so no other thread runs on past the hook's point.
pub(crate) fn stop_self() {
    #[cfg(unix)]
    let _ = rustix::process::kill_process(rustix::process::getpid(), rustix::process::Signal::STOP);
}

/// An executor on `store` whose `nodelocal://` root is `nodelocal`.
fn executor(store: Arc<dyn strata_core::KvStore>, nodelocal: PathBuf) -> Executor {
    let mut backup = strata_core::BackupOptions::default().with_progress(progress::backup());
    if let Some(pool) = TokioCpuPool::current() {
        backup = backup.with_cpu_pool(Arc::new(pool));
    }
    Executor::new(store, Arc::new(NativeOpener::new(nodelocal)))
        .with_backup_options(backup)
        .with_restore_options(strata_core::RestoreRunOptions::default().with_progress(progress::bar("restore")))
        .with_entropy(os_entropy())
        .with_kms_opener(Arc::new(FileKmsOpener))
        .with_secret_resolver(Arc::new(strata_native::HostSecrets))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo { rows } = cli.command {
        return demo::run(rows).await;
    }
    if let Command::Keygen { file } = &cli.command {
        generate_key_file(file).with_context(|| format!("cannot write the key file {}", file.display()))?;
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        output::line(format!("file-kms://{}", abs.display()))?;
        return Ok(());
    }
    // Reading a backup (`--from`) needs no store: only where `nodelocal://` URIs resolve.
    let backup_root = || {
        cli.store.as_deref().map(|s| nodelocal_root(&cli, &StoreLocation::parse(s))).or_else(|| cli.nodelocal.clone())
    };
    match &cli.command {
        Command::Scan { table, as_of, from } if from.from.is_some() => {
            return from_backup::scan(backup_root(), from, table, as_of.as_deref(), cli.format).await;
        }
        Command::Get { table, key, as_of, from } if from.from.is_some() => {
            return from_backup::get(backup_root(), from, table, key, as_of.as_deref(), cli.format).await;
        }
        _ => {}
    }
    if matches!(cli.command, Command::Copy(_) | Command::Compact(_) | Command::Forget(_)) {
        // Backups only: the store is not opened; `--store` only places `nodelocal://`.
        let root = match cli.store.as_deref() {
            Some(store) => nodelocal_root(&cli, &StoreLocation::parse(store)),
            None => PathBuf::from("extern"),
        };
        return match cli.command {
            Command::Copy(a) => manage::copy(&root, a).await,
            Command::Compact(a) => manage::compact(&root, a).await,
            Command::Forget(a) => manage::run_forget(&root, a, cli.format).await,
            _ => unreachable!("matched above"),
        };
    }
    let store = cli.store.as_deref().ok_or_else(|| {
        anyhow!("--store DIR or --store etcd://HOST:PORT[,HOST:PORT…] is required (or set STRATA_STORE)")
    })?;
    let location = StoreLocation::parse(store);
    if let Command::Map { prefix, table, for_restore } = &cli.command {
        let StoreLocation::Etcd(uri) = &location else {
            bail!("`map` needs an etcd store (--store etcd://HOST:PORT,…): it maps etcd keys to a table");
        };
        let (db, t) = split_table(table)?;
        let options = strata_etcd::EtcdOptions::default().with_root(cli.etcd_root.as_bytes().to_vec());
        let store = strata_etcd::EtcdKv::open_uri(uri, options).await?;
        let mode = if *for_restore { strata_etcd::MapMode::ForRestore } else { strata_etcd::MapMode::Create };
        match store.map_table(db, t, prefix.as_bytes(), mode).await? {
            Some(id) => output::line(format!("{table} (table {id}) keeps its rows at etcd keys {prefix}<key>"))?,
            None => output::line(format!("a restored table {table} will keep its rows at etcd keys {prefix}<key>"))?,
        }
        return Ok(());
    }
    let mut exec = open_location(&cli, &location).await?;
    let local_root = nodelocal_root(&cli, &location);
    if let StoreLocation::Etcd(uri) = &location {
        // Detached backups on etcd are jobs of its work queue, run by `strata worker` processes.
        let endpoints = strata_etcd::parse_endpoints(uri)?;
        exec = exec.with_work_queue(Arc::new(worker::queue(&endpoints)?));
        if let Command::Worker(args) = cli.command {
            return worker::run(exec.store().clone(), &endpoints, local_root, args).await;
        }
    }
    // etcd takes at most 128 operations per transaction.
    let write_batch: u64 = if matches!(location, StoreLocation::Etcd(_)) { 100 } else { 5_000 };
    match cli.command {
        Command::Sql { statement, file } => {
            let statement = read_statement(statement, file)?;
            let parsed = strata_core::sql::parse(&statement)?;
            let result = exec.execute_statement(&parsed).await?;
            output::print_result(&result, cli.format, statement_tag(&parsed))?;
            for notice in &result.notices {
                eprintln!("warning: {}", escape_lines(notice));
                print_local_notes(Some(&NativeOpener::new(local_root.clone())), notice, true);
            }
        }
        Command::Put { table, key, value } => {
            let (db, t) = split_table(&table)?;
            let id = exec.table_id(db, t, None).await?;
            exec.store().write(vec![(keys::table_key(id, key.as_bytes()), Some(value.into_bytes()))]).await?;
        }
        Command::Delete { table, key } => {
            let (db, t) = split_table(&table)?;
            let id = exec.table_id(db, t, None).await?;
            exec.store().write(vec![(keys::table_key(id, key.as_bytes()), None)]).await?;
        }
        Command::Get { table, key, as_of, .. } => {
            let (db, t) = split_table(&table)?;
            let ts = read_time(&exec, as_of.as_deref()).await?;
            let id = exec.table_id(db, t, Some(ts)).await?;
            let k = keys::table_key(id, key.as_bytes());
            let page = exec
                .store()
                .scan(ScanRequest::new(
                    strata_core::Span::new(k.clone(), key_successor(&k)),
                    Timestamp::ZERO,
                    ts,
                    strata_core::MvccFilter::Latest,
                ))
                .await?;
            match page.entries.into_iter().next().and_then(|e| e.value) {
                Some(v) => print_value(key.as_bytes(), &v, cli.format)?,
                None => bail!("key not found: {key} in {table} at {ts}"),
            }
        }
        Command::Scan { table, as_of, .. } => {
            let (db, t) = split_table(&table)?;
            let ts = read_time(&exec, as_of.as_deref()).await?;
            let id = exec.table_id(db, t, Some(ts)).await?;
            let mut request =
                ScanRequest::new(keys::table_span(id), Timestamp::ZERO, ts, strata_core::MvccFilter::Latest);
            let out = std::io::BufWriter::new(std::io::stdout().lock());
            let mut rows = output::RowWriter::new(out, cli.format, &["key", "value"]);
            loop {
                let page = exec.store().scan(request.clone()).await?;
                for e in page.entries {
                    if let Some(v) = e.value {
                        let user_key = keys::decode_table_key(&e.key).map_or(&e.key[..], |(_, k)| k);
                        rows.row(&[shown(user_key, cli.format), shown(&v, cli.format)])?;
                    }
                }
                match page.resume_key {
                    Some(k) => request.span.start = k,
                    None => break,
                }
            }
            rows.finish()?;
        }
        Command::Now => {
            let now = exec.store().now().await?;
            match cli.format {
                Format::Table => output::line(now)?,
                Format::Json => {
                    let mut r = QueryResult::new(&["now", "time"]);
                    r.push(vec![now.to_string().into(), now.to_utc_string().into()]);
                    output::print_result(&r, cli.format, None)?;
                }
            }
        }
        Command::Schedule { command } => schedule::run(&exec, command).await?,
        Command::Verify { uri, subdir, passphrase, kms } => {
            let subdir = subdir.map(|s| if s == "LATEST" { Subdir::Latest } else { Subdir::Path(s) });
            let source = BackupSource { subdir, layers: vec![vec![uri]] };
            let keys = KeyRequest::new(passphrase.as_deref(), &kms);
            let report = exec.check_files(&source, keys, false).await?;
            if !report.problems.is_empty() {
                output::print_result(&report.to_result(), cli.format, None)?;
                bail!(
                    "{} problem{} in {} files of {} backup layers",
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" },
                    report.files,
                    report.layers
                );
            }
            output::line(format!("verified {} files of {} backup layers: no problems", report.files, report.layers))?;
        }
        Command::Workload { command: WorkloadCommand::Init { name, rows } } => {
            if name != "bank" {
                bail!("unknown workload '{name}'; available: bank");
            }
            let started = std::time::Instant::now();
            let s = workload::init_bank_in_batches(&exec, rows, write_batch, |_| {}).await?;
            output::line(format_args!(
                "workload bank: {} accounts, {} customers, {} bytes in {:.1}s",
                s.accounts,
                s.customers,
                s.logical_bytes,
                started.elapsed().as_secs_f64()
            ))?;
        }
        Command::Worker(_) => bail!("`strata worker` runs on an etcd store: --store etcd://HOST:PORT[,HOST:PORT…]"),
        Command::Demo { .. }
        | Command::Keygen { .. }
        | Command::Map { .. }
        | Command::Copy(_)
        | Command::Compact(_)
        | Command::Forget(_) => unreachable!("handled above"),
    }
    Ok(())
}

/// Splits `db.table`.
fn split_table(name: &str) -> anyhow::Result<(&str, &str)> {
    name.split_once('.')
        .filter(|(d, t)| !d.is_empty() && !t.is_empty())
        .ok_or_else(|| anyhow!("table name '{name}' must be qualified with its database, as db.table"))
}

async fn read_time(exec: &Executor, as_of: Option<&str>) -> anyhow::Result<Timestamp> {
    let now = exec.store().now().await?;
    Ok(match as_of {
        Some(text) => Timestamp::parse_as_of(text, now)?,
        None => now,
    })
}

fn key_successor(k: &[u8]) -> Vec<u8> {
    let mut v = k.to_vec();
    v.push(0);
    v
}

/// Bytes as text: UTF-8 as is but for control characters (escaped, see [`escape_control`]: a
/// restored value cannot drive the terminal or break `scan`'s lines), other bytes as `\xNN`.
fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => escape_control(s).into_owned(),
        Err(_) => b
            .iter()
            .map(|&c| if c.is_ascii_graphic() || c == b' ' { (c as char).to_string() } else { format!("\\x{c:02x}") })
            .collect(),
    }
}

/// A key or value as printed: in table form escaped for a terminal ([`show_bytes`]); in JSON
/// (which escapes what it must itself) UTF-8 text as it is, other bytes as `show_bytes` shows them.
pub(crate) fn shown(b: &[u8], format: Format) -> String {
    match (format, std::str::from_utf8(b)) {
        (Format::Json, Ok(text)) => text.to_string(),
        _ => show_bytes(b),
    }
}

/// Prints the value `get` found: as it is in table form, as `[{"key": …, "value": …}]` in JSON.
pub(crate) fn print_value(key: &[u8], value: &[u8], format: Format) -> anyhow::Result<()> {
    match format {
        Format::Table => output::line(show_bytes(value))?,
        Format::Json => {
            let mut r = QueryResult::new(&["key", "value"]);
            r.push(vec![shown(key, format).into(), shown(value, format).into()]);
            output::print_result(&r, format, None)?;
        }
    }
    Ok(())
}

/// What a statement without a result table prints in table form: its command, as CockroachDB's
/// shell prints `CREATE DATABASE`.
fn statement_tag(statement: &strata_core::sql::Statement) -> Option<&'static str> {
    use strata_core::sql::Statement as S;
    Some(match statement {
        S::CreateDatabase { .. } => "CREATE DATABASE",
        S::CreateTable { .. } => "CREATE TABLE",
        S::DropDatabase { .. } => "DROP DATABASE",
        S::DropTable { .. } => "DROP TABLE",
        S::PauseSchedule(_) => "PAUSE SCHEDULE",
        S::ResumeSchedule(_) => "RESUME SCHEDULE",
        S::DropSchedule(_) => "DROP SCHEDULE",
        S::PauseJob(_) => "PAUSE JOB",
        S::ResumeJob(_) => "RESUME JOB",
        S::CancelJob(_) => "CANCEL JOB",
        _ => return None,
    })
}
