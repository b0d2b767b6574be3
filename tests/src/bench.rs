//! The benchmark behind `cargo run --release -p strata-tests --bin bench -- [--keys N] [--quick]
//! [--no-restic]`: one run, in process, on the embedded store, and restic on the same logical data.
//!
//! ```text
//!  generate N keys ─▶ source store ──BACKUP DATABASE bank TO──▶ file://…/backups      (full)
//!                     source      ──BACKUP … WITH encryption_passphrase──▶ …/backups-enc (full, encrypted)
//!                     source ──export──▶ export/bank/<table>.tsv ──restic backup──▶ restic-repo
//!  change 1% of keys ─▶ source    ──BACKUP DATABASE bank TO──▶ …/backups   (+ incremental)
//!                     source ──re-export──▶ export/bank/<table>.tsv ──restic backup──▶ restic-repo
//!  file://…/backups ──RESTORE DATABASE bank──▶ fresh store   (verified row by row)
//!  file://…/backups ──RESTORE TABLE bank.customers──▶ fresh store   (verified row by row)
//!  restic-repo ──restic restore latest──▶ restic-restore/   (verified byte for byte against the export)
//! ```
//!
//! Logical bytes are key bytes (the 5-byte table prefix included) plus value bytes, as the store
//! holds them; MB is 10^6 bytes; restic's MB/s count the same logical bytes (not its files' bytes,
//! which hold a tab and a newline per row instead of the prefix). Peak RSS of strata's rows is the
//! process's `VmHWM` during that step (reset at its start, so it starts from the RSS the process
//! already holds: the source store's cache, memory the allocator kept from earlier steps); restic's
//! rows show each restic process's own peak (`wait4`). The export is not timed.

mod report;
mod restic;

pub use report::{BenchReport, Figures, Phase, ResticRun, Target};

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use strata_core::KvStore;
use strata_core::{
    keys, BackupOptions, Executor, MvccFilter, QueryResult, ScanRequest, Timestamp, Value, ENCRYPTION_INFO_NAME,
    REDACTED,
};
use strata_native::{os_entropy, workload, EmbeddedStore, LsmStore, NativeOpener, TokioCpuPool};

use restic::Restic;

/// Keys in the dataset when `--keys` is not given.
pub const DEFAULT_KEYS: u64 = 1_000_000;
/// Keys in the dataset with `--quick`.
pub const QUICK_KEYS: u64 = 20_000;
/// Rows per `KvStore::write` call while generating and changing the dataset.
const WRITE_BATCH: u64 = 10_000;
/// Bytes per scan page when verifying or exporting a table.
const SCAN_PAGE_BYTES: u64 = 4 << 20;

/// The keys of the JSON line, in order: issue 8's names first, then this benchmark's details.
pub const JSON_KEYS: &[&str] = &[
    "n_keys",
    "logical_bytes",
    "full_mb_s",
    "full_enc_mb_s",
    "incr_over_full",
    "restore_mb_s",
    "restic_full_mb_s",
    "restic_incr_s",
    "restic_restore_mb_s",
    "limit_mb_s",
    "peak_rss_mib",
    "gen_s",
    "full_s",
    "full_stored_bytes",
    "changed_keys",
    "incr_s",
    "incr_stored_bytes",
    "restore_s",
    "restore_rows",
    "restore_table_s",
    "restore_table_mb_s",
    "restore_table_rows",
    "sha256_mb_s",
    "aes256gcm_mb_s",
    "full_enc_s",
    "full_enc_stored_bytes",
    "restic_full_s",
    "restic_full_stored_bytes",
    "restic_incr_stored_bytes",
    "restic_restore_s",
    "restic_peak_rss_mib",
    "full_over_restic_full",
    "enc_over_restic_full",
    "enc_over_limit",
    "restore_over_restic_restore",
    "restic_incr_over_full",
    "write_mb_s",
    "store_bytes",
    "restore_store_bytes",
    "engine",
];

/// How the benchmark runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct BenchOptions {
    /// Keys in the dataset (both tables together); at least 2.
    pub keys: u64,
    /// Fraction of keys changed before the incremental backup.
    pub changed_fraction: f64,
    /// Seed of the choice of changed keys and of their new values.
    pub seed: u64,
    /// Time spent measuring each of SHA-256 and AES-256-GCM; zero skips both.
    pub crypto_time: Duration,
    /// Directory the temporary working directory is created in (the system's default if `None`).
    pub dir: Option<PathBuf>,
    /// Whether to run restic on the same data (`false` is `--no-restic`: its figures are null).
    pub restic: bool,
    /// The embedded store the dataset is generated in and restored into.
    pub engine: Engine,
}

/// The embedded store a bench runs on (`--engine`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Engine {
    /// [`EmbeddedStore`], on redb (the default).
    #[default]
    Redb,
    /// [`LsmStore`], on fjall.
    Lsm,
}

impl Engine {
    /// Its name, as `--engine` takes it and the JSON line's `"engine"` shows it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Redb => "redb",
            Engine::Lsm => "lsm",
        }
    }

    /// Opens (or creates) this engine's store in `dir`.
    fn open(self, dir: &Path) -> strata_core::Result<Arc<dyn KvStore>> {
        Ok(match self {
            Engine::Redb => Arc::new(EmbeddedStore::open(dir)?),
            Engine::Lsm => Arc::new(LsmStore::open(dir)?),
        })
    }
}

impl std::str::FromStr for Engine {
    type Err = String;

    fn from_str(s: &str) -> Result<Engine, String> {
        match s {
            "redb" => Ok(Engine::Redb),
            "lsm" => Ok(Engine::Lsm),
            _ => Err(format!("unknown engine {s:?} (expected redb or lsm)")),
        }
    }
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            keys: DEFAULT_KEYS,
            changed_fraction: 0.01,
            seed: 0x5747_a7a5_eed0_0001,
            crypto_time: Duration::from_secs(1),
            dir: None,
            restic: true,
            engine: Engine::Redb,
        }
    }
}

impl BenchOptions {
    /// Sets the number of keys.
    pub fn with_keys(mut self, keys: u64) -> Self {
        self.keys = keys;
        self
    }

    /// Sets the fraction of keys changed before the incremental backup.
    pub fn with_changed_fraction(mut self, fraction: f64) -> Self {
        self.changed_fraction = fraction;
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the time spent measuring each hash/cipher (zero skips them).
    pub fn with_crypto_time(mut self, time: Duration) -> Self {
        self.crypto_time = time;
        self
    }

    /// Sets the directory the working directory is created in.
    pub fn with_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.dir = Some(dir.into());
        self
    }

    /// Sets whether restic runs on the same data (`false` skips it, as `--no-restic` does).
    pub fn with_restic(mut self, restic: bool) -> Self {
        self.restic = restic;
        self
    }

    /// Sets the embedded store the bench runs on.
    pub fn with_engine(mut self, engine: Engine) -> Self {
        self.engine = engine;
        self
    }
}

/// A random secret for the bench's passphrases (hex of 16 bytes from the OS); never printed.
fn random_secret() -> anyhow::Result<String> {
    let mut bytes = [0u8; 16];
    os_entropy().fill(&mut bytes).context("cannot get random bytes for the bench's passphrases")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Runs a blocking step (a restic command) off the async workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> anyhow::Result<T> + Send + 'static) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await.context("a blocking step panicked")?
}

/// The tables with at least one changed key, in order.
fn changed_tables(changed: &HashMap<(Table, u64), u64>) -> Vec<Table> {
    Table::ALL.into_iter().filter(|t| changed.keys().any(|(ct, _)| ct == t)).collect()
}

/// Runs the benchmark; `progress` receives a line at each step (the binary prints them to stderr).
pub async fn run(options: &BenchOptions, mut progress: impl FnMut(&str)) -> anyhow::Result<BenchReport> {
    ensure!(options.keys >= 2, "the dataset needs at least 2 keys (one per table), not {}", options.keys);
    ensure!(
        options.changed_fraction > 0.0 && options.changed_fraction <= 1.0,
        "the changed fraction must be in (0, 1], not {}",
        options.changed_fraction
    );
    // Before any work: without restic (and without --no-restic) the run cannot complete.
    let restic_bin = if options.restic { Some(restic::locate(std::env::var_os("PATH").as_deref())?) } else { None };
    let clock = Instant::now();
    let mut say = |msg: String| {
        let rss = vm_status_mib("VmRSS:").map_or("n/a".into(), |m| format!("{m:.0}"));
        progress(&format!("[{:>7.1}s, RSS {rss:>5} MiB] {msg}", clock.elapsed().as_secs_f64()))
    };

    // The crypto limits first, while the machine is quiet.
    let (sha256, aes) = if options.crypto_time.is_zero() {
        (None, None)
    } else {
        say("measuring single-core SHA-256 and AES-256-GCM".into());
        let t = options.crypto_time;
        let (s, a) = tokio::task::spawn_blocking(move || (sha256_mb_s(t), aes256gcm_mb_s(t))).await?;
        (Some(s), Some(a))
    };

    let tmp = match &options.dir {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .context("cannot create the working directory")?;
    // Absolute, for file:// URIs and for where restic's restore puts the files.
    let work = std::path::absolute(tmp.path()).context("cannot resolve the working directory")?;
    let backups = work.join("backups");
    let uri = format!("file://{}", backups.display());
    say(format!("working in {}", work.display()));
    let restic = match restic_bin {
        Some(bin) => {
            let dir = work.clone();
            let r = blocking(move || Restic::new(bin, &dir, random_secret()?)).await?;
            say(format!("using {}", r.version));
            Some(r)
        }
        None => {
            say("restic: skipped (--no-restic)".into());
            None
        }
    };
    let export_root = work.join("export");
    let export_dir = export_root.join("bank");
    let mut phases = Vec::new();

    // 1. The dataset.
    let data = Dataset::new(options.keys);
    let source_dir = work.join("source");
    let source = open(&source_dir, options.engine)?;
    say(format!("generating {} keys ({} customers, {} accounts)", data.keys(), data.customers, data.accounts));
    let started = Instant::now();
    for stmt in ["CREATE DATABASE bank", "CREATE TABLE bank.customers", "CREATE TABLE bank.accounts"] {
        source.execute(stmt).await.with_context(|| format!("{stmt} failed"))?;
    }
    let mut logical_bytes = 0;
    let mut written = 0;
    let mut next_report = data.keys() / 10;
    for table in Table::ALL {
        let id = source.table_id("bank", table.name(), None).await?;
        let count = data.count(table);
        let mut start = 0;
        while start < count {
            let end = (start + WRITE_BATCH).min(count);
            let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (start..end)
                .map(|i| {
                    let (k, v) = (keys::table_key(id, &table.key(i)), data.value(table, i));
                    logical_bytes += (k.len() + v.len()) as u64;
                    (k, Some(v))
                })
                .collect();
            source.store().write(batch).await.context("writing the dataset")?;
            written += end - start;
            start = end;
            if written >= next_report && written < data.keys() {
                say(format!("  {written} keys written"));
                next_report += data.keys() / 10;
            }
        }
    }
    let gen_s = started.elapsed().as_secs_f64();
    let store_bytes = dir_allocated(&source_dir)?;
    phases.push(Phase {
        name: "generate (batched writes)".into(),
        rows: data.keys(),
        logical_bytes,
        seconds: gen_s,
        stored_bytes: dir_size(&source_dir)?,
        rss_hwm_mib: vm_hwm_mib(),
    });

    // 2. Full backup.
    let backup = format!("BACKUP DATABASE bank TO '{uri}'");
    say(backup.clone());
    reset_peak_rss();
    let started = Instant::now();
    let result = source.execute(&backup).await.context("the full backup failed")?;
    let full_s = started.elapsed().as_secs_f64();
    ensure!(text(&result, "backup_type")? == "full", "the first backup is not a full backup: {result}");
    let full_stored = dir_size(&backups)?;
    phases.push(Phase {
        name: "full backup".into(),
        rows: int(&result, "rows")?,
        logical_bytes,
        seconds: full_s,
        stored_bytes: full_stored,
        rss_hwm_mib: vm_hwm_mib(),
    });

    // 3. Full encrypted backup of the same source, to its own location.
    let enc_backups = work.join("backups-enc");
    let enc_uri = format!("file://{}", enc_backups.display());
    let passphrase = random_secret()?;
    say(format!("BACKUP DATABASE bank TO '{enc_uri}' WITH encryption_passphrase = '{REDACTED}'"));
    reset_peak_rss();
    let started = Instant::now();
    let result = source
        .execute(&format!("BACKUP DATABASE bank TO '{enc_uri}' WITH encryption_passphrase = '{passphrase}'"))
        .await
        .context("the full encrypted backup failed")?;
    let full_enc_s = started.elapsed().as_secs_f64();
    drop(passphrase);
    ensure!(text(&result, "backup_type")? == "full", "the encrypted backup is not a full backup: {result}");
    let full_enc_rows = int(&result, "rows")?;
    ensure!(full_enc_rows == data.keys(), "the encrypted backup holds {full_enc_rows} rows, not {}", data.keys());
    ensure!(
        find_file(&enc_backups, ENCRYPTION_INFO_NAME)?,
        "the encrypted backup at {} has no {ENCRYPTION_INFO_NAME}: it is not encrypted",
        enc_backups.display()
    );
    let full_enc_stored = dir_size(&enc_backups)?;
    phases.push(Phase {
        name: "full backup, encrypted".into(),
        rows: full_enc_rows,
        logical_bytes,
        seconds: full_enc_s,
        stored_bytes: full_enc_stored,
        rss_hwm_mib: vm_hwm_mib(),
    });

    // 4. restic: the tables exported to files (untimed), a repository, a full backup.
    let mut restic_full = None;
    let mut restic_peak = 0f64;
    if let Some(r) = &restic {
        say(format!("exporting each table to {}/<table>.tsv (not timed)", export_dir.display()));
        let started = Instant::now();
        let exported = restic::export_tables(&source, &export_dir, &Table::ALL).await?;
        ensure!(
            exported.rows == data.keys() && exported.logical_bytes == logical_bytes,
            "the export holds {} rows, {} logical bytes; the dataset {} rows, {logical_bytes} bytes",
            exported.rows,
            exported.logical_bytes,
            data.keys()
        );
        say(format!(
            "  exported {} rows, {:.1} MB of files in {:.1} s",
            exported.rows,
            exported.file_bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        ));
        say(format!("restic init --repository-version 2 (repository {})", r.repo.display()));
        let init = blocking({
            let r = r.clone();
            move || r.init()
        })
        .await?;
        restic_peak = restic_peak.max(init.peak_rss_mib);
        say(format!("restic backup {}", export_root.display()));
        let (run, summary) = blocking({
            let (r, dir) = (r.clone(), export_root.clone());
            move || r.backup(&dir)
        })
        .await?;
        ensure!(
            summary.files_new == Table::ALL.len() as u64,
            "restic's first backup saw {} new files, not {}: {summary:?}",
            summary.files_new,
            Table::ALL.len()
        );
        restic_peak = restic_peak.max(run.peak_rss_mib);
        let stored = dir_size(&r.repo)?;
        phases.push(Phase {
            name: "restic: full backup".into(),
            rows: exported.rows,
            logical_bytes,
            seconds: run.seconds,
            stored_bytes: stored,
            rss_hwm_mib: Some(run.peak_rss_mib),
        });
        restic_full = Some((run.seconds, stored));
    }

    // 5. Change a fraction of the keys (random, seeded).
    let target = ((data.keys() as f64 * options.changed_fraction).round() as u64).clamp(1, data.keys());
    say(format!("changing {target} keys"));
    reset_peak_rss();
    let mut rng = SplitMix64(options.seed);
    let mut picked = HashSet::new();
    while (picked.len() as u64) < target {
        picked.insert(rng.next() % data.keys());
    }
    let mut picked: Vec<u64> = picked.into_iter().collect();
    picked.sort_unstable();
    // Each changed row and the random number its new value comes from (the values themselves
    // are made again when verifying: this process's memory is measured).
    let mut changed: HashMap<(Table, u64), u64> = HashMap::with_capacity(picked.len());
    let ids = [source.table_id("bank", "customers", None).await?, source.table_id("bank", "accounts", None).await?];
    let mut changed_bytes = 0;
    let started = Instant::now();
    for chunk in picked.chunks(WRITE_BATCH as usize) {
        // Positions run through customers, then accounts: the batch is sorted by key.
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = chunk
            .iter()
            .map(|&pos| {
                let (table, i) = data.locate(pos);
                let r = rng.next();
                let v = data.changed_value(table, i, r);
                let k = keys::table_key(ids[table as usize], &table.key(i));
                changed_bytes += (k.len() + v.len()) as u64;
                changed.insert((table, i), r);
                (k, Some(v))
            })
            .collect();
        source.store().write(batch).await.context("changing keys")?;
    }
    phases.push(Phase {
        name: format!("change {} keys (writes)", changed.len()),
        rows: changed.len() as u64,
        logical_bytes: changed_bytes,
        seconds: started.elapsed().as_secs_f64(),
        stored_bytes: dir_size(&source_dir)?,
        rss_hwm_mib: vm_hwm_mib(),
    });

    // 6. Incremental backup onto the same location.
    say(format!("{backup} (incremental)"));
    reset_peak_rss();
    let started = Instant::now();
    let result = source.execute(&backup).await.context("the incremental backup failed")?;
    let incr_s = started.elapsed().as_secs_f64();
    ensure!(text(&result, "backup_type")? == "incremental", "the second backup is not incremental: {result}");
    let incr_stored = dir_size(&backups)?.saturating_sub(full_stored);
    phases.push(Phase {
        name: "incremental backup".into(),
        rows: int(&result, "rows")?,
        logical_bytes: changed_bytes,
        seconds: incr_s,
        stored_bytes: incr_stored,
        rss_hwm_mib: vm_hwm_mib(),
    });

    // 7. restic after the same change: the changed tables re-exported (untimed), backed up again.
    let mut restic_incr = None;
    let mut export_file_bytes = 0;
    if let (Some(r), Some((_, full_stored))) = (&restic, restic_full) {
        let tables = changed_tables(&changed);
        let names: Vec<&str> = tables.iter().map(|t| t.name()).collect();
        say(format!("re-exporting the changed tables ({}) (not timed)", names.join(", ")));
        restic::export_tables(&source, &export_dir, &tables).await?;
        export_file_bytes = dir_size(&export_dir)?;
        say(format!("restic backup {} (after the change)", export_root.display()));
        let (run, summary) = blocking({
            let (r, dir) = (r.clone(), export_root.clone());
            move || r.backup(&dir)
        })
        .await?;
        ensure!(
            summary.files_changed == tables.len() as u64 && summary.files_new == 0,
            "restic's backup after the change saw {} changed files, not {}: {summary:?}",
            summary.files_changed,
            tables.len()
        );
        say(format!(
            "  restic reread {} changed files ({:.1} MB; {} unmodified), added {:.2} MB before compression",
            summary.files_changed,
            summary.total_bytes_processed as f64 / 1e6,
            summary.files_unmodified,
            summary.data_added as f64 / 1e6
        ));
        restic_peak = restic_peak.max(run.peak_rss_mib);
        let stored = dir_size(&r.repo)?.saturating_sub(full_stored);
        phases.push(Phase {
            name: "restic: backup after the change".into(),
            rows: changed.len() as u64,
            logical_bytes: changed_bytes,
            seconds: run.seconds,
            stored_bytes: stored,
            rss_hwm_mib: Some(run.peak_rss_mib),
        });
        restic_incr = Some((run.seconds, stored, summary));
    }
    drop(source);

    // 8. Restore the whole database into a fresh store.
    let restore = format!("RESTORE DATABASE bank FROM '{uri}'");
    say(restore.clone());
    let target_dir = work.join("restore-database");
    let target = open(&target_dir, options.engine)?;
    reset_peak_rss();
    let started = Instant::now();
    target.execute(&restore).await.context("the database restore failed")?;
    let restore_s = started.elapsed().as_secs_f64();
    let rss = vm_hwm_mib();
    say("verifying the restored database row by row".into());
    let (mut restore_rows, mut restore_bytes) = (0, 0);
    for table in Table::ALL {
        let (r, b) = verify_table(&target, table, &data, &changed).await?;
        restore_rows += r;
        restore_bytes += b;
    }
    phases.push(Phase {
        name: "restore database".into(),
        rows: restore_rows,
        logical_bytes: restore_bytes,
        seconds: restore_s,
        stored_bytes: dir_size(&target_dir)?,
        rss_hwm_mib: rss,
    });
    let restore_store_bytes = dir_allocated(&target_dir)?;
    drop(target);

    // 9. Restore one table into a fresh store.
    let restore = format!("RESTORE TABLE bank.customers FROM '{uri}'");
    say(restore.clone());
    let target_dir = work.join("restore-table");
    let target = open(&target_dir, options.engine)?;
    target.execute("CREATE DATABASE bank").await?;
    reset_peak_rss();
    let started = Instant::now();
    target.execute(&restore).await.context("the table restore failed")?;
    let restore_table_s = started.elapsed().as_secs_f64();
    let rss = vm_hwm_mib();
    say("verifying the restored table row by row".into());
    let (restore_table_rows, restore_table_bytes) = verify_table(&target, Table::Customers, &data, &changed).await?;
    ensure!(
        target.table_id("bank", "accounts", None).await.is_err(),
        "RESTORE TABLE bank.customers also restored bank.accounts"
    );
    phases.push(Phase {
        name: "restore table customers".into(),
        rows: restore_table_rows,
        logical_bytes: restore_table_bytes,
        seconds: restore_table_s,
        stored_bytes: dir_size(&target_dir)?,
        rss_hwm_mib: rss,
    });
    drop(target);

    // 10. restic's restore, compared byte for byte with the export.
    let mut restic_restore = None;
    if let Some(r) = &restic {
        let target_dir = work.join("restic-restore");
        say(format!("restic restore latest --target {}", target_dir.display()));
        let run = blocking({
            let (r, dir) = (r.clone(), target_dir.clone());
            move || r.restore_latest(&dir)
        })
        .await?;
        restic_peak = restic_peak.max(run.peak_rss_mib);
        // restic recreates the absolute path it backed up under the target.
        let relative = export_dir.strip_prefix("/").unwrap_or(&export_dir);
        let restored = target_dir.join(relative);
        say("verifying restic's restore against the export, byte for byte".into());
        let files = blocking({
            let (expected, restored) = (export_dir.clone(), restored.clone());
            move || restic::verify_restored(&expected, &restored)
        })
        .await?;
        say(format!("  restic's restore matches the export ({files} files)"));
        phases.push(Phase {
            name: "restic: restore".into(),
            rows: restore_rows,
            logical_bytes: restore_bytes,
            seconds: run.seconds,
            stored_bytes: dir_size(&target_dir)?,
            rss_hwm_mib: Some(run.peak_rss_mib),
        });
        restic_restore = Some((run.seconds, files));
    }
    say("done".into());

    let full_mb_s = mb_s(logical_bytes, full_s);
    let full_enc_mb_s = mb_s(logical_bytes, full_enc_s);
    let restore_mb_s = mb_s(restore_bytes, restore_s);
    let limit = sha256.zip(aes).map(|(s, a)| 1.0 / (1.0 / s + 1.0 / a));
    let restic_full_mb_s = restic_full.map(|(s, _)| mb_s(logical_bytes, s));
    let restic_restore_mb_s = restic_restore.map(|(s, _)| mb_s(restore_bytes, s));
    let ratio = |a: f64, b: Option<f64>| b.filter(|b| *b > 0.0).map(|b| round(a / b, 3));
    let figures = Figures {
        n_keys: data.keys(),
        logical_bytes,
        full_mb_s: round(full_mb_s, 2),
        full_enc_mb_s: Some(round(full_enc_mb_s, 2)),
        incr_over_full: round(incr_s / full_s, 5),
        restore_mb_s: round(restore_mb_s, 2),
        restic_full_mb_s: restic_full_mb_s.map(|v| round(v, 2)),
        restic_incr_s: restic_incr.as_ref().map(|(s, _, _)| round(*s, 4)),
        restic_restore_mb_s: restic_restore_mb_s.map(|v| round(v, 2)),
        limit_mb_s: limit.map(|v| round(v, 1)),
        peak_rss_mib: peak_of_backups_and_restores(&phases).map(|m| round(m, 1)),
        gen_s: round(gen_s, 3),
        full_s: round(full_s, 3),
        full_stored_bytes: full_stored,
        changed_keys: changed.len() as u64,
        incr_s: round(incr_s, 4),
        incr_stored_bytes: incr_stored,
        restore_s: round(restore_s, 3),
        restore_rows,
        restore_table_s: round(restore_table_s, 3),
        restore_table_mb_s: round(mb_s(restore_table_bytes, restore_table_s), 2),
        restore_table_rows,
        sha256_mb_s: sha256.map(|v| round(v, 1)),
        aes256gcm_mb_s: aes.map(|v| round(v, 1)),
        full_enc_s: round(full_enc_s, 3),
        full_enc_stored_bytes: full_enc_stored,
        restic_full_s: restic_full.map(|(s, _)| round(s, 3)),
        restic_full_stored_bytes: restic_full.map(|(_, b)| b),
        restic_incr_stored_bytes: restic_incr.as_ref().map(|(_, b, _)| *b),
        restic_restore_s: restic_restore.map(|(s, _)| round(s, 3)),
        restic_peak_rss_mib: restic.as_ref().map(|_| round(restic_peak, 1)),
        full_over_restic_full: ratio(full_mb_s, restic_full_mb_s),
        enc_over_restic_full: ratio(full_enc_mb_s, restic_full_mb_s),
        enc_over_limit: ratio(full_enc_mb_s, limit),
        restore_over_restic_restore: ratio(restore_mb_s, restic_restore_mb_s),
        restic_incr_over_full: restic_incr
            .as_ref()
            .zip(restic_full)
            .and_then(|((incr, _, _), (full, _))| ratio(*incr, Some(full))),
        write_mb_s: round(mb_s(logical_bytes, gen_s), 2),
        store_bytes,
        restore_store_bytes,
        engine: options.engine.name(),
    };
    let restic = match (restic, restic_incr, restic_restore) {
        (Some(r), Some((_, _, summary)), Some((_, files))) => Some(ResticRun {
            version: r.version.clone(),
            export_file_bytes,
            incr_files_changed: summary.files_changed,
            incr_bytes_processed: summary.total_bytes_processed,
            cache_bytes: dir_size(&r.cache)?,
            restore_verified_files: files,
        }),
        _ => None,
    };
    Ok(BenchReport { keys: options.keys, seed: options.seed, phases, figures, restic })
}

/// Opens the embedded store of `engine` in `dir` with an executor and the OS's randomness (as the
/// CLI does).
fn open(dir: &Path, engine: Engine) -> anyhow::Result<Executor> {
    let store = engine.open(dir).with_context(|| format!("cannot open the store at {}", dir.display()))?;
    // As the `strata` CLI: finished data files are sealed on tokio's blocking pool.
    let mut backup = BackupOptions::default();
    if let Some(pool) = TokioCpuPool::current() {
        backup = backup.with_cpu_pool(Arc::new(pool));
    }
    Ok(Executor::new(store, Arc::new(NativeOpener::new(dir.join("extern"))))
        .with_backup_options(backup)
        .with_entropy(os_entropy()))
}

/// The two tables of the dataset, in key (and creation) order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Table {
    Customers = 0,
    Accounts = 1,
}

impl Table {
    const ALL: [Table; 2] = [Table::Customers, Table::Accounts];

    fn name(self) -> &'static str {
        match self {
            Table::Customers => "customers",
            Table::Accounts => "accounts",
        }
    }

    /// The user key of row `i` (zero-padded decimal, so keys sort by `i`).
    fn key(self, i: u64) -> Vec<u8> {
        match self {
            Table::Customers => format!("{i:08}").into_bytes(),
            Table::Accounts => workload::account_key(i),
        }
    }

    fn parse_key(self, key: &[u8]) -> Option<u64> {
        std::str::from_utf8(key).ok()?.parse().ok()
    }
}

/// The `bank` workload's rows, sized to exactly `keys` keys: one customer per eleven keys.
struct Dataset {
    customers: u64,
    accounts: u64,
}

impl Dataset {
    fn new(keys: u64) -> Dataset {
        let customers = (keys / 11).max(1);
        Dataset { customers, accounts: keys - customers }
    }

    fn keys(&self) -> u64 {
        self.customers + self.accounts
    }

    fn count(&self, table: Table) -> u64 {
        match table {
            Table::Customers => self.customers,
            Table::Accounts => self.accounts,
        }
    }

    /// Position `pos` in `0..keys()`: customers first, then accounts.
    fn locate(&self, pos: u64) -> (Table, u64) {
        if pos < self.customers {
            (Table::Customers, pos)
        } else {
            (Table::Accounts, pos - self.customers)
        }
    }

    /// The generated value of row `i` (~90–130 bytes of JSON).
    fn value(&self, table: Table, i: u64) -> Vec<u8> {
        match table {
            Table::Customers => workload::customer_value(i),
            Table::Accounts => workload::account_value(i, self.accounts),
        }
    }

    /// A changed value of row `i`: a new balance (accounts) or city (customers), marked updated.
    fn changed_value(&self, table: Table, i: u64, r: u64) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_slice(&self.value(table, i)).expect("workload values are JSON");
        match table {
            Table::Accounts => v["balance"] = serde_json::json!((r % 100_000_000) as f64 / 100.0),
            Table::Customers => {
                v["city"] =
                    serde_json::json!(["Porto", "Bergen", "Denver", "Mombasa", "Kyoto", "Cuenca"][r as usize % 6])
            }
        }
        v["updated"] = serde_json::json!(true);
        serde_json::to_vec(&v).expect("JSON serializes")
    }
}

/// Calls `f(key, user key, value)` for each row of `bank.<table>` in `exec`'s store (its newest
/// version, `None` for a deletion), in key order, a scan page at a time (never holding the table).
async fn scan_table(
    exec: &Executor,
    table: Table,
    mut f: impl FnMut(&[u8], &[u8], Option<&[u8]>) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let name = table.name();
    let id = exec.table_id("bank", name, None).await.with_context(|| format!("there is no table bank.{name}"))?;
    let now = exec.store().now().await?;
    let mut request = ScanRequest::new(keys::table_span(id), Timestamp::ZERO, now, MvccFilter::Latest);
    request.target_bytes = SCAN_PAGE_BYTES;
    loop {
        let page = exec.store().scan(request.clone()).await?;
        for e in &page.entries {
            let user_key = keys::decode_table_key(&e.key).map(|(_, k)| k).unwrap_or_default();
            f(&e.key, user_key, e.value.as_deref())?;
        }
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => return Ok(()),
        }
    }
}

/// Scans `bank.<table>` in `exec`'s store, checks every row against the dataset (with its
/// changes), and returns (rows, logical bytes).
async fn verify_table(
    exec: &Executor,
    table: Table,
    data: &Dataset,
    changed: &HashMap<(Table, u64), u64>,
) -> anyhow::Result<(u64, u64)> {
    let name = table.name();
    let (mut rows, mut bytes) = (0u64, 0u64);
    scan_table(exec, table, |key, user_key, value| {
        let shown = String::from_utf8_lossy(user_key);
        let Some(value) = value else { bail!("restored bank.{name} holds a deletion of key {shown}") };
        match table.parse_key(user_key) {
            Some(i) if i == rows => {}
            _ => bail!(
                "restored bank.{name}: row {rows} has key {shown}, expected {}",
                String::from_utf8_lossy(&table.key(rows))
            ),
        }
        let matches = match changed.get(&(table, rows)) {
            Some(&r) => value == &data.changed_value(table, rows, r)[..],
            None => value == &data.value(table, rows)[..],
        };
        ensure!(matches, "restored bank.{name} key {shown} has a value that differs from the source");
        rows += 1;
        bytes += (key.len() + value.len()) as u64;
        Ok(())
    })
    .await
    .with_context(|| format!("verifying the restored bank.{name}"))?;
    ensure!(rows == data.count(table), "restored bank.{name} has {rows} rows, expected {}", data.count(table));
    Ok((rows, bytes))
}

fn text(result: &QueryResult, column: &str) -> anyhow::Result<String> {
    match result.get(0, column) {
        Some(Value::Text(t)) => Ok(t.clone()),
        other => bail!("the statement returned no text column {column}: {other:?}"),
    }
}

fn int(result: &QueryResult, column: &str) -> anyhow::Result<u64> {
    match result.get(0, column) {
        Some(Value::Int(i)) => Ok(*i as u64),
        other => bail!("the statement returned no integer column {column}: {other:?}"),
    }
}

/// Sum of the sizes of the files under `dir` (0 if it does not exist).
fn dir_size(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let entries = match std::fs::read_dir(&d) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot list {}", d.display())),
        };
        for entry in entries {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    Ok(total)
}

/// Bytes allocated on disk to the files under `dir` (blocks, not apparent sizes: an embedded
/// store's file can be sparse). Apparent sizes where the platform has no block counts.
fn dir_allocated(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry?;
            let meta = entry.metadata()?;
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                #[cfg(unix)]
                {
                    use std::os::unix::fs::MetadataExt;
                    total += meta.blocks() * 512;
                }
                #[cfg(not(unix))]
                {
                    total += meta.len();
                }
            }
        }
    }
    Ok(total)
}

/// Whether a file named `name` is anywhere under `dir`.
fn find_file(dir: &Path, name: &str) -> anyhow::Result<bool> {
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).with_context(|| format!("cannot list {}", d.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() == name {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

/// Resets the process's peak resident set (`VmHWM`) to its current RSS, so the next reading is
/// the peak of the step that follows (Linux: `5` to /proc/self/clear_refs). Where that is not
/// possible, readings stay the process's peak so far, which only overstates a step's.
pub fn reset_peak_rss() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

/// The largest peak RSS of the backup and restore steps (strata's rows other than generating
/// and changing the dataset, and restic's).
fn peak_of_backups_and_restores(phases: &[Phase]) -> Option<f64> {
    phases
        .iter()
        .filter(|p| !p.name.starts_with("restic") && !p.name.starts_with("generate") && !p.name.starts_with("change"))
        .filter_map(|p| p.rss_hwm_mib)
        .reduce(f64::max)
}

/// The process's peak resident set (`VmHWM` in /proc/self/status), in MiB.
pub fn vm_hwm_mib() -> Option<f64> {
    vm_status_mib("VmHWM:")
}

/// A `kB` line of /proc/self/status (`VmHWM:`, `VmRSS:`), in MiB.
fn vm_status_mib(field: &str) -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kib: f64 = line[field.len()..].trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024.0)
}

fn mb_s(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 / 1e6 / seconds
    } else {
        0.0
    }
}

fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}

/// splitmix64: small, seeded, good enough to pick keys.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

fn noise(len: usize) -> Vec<u8> {
    let mut rng = SplitMix64(len as u64);
    (0..len).map(|_| rng.next() as u8).collect()
}

/// Single-core SHA-256 throughput over 8 MiB messages, MB/s, measured for about `time`.
pub fn sha256_mb_s(time: Duration) -> f64 {
    use sha2::{Digest, Sha256};
    let buf = noise(1 << 20);
    let started = Instant::now();
    let mut bytes = 0u64;
    loop {
        let mut h = Sha256::new();
        for _ in 0..8 {
            h.update(&buf);
        }
        std::hint::black_box(h.finalize());
        bytes += 8 * buf.len() as u64;
        if started.elapsed() >= time {
            return mb_s(bytes, started.elapsed().as_secs_f64());
        }
    }
}

/// Single-core AES-256-GCM encryption throughput over 64 KiB chunks, MB/s, for about `time`.
pub fn aes256gcm_mb_s(time: Duration) -> f64 {
    use aes_gcm::aead::AeadInPlace;
    use aes_gcm::{Aes256Gcm, KeyInit, Nonce};
    let cipher = Aes256Gcm::new_from_slice(&[7u8; 32]).expect("a 32-byte key");
    let mut chunk = noise(64 << 10);
    let started = Instant::now();
    let (mut bytes, mut counter) = (0u64, 0u64);
    loop {
        for _ in 0..64 {
            let mut nonce = [0u8; 12];
            nonce[..8].copy_from_slice(&counter.to_le_bytes());
            counter += 1;
            let tag = cipher
                .encrypt_in_place_detached(Nonce::from_slice(&nonce), b"bench", &mut chunk)
                .expect("encrypting in memory cannot fail");
            std::hint::black_box(tag);
            bytes += chunk.len() as u64;
        }
        if started.elapsed() >= time {
            return mb_s(bytes, started.elapsed().as_secs_f64());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_has_exactly_the_requested_keys_with_realistic_sizes() {
        for n in [2, 11, 2_000, 1_000_000] {
            let d = Dataset::new(n);
            assert_eq!(d.keys(), n);
            assert!(d.customers >= 1 && d.accounts >= 1);
        }
        let d = Dataset::new(1_000_000);
        for (t, i) in [(Table::Accounts, 0), (Table::Accounts, 909_090), (Table::Customers, 90_908)] {
            let k = t.key(i);
            assert!((8..=40).contains(&(k.len() + 5)), "key {k:?}");
            let v = d.value(t, i);
            assert!((70..=200).contains(&v.len()), "value of {} bytes", v.len());
            let c = d.changed_value(t, i, 12345);
            assert_ne!(c, v);
            assert_eq!(t.parse_key(&k), Some(i));
        }
        assert_eq!(d.locate(0), (Table::Customers, 0));
        assert_eq!(d.locate(d.customers), (Table::Accounts, 0));
    }

    /// Whether the smoke test runs restic: when it is on PATH, and always under CI or with
    /// `STRATA_REQUIRE_RESTIC` set (where a missing restic then fails the test, not skips it).
    fn smoke_with_restic() -> bool {
        let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
        set("CI") || set("STRATA_REQUIRE_RESTIC") || restic::locate(std::env::var_os("PATH").as_deref()).is_ok()
    }

    /// Runs the bench on 2,000 keys and checks what every run must show; returns the report, its
    /// progress lines and its JSON object.
    async fn smoke(with_restic: bool) -> (BenchReport, Vec<String>, serde_json::Map<String, serde_json::Value>) {
        let options = BenchOptions::default()
            .with_keys(2_000)
            .with_crypto_time(Duration::from_millis(20))
            .with_restic(with_restic);
        let mut lines = Vec::new();
        let report = run(&options, |l| lines.push(l.to_string())).await.unwrap();
        assert!(lines.iter().any(|l| l.contains("BACKUP DATABASE bank TO")), "{lines:?}");
        // The encrypted backup's statement is shown with its passphrase redacted.
        let enc: Vec<&String> = lines.iter().filter(|l| l.contains("encryption_passphrase")).collect();
        assert_eq!(enc.len(), 1, "{lines:?}");
        assert!(enc[0].ends_with(&format!("encryption_passphrase = '{REDACTED}'")), "{}", enc[0]);

        let rendered = report.render();
        let last = rendered.lines().last().unwrap();
        assert_eq!(last, report.json_line());
        let json: serde_json::Value = serde_json::from_str(last).unwrap();
        let obj = json.as_object().unwrap().clone();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = JSON_KEYS.to_vec();
        expected.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, expected, "the JSON line's keys");
        // In order, too: issue 8's names first.
        assert!(last.starts_with("{\"n_keys\":"), "{last}");
        let positions: Vec<usize> = JSON_KEYS.iter().map(|k| last.find(&format!("\"{k}\":")).unwrap()).collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "the JSON line's keys are out of order: {last}");

        for k in JSON_KEYS {
            let v = &obj[*k];
            if *k == "engine" {
                assert_eq!(v, "redb", "the default engine");
            } else if k.contains("restic") && !with_restic {
                assert!(v.is_null(), "{k} must be null when restic is skipped: {v}");
            } else {
                assert!(v.as_f64().is_some_and(|x| x.is_finite() && x >= 0.0), "{k} = {v}");
            }
        }
        let u = |k: &str| obj[k].as_u64().unwrap();
        let f = |k: &str| obj[k].as_f64().unwrap();
        assert_eq!(u("n_keys"), 2_000);
        assert_eq!(u("restore_rows"), 2_000);
        assert_eq!(u("restore_table_rows"), Dataset::new(2_000).customers);
        assert_eq!(u("changed_keys"), 20);
        assert!(u("logical_bytes") > 2_000 * 100, "{}", u("logical_bytes"));
        assert!(u("full_stored_bytes") > 0);
        assert!(u("incr_stored_bytes") > 0);
        assert!(u("incr_stored_bytes") < u("full_stored_bytes"));
        assert!(u("full_enc_stored_bytes") > 0);
        assert!(u("store_bytes") > u("logical_bytes") / 4, "{}", u("store_bytes"));
        assert!(u("restore_store_bytes") > u("logical_bytes") / 4, "{}", u("restore_store_bytes"));
        for k in [
            "full_mb_s",
            "full_enc_mb_s",
            "full_enc_s",
            "enc_over_limit",
            "restore_mb_s",
            "restore_table_mb_s",
            "incr_over_full",
            "sha256_mb_s",
            "limit_mb_s",
            "write_mb_s",
        ] {
            assert!(f(k) > 0.0, "{k} = {}", f(k));
        }
        assert!(f("limit_mb_s") <= f("sha256_mb_s").min(f("aes256gcm_mb_s")));
        if cfg!(target_os = "linux") {
            assert!(f("peak_rss_mib") > 1.0);
        }
        // The table names every phase.
        for name in [
            "generate",
            "full backup",
            "full backup, encrypted",
            "change 20 keys",
            "incremental backup",
            "restore database",
            "restore table",
        ] {
            assert!(rendered.contains(name), "{rendered}");
        }
        let incremental = report.phases.iter().find(|p| p.name == "incremental backup").unwrap();
        assert_eq!(incremental.rows, 20, "the incremental exports exactly the changed rows");
        let targets = report.targets();
        assert_eq!(targets.len(), 7);
        for t in &targets {
            assert!(rendered.contains(t.name) && rendered.contains(&t.measured), "{rendered}");
        }
        (report, lines, obj)
    }

    /// The bench's whole path on a tiny dataset, so it cannot silently rot; with restic when it is
    /// there (or required), else with restic skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_smoke_on_a_tiny_dataset() {
        let with_restic = smoke_with_restic();
        let (report, lines, obj) = smoke(with_restic).await;
        let rendered = report.render();
        let f = |k: &str| obj[k].as_f64().unwrap();
        let restic_rows = ["restic: full backup", "restic: backup after the change", "restic: restore"];
        if !with_restic {
            assert!(report.restic.is_none());
            assert!(rendered.contains("restic: skipped (--no-restic)"), "{rendered}");
            assert!(!restic_rows.iter().any(|r| rendered.contains(r)), "{rendered}");
            assert!(report.targets().iter().filter(|t| t.met.is_none()).count() == 3);
            return;
        }
        for k in JSON_KEYS.iter().filter(|k| k.contains("restic")) {
            assert!(f(k) > 0.0, "{k} = {}", f(k));
        }
        let r = report.restic.as_ref().unwrap();
        assert!(r.version.starts_with("restic "), "{}", r.version);
        assert_eq!(r.restore_verified_files, 2, "restic's restore was compared with both exported tables");
        assert!(lines.iter().any(|l| l.contains("restic's restore matches the export (2 files)")), "{lines:?}");
        assert!((1..=2).contains(&r.incr_files_changed), "{r:?}");
        assert!(r.incr_bytes_processed > 0 && r.export_file_bytes > 0 && r.cache_bytes > 0, "{r:?}");
        for name in restic_rows {
            let p = report.phases.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{rendered}"));
            assert!(p.seconds > 0.0 && p.stored_bytes > 0 && p.rss_hwm_mib.is_some_and(|m| m > 1.0), "{p:?}");
            assert!(rendered.contains(name), "{rendered}");
        }
        assert!(report.targets().iter().all(|t| t.met.is_some()), "{rendered}");
    }

    /// `--no-restic` (on any machine): restic's figures are null and the table says it was skipped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_without_restic_reports_it_skipped() {
        let (report, lines, _) = smoke(false).await;
        assert!(lines.iter().any(|l| l.ends_with("restic: skipped (--no-restic)")), "{lines:?}");
        assert!(report.render().contains("restic: skipped (--no-restic)"));
        assert!(report.restic.is_none() && !report.phases.iter().any(|p| p.name.starts_with("restic")));
    }

    /// `--engine lsm`: the same steps on the LSM store, which the table's header and the JSON line
    /// name.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_runs_on_the_lsm_store() {
        let options = BenchOptions::default()
            .with_keys(2_000)
            .with_crypto_time(Duration::from_millis(20))
            .with_restic(false)
            .with_engine("lsm".parse().unwrap());
        let report = run(&options, |_| {}).await.unwrap();
        let rendered = report.render();
        assert!(rendered.lines().next().unwrap().ends_with(", engine lsm"), "{rendered}");
        let json: serde_json::Value = serde_json::from_str(&report.json_line()).unwrap();
        assert_eq!(json["engine"], "lsm");
        assert_eq!(json["restore_rows"], 2_000);
        assert_eq!(json["changed_keys"], 20);
        assert!("rocksdb".parse::<Engine>().is_err());
    }
}
