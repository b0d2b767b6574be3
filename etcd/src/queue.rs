//! A work queue in etcd: the units of one backup shared by several worker processes.
//!
//! ```text
//!   <root><queue>/meta          what the queue runs: its unit count and an opaque payload
//!                               (create-only: the first writer wins)
//!   <root><queue>/claim/<unit>  a claim, attached to the claiming worker's lease; its
//!                               create_revision is the claim's fencing token
//!   <root><queue>/done/<unit>   the unit's done record: the token that finished it and an opaque
//!                               payload; put only while the claim of that token still exists
//!                               (compare-and-swap), create-only, in the txn that deletes the claim
//!   <root><queue>/final         written create-only once the queue's result is committed
//! ```
//!
//! Units are numbered `0..units` and written as eight decimal digits, so keys sort by unit.
//!
//! A claim lives as long as its worker's lease: the lease's expiry is the etcd server's, not a
//! wall clock. A dead or frozen worker's lease expires, its claim keys are deleted by the
//! server, and the units are claimed again with a newer token. The frozen worker, once it runs
//! again, cannot complete its unit: the claim of its token is gone, so its done txn fails and
//! it learns it was fenced (and removes the files it wrote under its token).
//!
//! Every call goes to one etcd member through a single-endpoint client; when a member is
//! unavailable (dead, no leader, a timeout) the next endpoint is tried. Retried writes are
//! idempotent: a claim or done txn whose answer was lost is recognised as ours when retried.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, TxnOpResponse, WatchOptions,
};
use strata_core::{Error, Result, Status};

/// How long one call may take before the member is taken for unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds over every endpoint before a call fails.
const ROUNDS: usize = 6;

/// The default key prefix of the queues.
pub const DEFAULT_QUEUE_ROOT: &str = "/strata/queues/";

fn kv_error(message: impl Into<String>, status: Status) -> Error {
    Error::Kv { message: message.into(), status }
}

/// Whether an etcd client error means "this member cannot answer now" (try another).
fn is_unavailable(e: &etcd_client::Error) -> bool {
    use tonic::Code;
    match e {
        etcd_client::Error::GRpcStatus(s) => {
            matches!(s.code(), Code::Unavailable | Code::DeadlineExceeded | Code::Unknown | Code::Cancelled)
                || s.message().contains("leader")
        }
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::LeaseKeepAliveError(_) | etcd_client::Error::WatchError(_) => true,
        _ => false,
    }
}

/// Clients of an etcd cluster, one endpoint at a time, rotated when a member is unavailable.
pub struct Connection {
    endpoints: Vec<String>,
    /// The endpoint in use and its client (connected lazily).
    current: Mutex<(usize, Option<Client>)>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection").field("endpoints", &self.endpoints).finish()
    }
}

impl Connection {
    /// A connection to the cluster reachable at `endpoints` (`host:port` or `http://host:port`).
    pub fn new(endpoints: &[String]) -> Result<Arc<Connection>> {
        if endpoints.is_empty() {
            return Err(Error::InvalidArgument { what: "etcd endpoints".into(), message: "none given".into() });
        }
        let endpoints =
            endpoints.iter().map(|e| if e.contains("://") { e.clone() } else { format!("http://{e}") }).collect();
        Ok(Arc::new(Connection { endpoints, current: Mutex::new((0, None)) }))
    }

    /// The endpoints, as given.
    pub fn endpoints(&self) -> &[String] {
        &self.endpoints
    }

    async fn client(&self) -> std::result::Result<(usize, Client), etcd_client::Error> {
        let index = {
            let cur = self.current.lock().expect("etcd connection lock");
            if let Some(c) = &cur.1 {
                return Ok((cur.0, c.clone()));
            }
            cur.0
        };
        let options = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2))
            .with_require_leader(true);
        let client = Client::connect([self.endpoints[index].as_str()], Some(options)).await?;
        let mut cur = self.current.lock().expect("etcd connection lock");
        if cur.0 == index {
            cur.1 = Some(client.clone());
        }
        Ok((index, client))
    }

    /// Moves on to the endpoint after `index` (unless another call already did).
    fn rotate(&self, index: usize) {
        let mut cur = self.current.lock().expect("etcd connection lock");
        if cur.0 == index {
            *cur = ((index + 1) % self.endpoints.len(), None);
        }
    }

    /// Runs `call` on a client, on the next member whenever one is unavailable. `what` names the
    /// call in errors.
    pub async fn call<T, F, Fut>(&self, what: &str, mut call: F) -> Result<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: Future<Output = std::result::Result<T, etcd_client::Error>>,
    {
        let mut last = String::new();
        for attempt in 0..self.endpoints.len() * ROUNDS {
            let (index, client) = match tokio::time::timeout(CALL_TIMEOUT, self.client()).await {
                Ok(Ok(c)) => c,
                Ok(Err(e)) => {
                    last = e.to_string();
                    let i = self.current.lock().expect("etcd connection lock").0;
                    self.rotate(i);
                    backoff(attempt, self.endpoints.len()).await;
                    continue;
                }
                Err(_) => {
                    last = "connect timed out".into();
                    let i = self.current.lock().expect("etcd connection lock").0;
                    self.rotate(i);
                    continue;
                }
            };
            match tokio::time::timeout(CALL_TIMEOUT, call(client)).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if is_unavailable(&e) => {
                    last = format!("{}: {e}", self.endpoints[index]);
                    self.rotate(index);
                    backoff(attempt, self.endpoints.len()).await;
                }
                Ok(Err(e)) => return Err(kv_error(format!("etcd {what}: {e}"), Status::Permanent)),
                Err(_) => {
                    last = format!("{}: timed out after {CALL_TIMEOUT:?}", self.endpoints[index]);
                    self.rotate(index);
                }
            }
        }
        Err(kv_error(
            format!("etcd {what}: no member of {:?} answered (last: {last})", self.endpoints),
            Status::Temporary,
        ))
    }
}

/// A pause after a whole round of unavailable members (an election takes about a second).
async fn backoff(attempt: usize, members: usize) {
    if (attempt + 1) % members == 0 {
        tokio::time::sleep(Duration::from_millis(200 * (1 + attempt / members) as u64)).await;
    }
}

/// A worker's lease, kept alive in the background until dropped or revoked. Its expiry is the
/// server's: a worker frozen longer than the TTL loses it, and with it every claim.
#[derive(Debug)]
pub struct Lease {
    id: i64,
    ttl: i64,
    lost: Arc<AtomicBool>,
    keeper: tokio::task::JoinHandle<()>,
}

impl Lease {
    /// The lease id.
    pub fn id(&self) -> i64 {
        self.id
    }
    /// Its time to live, in seconds.
    pub fn ttl(&self) -> i64 {
        self.ttl
    }
    /// Whether the server let it expire (or it could not be renewed): claims made under it are
    /// gone.
    pub fn is_lost(&self) -> bool {
        self.lost.load(Ordering::SeqCst)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

/// A claim of one unit: the unit, and the fencing token that completes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Claim {
    /// The unit claimed.
    pub unit: u32,
    /// The claim key's create revision: names the claimant's files, and only it completes the unit.
    pub token: i64,
}

/// A unit's done record, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneRecord {
    /// The unit.
    pub unit: u32,
    /// The token of the claim that completed it.
    pub token: i64,
    /// What its worker recorded.
    pub payload: Vec<u8>,
}

/// What [`EtcdQueue::claim`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// A unit, claimed.
    Claimed(Claim),
    /// Every unit is claimed by someone (or done); nothing changed up to this revision.
    Busy {
        /// The revision the queue was read at: wait for changes after it.
        revision: i64,
    },
    /// Every unit is done.
    AllDone,
}

/// A claim's state, as [`EtcdQueue::claims`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimInfo {
    /// The unit claimed.
    pub unit: u32,
    /// The claim's fencing token.
    pub token: i64,
    /// The claiming worker's name.
    pub worker: String,
    /// The lease it lives under.
    pub lease: i64,
}

/// Queues of work units in etcd; see the module documentation for the key layout.
#[derive(Debug, Clone)]
pub struct EtcdQueue {
    conn: Arc<Connection>,
    root: String,
}

fn unit_key(unit: u32) -> String {
    format!("{unit:08}")
}

fn parse_unit(s: &[u8]) -> Option<u32> {
    std::str::from_utf8(s).ok()?.parse().ok()
}

impl EtcdQueue {
    /// The queues under `root` (e.g. [`DEFAULT_QUEUE_ROOT`]) of the cluster `conn` reaches.
    pub fn new(conn: Arc<Connection>, root: impl Into<String>) -> EtcdQueue {
        EtcdQueue { conn, root: root.into() }
    }

    /// The connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    fn key(&self, queue: &str, rest: &str) -> String {
        format!("{}{queue}/{rest}", self.root)
    }

    /// The key prefix of `queue` (every key of it starts with it).
    pub fn queue_prefix(&self, queue: &str) -> String {
        self.key(queue, "")
    }

    /// The key prefix of every queue's claims of `queue`.
    pub fn claim_prefix(&self, queue: &str) -> String {
        self.key(queue, "claim/")
    }

    /// The key prefix of `queue`'s done records.
    pub fn done_prefix(&self, queue: &str) -> String {
        self.key(queue, "done/")
    }

    /// Creates `queue` with `units` units and `payload` (what the workers run), unless it exists:
    /// returns whether this call created it.
    pub async fn create(&self, queue: &str, units: u32, payload: &[u8]) -> Result<bool> {
        let key = self.key(queue, "meta");
        let mut value = units.to_be_bytes().to_vec();
        value.extend_from_slice(payload);
        self.conn
            .call("create queue", |mut c| {
                let (key, value) = (key.clone(), value.clone());
                async move {
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key.clone(), value.clone(), None)])
                        .or_else([TxnOp::get(key, None)]);
                    let r = c.txn(txn).await?;
                    // A retried create whose first answer was lost finds its own value.
                    Ok(r.succeeded() || first_get(&r).is_some_and(|kv| kv.value() == value.as_slice()))
                }
            })
            .await
    }

    /// The unit count and payload of `queue`, if it exists.
    pub async fn meta(&self, queue: &str) -> Result<Option<(u32, Vec<u8>)>> {
        let key = self.key(queue, "meta");
        let r = self
            .conn
            .call("read queue", |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        let Some(kv) = r.kvs().first() else { return Ok(None) };
        let v = kv.value();
        if v.len() < 4 {
            return Err(Error::Corrupt { path: key, message: "the queue's meta record is too short".into() });
        }
        Ok(Some((u32::from_be_bytes(v[..4].try_into().expect("4 bytes")), v[4..].to_vec())))
    }

    /// The names of every queue, with whether it is final, sorted.
    pub async fn queues(&self) -> Result<Vec<(String, bool)>> {
        let root = self.root.clone();
        let r = self
            .conn
            .call("list queues", |mut c| {
                let root = root.clone();
                async move { c.get(root, Some(GetOptions::new().with_prefix().with_keys_only())).await }
            })
            .await?;
        let mut out: Vec<(String, bool)> = Vec::new();
        for kv in r.kvs() {
            let Some(rest) = kv.key().strip_prefix(self.root.as_bytes()) else { continue };
            let rest = String::from_utf8_lossy(rest);
            let Some((name, tail)) = rest.split_once('/') else { continue };
            if tail == "meta" {
                out.push((name.to_string(), false));
            }
        }
        for kv in r.kvs() {
            let rest = String::from_utf8_lossy(&kv.key()[self.root.len().min(kv.key().len())..]).to_string();
            if let Some((name, "final")) = rest.split_once('/') {
                if let Some(q) = out.iter_mut().find(|q| q.0 == name) {
                    q.1 = true;
                }
            }
        }
        out.sort();
        Ok(out)
    }

    /// Grants a lease of `ttl` seconds and keeps it alive in the background (renewed three times
    /// a TTL) until the [`Lease`] is dropped. Needs a tokio runtime.
    pub async fn grant_lease(&self, ttl: i64) -> Result<Lease> {
        let r = self.conn.call("grant lease", |mut c| async move { c.lease_grant(ttl, None).await }).await?;
        let id = r.id();
        let lost = Arc::new(AtomicBool::new(false));
        let keeper = tokio::spawn(keep_alive(self.conn.clone(), id, ttl, lost.clone()));
        Ok(Lease { id, ttl, lost, keeper })
    }

    /// Revokes `lease`: every claim under it is released at once.
    pub async fn revoke(&self, lease: Lease) -> Result<()> {
        let id = lease.id;
        drop(lease);
        self.conn.call("revoke lease", |mut c| async move { c.lease_revoke(id).await }).await.map(|_| ())
    }

    /// Claims a unit of `queue` that is neither claimed nor done, under `lease`, for `worker`
    /// (a name shown to people). Starts looking at unit `start % units` so that workers spread.
    pub async fn claim(&self, queue: &str, lease: &Lease, worker: &str, start: u32) -> Result<ClaimOutcome> {
        let Some((units, _)) = self.meta(queue).await? else {
            return Err(Error::NotFound { what: "work queue".into(), name: queue.into() });
        };
        if units == 0 {
            return Ok(ClaimOutcome::AllDone);
        }
        loop {
            let (taken, revision) = self.taken(queue).await?;
            if taken.iter().filter(|t| t.1).count() as u32 >= units {
                return Ok(ClaimOutcome::AllDone);
            }
            let free = (0..units).map(|i| (start % units + i) % units).find(|u| !taken.iter().any(|t| t.0 == *u));
            let Some(unit) = free else { return Ok(ClaimOutcome::Busy { revision }) };
            if let Some(token) = self.try_claim(queue, unit, lease.id, worker).await? {
                return Ok(ClaimOutcome::Claimed(Claim { unit, token }));
            }
        }
    }

    /// The units claimed or done (`true` for done), and the revision they were read at.
    async fn taken(&self, queue: &str) -> Result<(Vec<(u32, bool)>, i64)> {
        let prefix = self.queue_prefix(queue);
        let r = self
            .conn
            .call("read claims", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix().with_keys_only())).await }
            })
            .await?;
        let revision = r.header().map_or(0, |h| h.revision());
        let mut taken = Vec::new();
        for kv in r.kvs() {
            let rest = &kv.key()[prefix.len()..];
            if let Some(u) = rest.strip_prefix(b"claim/").and_then(parse_unit) {
                taken.push((u, false));
            } else if let Some(u) = rest.strip_prefix(b"done/").and_then(parse_unit) {
                taken.retain(|t: &(u32, bool)| t.0 != u);
                taken.push((u, true));
            }
        }
        // A unit both claimed and done (never at one revision, but be safe) counts as done.
        let done: Vec<u32> = taken.iter().filter(|t| t.1).map(|t| t.0).collect();
        taken.retain(|t| t.1 || !done.contains(&t.0));
        Ok((taken, revision))
    }

    /// Puts the claim of `unit` if it is neither claimed nor done; its token, or `None`.
    async fn try_claim(&self, queue: &str, unit: u32, lease: i64, worker: &str) -> Result<Option<i64>> {
        let claim = self.key(queue, &format!("claim/{}", unit_key(unit)));
        let done = self.key(queue, &format!("done/{}", unit_key(unit)));
        self.conn
            .call("claim unit", |mut c| {
                let (claim, done, worker) = (claim.clone(), done.clone(), worker.to_string());
                async move {
                    let txn = Txn::new()
                        .when([
                            Compare::create_revision(claim.clone(), CompareOp::Equal, 0),
                            Compare::create_revision(done, CompareOp::Equal, 0),
                        ])
                        .and_then([TxnOp::put(claim.clone(), worker, Some(PutOptions::new().with_lease(lease)))])
                        .or_else([TxnOp::get(claim, None)]);
                    let r = c.txn(txn).await?;
                    if r.succeeded() {
                        return Ok(r.header().map(|h| h.revision()));
                    }
                    // Ours already, if a first try's answer was lost.
                    Ok(first_get(&r).filter(|kv| kv.lease() == lease).map(|kv| kv.create_revision()))
                }
            })
            .await
    }

    /// Completes `claim`'s unit with `payload`, if the claim still holds: the done record is
    /// put create-only and the claim deleted in one txn that compares the claim's create
    /// revision with the token. `false`: the claim was lost (the worker was fenced), and
    /// nothing was written.
    pub async fn complete(&self, queue: &str, claim: Claim, payload: &[u8]) -> Result<bool> {
        let claim_key = self.key(queue, &format!("claim/{}", unit_key(claim.unit)));
        let done = self.key(queue, &format!("done/{}", unit_key(claim.unit)));
        let mut value = claim.token.to_be_bytes().to_vec();
        value.extend_from_slice(payload);
        self.conn
            .call("complete unit", |mut c| {
                let (claim_key, done, value) = (claim_key.clone(), done.clone(), value.clone());
                async move {
                    let txn = Txn::new()
                        .when([
                            Compare::create_revision(claim_key.clone(), CompareOp::Equal, claim.token),
                            Compare::create_revision(done.clone(), CompareOp::Equal, 0),
                        ])
                        .and_then([TxnOp::put(done.clone(), value.clone(), None), TxnOp::delete(claim_key, None)])
                        .or_else([TxnOp::get(done, None)]);
                    let r = c.txn(txn).await?;
                    // A retried completion whose first answer was lost finds its own record.
                    Ok(r.succeeded() || first_get(&r).is_some_and(|kv| kv.value() == value.as_slice()))
                }
            })
            .await
    }

    /// Every done record of `queue`, by unit.
    pub async fn done(&self, queue: &str) -> Result<Vec<DoneRecord>> {
        let prefix = self.done_prefix(queue);
        let r = self
            .conn
            .call("read done records", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        let mut out = Vec::new();
        for kv in r.kvs() {
            let Some(unit) = parse_unit(&kv.key()[prefix.len()..]) else { continue };
            let v = kv.value();
            if v.len() < 8 {
                return Err(Error::Corrupt {
                    path: String::from_utf8_lossy(kv.key()).into(),
                    message: "a done record is too short".into(),
                });
            }
            let token = i64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            out.push(DoneRecord { unit, token, payload: v[8..].to_vec() });
        }
        Ok(out)
    }

    /// Every live claim of `queue`.
    pub async fn claims(&self, queue: &str) -> Result<Vec<ClaimInfo>> {
        let prefix = self.claim_prefix(queue);
        let r = self
            .conn
            .call("read claims", |mut c| {
                let prefix = prefix.clone();
                async move { c.get(prefix, Some(GetOptions::new().with_prefix())).await }
            })
            .await?;
        Ok(r.kvs()
            .iter()
            .filter_map(|kv| {
                Some(ClaimInfo {
                    unit: parse_unit(&kv.key()[prefix.len()..])?,
                    token: kv.create_revision(),
                    worker: String::from_utf8_lossy(kv.value()).into(),
                    lease: kv.lease(),
                })
            })
            .collect())
    }

    /// Marks `queue` final (its result committed) with `payload`; returns whether this call did.
    pub async fn finish(&self, queue: &str, payload: &[u8]) -> Result<bool> {
        let key = self.key(queue, "final");
        self.conn
            .call("finish queue", |mut c| {
                let (key, payload) = (key.clone(), payload.to_vec());
                async move {
                    let txn = Txn::new()
                        .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                        .and_then([TxnOp::put(key, payload, None)]);
                    Ok(c.txn(txn).await?.succeeded())
                }
            })
            .await
    }

    /// The final record of `queue`, once it is final.
    pub async fn final_record(&self, queue: &str) -> Result<Option<Vec<u8>>> {
        let key = self.key(queue, "final");
        let r = self
            .conn
            .call("read queue", |mut c| {
                let key = key.clone();
                async move { c.get(key, None).await }
            })
            .await?;
        Ok(r.kvs().first().map(|kv| kv.value().to_vec()))
    }

    /// Deletes every key of `queue`.
    pub async fn remove(&self, queue: &str) -> Result<()> {
        let prefix = self.queue_prefix(queue);
        self.conn
            .call("remove queue", |mut c| {
                let prefix = prefix.clone();
                async move { c.delete(prefix, Some(etcd_client::DeleteOptions::new().with_prefix())).await }
            })
            .await
            .map(|_| ())
    }

    /// The current revision of the cluster.
    pub async fn revision(&self) -> Result<i64> {
        let root = self.root.clone();
        let r = self
            .conn
            .call("read revision", |mut c| {
                let root = root.clone();
                async move { c.get(root, Some(GetOptions::new().with_count_only())).await }
            })
            .await?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// Waits until a key under `queue`'s prefix (every queue's, for `None`) changes after
    /// `revision`, or `timeout` passes; returns whether something changed. Events are read from
    /// the watch history (`start_revision = revision + 1`), so a change made between the read
    /// at `revision` and this call is not missed; progress notifications are not relied on.
    pub async fn wait_change(&self, queue: Option<&str>, revision: i64, timeout: Duration) -> Result<bool> {
        let prefix = match queue {
            Some(q) => self.queue_prefix(q),
            None => self.root.clone(),
        };
        let watch = async {
            let mut stream = self
                .conn
                .call("watch", |mut c| {
                    let prefix = prefix.clone();
                    async move {
                        let options = WatchOptions::new().with_prefix().with_start_revision(revision + 1);
                        c.watch(prefix, Some(options)).await
                    }
                })
                .await?;
            loop {
                match stream.message().await {
                    Ok(Some(m)) if !m.events().is_empty() => return Ok(true),
                    Ok(Some(m)) if m.canceled() => {
                        // Compacted past `revision`: something changed for sure.
                        return Ok(m.compact_revision() > 0);
                    }
                    Ok(Some(_)) => continue,
                    // The member went away: the caller reads again (and watches another member).
                    Ok(None) | Err(_) => return Ok(true),
                }
            }
        };
        match tokio::time::timeout(timeout, watch).await {
            Ok(r) => r,
            Err(_) => Ok(false),
        }
    }

    /// Watches `queue`'s claims from `revision` on and returns the first claims for which
    /// `seen` returns true; `seen` is given every claim put after `revision`, in order.
    /// For tests and tools that react to workers' claims.
    pub async fn watch_claims(
        &self,
        queue: &str,
        revision: i64,
        mut seen: impl FnMut(&ClaimInfo) -> bool,
    ) -> Result<ClaimInfo> {
        let prefix = self.claim_prefix(queue);
        let mut from = revision + 1;
        loop {
            let mut stream = self
                .conn
                .call("watch claims", |mut c| {
                    let prefix = prefix.clone();
                    async move {
                        let options = WatchOptions::new().with_prefix().with_start_revision(from);
                        c.watch(prefix, Some(options)).await
                    }
                })
                .await?;
            while let Ok(Some(m)) = stream.message().await {
                for e in m.events() {
                    let Some(kv) = e.kv() else { continue };
                    from = kv.mod_revision() + 1;
                    if e.event_type() != etcd_client::EventType::Put {
                        continue;
                    }
                    let Some(unit) = parse_unit(&kv.key()[prefix.len()..]) else { continue };
                    let info = ClaimInfo {
                        unit,
                        token: kv.create_revision(),
                        worker: String::from_utf8_lossy(kv.value()).into(),
                        lease: kv.lease(),
                    };
                    if seen(&info) {
                        return Ok(info);
                    }
                }
            }
            // The stream ended (a member died): watch again from where it stopped.
        }
    }
}

fn first_get(r: &etcd_client::TxnResponse) -> Option<etcd_client::KeyValue> {
    r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    })
}

/// Renews lease `id` every third of its TTL until the task is aborted; marks it lost when the
/// server says it expired.
async fn keep_alive(conn: Arc<Connection>, id: i64, ttl: i64, lost: Arc<AtomicBool>) {
    let period = Duration::from_millis((ttl.max(1) as u64 * 1000) / 3);
    loop {
        tokio::time::sleep(period).await;
        let r = conn
            .call("keep lease alive", |mut c| async move {
                let (mut keeper, mut stream) = c.lease_keep_alive(id).await?;
                keeper.keep_alive().await?;
                match stream.message().await? {
                    Some(m) => Ok(m.ttl()),
                    None => Err(etcd_client::Error::LeaseKeepAliveError("stream ended".into())),
                }
            })
            .await;
        match r {
            Ok(ttl) if ttl > 0 => {}
            // Expired on the server, or no member renews it: its claims are (or will be) gone.
            _ => {
                lost.store(true, Ordering::SeqCst);
                return;
            }
        }
    }
}
