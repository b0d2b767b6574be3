//! A work queue: how several processes share one job's units (a backup plan's work units) with
//! nothing lost when one of them dies, and nothing done twice in the result.
//!
//! ```text
//!   create_job(job, units, payload)          create-only; the same job again is a no-op
//!   register(worker, ttl) ─▶ Lease           expiry is the queue's (its server's clock)
//!   claim(lease, job) ─▶ Claim{unit, token}  a free unit, or one whose claimer's lease expired
//!   keep_alive(lease)                        while working
//!   complete(claim, record)                  compare-and-swap fenced by the claim's token:
//!                                            refused once the claim was lost (lease expired,
//!                                            unit claimed again)
//!   units(job) ─▶ [Free | Claimed{worker, token} | Done{token, record}]
//!   finish_job(job, outcome)                 first outcome wins; no unit is claimed after it
//! ```
//!
//! The trait is declared here (no IO); [`MemQueue`] is the in-memory implementation (tests, one
//! process), and `strata-etcd` implements it on etcd leases and transactions. Every
//! implementation passes [`crate::conformance::workqueue`].
//!
//! A claim's fencing token names what the claimer writes (a backup names its data files with
//! it), so a worker that lost its claim without knowing (a frozen process) never writes over the
//! files of the one that won the unit, and the one record that completes a unit says which
//! files are the unit's.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::kv::MaybeSendSync;

/// A worker's registration: claims made under it last while the queue keeps it alive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The worker's name (for people: `SHOW JOBS`, errors). Several leases may share one.
    pub worker: String,
    /// The lease's id, unique in the queue (an etcd lease id).
    pub id: u64,
}

/// A unit held by a worker: the right to work on it, and to complete it while the claim lasts.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Claim {
    /// The job.
    pub job: String,
    /// The unit's index, `0..units`.
    pub unit: u32,
    /// The fencing token: greater than every token the queue handed out before this claim.
    pub token: u64,
    /// The lease the claim lives under.
    pub lease: Lease,
}

/// A job as the queue holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// How many units it has.
    pub units: u32,
    /// What its creator stored with it (for a backup: the plan), returned as given.
    pub payload: Bytes,
    /// Set once by [`WorkQueue::finish_job`].
    pub outcome: Option<Bytes>,
}

/// Where one unit of a job is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnitState {
    /// Nobody holds it (never claimed, or its claimer's lease expired).
    Free,
    /// Held under a live lease.
    Claimed {
        /// The claimer's lease.
        lease: Lease,
        /// The claim's fencing token.
        token: u64,
    },
    /// Completed: never claimed again.
    Done {
        /// The token of the claim that completed it.
        token: u64,
        /// What that claim completed it with.
        record: Bytes,
    },
}

/// What [`WorkQueue::create_job`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// The job is new.
    New,
    /// The very same job (same units, same payload) was there already: nothing changed.
    Existing,
}

/// What [`WorkQueue::complete`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Completion {
    /// The unit is done with this claim's record (also when this very claim completed it
    /// before: a retried completion).
    Completed,
    /// The claim was lost (its lease expired, or the unit was claimed again or completed by
    /// another claim): nothing was recorded. The caller's work on the unit is not the unit's.
    Fenced,
}

/// A queue of jobs whose units are claimed by workers under leases.
///
/// # Contract
/// - **Create-only jobs.** [`create_job`](WorkQueue::create_job) creates a job once; calling it
///   again with the same units and payload answers [`Created::Existing`] and changes nothing;
///   with other units or another payload it fails with [`Error::AlreadyExists`].
/// - **Leases.** [`register`](WorkQueue::register) grants a lease of about `ttl_seconds`, timed
///   by the queue (its server's clock, never the caller's); [`keep_alive`](WorkQueue::keep_alive)
///   renews it and answers `false` once it expired or was revoked. When a lease ends, every
///   claim under it ends with it (its units are free again).
/// - **Exclusive claims.** [`claim`](WorkQueue::claim) takes one unit of the job that is free
///   (never claimed, or whose claimer's lease ended) and not done, and answers `None` when there
///   is none (or the job is finished). At most one live claim per unit at any time. A claim under
///   an ended lease fails with [`Error::Precondition`]; a claim on an unknown job with
///   [`Error::NotFound`].
/// - **Fencing tokens.** Each claim's token is greater than the token of every claim the queue
///   granted before it (in any job).
/// - **Fenced completion.** [`complete`](WorkQueue::complete) records the unit done with
///   `record` in one compare-and-swap, only if the claim still holds (same token, lease alive);
///   otherwise it records nothing and answers [`Completion::Fenced`]. A completion retried by the
///   claim that completed the unit answers [`Completion::Completed`] and changes nothing. A done
///   unit is never claimed again and its record never changes.
/// - **States.** [`units`](WorkQueue::units) lists every unit of a job in index order;
///   a unit whose claimer's lease ended shows as [`UnitState::Free`].
/// - **Outcome.** [`finish_job`](WorkQueue::finish_job) sets the job's outcome once (the first
///   caller's wins) and returns the stored one; no unit is claimed after it.
/// - Errors that retrying can help with carry [`crate::Status::Temporary`].
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait WorkQueue: MaybeSendSync {
    /// Creates job `job` with `units` units and `payload`, create-only (see the contract).
    async fn create_job(&self, job: &str, units: u32, payload: Bytes) -> Result<Created>;

    /// The job `job`, if the queue has it.
    async fn job(&self, job: &str) -> Result<Option<JobInfo>>;

    /// The ids of every job in the queue, in id order.
    async fn jobs(&self) -> Result<Vec<String>>;

    /// Removes a job and everything about it (its claims, done records, outcome); nothing if it
    /// does not exist.
    async fn delete_job(&self, job: &str) -> Result<()>;

    /// Registers worker `worker` with a lease of about `ttl_seconds` (at least 1).
    async fn register(&self, worker: &str, ttl_seconds: u64) -> Result<Lease>;

    /// Renews `lease`; `false` once it expired or was revoked (the worker lost its claims).
    async fn keep_alive(&self, lease: &Lease) -> Result<bool>;

    /// Ends `lease` now: its claims are free again (a worker leaving cleanly).
    async fn revoke(&self, lease: &Lease) -> Result<()>;

    /// Claims a free, not done unit of `job` under `lease`; `None` if there is none.
    async fn claim(&self, lease: &Lease, job: &str) -> Result<Option<Claim>>;

    /// Completes the claimed unit with `record`, fenced by the claim's token.
    async fn complete(&self, claim: &Claim, record: Bytes) -> Result<Completion>;

    /// The state of every unit of `job`, by index.
    async fn units(&self, job: &str) -> Result<Vec<UnitState>>;

    /// Sets the job's outcome unless one is set; returns the outcome stored.
    async fn finish_job(&self, job: &str, outcome: Bytes) -> Result<Bytes>;
}

/// A job of a [`MemQueue`].
#[derive(Debug, Clone)]
struct MemJob {
    units: u32,
    payload: Bytes,
    outcome: Option<Bytes>,
    /// Per unit: its live claim (lease id, token) if any, or its done record.
    claims: Vec<Option<(u64, u64)>>,
    done: Vec<Option<(u64, Bytes)>>,
}

#[derive(Debug, Default)]
struct MemState {
    jobs: BTreeMap<String, MemJob>,
    /// Live leases: id → worker.
    leases: BTreeMap<u64, String>,
    next_lease: u64,
    last_token: u64,
}

impl MemState {
    fn job(&mut self, job: &str) -> Result<&mut MemJob> {
        self.jobs.get_mut(job).ok_or_else(|| Error::not_found("job", job))
    }
}

/// The in-memory [`WorkQueue`]: one process's queue, and the reference the conformance suite
/// is checked against. Leases never expire by time (core has no clock): a test ends one with
/// [`MemQueue::expire`], as a dead worker's lease would end. Clones share the queue.
#[derive(Debug, Clone, Default)]
pub struct MemQueue {
    state: Arc<Mutex<MemState>>,
}

impl MemQueue {
    /// An empty queue.
    pub fn new() -> MemQueue {
        MemQueue::default()
    }

    /// Ends every lease of `worker`, as if it had stopped renewing them and their time ran out.
    pub fn expire(&self, worker: &str) {
        let mut s = self.lock();
        let gone: Vec<u64> = s.leases.iter().filter(|(_, w)| w.as_str() == worker).map(|(id, _)| *id).collect();
        for id in gone {
            s.end_lease(id);
        }
    }

    /// Ends `lease` alone, as if its time ran out.
    pub fn expire_one(&self, lease: &Lease) {
        self.lock().end_lease(lease.id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MemState {
    fn end_lease(&mut self, id: u64) {
        self.leases.remove(&id);
        for job in self.jobs.values_mut() {
            for claim in job.claims.iter_mut() {
                if claim.is_some_and(|(lease, _)| lease == id) {
                    *claim = None;
                }
            }
        }
    }

    fn lease_of(&self, id: u64) -> Lease {
        Lease { worker: self.leases.get(&id).cloned().unwrap_or_default(), id }
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl WorkQueue for MemQueue {
    async fn create_job(&self, job: &str, units: u32, payload: Bytes) -> Result<Created> {
        let mut s = self.lock();
        if let Some(existing) = s.jobs.get(job) {
            if existing.units == units && existing.payload == payload {
                return Ok(Created::Existing);
            }
            return Err(Error::exists("job", format!("{job} (with other units or another payload)")));
        }
        let n = units as usize;
        let created = MemJob { units, payload, outcome: None, claims: vec![None; n], done: vec![None; n] };
        s.jobs.insert(job.to_string(), created);
        Ok(Created::New)
    }

    async fn job(&self, job: &str) -> Result<Option<JobInfo>> {
        let s = self.lock();
        Ok(s.jobs.get(job).map(|j| JobInfo {
            id: job.to_string(),
            units: j.units,
            payload: j.payload.clone(),
            outcome: j.outcome.clone(),
        }))
    }

    async fn jobs(&self) -> Result<Vec<String>> {
        Ok(self.lock().jobs.keys().cloned().collect())
    }

    async fn delete_job(&self, job: &str) -> Result<()> {
        self.lock().jobs.remove(job);
        Ok(())
    }

    async fn register(&self, worker: &str, _ttl_seconds: u64) -> Result<Lease> {
        let mut s = self.lock();
        s.next_lease += 1;
        let id = s.next_lease;
        s.leases.insert(id, worker.to_string());
        Ok(Lease { worker: worker.to_string(), id })
    }

    async fn keep_alive(&self, lease: &Lease) -> Result<bool> {
        Ok(self.lock().leases.contains_key(&lease.id))
    }

    async fn revoke(&self, lease: &Lease) -> Result<()> {
        self.lock().end_lease(lease.id);
        Ok(())
    }

    async fn claim(&self, lease: &Lease, job: &str) -> Result<Option<Claim>> {
        let mut s = self.lock();
        if !s.leases.contains_key(&lease.id) {
            return Err(Error::Precondition(format!(
                "worker {}'s lease {} has expired: register again before claiming units of job {job}",
                lease.worker, lease.id
            )));
        }
        let token = s.last_token + 1;
        let j = s.job(job)?;
        if j.outcome.is_some() {
            return Ok(None);
        }
        let Some(unit) = (0..j.claims.len()).find(|&u| j.claims[u].is_none() && j.done[u].is_none()) else {
            return Ok(None);
        };
        j.claims[unit] = Some((lease.id, token));
        s.last_token = token;
        Ok(Some(Claim { job: job.to_string(), unit: unit as u32, token, lease: lease.clone() }))
    }

    async fn complete(&self, claim: &Claim, record: Bytes) -> Result<Completion> {
        let mut s = self.lock();
        let j = s.job(&claim.job)?;
        let u = claim.unit as usize;
        if u >= j.claims.len() {
            return Err(Error::invalid("claim", format!("job {} has no unit {}", claim.job, claim.unit)));
        }
        if let Some((token, _)) = &j.done[u] {
            let retried = *token == claim.token;
            return Ok(if retried { Completion::Completed } else { Completion::Fenced });
        }
        if j.claims[u] != Some((claim.lease.id, claim.token)) {
            return Ok(Completion::Fenced);
        }
        j.claims[u] = None;
        j.done[u] = Some((claim.token, record));
        Ok(Completion::Completed)
    }

    async fn units(&self, job: &str) -> Result<Vec<UnitState>> {
        let mut s = self.lock();
        let j = s.job(job)?.clone();
        Ok((0..j.claims.len())
            .map(|u| match (&j.done[u], j.claims[u]) {
                (Some((token, record)), _) => UnitState::Done { token: *token, record: record.clone() },
                (None, Some((lease, token))) => UnitState::Claimed { lease: s.lease_of(lease), token },
                (None, None) => UnitState::Free,
            })
            .collect())
    }

    async fn finish_job(&self, job: &str, outcome: Bytes) -> Result<Bytes> {
        let mut s = self.lock();
        let j = s.job(job)?;
        Ok(j.outcome.get_or_insert(outcome).clone())
    }
}
