//! The work queue in etcd ([`WorkQueue`]): the units of one backup shared by several worker
//! processes.
//!
//! ```text
//!   <root><job>/meta          the job: its unit count (u32 BE) and an opaque payload (for a
//!                             backup, its plan and location); create-only, first writer wins
//!   <root><job>/units         its unit count alone (what a claim reads, without the payload)
//!   <root><job>/claim/<unit>  a claim: the worker's name, attached to its lease; the key's
//!                             create_revision is the claim's fencing token
//!   <root><job>/done/<unit>   the unit's done record: the completing token (u64 BE) and an
//!                             opaque record; put create-only in the txn that deletes the claim,
//!                             only while the claim of that token (and lease) still exists
//!   <root><job>/final         the job's outcome, create-only: the first one wins, and no unit is
//!                             claimed after it
//!
//!   <root> is /strata-queues/ (DEFAULT_QUEUE_ROOT); a detached backup's job is backup<id>.
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
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, KeyValue, PutOptions, Txn, TxnOp,
    TxnOpResponse, TxnResponse, WatchOptions,
};
use strata_core::{Claim, Completion, Created, Error, JobInfo, Lease, Result, Status, UnitState, WorkQueue};

/// How long one call may take before the member is taken for unavailable.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);
/// Rounds over every endpoint before a call fails.
const ROUNDS: usize = 6;

/// The default key prefix of the queues: outside a store's root (`/strata/`), so that queue
/// traffic is not in the store's history.
pub const DEFAULT_QUEUE_ROOT: &str = "/strata-queues/";

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
        etcd_client::Error::LeaseKeepAliveError(m) => !m.contains("not found"),
        etcd_client::Error::WatchError(_) => true,
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
    if (attempt + 1).is_multiple_of(members) {
        tokio::time::sleep(Duration::from_millis(200 * (1 + attempt / members) as u64)).await;
    }
}

/// A claim's state, as [`EtcdQueue::watch_claims`] sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimEvent {
    /// The unit claimed.
    pub unit: u32,
    /// The claim's fencing token.
    pub token: u64,
    /// The claiming worker's name.
    pub worker: String,
    /// The lease it lives under.
    pub lease: u64,
}

/// The work queue in etcd ([`WorkQueue`]); see the module documentation for its keys.
#[derive(Debug, Clone)]
pub struct EtcdQueue {
    conn: Arc<Connection>,
    root: String,
}

fn unit_key(unit: u32) -> String {
    format!("{unit:08}")
}

fn parse_unit(s: &[u8]) -> Option<u32> {
    let s = std::str::from_utf8(s).ok()?;
    (s.len() == 8).then(|| s.parse().ok()).flatten()
}

/// The key-values of every read of a txn's answer, in order.
fn gets(r: &TxnResponse) -> Vec<Vec<KeyValue>> {
    r.op_responses()
        .into_iter()
        .filter_map(|op| match op {
            TxnOpResponse::Get(g) => Some(g.kvs().to_vec()),
            _ => None,
        })
        .collect()
}

fn first_get(r: &TxnResponse) -> Option<KeyValue> {
    r.op_responses().into_iter().find_map(|op| match op {
        TxnOpResponse::Get(g) => g.kvs().first().cloned(),
        _ => None,
    })
}

/// A done record's value: the completing token (8 bytes, big-endian), then the record.
fn done_value(token: u64, record: &[u8]) -> Vec<u8> {
    let mut v = token.to_be_bytes().to_vec();
    v.extend_from_slice(record);
    v
}

fn split_done(key: &[u8], v: &[u8]) -> Result<(u64, Bytes)> {
    if v.len() < 8 {
        let path = String::from_utf8_lossy(key).into_owned();
        return Err(Error::Corrupt { path, message: "a done record is shorter than its token".into() });
    }
    Ok((u64::from_be_bytes(v[..8].try_into().expect("8 bytes")), Bytes::copy_from_slice(&v[8..])))
}

fn meta_value(units: u32, payload: &[u8]) -> Vec<u8> {
    let mut v = units.to_be_bytes().to_vec();
    v.extend_from_slice(payload);
    v
}

fn split_meta(key: &str, v: &[u8]) -> Result<(u32, Bytes)> {
    if v.len() < 4 {
        return Err(Error::Corrupt {
            path: key.into(),
            message: "a job's meta record is shorter than its unit count".into(),
        });
    }
    Ok((u32::from_be_bytes(v[..4].try_into().expect("4 bytes")), Bytes::copy_from_slice(&v[4..])))
}

impl EtcdQueue {
    /// The queue whose keys start with `root` (e.g. [`DEFAULT_QUEUE_ROOT`]) in the cluster `conn`
    /// reaches.
    pub fn new(conn: Arc<Connection>, root: impl Into<String>) -> EtcdQueue {
        EtcdQueue { conn, root: root.into() }
    }

    /// The connection.
    pub fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    fn key(&self, job: &str, rest: &str) -> String {
        format!("{}{job}/{rest}", self.root)
    }

    fn claim_key(&self, job: &str, unit: u32) -> String {
        self.key(job, &format!("claim/{}", unit_key(unit)))
    }

    fn done_key(&self, job: &str, unit: u32) -> String {
        self.key(job, &format!("done/{}", unit_key(unit)))
    }

    /// The key prefix of `job` (every key of it starts with it).
    pub fn job_prefix(&self, job: &str) -> String {
        self.key(job, "")
    }

    fn check_job_id(job: &str) -> Result<()> {
        if job.is_empty() || job.contains('/') {
            return Err(Error::InvalidArgument {
                what: "work queue job id".into(),
                message: format!("{job:?} must be non-empty and hold no '/'"),
            });
        }
        Ok(())
    }

    async fn get(&self, what: &str, key: String, options: Option<GetOptions>) -> Result<etcd_client::GetResponse> {
        self.conn
            .call(what, |mut c| {
                let (key, options) = (key.clone(), options.clone());
                async move { c.get(key, options).await }
            })
            .await
    }

    async fn txn(&self, what: &str, txn: Txn) -> Result<TxnResponse> {
        self.conn
            .call(what, |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await
    }

    /// Every key of `job` (claims, done records, meta, final) at one revision, and that revision.
    async fn read_job(&self, job: &str) -> Result<(Vec<KeyValue>, i64)> {
        let mut r = self.get("read job", self.job_prefix(job), Some(GetOptions::new().with_prefix())).await?;
        let revision = r.header().map_or(0, |h| h.revision());
        Ok((r.take_kvs(), revision))
    }

    /// The current revision of the cluster.
    pub async fn revision(&self) -> Result<i64> {
        let r = self.get("read revision", self.root.clone(), Some(GetOptions::new().with_count_only())).await?;
        Ok(r.header().map_or(0, |h| h.revision()))
    }

    /// Waits until a key of `job` (of every job, for `None`) changes after `revision`, or
    /// `timeout` passes; answers whether something changed (or may have: a watch that ended
    /// early answers `true`, and the caller reads again). Events come from the watch history
    /// (`start_revision = revision + 1`), so a change made between the read at `revision` and
    /// this call is not missed; progress notifications are not relied on.
    pub async fn wait_change(&self, job: Option<&str>, revision: i64, timeout: Duration) -> Result<bool> {
        let prefix = match job {
            Some(j) => self.job_prefix(j),
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
                    Ok(Some(m)) if !m.events().is_empty() || m.canceled() => return Ok(true),
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return Ok(true),
                }
            }
        };
        tokio::time::timeout(timeout, watch).await.unwrap_or(Ok(false))
    }

    /// Watches `job`'s claims put after `revision`, in order, until `seen` accepts one; returns
    /// it. A watch cut by a dying member is opened again where it stopped. For tests and tools
    /// that react to workers' claims.
    pub async fn watch_claims(
        &self,
        job: &str,
        revision: i64,
        mut seen: impl FnMut(&ClaimEvent) -> bool,
    ) -> Result<ClaimEvent> {
        let prefix = self.key(job, "claim/");
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
                if m.canceled() {
                    break;
                }
                for e in m.events() {
                    let Some(kv) = e.kv() else { continue };
                    from = kv.mod_revision() + 1;
                    if e.event_type() != etcd_client::EventType::Put {
                        continue;
                    }
                    let Some(unit) = parse_unit(&kv.key()[prefix.len()..]) else { continue };
                    let event = ClaimEvent {
                        unit,
                        token: kv.create_revision() as u64,
                        worker: String::from_utf8_lossy(kv.value()).into_owned(),
                        lease: kv.lease() as u64,
                    };
                    if seen(&event) {
                        return Ok(event);
                    }
                }
            }
        }
    }
}

#[async_trait]
impl WorkQueue for EtcdQueue {
    async fn create_job(&self, job: &str, units: u32, payload: Bytes) -> Result<Created> {
        Self::check_job_id(job)?;
        let key = self.key(job, "meta");
        let value = meta_value(units, &payload);
        let txn = Txn::new()
            .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
            .and_then([
                TxnOp::put(key.clone(), value.clone(), None),
                TxnOp::put(self.key(job, "units"), units.to_be_bytes().to_vec(), None),
            ])
            .or_else([TxnOp::get(key.clone(), None)]);
        let r = self.txn("create job", txn).await?;
        if r.succeeded() {
            return Ok(Created::New);
        }
        // The same job (or this very creation retried after its answer was lost).
        match first_get(&r) {
            Some(kv) if kv.value() == value.as_slice() => Ok(Created::Existing),
            _ => Err(Error::AlreadyExists {
                what: "job".into(),
                name: format!("{job} (with other units or another payload)"),
            }),
        }
    }

    async fn job(&self, job: &str) -> Result<Option<JobInfo>> {
        let meta = self.key(job, "meta");
        let txn = Txn::new().and_then([TxnOp::get(meta.clone(), None), TxnOp::get(self.key(job, "final"), None)]);
        let r = self.txn("read job", txn).await?;
        let [m, fin] = &gets(&r)[..] else {
            return Err(Error::Kv {
                message: "etcd read job: an answer without its two reads".into(),
                status: Status::Temporary,
            });
        };
        let Some(m) = m.first() else { return Ok(None) };
        let (units, payload) = split_meta(&meta, m.value())?;
        let outcome = fin.first().map(|kv| Bytes::copy_from_slice(kv.value()));
        Ok(Some(JobInfo { id: job.to_string(), units, payload, outcome }))
    }

    async fn jobs(&self) -> Result<Vec<String>> {
        let r =
            self.get("list jobs", self.root.clone(), Some(GetOptions::new().with_prefix().with_keys_only())).await?;
        let mut out: Vec<String> = r
            .kvs()
            .iter()
            .filter_map(|kv| {
                let rest = std::str::from_utf8(kv.key().strip_prefix(self.root.as_bytes())?).ok()?;
                rest.strip_suffix("/meta").filter(|j| !j.contains('/')).map(String::from)
            })
            .collect();
        out.sort();
        Ok(out)
    }

    async fn delete_job(&self, job: &str) -> Result<()> {
        Self::check_job_id(job)?;
        let prefix = self.job_prefix(job);
        self.conn
            .call("delete job", |mut c| {
                let prefix = prefix.clone();
                async move { c.delete(prefix, Some(DeleteOptions::new().with_prefix())).await }
            })
            .await
            .map(|_| ())
    }

    async fn register(&self, worker: &str, ttl_seconds: u64) -> Result<Lease> {
        let ttl = ttl_seconds.clamp(1, i64::MAX as u64) as i64;
        let r = self.conn.call("grant lease", |mut c| async move { c.lease_grant(ttl, None).await }).await?;
        Ok(Lease { worker: worker.to_string(), id: r.id() as u64 })
    }

    async fn keep_alive(&self, lease: &Lease) -> Result<bool> {
        let id = lease.id as i64;
        self.conn
            .call("keep lease alive", |mut c| async move {
                // Opening the keep-alive stream renews the lease once and reads the answer.
                match c.lease_keep_alive(id).await {
                    Ok(_) => Ok(true),
                    // The server no longer has the lease: it expired or was revoked.
                    Err(etcd_client::Error::LeaseKeepAliveError(m)) if m.contains("not found") => Ok(false),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    async fn revoke(&self, lease: &Lease) -> Result<()> {
        let id = lease.id as i64;
        match self.conn.call("revoke lease", |mut c| async move { c.lease_revoke(id).await }).await {
            Ok(_) => Ok(()),
            // Already ended.
            Err(Error::Kv { message, .. }) if message.contains("lease not found") => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn claim(&self, lease: &Lease, job: &str) -> Result<Option<Claim>> {
        let fin = self.key(job, "final");
        let meta = self.key(job, "meta");
        let prefix = self.job_prefix(job);
        let units_key = self.key(job, "units");
        loop {
            // The job's keys (not its payload or records) and its unit count, at one revision.
            let read = Txn::new().and_then([
                TxnOp::get(prefix.clone(), Some(GetOptions::new().with_prefix().with_keys_only())),
                TxnOp::get(units_key.clone(), None),
            ]);
            let r = self.txn("read claims", read).await?;
            let [kvs, units] = &gets(&r)[..] else {
                return Err(Error::Kv {
                    message: "etcd read claims: an answer without its two reads".into(),
                    status: Status::Temporary,
                });
            };
            let (Some(m), Some(units)) = (kvs.iter().find(|kv| kv.key() == meta.as_bytes()), units.first()) else {
                return Err(Error::NotFound { what: "job".into(), name: job.into() });
            };
            let (units, _) = split_meta(&units_key, units.value())?;
            if units == 0 || kvs.iter().any(|kv| kv.key() == fin.as_bytes()) {
                return Ok(None);
            }
            let mut taken = vec![false; units as usize];
            for kv in kvs {
                let rest = &kv.key()[prefix.len()..];
                let unit = rest.strip_prefix(b"claim/").or_else(|| rest.strip_prefix(b"done/")).and_then(parse_unit);
                if let Some(u) = unit.filter(|u| *u < units) {
                    taken[u as usize] = true;
                }
            }
            // Workers start looking at different units, so that they seldom race for one.
            let start = (lease.id % units as u64) as u32;
            let Some(unit) = (0..units).map(|i| (start + i) % units).find(|u| !taken[*u as usize]) else {
                return Ok(None);
            };
            let claim = self.claim_key(job, unit);
            let txn = Txn::new()
                .when([
                    Compare::create_revision(claim.clone(), CompareOp::Equal, 0),
                    Compare::create_revision(self.done_key(job, unit), CompareOp::Equal, 0),
                    Compare::create_revision(fin.clone(), CompareOp::Equal, 0),
                    Compare::create_revision(meta.clone(), CompareOp::Equal, m.create_revision()),
                ])
                .and_then([TxnOp::put(
                    claim.clone(),
                    lease.worker.clone(),
                    Some(PutOptions::new().with_lease(lease.id as i64)),
                )])
                .or_else([TxnOp::get(claim, None)]);
            let r = match self.txn("claim unit", txn).await {
                Ok(r) => r,
                Err(Error::Kv { message, .. }) if message.contains("lease not found") => {
                    return Err(Error::Precondition(format!(
                        "worker {}'s lease {} has expired: register again before claiming units of job {job}",
                        lease.worker, lease.id
                    )));
                }
                Err(e) => return Err(e),
            };
            let token = if r.succeeded() {
                r.header().map(|h| h.revision())
            } else {
                // Ours already, if a first try's answer was lost.
                first_get(&r).filter(|kv| kv.lease() == lease.id as i64).map(|kv| kv.create_revision())
            };
            if let Some(token) = token {
                return Ok(Some(Claim { job: job.to_string(), unit, token: token as u64, lease: lease.clone() }));
            }
            // Another worker took the unit first: look again.
        }
    }

    async fn complete(&self, claim: &Claim, record: Bytes) -> Result<Completion> {
        let claim_key = self.claim_key(&claim.job, claim.unit);
        let done = self.done_key(&claim.job, claim.unit);
        let value = done_value(claim.token, &record);
        let txn = Txn::new()
            .when([
                Compare::create_revision(claim_key.clone(), CompareOp::Equal, claim.token as i64),
                Compare::lease(claim_key.clone(), CompareOp::Equal, claim.lease.id as i64),
                Compare::create_revision(done.clone(), CompareOp::Equal, 0),
            ])
            .and_then([TxnOp::put(done.clone(), value, None), TxnOp::delete(claim_key, None)])
            .or_else([TxnOp::get(done.clone(), None)]);
        let r = self.txn("complete unit", txn).await?;
        if r.succeeded() {
            return Ok(Completion::Completed);
        }
        // Done by this very claim already (a retried completion), or fenced.
        match first_get(&r) {
            Some(kv) if split_done(kv.key(), kv.value())?.0 == claim.token => Ok(Completion::Completed),
            _ => Ok(Completion::Fenced),
        }
    }

    async fn units(&self, job: &str) -> Result<Vec<UnitState>> {
        let (kvs, _) = self.read_job(job).await?;
        let meta = self.key(job, "meta");
        let Some(m) = kvs.iter().find(|kv| kv.key() == meta.as_bytes()) else {
            return Err(Error::NotFound { what: "job".into(), name: job.into() });
        };
        let (units, _) = split_meta(&meta, m.value())?;
        let mut states = vec![UnitState::Free; units as usize];
        let prefix = self.job_prefix(job);
        for kv in &kvs {
            let rest = &kv.key()[prefix.len()..];
            if let Some(u) = rest.strip_prefix(b"done/").and_then(parse_unit).filter(|u| *u < units) {
                let (token, record) = split_done(kv.key(), kv.value())?;
                states[u as usize] = UnitState::Done { token, record };
            }
        }
        for kv in &kvs {
            let rest = &kv.key()[prefix.len()..];
            if let Some(u) = rest.strip_prefix(b"claim/").and_then(parse_unit).filter(|u| *u < units) {
                if states[u as usize] == UnitState::Free {
                    let worker = String::from_utf8_lossy(kv.value()).into_owned();
                    let lease = Lease { worker, id: kv.lease() as u64 };
                    states[u as usize] = UnitState::Claimed { lease, token: kv.create_revision() as u64 };
                }
            }
        }
        Ok(states)
    }

    async fn finish_job(&self, job: &str, outcome: Bytes) -> Result<Bytes> {
        let key = self.key(job, "final");
        let meta = self.key(job, "meta");
        let txn = Txn::new()
            .when([
                Compare::create_revision(key.clone(), CompareOp::Equal, 0),
                Compare::create_revision(meta.clone(), CompareOp::Greater, 0),
            ])
            .and_then([TxnOp::put(key.clone(), outcome.to_vec(), None)])
            .or_else([TxnOp::get(key, None), TxnOp::get(meta, Some(GetOptions::new().with_count_only()))]);
        let r = self.txn("finish job", txn).await?;
        if r.succeeded() {
            return Ok(outcome);
        }
        match first_get(&r) {
            Some(kv) => Ok(Bytes::copy_from_slice(kv.value())),
            None => Err(Error::NotFound { what: "job".into(), name: job.into() }),
        }
    }
}
