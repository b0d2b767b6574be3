//! `strata --store etcd://… worker`: a worker process of the etcd work queue. It claims units of
//! every detached backup (`BACKUP … WITH detached` on the same etcd store) under an etcd lease,
//! runs them, and whichever worker sees a job's every unit done writes its manifest. Any number
//! of workers, on any machines, can run at once; a dead or frozen one's units are claimed again
//! once its lease expires.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use strata_core::{BackupOptions, KvStore, StorageOpener};
use strata_etcd::{run_worker, BackupJobRunner, Connection, EtcdQueue, WorkerOptions, DEFAULT_QUEUE_ROOT};
use strata_native::{NativeOpener, TokioCpuPool};

/// A fault-injection hook for the process tests: with `STRATA_WORKER_STOP_AFTER_CLAIM=N` the
/// worker sends itself `SIGSTOP` right after its N-th claim, so a test freezes it while it holds
/// a claim (a worker whose units take milliseconds cannot be caught holding one from outside).
const STOP_AFTER_CLAIM: &str = "STRATA_WORKER_STOP_AFTER_CLAIM";

/// What `strata worker` takes.
#[derive(clap::Args)]
pub(crate) struct WorkerArgs {
    /// The worker's name in its claims (default: `worker-<pid>@<host>`).
    #[arg(long)]
    name: Option<String>,
    /// Seconds the worker's etcd lease lives without renewal: a worker dead or frozen this long
    /// loses its claims.
    #[arg(long, default_value_t = 10)]
    ttl: u64,
    /// Exit once no job has work left (instead of waiting for new jobs).
    #[arg(long)]
    until_idle: bool,
}

/// The work queue of the etcd cluster at `endpoints`.
pub(crate) fn queue(endpoints: &[String]) -> anyhow::Result<EtcdQueue> {
    Ok(EtcdQueue::new(Connection::new(endpoints)?, DEFAULT_QUEUE_ROOT))
}

/// Runs the worker loop until stopped (or idle, with `--until-idle`).
pub(crate) async fn run(
    store: Arc<dyn KvStore>,
    endpoints: &[String],
    nodelocal: PathBuf,
    args: WorkerArgs,
) -> anyhow::Result<()> {
    let queue = queue(endpoints)?;
    let opener: Arc<dyn StorageOpener> = Arc::new(NativeOpener::new(nodelocal));
    let mut options = BackupOptions::default();
    if let Some(pool) = TokioCpuPool::current() {
        options = options.with_cpu_pool(Arc::new(pool));
    }
    let runner = BackupJobRunner::new(store, opener, options);
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let name = args.name.unwrap_or_else(|| format!("worker-{}@{}", std::process::id(), host.trim()));
    let stop_after = std::env::var(STOP_AFTER_CLAIM).ok().and_then(|v| v.parse::<u64>().ok());
    let claims = std::sync::atomic::AtomicU64::new(0);
    let log = move |line: &str| {
        eprintln!("{line}");
        if line.contains(": claimed ") {
            let n = claims.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            if stop_after == Some(n) {
                // Fault injection for the process tests: freeze while holding this claim.
                crate::stop_self();
            }
        }
    };
    let options =
        WorkerOptions::default().with_name(name).with_ttl(args.ttl).with_until_idle(args.until_idle).with_log(log);
    // The backup's futures are not `Send`: the loop runs on this thread (the lease is renewed
    // from the runtime's other threads).
    let local = tokio::task::LocalSet::new();
    let summary = local.run_until(run_worker(&queue, &runner, &options)).await.context("the worker stopped")?;
    eprintln!(
        "{}: idle: {} units completed, {} fenced, {} jobs finished",
        options.name, summary.completed, summary.fenced, summary.finished
    );
    Ok(())
}
