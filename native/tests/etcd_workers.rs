//! One backup shared by three `strata worker` processes through a 3-member etcd cluster, while a
//! worker is killed, another is frozen past its lease, and the etcd leader is killed: the backup
//! completes with exactly one done record and one file set per unit, the fenced worker's files
//! are gone, `verify` passes, and a restore into a fresh etcd equals the source; then the same
//! for an incremental layer.
//!
//! Every wait is on something observable (a claim in etcd, a done record, the job's outcome, a
//! worker's log line), each with a bound; no step sleeps for timing.

mod cli_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use cli_support::Run;
use strata_core::{UnitState, WorkQueue};
use strata_etcd::testing::{skip_without_etcd, EtcdCluster};
use strata_etcd::{ClaimEvent, Connection, EtcdQueue, DEFAULT_QUEUE_ROOT};

/// Bytes per work unit: small, so that the backup has units enough for every fault.
const UNIT_BYTES: &str = "24000";

/// Runs `strata --store STORE ARGS…` (units of [`UNIT_BYTES`]).
fn strata(store: &Path, args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_strata"))
        .arg("--store")
        .arg(store)
        .args(args)
        .env_remove("STRATA_STORE")
        .env_remove("STRATA_PASSPHRASE")
        .env("STRATA_ETCD_UNIT_BYTES", UNIT_BYTES)
        .output()
        .expect("run strata");
    Run { args: args.iter().map(|a| a.to_string()).collect(), out }
}

/// Lease TTL of the workers: short, so that the frozen worker loses its claim quickly.
const TTL: &str = "2";
/// The bound of every wait.
const BOUND: Duration = Duration::from_secs(90);

/// A `strata worker` process, its stderr lines forwarded to a channel (and echoed).
struct Worker {
    name: String,
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Worker {
    /// Starts worker `name`; with `stop_after`, it freezes itself (`SIGSTOP`) right after that
    /// claim (the worker's fault-injection hook), holding it.
    fn spawn(store: &str, name: &str, stop_after: Option<u32>) -> Worker {
        let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
        if let Some(n) = stop_after {
            command.env("STRATA_WORKER_STOP_AFTER_CLAIM", n.to_string());
        }
        let mut child = command
            .args(["--store", store, "worker", "--name", name, "--ttl", TTL])
            .env_remove("STRATA_STORE")
            .env_remove("STRATA_PASSPHRASE")
            .env("STRATA_ETCD_UNIT_BYTES", UNIT_BYTES)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a strata worker");
        let stderr = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                eprintln!("[worker] {line}");
                let _ = tx.send(line);
            }
        });
        Worker { name: name.to_string(), child, lines }
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal} {}", self.name);
    }

    /// Waits (bounded) for a log line of this worker containing `needle`.
    fn wait_line(&self, needle: &str) -> String {
        let until = Instant::now() + BOUND;
        loop {
            let left = until.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return line,
                Ok(_) => {}
                Err(e) => panic!("worker {} never logged {needle:?} ({e})", self.name),
            }
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.signal("CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `f` until it answers `Some`, waiting for a change of `job` in etcd between tries;
/// fails after [`BOUND`].
async fn until<T, F, Fut>(q: &EtcdQueue, job: &str, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let until = Instant::now() + BOUND;
    loop {
        let revision = q.revision().await.expect("etcd revision");
        if let Some(v) = f().await {
            return v;
        }
        let left = until.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "gave up waiting for {what}");
        q.wait_change(Some(job), revision, left.min(Duration::from_secs(5))).await.expect("watch the queue");
    }
}

async fn bounded<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(BOUND, f).await.unwrap_or_else(|_| panic!("gave up waiting for {what}"))
}

/// The job id `BACKUP … WITH detached` printed (JSON output).
fn job_id(out: &str) -> u64 {
    let rows: serde_json::Value = serde_json::from_str(out).expect("JSON rows");
    rows[0]["job_id"].as_u64().unwrap_or_else(|| panic!("no job_id in {out}"))
}

fn show_job_status(store: &str, id: u64) -> String {
    let out = strata(Path::new(store), &["--format", "json", "sql", &format!("SHOW JOB {id}")]).ok().stdout();
    let rows: serde_json::Value = serde_json::from_str(&out).expect("JSON rows");
    rows[0]["status"].as_str().unwrap_or_default().to_string()
}

/// The data files below `dir` (relative paths), recursively.
fn data_files(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "sst") {
                out.insert(p.strip_prefix(dir).expect("below dir").to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// One backup run by the workers, with a worker killed after its second claim, another frozen
/// past its lease while it holds a claim, and the etcd leader killed; returns the queue job.
async fn distributed_backup(
    cluster: &EtcdCluster,
    q: &EtcdQueue,
    workers: &mut [Worker],
    statement: &str,
    faults: bool,
) -> (u64, String, Option<u64>) {
    let store = cluster.store_uri();
    let mut fenced = None;
    let revision = q.revision().await.unwrap();
    let out = strata(Path::new(&store), &["--format", "json", "sql", statement]).ok().stdout();
    let id = job_id(&out);
    let job = strata_core::queue_job_id(id);
    if faults {
        // w1 stops itself right after its second claim (seen here in etcd), holding it: SIGKILL.
        let mut claims = 0;
        let second = bounded(
            "w1's second claim",
            q.watch_claims(&job, revision, |c: &ClaimEvent| {
                claims += u32::from(c.worker == "w1");
                claims == 2
            }),
        )
        .await
        .unwrap();
        workers[0].signal("KILL");
        eprintln!("killed w1 after its claim of unit {} (token {})", second.unit, second.token);
        // w2 stops itself right after its first claim, holding it: frozen past its lease.
        let frozen =
            bounded("a claim of w2", q.watch_claims(&job, revision, |c: &ClaimEvent| c.worker == "w2")).await.unwrap();
        eprintln!("froze w2 holding unit {} (token {})", frozen.unit, frozen.token);
        // The leader dies once, while w2 is frozen.
        let leader = cluster.leader().await.unwrap();
        cluster.kill(leader);
        eprintln!("killed etcd member {leader}, the leader");
        // w2's lease expires on the server: another worker completes its unit with a newer token.
        until(q, &job, "w2's unit completed by another worker", || async {
            match &q.units(&job).await.ok()?[frozen.unit as usize] {
                UnitState::Done { token, .. } if *token != frozen.token => Some(()),
                _ => None,
            }
        })
        .await;
        workers[1].signal("CONT");
        // w2 wakes up, finishes its copy of the unit, is fenced and removes its files.
        workers[1].wait_line(&format!("fenced job {job} unit {} token {}", frozen.unit, frozen.token));
        fenced = Some(frozen.token);
        cluster.restart(leader).await.unwrap();
    }
    let outcome =
        until(q, &job, "the job's outcome", || async { q.job(&job).await.ok()?.and_then(|j| j.outcome) }).await;
    assert!(outcome.starts_with(b"succeeded"), "job {id}: {}", String::from_utf8_lossy(&outcome));
    assert_eq!(show_job_status(&store, id), "succeeded");
    (id, job, fenced)
}

/// Exactly one done record and one file set per unit: every data file in `dir` carries the token
/// of its unit's done record, and the manifest names exactly those files.
async fn check_files(q: &EtcdQueue, job: &str, dir: &Path) {
    let states = q.units(job).await.unwrap();
    let mut tokens = BTreeMap::new();
    for (unit, s) in states.iter().enumerate() {
        match s {
            UnitState::Done { token, .. } => tokens.insert(unit as u32, *token),
            other => panic!("unit {unit} of {job} is not done: {other:?}"),
        };
    }
    let on_disk = data_files(dir);
    for f in &on_disk {
        let (unit, token) = unit_and_token_of(f).unwrap_or_else(|| panic!("{f} names no unit and token"));
        assert_eq!(tokens.get(&unit), Some(&token), "{f} is not of unit {unit}'s done claim (stale or fenced files)");
    }
    let units_with_files: BTreeSet<u32> = on_disk.iter().filter_map(|f| unit_and_token_of(f)).map(|u| u.0).collect();
    assert!(units_with_files.len() <= tokens.len());
}

/// The unit and claim token a data file's name carries: `data/<plan>-<unit>-<run>-<token>-<seq>.sst`.
fn unit_and_token_of(path: &str) -> Option<(u32, u64)> {
    let name = path.rsplit('/').next()?.strip_suffix(".sst")?;
    let parts: Vec<&str> = name.split('-').collect();
    let [_plan, unit, _run, token, _seq] = parts[..] else { return None };
    Some((unit.parse().ok()?, token.parse().ok()?))
}

fn scan(store: &str, table: &str) -> String {
    strata(Path::new(store), &["scan", table]).ok().stdout()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_back_up_while_workers_and_the_leader_die() {
    if skip_without_etcd("three_workers_back_up_while_workers_and_the_leader_die") {
        return;
    }
    let cluster = EtcdCluster::start(3).await.unwrap();
    let store = cluster.store_uri();
    let q = EtcdQueue::new(Connection::new(&cluster.endpoints()).unwrap(), DEFAULT_QUEUE_ROOT);
    strata(Path::new(&store), &["workload", "init", "bank", "--rows", "4000"]).ok();
    let backups = tempfile::tempdir().unwrap();
    let uri = format!("file://{}", backups.path().display());
    let mut workers = vec![
        Worker::spawn(&store, "w1", Some(2)),
        Worker::spawn(&store, "w2", Some(1)),
        Worker::spawn(&store, "w3", None),
    ];

    // The full backup.
    let accounts = scan(&store, "bank.accounts");
    let customers = scan(&store, "bank.customers");
    let full = format!("BACKUP DATABASE bank INTO '{uri}' WITH detached");
    let (_, job, fenced) = distributed_backup(&cluster, &q, &mut workers, &full, true).await;
    let latest = std::fs::read_to_string(backups.path().join("LATEST")).unwrap();
    let full_dir = backups.path().join(latest.trim().trim_start_matches('/'));
    check_files(&q, &job, &full_dir).await;
    let fenced = fenced.expect("w2 was fenced");
    let left: Vec<String> =
        data_files(&full_dir).into_iter().filter(|f| unit_and_token_of(f).is_some_and(|u| u.1 == fenced)).collect();
    assert!(left.is_empty(), "the fenced worker's files are still there: {left:?}");
    strata(Path::new(&store), &["verify", &uri]).ok();
    let fresh = EtcdCluster::start(1).await.unwrap();
    let restore = format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'");
    strata(Path::new(&fresh.store_uri()), &["sql", &restore]).ok();
    assert_eq!(scan(&fresh.store_uri(), "bank.accounts"), accounts, "restored accounts");
    assert_eq!(scan(&fresh.store_uri(), "bank.customers"), customers, "restored customers");

    // An incremental layer: changes, then the same run (w1 is gone; a new worker joins).
    workers[0] = Worker::spawn(&store, "w4", None);
    for (k, v) in [("new-1", "v1"), ("new-2", "v2")] {
        strata(Path::new(&store), &["put", "bank.accounts", k, v]).ok();
    }
    let first = accounts.lines().next().unwrap().split('\t').next().unwrap().to_string();
    strata(Path::new(&store), &["delete", "bank.accounts", &first]).ok();
    let accounts = scan(&store, "bank.accounts");
    let inc = format!("BACKUP DATABASE bank INTO LATEST IN '{uri}' WITH detached");
    let (_, job, _) = distributed_backup(&cluster, &q, &mut workers, &inc, false).await;
    check_files(&q, &job, &full_dir.join("incrementals")).await;
    strata(Path::new(&store), &["verify", &uri]).ok();
    let fresh2 = EtcdCluster::start(1).await.unwrap();
    strata(Path::new(&fresh2.store_uri()), &["sql", &restore]).ok();
    assert_eq!(scan(&fresh2.store_uri(), "bank.accounts"), accounts, "restored accounts after the incremental");
    assert!(!accounts.contains(&format!("{first}\t")), "the deleted key is gone");
}
