//! The benchmark behind `cargo run --release -p strata-tests --bin bench -- [--keys N] [--quick]`:
//! one run, in process, on the embedded store.
//!
//! ```text
//!  generate N keys ─▶ source store ──BACKUP DATABASE bank TO──▶ file://…/backups   (full)
//!  change 1% of keys ─▶ source    ──BACKUP DATABASE bank TO──▶ same location     (+ incremental)
//!  file://…/backups ──RESTORE DATABASE bank──▶ fresh store   (verified row by row)
//!  file://…/backups ──RESTORE TABLE bank.customers──▶ fresh store   (verified row by row)
//! ```
//!
//! Logical bytes are key bytes (the 5-byte table prefix included) plus value bytes, as the store
//! holds them; MB is 10^6 bytes. Peak RSS is the process's `VmHWM`, which cannot be reset, so it
//! covers dataset generation too.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use serde::Serialize;
use strata_core::{keys, Executor, MvccFilter, QueryResult, ScanRequest, Timestamp, Value};
use strata_native::{workload, EmbeddedStore, NativeOpener};

/// Keys in the dataset when `--keys` is not given.
pub const DEFAULT_KEYS: u64 = 1_000_000;
/// Keys in the dataset with `--quick`.
pub const QUICK_KEYS: u64 = 20_000;
/// Rows per `KvStore::write` call while generating and changing the dataset.
const WRITE_BATCH: u64 = 10_000;
/// Bytes per scan page when verifying a restored table.
const VERIFY_PAGE_BYTES: u64 = 4 << 20;

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
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            keys: DEFAULT_KEYS,
            changed_fraction: 0.01,
            seed: 0x5747_a7a5_eed0_0001,
            crypto_time: Duration::from_secs(1),
            dir: None,
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
}

/// One measured step.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Phase {
    /// What was done.
    pub name: String,
    /// Rows written, backed up or restored.
    pub rows: u64,
    /// Logical bytes of those rows.
    pub logical_bytes: u64,
    /// Wall-clock seconds.
    pub seconds: f64,
    /// Bytes on disk the step produced: the backup layer's files, or the store's directory.
    pub stored_bytes: u64,
    /// The process's `VmHWM` after the step, in MiB (`None` where /proc is unavailable).
    pub rss_hwm_mib: Option<f64>,
}

impl Phase {
    /// Logical MB per second.
    pub fn mb_s(&self) -> f64 {
        mb_s(self.logical_bytes, self.seconds)
    }
}

/// The figures of the JSON line; field order is the line's key order ([`JSON_KEYS`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figures {
    /// Keys in the dataset.
    pub n_keys: u64,
    /// Logical bytes of the generated dataset.
    pub logical_bytes: u64,
    /// Full backup throughput (logical MB/s).
    pub full_mb_s: f64,
    /// Full encrypted backup throughput: not measured yet (encryption is upcoming work).
    pub full_enc_mb_s: Option<f64>,
    /// Incremental backup time over full backup time (issue 3's target: ≤ 0.03).
    pub incr_over_full: f64,
    /// Whole-database restore throughput (logical MB/s).
    pub restore_mb_s: f64,
    /// restic's full backup throughput: not measured yet.
    pub restic_full_mb_s: Option<f64>,
    /// restic's backup time after the same change: not measured yet.
    pub restic_incr_s: Option<f64>,
    /// restic's restore throughput: not measured yet.
    pub restic_restore_mb_s: Option<f64>,
    /// One core hashing (SHA-256) and encrypting (AES-256-GCM) every byte: `1 / (1/sha + 1/aes)`.
    pub limit_mb_s: Option<f64>,
    /// The process's peak RSS (`VmHWM`) in MiB, dataset generation included.
    pub peak_rss_mib: Option<f64>,
    /// Seconds to generate and write the dataset.
    pub gen_s: f64,
    /// Seconds of the full backup.
    pub full_s: f64,
    /// Bytes of the full backup's files.
    pub full_stored_bytes: u64,
    /// Keys changed before the incremental.
    pub changed_keys: u64,
    /// Seconds of the incremental backup.
    pub incr_s: f64,
    /// Bytes of the incremental layer's files.
    pub incr_stored_bytes: u64,
    /// Seconds of the whole-database restore.
    pub restore_s: f64,
    /// Rows the whole-database restore produced (verified against the dataset).
    pub restore_rows: u64,
    /// Seconds of the one-table restore (`bank.customers`).
    pub restore_table_s: f64,
    /// One-table restore throughput (logical MB/s of that table).
    pub restore_table_mb_s: f64,
    /// Rows the one-table restore produced (verified).
    pub restore_table_rows: u64,
    /// Single-core SHA-256 throughput, MB/s.
    pub sha256_mb_s: Option<f64>,
    /// Single-core AES-256-GCM encryption throughput, MB/s.
    pub aes256gcm_mb_s: Option<f64>,
}

/// What one run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchReport {
    /// The options it ran with.
    pub keys: u64,
    /// The seed it ran with.
    pub seed: u64,
    /// Each measured step, in order.
    pub phases: Vec<Phase>,
    /// The figures of the JSON line.
    pub figures: Figures,
}

impl BenchReport {
    /// The JSON line: one object, keys in [`JSON_KEYS`] order.
    pub fn json_line(&self) -> String {
        serde_json::to_string(&self.figures).expect("figures serialize")
    }

    /// What the `bench` binary prints: an aligned table, a summary, then the JSON line last.
    pub fn render(&self) -> String {
        let f = &self.figures;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "strata bench: {} keys, {:.2} MB logical (MB = 10^6 bytes), seed {:#x}\n",
            f.n_keys,
            f.logical_bytes as f64 / 1e6,
            self.seed
        );
        let header = ["phase", "rows", "logical MB", "seconds", "MB/s", "stored bytes", "stored MB", "VmHWM MiB"];
        let rows: Vec<[String; 8]> = self
            .phases
            .iter()
            .map(|p| {
                [
                    p.name.clone(),
                    p.rows.to_string(),
                    format!("{:.2}", p.logical_bytes as f64 / 1e6),
                    format!("{:.3}", p.seconds),
                    format!("{:.2}", p.mb_s()),
                    p.stored_bytes.to_string(),
                    format!("{:.2}", p.stored_bytes as f64 / 1e6),
                    p.rss_hwm_mib.map_or("n/a".into(), |m| format!("{m:.1}")),
                ]
            })
            .collect();
        let widths: Vec<usize> = (0..header.len())
            .map(|i| rows.iter().map(|r| r[i].len()).chain([header[i].len()]).max().unwrap_or(0))
            .collect();
        let line = |cells: &[String]| -> String {
            let parts: Vec<String> = cells
                .iter()
                .enumerate()
                .map(
                    |(i, c)| if i == 0 { format!("{c:<w$}", w = widths[i]) } else { format!("{c:>w$}", w = widths[i]) },
                )
                .collect();
            format!(" {}", parts.join(" | "))
        };
        let _ = writeln!(out, "{}", line(&header.map(String::from)));
        let _ = writeln!(out, "{}", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("+"));
        for r in &rows {
            let _ = writeln!(out, "{}", line(r));
        }
        let opt = |v: Option<f64>, unit: &str| v.map_or("not measured".to_string(), |v| format!("{v:.1} {unit}"));
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            " incremental / full time   {:.4} ({:.3}s / {:.3}s; issue 3's target ≤ 0.03){}",
            f.incr_over_full,
            f.incr_s,
            f.full_s,
            if f.incr_over_full <= 0.03 { "" } else { "  ← over target" }
        );
        let _ = writeln!(out, " SHA-256, one core         {}", opt(f.sha256_mb_s, "MB/s"));
        let _ = writeln!(out, " AES-256-GCM, one core     {}", opt(f.aes256gcm_mb_s, "MB/s"));
        let _ = writeln!(
            out,
            " hash + encrypt limit      {} (one core doing both: 1/(1/sha + 1/aes))",
            opt(f.limit_mb_s, "MB/s")
        );
        let _ = writeln!(
            out,
            " peak RSS (VmHWM)          {} (whole process, dataset generation included)",
            opt(f.peak_rss_mib, "MiB")
        );
        let _ = writeln!(
            out,
            " stored bytes: backups = the layer's files in the backup directory; generate / change / restores = the store's directory"
        );
        let _ = writeln!(out, " not measured yet: full encrypted backup, restic (JSON null)");
        out.push_str(&self.json_line());
        out.push('\n');
        out
    }
}

/// Runs the benchmark; `progress` receives a line at each step (the binary prints them to stderr).
pub async fn run(options: &BenchOptions, mut progress: impl FnMut(&str)) -> anyhow::Result<BenchReport> {
    ensure!(options.keys >= 2, "the dataset needs at least 2 keys (one per table), not {}", options.keys);
    ensure!(
        options.changed_fraction > 0.0 && options.changed_fraction <= 1.0,
        "the changed fraction must be in (0, 1], not {}",
        options.changed_fraction
    );
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
    let backups = tmp.path().join("backups");
    let uri = format!("file://{}", backups.display());
    say(format!("working in {}", tmp.path().display()));
    let mut phases = Vec::new();

    // 1. The dataset.
    let data = Dataset::new(options.keys);
    let source_dir = tmp.path().join("source");
    let source = open(&source_dir)?;
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
    phases.push(Phase {
        name: "generate (batched writes)".into(),
        rows: data.keys(),
        logical_bytes,
        seconds: started.elapsed().as_secs_f64(),
        stored_bytes: dir_size(&source_dir)?,
        rss_hwm_mib: vm_hwm_mib(),
    });

    // 2. Full backup.
    let backup = format!("BACKUP DATABASE bank TO '{uri}'");
    say(backup.clone());
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

    // 3. Change a fraction of the keys (random, seeded).
    let target = ((data.keys() as f64 * options.changed_fraction).round() as u64).clamp(1, data.keys());
    say(format!("changing {target} keys"));
    let mut rng = SplitMix64(options.seed);
    let mut picked = HashSet::new();
    while (picked.len() as u64) < target {
        picked.insert(rng.next() % data.keys());
    }
    let mut picked: Vec<u64> = picked.into_iter().collect();
    picked.sort_unstable();
    let mut changed: HashMap<(Table, u64), Vec<u8>> = HashMap::with_capacity(picked.len());
    let ids = [source.table_id("bank", "customers", None).await?, source.table_id("bank", "accounts", None).await?];
    let mut changed_bytes = 0;
    let started = Instant::now();
    for chunk in picked.chunks(WRITE_BATCH as usize) {
        // Positions run through customers, then accounts: the batch is sorted by key.
        let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = chunk
            .iter()
            .map(|&pos| {
                let (table, i) = data.locate(pos);
                let v = data.changed_value(table, i, rng.next());
                let k = keys::table_key(ids[table as usize], &table.key(i));
                changed_bytes += (k.len() + v.len()) as u64;
                changed.insert((table, i), v.clone());
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

    // 4. Incremental backup onto the same location.
    say(format!("{backup} (incremental)"));
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
    drop(source);

    // 5. Restore the whole database into a fresh store.
    let restore = format!("RESTORE DATABASE bank FROM '{uri}'");
    say(restore.clone());
    let target_dir = tmp.path().join("restore-database");
    let target = open(&target_dir)?;
    let started = Instant::now();
    target.execute(&restore).await.context("the database restore failed")?;
    let restore_s = started.elapsed().as_secs_f64();
    let rss = vm_hwm_mib();
    say("verifying the restored database row by row".into());
    let (mut rows, mut bytes) = (0, 0);
    for table in Table::ALL {
        let (r, b) = verify_table(&target, table, &data, &changed).await?;
        rows += r;
        bytes += b;
    }
    phases.push(Phase {
        name: "restore database".into(),
        rows,
        logical_bytes: bytes,
        seconds: restore_s,
        stored_bytes: dir_size(&target_dir)?,
        rss_hwm_mib: rss,
    });
    let restore_rows = rows;
    drop(target);

    // 6. Restore one table into a fresh store.
    let restore = format!("RESTORE TABLE bank.customers FROM '{uri}'");
    say(restore.clone());
    let target_dir = tmp.path().join("restore-table");
    let target = open(&target_dir)?;
    target.execute("CREATE DATABASE bank").await?;
    let started = Instant::now();
    target.execute(&restore).await.context("the table restore failed")?;
    let restore_table_s = started.elapsed().as_secs_f64();
    let rss = vm_hwm_mib();
    say("verifying the restored table row by row".into());
    let (rows, bytes) = verify_table(&target, Table::Customers, &data, &changed).await?;
    ensure!(
        target.table_id("bank", "accounts", None).await.is_err(),
        "RESTORE TABLE bank.customers also restored bank.accounts"
    );
    phases.push(Phase {
        name: "restore table customers".into(),
        rows,
        logical_bytes: bytes,
        seconds: restore_table_s,
        stored_bytes: dir_size(&target_dir)?,
        rss_hwm_mib: rss,
    });
    drop(target);
    say("done".into());

    let restore_mb_s = phases[4].mb_s();
    let restore_table_mb_s = phases[5].mb_s();
    let figures = Figures {
        n_keys: data.keys(),
        logical_bytes,
        full_mb_s: round(mb_s(logical_bytes, full_s), 2),
        full_enc_mb_s: None,
        incr_over_full: round(incr_s / full_s, 5),
        restore_mb_s: round(restore_mb_s, 2),
        restic_full_mb_s: None,
        restic_incr_s: None,
        restic_restore_mb_s: None,
        limit_mb_s: sha256.zip(aes).map(|(s, a)| round(1.0 / (1.0 / s + 1.0 / a), 1)),
        peak_rss_mib: vm_hwm_mib().map(|m| round(m, 1)),
        gen_s: round(phases[0].seconds, 3),
        full_s: round(full_s, 3),
        full_stored_bytes: full_stored,
        changed_keys: changed.len() as u64,
        incr_s: round(incr_s, 4),
        incr_stored_bytes: incr_stored,
        restore_s: round(restore_s, 3),
        restore_rows,
        restore_table_s: round(restore_table_s, 3),
        restore_table_mb_s: round(restore_table_mb_s, 2),
        restore_table_rows: rows,
        sha256_mb_s: sha256.map(|v| round(v, 1)),
        aes256gcm_mb_s: aes.map(|v| round(v, 1)),
    };
    Ok(BenchReport { keys: options.keys, seed: options.seed, phases, figures })
}

/// Opens the embedded store in `dir` with an executor (as the CLI does).
fn open(dir: &Path) -> anyhow::Result<Executor> {
    let store = EmbeddedStore::open(dir).with_context(|| format!("cannot open the store at {}", dir.display()))?;
    Ok(Executor::new(Arc::new(store), Arc::new(NativeOpener::new(dir.join("extern")))))
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

/// Scans `bank.<table>` in `exec`'s store page by page (never holding it all), checks every row
/// against the dataset (with its changes), and returns (rows, logical bytes).
async fn verify_table(
    exec: &Executor,
    table: Table,
    data: &Dataset,
    changed: &HashMap<(Table, u64), Vec<u8>>,
) -> anyhow::Result<(u64, u64)> {
    let name = table.name();
    let id = exec.table_id("bank", name, None).await.with_context(|| format!("bank.{name} was not restored"))?;
    let now = exec.store().now().await?;
    let mut request = ScanRequest::new(keys::table_span(id), Timestamp::ZERO, now, MvccFilter::Latest);
    request.target_bytes = VERIFY_PAGE_BYTES;
    let (mut rows, mut bytes) = (0u64, 0u64);
    loop {
        let page = exec.store().scan(request.clone()).await?;
        for e in page.entries {
            let user_key = keys::decode_table_key(&e.key).map(|(_, k)| k).unwrap_or_default();
            let shown = String::from_utf8_lossy(user_key);
            let Some(value) = e.value else { bail!("restored bank.{name} holds a deletion of key {shown}") };
            match table.parse_key(user_key) {
                Some(i) if i == rows => {}
                _ => bail!(
                    "restored bank.{name}: row {rows} has key {shown}, expected {}",
                    String::from_utf8_lossy(&table.key(rows))
                ),
            }
            let expected = match changed.get(&(table, rows)) {
                Some(v) => v.clone(),
                None => data.value(table, rows),
            };
            ensure!(value == expected, "restored bank.{name} key {shown} has a value that differs from the source");
            rows += 1;
            bytes += (e.key.len() + value.len()) as u64;
        }
        match page.resume_key {
            Some(k) => request.span.start = k,
            None => break,
        }
    }
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

    /// The bench's whole path on a tiny dataset, so it cannot silently rot.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bench_smoke_on_a_tiny_dataset() {
        let options = BenchOptions::default().with_keys(2_000).with_crypto_time(Duration::from_millis(20));
        let mut lines = Vec::new();
        let report = run(&options, |l| lines.push(l.to_string())).await.unwrap();
        assert!(lines.iter().any(|l| l.contains("BACKUP DATABASE bank TO")), "{lines:?}");

        let rendered = report.render();
        let last = rendered.lines().last().unwrap();
        assert_eq!(last, report.json_line());
        let json: serde_json::Value = serde_json::from_str(last).unwrap();
        let obj = json.as_object().unwrap();
        let keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = JSON_KEYS.to_vec();
        expected.sort_unstable();
        let mut got = keys.clone();
        got.sort_unstable();
        assert_eq!(got, expected, "the JSON line's keys");
        for k in JSON_KEYS {
            let v = &obj[*k];
            if k.starts_with("restic_") || *k == "full_enc_mb_s" {
                assert!(v.is_null(), "{k} is not measured yet: {v}");
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
        for k in ["full_mb_s", "restore_mb_s", "restore_table_mb_s", "incr_over_full", "sha256_mb_s", "limit_mb_s"] {
            assert!(f(k) > 0.0, "{k} = {}", f(k));
        }
        assert!(f("limit_mb_s") <= f("sha256_mb_s").min(f("aes256gcm_mb_s")));
        if cfg!(target_os = "linux") {
            assert!(f("peak_rss_mib") > 1.0);
        }
        // The table names every phase.
        for name in
            ["generate", "full backup", "change 20 keys", "incremental backup", "restore database", "restore table"]
        {
            assert!(rendered.contains(name), "{rendered}");
        }
        assert_eq!(report.phases[3].rows, 20, "the incremental exports exactly the changed rows");
    }
}
