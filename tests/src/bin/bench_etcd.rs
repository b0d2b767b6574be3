//! `cargo build --release -p strata-native --bin strata && cargo run --release -p strata-tests
//! --bin bench_etcd -- [--rows N] [--members 3]`: backup and restore throughput of an etcd-held
//! table, the backup shared by 1, 2 and 3 `strata worker` processes, side by side with
//! `etcdctl snapshot save` + `etcdctl snapshot restore` of the same cluster.
//!
//! ```text
//!  strata workload init bank --rows N ─▶ etcd cluster (M members, 127.0.0.1)
//!  for W in 1 2 3:  BACKUP DATABASE bank INTO file://…/wW WITH detached ─▶ W × `strata worker --until-idle`
//!                   timed from the BACKUP statement to the job's outcome in etcd
//!  RESTORE DATABASE bank FROM LATEST IN file://…/w1 ─▶ a fresh 1-member etcd (one process)
//!  etcdctl snapshot save (one member) ─▶ snapshot.db ─▶ etcdctl snapshot restore ─▶ data dir
//! ```
//!
//! MB/s count the logical bytes of the backup (keys with their table prefix, plus values, as the
//! manifest's files record them) for every row, etcdctl's included; MB is 10^6 bytes. A backup is
//! timed from its `BACKUP … WITH detached` to the job's outcome, so each worker's start (opening
//! the store: reading its keys into the history index) is in it. Prints an aligned table on stdout.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, ensure, Context};
use clap::Parser;
use strata_core::WorkQueue;
use strata_etcd::testing::EtcdCluster;
use strata_etcd::{Connection, EtcdQueue, DEFAULT_QUEUE_ROOT};

#[derive(Parser)]
#[command(name = "bench_etcd")]
struct Args {
    /// Accounts in the bank workload (customers: one per ten accounts).
    #[arg(long, default_value_t = 50_000)]
    rows: u64,
    /// Members of the source etcd cluster.
    #[arg(long, default_value_t = 3)]
    members: usize,
    /// The most workers to run (the backup runs with 1, 2, … of them).
    #[arg(long, default_value_t = 3)]
    workers: usize,
}

/// The `strata` binary next to this one (build it with `--release -p strata-native`).
fn strata_bin() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let bin = exe.with_file_name("strata");
    ensure!(bin.exists(), "{} is missing: cargo build --release -p strata-native --bin strata", bin.display());
    Ok(bin)
}

fn strata(bin: &Path, store: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(bin).arg("--store").arg(store).args(args).env_remove("STRATA_STORE").output()?;
    if !out.status.success() {
        bail!("strata {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn etcdctl(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<()> {
    let mut c = Command::new("etcdctl");
    c.args(args).env("ETCDCTL_API", "3").stdout(Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().context("run etcdctl")?;
    ensure!(out.status.success(), "etcdctl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    Ok(())
}

fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) => total += m.len(),
                Err(_) => {}
            }
        }
    }
    total
}

/// The logical bytes (keys and values) a finished backup job's outcome records:
/// `succeeded: N files, R rows, B bytes`.
fn outcome_bytes(outcome: &[u8]) -> anyhow::Result<u64> {
    let text = String::from_utf8_lossy(outcome);
    text.split(", ")
        .find_map(|part| part.strip_suffix(" bytes")?.parse().ok())
        .with_context(|| format!("no bytes in the outcome {text:?}"))
}

struct Row {
    what: String,
    seconds: f64,
    bytes: u64,
}

async fn run(args: &Args) -> anyhow::Result<Vec<Row>> {
    let bin = strata_bin()?;
    let work = tempfile::tempdir()?;
    let cluster = EtcdCluster::start(args.members).await?;
    let store = cluster.store_uri();
    let started = Instant::now();
    strata(&bin, &store, &["workload", "init", "bank", "--rows", &args.rows.to_string()])?;
    eprintln!("loaded {} accounts into etcd in {:.1}s", args.rows, started.elapsed().as_secs_f64());
    let queue = EtcdQueue::new(Connection::new(&cluster.endpoints())?, DEFAULT_QUEUE_ROOT);
    let mut rows = Vec::new();
    let mut logical = 0;
    for workers in 1..=args.workers {
        let uri = format!("file://{}/w{workers}", work.path().display());
        let started = Instant::now();
        let out = strata(
            &bin,
            &store,
            &["--format", "json", "sql", &format!("BACKUP DATABASE bank INTO '{uri}' WITH detached")],
        )?;
        let id: serde_json::Value = serde_json::from_str(&out)?;
        let id = id[0]["job_id"].as_u64().context("job_id")?;
        let job = strata_core::queue_job_id(id);
        let mut children = Vec::new();
        for w in 0..workers {
            let child = Command::new(&bin)
                .args(["--store", &store, "worker", "--until-idle", "--name", &format!("bench-{w}")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            children.push(child);
        }
        for mut c in children {
            ensure!(c.wait()?.success(), "a worker failed");
        }
        let outcome = queue.job(&job).await?.and_then(|j| j.outcome).context("the job has no outcome")?;
        ensure!(outcome.starts_with(b"succeeded"), "job {id}: {}", String::from_utf8_lossy(&outcome));
        let seconds = started.elapsed().as_secs_f64();
        logical = outcome_bytes(&outcome)?;
        rows.push(Row { what: format!("strata backup, {workers} worker(s)"), seconds, bytes: logical });
        eprintln!("backup with {workers} workers: {seconds:.2}s");
    }
    // What every worker pays before its first unit: opening the store (its history index).
    let started = Instant::now();
    strata(&bin, &store, &["now"])?;
    rows.push(Row {
        what: "open the etcd store (one process: `strata now`)".into(),
        seconds: started.elapsed().as_secs_f64(),
        bytes: logical,
    });
    // The same backup in one process, without the queue.
    let uri = format!("file://{}/direct", work.path().display());
    let started = Instant::now();
    strata(&bin, &store, &["sql", &format!("BACKUP DATABASE bank INTO '{uri}'")])?;
    rows.push(Row {
        what: "strata backup, one process (no queue)".into(),
        seconds: started.elapsed().as_secs_f64(),
        bytes: logical,
    });
    let fresh = EtcdCluster::start(1).await?;
    let uri = format!("file://{}/w1", work.path().display());
    let started = Instant::now();
    strata(&bin, &fresh.store_uri(), &["sql", &format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'")])?;
    rows.push(Row {
        what: "strata restore (1 process)".into(),
        seconds: started.elapsed().as_secs_f64(),
        bytes: logical,
    });
    drop(fresh);

    let snapshot = work.path().join("snapshot.db");
    let started = Instant::now();
    let endpoint = cluster.endpoint(cluster.leader().await?);
    etcdctl(&["--endpoints", &endpoint, "snapshot", "save", &snapshot.to_string_lossy()], &[])?;
    let save = started.elapsed().as_secs_f64();
    let size = std::fs::metadata(&snapshot)?.len();
    rows.push(Row { what: format!("etcdctl snapshot save ({size} B file)"), seconds: save, bytes: logical });
    let data_dir = work.path().join("restored.etcd");
    let started = Instant::now();
    etcdctl(&["snapshot", "restore", &snapshot.to_string_lossy(), "--data-dir", &data_dir.to_string_lossy()], &[])?;
    let seconds = started.elapsed().as_secs_f64();
    rows.push(Row {
        what: format!("etcdctl snapshot restore ({} B dir)", dir_size(&data_dir)),
        seconds,
        bytes: logical,
    });
    Ok(rows)
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    match runtime.block_on(run(&args)) {
        Ok(rows) => {
            println!("{:<44} {:>10} {:>14} {:>10}", "step", "seconds", "logical bytes", "MB/s");
            for r in rows {
                let mbs = r.bytes as f64 / 1e6 / r.seconds.max(1e-9);
                println!("{:<44} {:>10.2} {:>14} {:>10.1}", r.what, r.seconds, r.bytes, mbs);
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
