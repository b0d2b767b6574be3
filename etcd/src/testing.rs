//! A real etcd cluster on 127.0.0.1 for tests: [`EtcdCluster::start`] spawns `etcd` member
//! processes on free ports with temporary data directories and returns once the cluster has a
//! leader and every member answers (checked through the client, not by sleeping).
//!
//! Members can be killed (`SIGKILL`), stopped (`SIGSTOP`), continued (`SIGCONT`) and restarted by
//! index. The member processes die with the test: dropping the cluster kills them and removes
//! their directories, and each member is started under `setpriv --pdeathsig KILL` from a spawner
//! thread that lives as long as the test process, so a test process that is itself killed takes
//! its members with it. Data directories of dead test processes are removed by the next start.
//!
//! Tests skip (with a printed message) when `etcd` is not installed, unless
//! `STRATA_REQUIRE_ETCD=1` (set by `scripts/test-all.sh`), where a missing `etcd` fails them:
//!
//! ```no_run
//! # async fn demo() -> strata_core::Result<()> {
//! use strata_etcd::testing::{skip_without_etcd, EtcdCluster};
//! if skip_without_etcd("my_test") {
//!     return Ok(());
//! }
//! let cluster = EtcdCluster::start(3).await?;
//! let uri = cluster.store_uri(); // etcd://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3
//! cluster.kill(0); // SIGKILL member 0
//! cluster.restart(0).await?; // same data directory, rejoins
//! # Ok(()) }
//! ```

use std::fs::File;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use etcd_client::{Client, ConnectOptions};
use strata_core::{Error, Result, Status};

/// How long a starting cluster may take to elect a leader before [`EtcdCluster::start`] fails.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// Whether the `etcd` binary can be run.
pub fn etcd_available() -> bool {
    Command::new("etcd")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Whether `STRATA_REQUIRE_ETCD=1`: tests that need etcd must fail, not skip, without it.
pub fn etcd_required() -> bool {
    std::env::var("STRATA_REQUIRE_ETCD").is_ok_and(|v| v == "1")
}

/// `true` when `test` should be skipped because `etcd` is not installed (and prints why);
/// panics instead when [`etcd_required`].
pub fn skip_without_etcd(test: &str) -> bool {
    if etcd_available() {
        return false;
    }
    if etcd_required() {
        panic!("{test}: STRATA_REQUIRE_ETCD=1 but `etcd` cannot be run (apt-get install etcd-server etcd-client)");
    }
    eprintln!("{test}: skipped: `etcd` is not installed (apt-get install etcd-server etcd-client)");
    true
}

fn kv_err(message: String) -> Error {
    Error::Kv { message, status: Status::Temporary }
}

/// One member process of an [`EtcdCluster`].
#[derive(Debug)]
struct Member {
    name: String,
    client_port: u16,
    peer_port: u16,
    data_dir: PathBuf,
    log: PathBuf,
    child: Mutex<Option<Child>>,
}

/// A running etcd cluster of local member processes; see the [module docs](self).
#[derive(Debug)]
pub struct EtcdCluster {
    members: Vec<Member>,
    token: String,
    dir: PathBuf,
}

/// Spawns every member from one thread that never exits: `--pdeathsig` fires when the spawning
/// *thread* ends, so members spawned from a short-lived test thread would die with it.
fn spawn(mut command: Command) -> std::io::Result<Child> {
    type Job = (Command, mpsc::Sender<std::io::Result<Child>>);
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let sender = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("etcd-spawner".into())
            .spawn(move || {
                for (mut command, reply) in rx {
                    let _ = reply.send(command.spawn());
                }
            })
            .expect("spawn the etcd spawner thread");
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    let job = (std::mem::replace(&mut command, Command::new("true")), tx);
    sender.lock().expect("spawner lock").send(job).expect("the etcd spawner thread is alive");
    rx.recv().expect("the etcd spawner thread replies")
}

fn free_port() -> Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| kv_err(format!("no free port on 127.0.0.1: {e}")))?;
    Ok(listener.local_addr().map_err(|e| kv_err(format!("no free port: {e}")))?.port())
}

fn pid_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Removes the directories of clusters whose test process is gone.
fn remove_stale_dirs(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("strata-etcd-") else { continue };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else { continue };
        if !pid_alive(pid) {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

impl EtcdCluster {
    /// Starts a cluster of `members` etcd processes on 127.0.0.1 and waits until it has a leader
    /// and every member answers. Retries with other ports if a member cannot start (a port taken
    /// meanwhile by another process).
    pub async fn start(members: usize) -> Result<EtcdCluster> {
        assert!(members > 0, "an etcd cluster needs at least one member");
        let mut last = None;
        for _attempt in 0..3 {
            let cluster = EtcdCluster::spawn_all(members)?;
            match cluster.wait_healthy(START_DEADLINE).await {
                Ok(()) => return Ok(cluster),
                Err(e) => last = Some(e),
            }
        }
        Err(last.expect("three attempts"))
    }

    /// [`EtcdCluster::start`] from synchronous code (a `static` shared by the tests of one
    /// binary): runs the start on a runtime of its own thread.
    pub fn start_blocking(members: usize) -> Result<EtcdCluster> {
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a tokio runtime");
            rt.block_on(EtcdCluster::start(members))
        })
        .join()
        .expect("the cluster start thread")
    }

    fn spawn_all(members: usize) -> Result<EtcdCluster> {
        let root = std::env::temp_dir();
        remove_stale_dirs(&root);
        let dir = tempfile::Builder::new()
            .prefix(&format!("strata-etcd-{}-", std::process::id()))
            .tempdir_in(&root)
            .map_err(|e| kv_err(format!("cannot create a directory for etcd in {}: {e}", root.display())))?
            .keep();
        let token = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let mut list = Vec::new();
        for i in 0..members {
            list.push(Member {
                name: format!("m{i}"),
                client_port: free_port()?,
                peer_port: free_port()?,
                data_dir: dir.join(format!("m{i}.etcd")),
                log: dir.join(format!("m{i}.log")),
                child: Mutex::new(None),
            });
        }
        let cluster = EtcdCluster { members: list, token, dir };
        for i in 0..members {
            cluster.spawn_member(i, "new")?;
        }
        Ok(cluster)
    }

    fn initial_cluster(&self) -> String {
        self.members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn spawn_member(&self, i: usize, state: &str) -> Result<()> {
        let m = &self.members[i];
        let log = File::options()
            .create(true)
            .append(true)
            .open(&m.log)
            .map_err(|e| kv_err(format!("cannot open {}: {e}", m.log.display())))?;
        let log2 = log.try_clone().map_err(|e| kv_err(format!("cannot open {}: {e}", m.log.display())))?;
        let setpriv = Path::new("/usr/bin/setpriv").exists();
        let mut command = if setpriv {
            let mut c = Command::new("/usr/bin/setpriv");
            c.args(["--pdeathsig", "KILL", "--", "etcd"]);
            c
        } else {
            Command::new("etcd")
        };
        let client = format!("http://127.0.0.1:{}", m.client_port);
        let peer = format!("http://127.0.0.1:{}", m.peer_port);
        command
            .arg("--name")
            .arg(&m.name)
            .arg("--data-dir")
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster(), "--initial-cluster-state", state])
            .args(["--initial-cluster-token", &self.token])
            // Fast elections on loopback; the defaults (100 ms / 1 s) make a restart slow.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let child = spawn(command).map_err(|e| kv_err(format!("cannot start etcd member {}: {e}", m.name)))?;
        *m.child.lock().expect("member lock") = Some(child);
        Ok(())
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the cluster has no members (never: [`EtcdCluster::start`] needs one).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// The client URL of member `i`: `http://127.0.0.1:PORT`.
    pub fn endpoint(&self, i: usize) -> String {
        format!("http://127.0.0.1:{}", self.members[i].client_port)
    }

    /// The client URLs of every member.
    pub fn endpoints(&self) -> Vec<String> {
        (0..self.members.len()).map(|i| self.endpoint(i)).collect()
    }

    /// `HOST:PORT` of every member, comma-separated (what `etcdctl --endpoints` takes).
    pub fn host_ports(&self) -> String {
        self.members.iter().map(|m| format!("127.0.0.1:{}", m.client_port)).collect::<Vec<_>>().join(",")
    }

    /// The store URI of the CLI: `etcd://127.0.0.1:P1,127.0.0.1:P2,…`.
    pub fn store_uri(&self) -> String {
        format!("etcd://{}", self.host_ports())
    }

    /// The process id of member `i`'s etcd process, if it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.members[i].child.lock().expect("member lock").as_ref().map(Child::id)
    }

    /// The directory holding every member's data directory and log (`m<i>.log`).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Sends `signal` to member `i` with kill(1) (the crate forbids `unsafe`); whether it was sent.
    fn signal(&self, i: usize, signal: &str) -> bool {
        let Some(pid) = self.pid(i) else { return false };
        let status = Command::new("kill").arg(format!("-{signal}")).arg(pid.to_string()).status();
        status.is_ok_and(|s| s.success())
    }

    /// Kills member `i` with `SIGKILL` and reaps it. Its data directory stays, for
    /// [`EtcdCluster::restart`].
    pub fn kill(&self, i: usize) {
        let mut child = self.members[i].child.lock().expect("member lock");
        if let Some(mut c) = child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Freezes member `i` with `SIGSTOP`.
    pub fn stop(&self, i: usize) {
        assert!(self.signal(i, "STOP"), "kill -STOP of etcd member {i} failed");
    }

    /// Resumes a member frozen by [`EtcdCluster::stop`] with `SIGCONT`.
    pub fn cont(&self, i: usize) {
        assert!(self.signal(i, "CONT"), "kill -CONT of etcd member {i} failed");
    }

    /// Starts killed member `i` again on its data directory and waits until the cluster is
    /// healthy.
    pub async fn restart(&self, i: usize) -> Result<()> {
        self.kill(i);
        self.spawn_member(i, "existing")?;
        self.wait_healthy(START_DEADLINE).await
    }

    /// The index of the member that is the Raft leader now.
    pub async fn leader(&self) -> Result<usize> {
        for i in 0..self.members.len() {
            let Ok(mut client) = self.member_client(i).await else { continue };
            let Ok(status) = client.status().await else { continue };
            let leader = status.leader();
            for (j, _) in self.members.iter().enumerate() {
                let Ok(mut c) = self.member_client(j).await else { continue };
                if c.status().await.is_ok_and(|s| s.header().is_some_and(|h| h.member_id() == leader)) {
                    return Ok(j);
                }
            }
        }
        Err(kv_err("no etcd member knows a leader".into()))
    }

    async fn member_client(&self, i: usize) -> Result<Client> {
        let options =
            ConnectOptions::new().with_connect_timeout(Duration::from_secs(2)).with_timeout(Duration::from_secs(2));
        Client::connect([self.endpoint(i)], Some(options))
            .await
            .map_err(|e| kv_err(format!("cannot connect to etcd member {i} at {}: {e}", self.endpoint(i))))
    }

    /// Waits until every running member answers a status request and knows a leader, and a
    /// linearizable read succeeds; fails after `deadline` or when a member process has exited.
    pub async fn wait_healthy(&self, deadline: Duration) -> Result<()> {
        let until = Instant::now() + deadline;
        let mut backoff = Duration::from_millis(20);
        loop {
            let mut problem = None;
            for (i, m) in self.members.iter().enumerate() {
                let mut child = m.child.lock().expect("member lock");
                let Some(c) = child.as_mut() else { continue };
                if let Ok(Some(status)) = c.try_wait() {
                    let log = std::fs::read_to_string(&m.log).unwrap_or_default();
                    let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join("\n");
                    *child = None;
                    return Err(kv_err(format!("etcd member {i} exited with {status}: {tail}")));
                }
            }
            for i in 0..self.members.len() {
                if self.pid(i).is_none() {
                    continue;
                }
                let healthy = async {
                    let mut client = self.member_client(i).await?;
                    let status = client.status().await.map_err(|e| kv_err(e.to_string()))?;
                    if status.leader() == 0 {
                        return Err(kv_err("no leader yet".into()));
                    }
                    client.get("health", None).await.map_err(|e| kv_err(e.to_string()))?;
                    Ok::<(), Error>(())
                };
                if let Err(e) = healthy.await {
                    problem = Some(format!("member {i} at {}: {e}", self.endpoint(i)));
                    break;
                }
            }
            match problem {
                None => return Ok(()),
                Some(p) if Instant::now() >= until => {
                    return Err(kv_err(format!("the etcd cluster is not healthy after {deadline:?}: {p}")))
                }
                Some(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_millis(250));
                }
            }
        }
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            self.signal(i, "CONT");
            self.kill(i);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
