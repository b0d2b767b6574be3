//! `strata`: run CockroachDB-style BACKUP and RESTORE statements against the embedded store.

mod demo;
mod progress;
mod schedule;
mod worker;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{anyhow, bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use strata_core::sql::{BackupSource, Subdir};
use strata_core::{keys, Executor, KeyRequest, QueryResult, ScanRequest, Timestamp, Value};
use strata_native::{
    generate_key_file, os_entropy, workload, EmbeddedStore, FileKmsOpener, NativeOpener, TokioCpuPool,
};

/// mimalloc instead of the system allocator: a backup allocates its 16 MiB data files on one
/// thread and frees them on another (after sealing and upload), which glibc's per-thread arenas
/// keep as resident memory; mimalloc returns it.
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

#[derive(Clone, Copy, ValueEnum)]
enum Format {
    /// An aligned table.
    Table,
    /// A JSON array of row objects.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run one statement: BACKUP, RESTORE, SHOW BACKUP(S), CREATE/DROP DATABASE|TABLE, SHOW DATABASES, SHOW TABLES.
    Sql {
        /// The statement.
        statement: String,
    },
    /// Write KEY = VALUE into table db.t.
    Put { table: String, key: String, value: String },
    /// Print the value of KEY in table db.t.
    Get {
        table: String,
        key: String,
        /// Read as of this time (decimal, '-10s', or 'YYYY-MM-DD HH:MM:SS').
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Delete KEY from table db.t.
    Delete { table: String, key: String },
    /// Print every KEY<TAB>VALUE of table db.t in key order.
    Scan {
        table: String,
        /// Read as of this time.
        #[arg(long)]
        as_of: Option<String>,
    },
    /// Print the store's current timestamp, in the decimal form AS OF SYSTEM TIME accepts.
    Now,
    /// etcd stores: declare that table db.t keeps its rows at the etcd keys PREFIX + key, as
    /// other programs wrote them (e.g. a Kubernetes control plane's /registry/). Creates db.t;
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
    /// Check every file of a backup (a backup directory with its incrementals, or every full
    /// backup of a collection) exists with the size and SHA-256 its manifest records, without
    /// restoring. Encrypted backups are checked without their key unless one is given. Prints one
    /// row per problem and exits non-zero if there is any.
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
    /// On an etcd store: run the units of detached backups (`BACKUP … WITH detached`), with any
    /// number of other workers, until stopped.
    Worker(worker::WorkerArgs),
    /// The main job: build a bank store, back it up, restore a table and the database into fresh stores, compare.
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
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
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
            let nodelocal = cli.nodelocal.clone().unwrap_or_else(|| PathBuf::from("extern"));
            Ok(executor(Arc::new(store), nodelocal))
        }
    }
}

/// An executor on `store` whose `nodelocal://` root is `nodelocal`.
fn executor(store: Arc<dyn strata_core::KvStore>, nodelocal: PathBuf) -> Executor {
    let mut backup = strata_core::BackupOptions::default().with_progress(progress::bar("backup"));
    if let Some(pool) = TokioCpuPool::current() {
        backup = backup.with_cpu_pool(Arc::new(pool));
    }
    Executor::new(store, Arc::new(NativeOpener::new(nodelocal)))
        .with_backup_options(backup)
        .with_restore_options(strata_core::RestoreRunOptions::default().with_progress(progress::bar("restore")))
        .with_entropy(os_entropy())
        .with_kms_opener(Arc::new(FileKmsOpener))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::Demo { rows } = cli.command {
        return demo::run(rows).await;
    }
    if let Command::Keygen { file } = &cli.command {
        generate_key_file(file).with_context(|| format!("cannot write the key file {}", file.display()))?;
        let abs = std::path::absolute(file).unwrap_or_else(|_| file.clone());
        println!("file-kms://{}", abs.display());
        return Ok(());
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
            Some(id) => println!("{table} (table {id}) keeps its rows at etcd keys {prefix}<key>"),
            None => println!("a restored table {table} will keep its rows at etcd keys {prefix}<key>"),
        }
        return Ok(());
    }
    let mut exec = open_location(&cli, &location).await?;
    if let StoreLocation::Etcd(uri) = &location {
        // Detached backups on etcd are jobs of its work queue, run by `strata worker` processes.
        let endpoints = strata_etcd::parse_endpoints(uri)?;
        exec = exec.with_work_queue(Arc::new(worker::queue(&endpoints)?));
        if let Command::Worker(args) = cli.command {
            let nodelocal = cli.nodelocal.clone().unwrap_or_else(|| PathBuf::from("extern"));
            return worker::run(exec.store().clone(), &endpoints, nodelocal, args).await;
        }
    }
    // etcd takes at most 128 operations per transaction.
    let write_batch: u64 = if matches!(location, StoreLocation::Etcd(_)) { 100 } else { 5_000 };
    match cli.command {
        Command::Sql { statement } => {
            let result = exec.execute(&statement).await?;
            print_result(&result, cli.format);
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
        Command::Get { table, key, as_of } => {
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
                Some(v) => println!("{}", show_bytes(&v)),
                None => bail!("key not found: {key} in {table} at {ts}"),
            }
        }
        Command::Scan { table, as_of } => {
            let (db, t) = split_table(&table)?;
            let ts = read_time(&exec, as_of.as_deref()).await?;
            let id = exec.table_id(db, t, Some(ts)).await?;
            let mut request =
                ScanRequest::new(keys::table_span(id), Timestamp::ZERO, ts, strata_core::MvccFilter::Latest);
            let mut out = std::io::BufWriter::new(std::io::stdout().lock());
            loop {
                let page = exec.store().scan(request.clone()).await?;
                for e in page.entries {
                    if let Some(v) = e.value {
                        let user_key = keys::decode_table_key(&e.key).map_or(&e.key[..], |(_, k)| k);
                        use std::io::Write;
                        writeln!(out, "{}\t{}", show_bytes(user_key), show_bytes(&v))?;
                    }
                }
                match page.resume_key {
                    Some(k) => request.span.start = k,
                    None => break,
                }
            }
        }
        Command::Now => println!("{}", exec.store().now().await?),
        Command::Schedule { command } => schedule::run(&exec, command).await?,
        Command::Verify { uri, subdir, passphrase, kms } => {
            let subdir = subdir.map(|s| if s == "LATEST" { Subdir::Latest } else { Subdir::Path(s) });
            let source = BackupSource { subdir, layers: vec![vec![uri]] };
            let keys = KeyRequest::new(passphrase.as_deref(), &kms);
            let report = exec.check_files(&source, keys, false).await?;
            if !report.problems.is_empty() {
                print_result(&report.to_result(), cli.format);
                bail!(
                    "{} problem{} in {} files of {} backup layers",
                    report.problems.len(),
                    if report.problems.len() == 1 { "" } else { "s" },
                    report.files,
                    report.layers
                );
            }
            eprintln!("verified {} files of {} backup layers: no problems", report.files, report.layers);
        }
        Command::Workload { command: WorkloadCommand::Init { name, rows } } => {
            if name != "bank" {
                bail!("unknown workload '{name}'; available: bank");
            }
            let started = std::time::Instant::now();
            let s = workload::init_bank_in_batches(&exec, rows, write_batch, |_| {}).await?;
            eprintln!(
                "workload bank: {} accounts, {} customers, {} bytes in {:.1}s",
                s.accounts,
                s.customers,
                s.logical_bytes,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Worker(_) => bail!("`strata worker` runs on an etcd store: --store etcd://HOST:PORT[,HOST:PORT…]"),
        Command::Demo { .. } | Command::Keygen { .. } | Command::Map { .. } => unreachable!("handled above"),
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

/// Bytes as text: UTF-8 as is, other bytes as `\xNN`.
fn show_bytes(b: &[u8]) -> String {
    match std::str::from_utf8(b) {
        Ok(s) => s.to_string(),
        Err(_) => b
            .iter()
            .map(|&c| if c.is_ascii_graphic() || c == b' ' { (c as char).to_string() } else { format!("\\x{c:02x}") })
            .collect(),
    }
}

/// Prints a statement's result in the chosen format.
fn print_result(result: &QueryResult, format: Format) {
    match format {
        Format::Table => {
            if !result.columns.is_empty() {
                println!("{result}");
            }
        }
        Format::Json => {
            let rows: Vec<serde_json::Map<String, serde_json::Value>> = result
                .to_objects()
                .into_iter()
                .map(|row| {
                    row.into_iter()
                        .map(|(k, v)| {
                            let v = match v {
                                Value::Null => serde_json::Value::Null,
                                Value::Bool(b) => b.into(),
                                Value::Int(i) => i.into(),
                                Value::Text(s) => s.into(),
                            };
                            (k, v)
                        })
                        .collect()
                })
                .collect();
            println!("{}", serde_json::to_string_pretty(&rows).expect("rows serialize"));
        }
    }
}
