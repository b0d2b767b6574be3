//! The work-queue conformance suite: what every [`WorkQueue`] must do ([`MemQueue`], the etcd
//! queue of `strata-etcd`, a plugin's), checked the same way for each.
//!
//! Each check takes a fresh, empty queue, asserts exact results and panics with a message
//! naming the operation on the first difference. A queue under test also implements
//! [`ExpireLease`]: how the test ends a lease the way time would (the in-memory queue's
//! [`MemQueue::expire`]; an etcd queue revokes the lease, which ends its keys as expiry does).
//!
//! ```
//! use strata_core::conformance::workqueue;
//! use strata_core::MemQueue;
//!
//! futures::executor::block_on(workqueue::run_all(|| async { MemQueue::new() }));
//! ```

use std::future::Future;

use async_trait::async_trait;
use bytes::Bytes;

use crate::error::{Error, Result};
use crate::workqueue::{Claim, Completion, Created, Lease, MemQueue, UnitState, WorkQueue};

/// How a test ends a lease as its expiry would (its worker stopped renewing it and its time ran
/// out): every claim under it ends.
#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
pub trait ExpireLease: WorkQueue {
    /// Ends `lease` now, as if it had expired.
    async fn expire_lease(&self, lease: &Lease) -> Result<()>;
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl ExpireLease for MemQueue {
    async fn expire_lease(&self, lease: &Lease) -> Result<()> {
        self.expire_one(lease);
        Ok(())
    }
}

/// Runs every check, each on a fresh queue from `make`.
pub async fn run_all<Q: ExpireLease, F: Future<Output = Q>>(make: impl Fn() -> F) {
    create_only_jobs(&make().await).await;
    exclusive_claims(&make().await).await;
    token_monotonicity(&make().await).await;
    fenced_completion(&make().await).await;
    expiry_frees_claims(&make().await).await;
    done_units_are_never_claimed_again(&make().await).await;
    revoke_frees_claims(&make().await).await;
    finish_and_delete(&make().await).await;
    jobs_are_independent(&make().await).await;
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

async fn claim(q: &dyn WorkQueue, lease: &Lease, job: &str) -> Claim {
    match q.claim(lease, job).await {
        Ok(Some(c)) => c,
        other => panic!("claim({}, {job}) should give a unit: {other:?}", lease.worker),
    }
}

async fn no_claim(q: &dyn WorkQueue, lease: &Lease, job: &str, why: &str) {
    let got = q.claim(lease, job).await;
    assert!(matches!(got, Ok(None)), "claim({}, {job}) should find no unit ({why}): {got:?}", lease.worker);
}

/// A job is created once; the same job again changes nothing; another one under its id fails.
pub async fn create_only_jobs(q: &dyn WorkQueue) {
    assert_eq!(q.jobs().await.unwrap(), Vec::<String>::new(), "a fresh queue has no jobs");
    assert_eq!(q.job("j").await.unwrap(), None, "job() of an unknown job");
    assert_eq!(q.create_job("j", 3, b("plan")).await.unwrap(), Created::New, "create_job of a new job");
    let info = q.job("j").await.unwrap().expect("job() of a created job");
    assert_eq!((info.id.as_str(), info.units, &info.payload, &info.outcome), ("j", 3, &b("plan"), &None));
    // Idempotent re-creation: a creator that did not hear the answer tries again.
    assert_eq!(q.create_job("j", 3, b("plan")).await.unwrap(), Created::Existing, "create_job of the same job");
    let lease = q.register("w1", 10).await.unwrap();
    let c = claim(q, &lease, "j").await;
    assert_eq!(q.create_job("j", 3, b("plan")).await.unwrap(), Created::Existing, "re-creation once claimed");
    let states = q.units("j").await.unwrap();
    assert!(
        matches!(&states[c.unit as usize], UnitState::Claimed { token, .. } if *token == c.token),
        "re-creating a job must not reset its units: {states:?}"
    );
    for (units, payload, what) in [(3, b("other plan"), "another payload"), (4, b("plan"), "other units")] {
        let got = q.create_job("j", units, payload).await;
        assert!(matches!(got, Err(Error::AlreadyExists { .. })), "create_job with {what}: {got:?}");
    }
    assert_eq!(q.job("j").await.unwrap().unwrap().payload, b("plan"), "a refused creation changes nothing");
    assert_eq!(q.create_job("k", 0, Bytes::new()).await.unwrap(), Created::New, "a job of no units");
    assert_eq!(q.units("k").await.unwrap(), vec![], "units() of a job of no units");
    assert_eq!(q.jobs().await.unwrap(), vec!["j".to_string(), "k".to_string()], "jobs() in id order");
    let unknown = q.units("nope").await;
    assert!(matches!(unknown, Err(Error::NotFound { .. })), "units() of an unknown job: {unknown:?}");
    let unknown = q.claim(&lease, "nope").await;
    assert!(matches!(unknown, Err(Error::NotFound { .. })), "claim() on an unknown job: {unknown:?}");
}

/// Each unit is held by one claim at a time: claims hand out distinct units until none is left.
pub async fn exclusive_claims(q: &dyn WorkQueue) {
    q.create_job("j", 3, b("p")).await.unwrap();
    let w1 = q.register("w1", 10).await.unwrap();
    let w2 = q.register("w2", 10).await.unwrap();
    assert_ne!(w1.id, w2.id, "two registrations get two leases");
    assert_eq!(q.units("j").await.unwrap(), vec![UnitState::Free; 3], "a new job's units are free");
    let a = claim(q, &w1, "j").await;
    let b_ = claim(q, &w2, "j").await;
    let c = claim(q, &w1, "j").await;
    let mut units = vec![a.unit, b_.unit, c.unit];
    units.sort_unstable();
    assert_eq!(units, [0, 1, 2], "three claims take the three units");
    assert_eq!((a.job.as_str(), &a.lease), ("j", &w1), "a claim names its job and lease");
    no_claim(q, &w1, "j", "every unit is held").await;
    no_claim(q, &w2, "j", "every unit is held").await;
    let states = q.units("j").await.unwrap();
    for claim in [&a, &b_, &c] {
        let want = UnitState::Claimed { lease: claim.lease.clone(), token: claim.token };
        assert_eq!(states[claim.unit as usize], want, "units() shows unit {}'s claim", claim.unit);
    }
    assert!(q.keep_alive(&w1).await.unwrap(), "keep_alive of a live lease");
}

/// Every claim's token is greater than every token before it, across units and jobs.
pub async fn token_monotonicity(q: &dyn WorkQueue) {
    q.create_job("a", 2, b("p")).await.unwrap();
    q.create_job("b", 2, b("p")).await.unwrap();
    let mut last = 0;
    let mut check = |c: &Claim| {
        assert!(c.token > last, "token {} of {} unit {} is not above the previous {last}", c.token, c.job, c.unit);
        last = c.token;
    };
    let w1 = q.register("w1", 10).await.unwrap();
    check(&claim(q, &w1, "a").await);
    check(&claim(q, &w1, "b").await);
    let w2 = q.register("w2", 10).await.unwrap();
    check(&claim(q, &w2, "a").await);
    // Units claimed again after their claimer's lease ended get greater tokens still.
    q.revoke(&w1).await.unwrap();
    let w3 = q.register("w3", 10).await.unwrap();
    check(&claim(q, &w3, "a").await);
    check(&claim(q, &w3, "b").await);
    check(&claim(q, &w3, "b").await);
}

/// A completion counts only while its claim holds: once the unit was claimed again, the old
/// claim's completion records nothing.
pub async fn fenced_completion(q: &dyn ExpireLease) {
    q.create_job("j", 1, b("p")).await.unwrap();
    let w1 = q.register("w1", 10).await.unwrap();
    let old = claim(q, &w1, "j").await;
    // w1 freezes past its lease; w2 takes its unit over.
    q.expire_lease(&w1).await.unwrap();
    let w2 = q.register("w2", 10).await.unwrap();
    let new = claim(q, &w2, "j").await;
    assert_eq!(new.unit, old.unit, "the expired claim's unit is claimed again");
    assert!(new.token > old.token);
    // The frozen worker wakes up and completes: refused.
    assert_eq!(q.complete(&old, b("old")).await.unwrap(), Completion::Fenced, "completion by a lost claim");
    let states = q.units("j").await.unwrap();
    assert_eq!(states, vec![UnitState::Claimed { lease: w2.clone(), token: new.token }]);
    assert_eq!(q.complete(&new, b("new")).await.unwrap(), Completion::Completed, "completion by the live claim");
    // A retried completion of the same claim (its answer was lost) is the same completion.
    assert_eq!(q.complete(&new, b("new")).await.unwrap(), Completion::Completed, "a retried completion");
    assert_eq!(q.complete(&old, b("old")).await.unwrap(), Completion::Fenced, "a lost claim after the unit is done");
    let states = q.units("j").await.unwrap();
    assert_eq!(states, vec![UnitState::Done { token: new.token, record: b("new") }]);
    // A forged claim (right unit and lease, a token never handed out) is fenced too.
    q.create_job("k", 1, b("p")).await.unwrap();
    let other = claim(q, &w2, "k").await;
    let forged = Claim { token: other.token + 1000, ..other.clone() };
    assert_eq!(q.complete(&forged, b("forged")).await.unwrap(), Completion::Fenced, "a claim with a wrong token");
    assert_eq!(q.units("k").await.unwrap(), vec![UnitState::Claimed { lease: w2.clone(), token: other.token }]);
    assert_eq!(q.complete(&other, b("o")).await.unwrap(), Completion::Completed);
}

/// A lease that ends frees its claims: its units are claimed again, its own claims and
/// completions are refused.
pub async fn expiry_frees_claims(q: &dyn ExpireLease) {
    q.create_job("j", 2, b("p")).await.unwrap();
    let w1 = q.register("w1", 10).await.unwrap();
    let c = claim(q, &w1, "j").await;
    assert!(q.keep_alive(&w1).await.unwrap());
    q.expire_lease(&w1).await.unwrap();
    assert!(!q.keep_alive(&w1).await.unwrap(), "keep_alive of an expired lease answers false");
    assert_eq!(q.units("j").await.unwrap(), vec![UnitState::Free; 2], "an expired claim's unit is free");
    let late = q.claim(&w1, "j").await;
    assert!(matches!(late, Err(Error::Precondition(_))), "claim under an expired lease: {late:?}");
    // Nobody took the unit over, and still the expired claim does not complete it.
    assert_eq!(q.complete(&c, b("late")).await.unwrap(), Completion::Fenced, "completion after expiry");
    assert_eq!(q.units("j").await.unwrap(), vec![UnitState::Free; 2]);
    let w2 = q.register("w2", 10).await.unwrap();
    let a = claim(q, &w2, "j").await;
    let b_ = claim(q, &w2, "j").await;
    assert_ne!(a.unit, b_.unit);
    // Another lease of the same worker name is another lease: ending w2 leaves w3's claims.
    let w3 = q.register("w3", 10).await.unwrap();
    q.create_job("k", 1, b("p")).await.unwrap();
    let k = claim(q, &w3, "k").await;
    q.expire_lease(&w2).await.unwrap();
    assert_eq!(q.units("k").await.unwrap(), vec![UnitState::Claimed { lease: w3.clone(), token: k.token }]);
}

/// A done unit is never claimed again, not even once its completer's lease ends.
pub async fn done_units_are_never_claimed_again(q: &dyn ExpireLease) {
    q.create_job("j", 2, b("p")).await.unwrap();
    let w1 = q.register("w1", 10).await.unwrap();
    for _ in 0..2 {
        let c = claim(q, &w1, "j").await;
        assert_eq!(q.complete(&c, b(&format!("r{}", c.unit))).await.unwrap(), Completion::Completed);
    }
    no_claim(q, &w1, "j", "every unit is done").await;
    q.expire_lease(&w1).await.unwrap();
    let w2 = q.register("w2", 10).await.unwrap();
    no_claim(q, &w2, "j", "every unit is done, its completer's lease ended").await;
    let states = q.units("j").await.unwrap();
    for (u, s) in states.iter().enumerate() {
        assert!(
            matches!(s, UnitState::Done { record, .. } if *record == b(&format!("r{u}"))),
            "unit {u} stays done with its record: {s:?}"
        );
    }
}

/// A worker leaving cleanly (revoke) frees its claims at once.
pub async fn revoke_frees_claims(q: &dyn WorkQueue) {
    q.create_job("j", 1, b("p")).await.unwrap();
    let w1 = q.register("w1", 10).await.unwrap();
    let c = claim(q, &w1, "j").await;
    q.revoke(&w1).await.unwrap();
    assert!(!q.keep_alive(&w1).await.unwrap(), "keep_alive of a revoked lease");
    assert_eq!(q.units("j").await.unwrap(), vec![UnitState::Free]);
    assert_eq!(q.complete(&c, b("r")).await.unwrap(), Completion::Fenced, "completion after revoke");
    let w2 = q.register("w2", 10).await.unwrap();
    let again = claim(q, &w2, "j").await;
    assert!(again.token > c.token);
}

/// The first outcome wins; no unit of a finished job is claimed; a deleted job is gone and its
/// id can be used again.
pub async fn finish_and_delete(q: &dyn WorkQueue) {
    q.create_job("j", 2, b("p")).await.unwrap();
    let w = q.register("w", 10).await.unwrap();
    // A unit is in progress when the job finishes (failed elsewhere, say).
    claim(q, &w, "j").await;
    assert_eq!(q.finish_job("j", b("failed: x")).await.unwrap(), b("failed: x"), "the first outcome is stored");
    assert_eq!(q.finish_job("j", b("succeeded")).await.unwrap(), b("failed: x"), "the first outcome wins");
    assert_eq!(q.job("j").await.unwrap().unwrap().outcome, Some(b("failed: x")));
    no_claim(q, &w, "j", "the job is finished").await;
    q.delete_job("j").await.unwrap();
    assert_eq!(q.job("j").await.unwrap(), None, "a deleted job is gone");
    assert_eq!(q.jobs().await.unwrap(), Vec::<String>::new());
    q.delete_job("j").await.unwrap();
    assert_eq!(q.create_job("j", 1, b("q")).await.unwrap(), Created::New, "a deleted job's id is free again");
    assert_eq!(q.units("j").await.unwrap(), vec![UnitState::Free], "a re-created job starts afresh");
    let unknown = q.finish_job("nope", b("x")).await;
    assert!(matches!(unknown, Err(Error::NotFound { .. })), "finish_job of an unknown job: {unknown:?}");
}

/// Claims and completions of one job do not touch another's units.
pub async fn jobs_are_independent(q: &dyn WorkQueue) {
    q.create_job("a", 1, b("p")).await.unwrap();
    q.create_job("b", 1, b("p")).await.unwrap();
    let w = q.register("w", 10).await.unwrap();
    let a = claim(q, &w, "a").await;
    assert_eq!(q.units("b").await.unwrap(), vec![UnitState::Free], "a claim in job a");
    assert_eq!(q.complete(&a, b("r")).await.unwrap(), Completion::Completed);
    assert_eq!(q.units("b").await.unwrap(), vec![UnitState::Free], "a completion in job a");
    // A claim of job a presented as job b's is not b's claim.
    let as_b = Claim { job: "b".into(), ..a.clone() };
    assert_eq!(q.complete(&as_b, b("r")).await.unwrap(), Completion::Fenced, "another job's claim");
    let b_ = claim(q, &w, "b").await;
    assert_eq!(b_.unit, 0);
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::executor::block_on;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn the_in_memory_queue_conforms() {
        block_on(run_all(|| async { MemQueue::new() }));
    }

    /// A queue whose completions are not fenced: the suite must catch it.
    struct Unfenced(MemQueue);

    #[cfg_attr(not(target_arch = "wasm32"), async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
    impl WorkQueue for Unfenced {
        async fn create_job(&self, job: &str, units: u32, payload: Bytes) -> Result<Created> {
            self.0.create_job(job, units, payload).await
        }
        async fn job(&self, job: &str) -> Result<Option<crate::workqueue::JobInfo>> {
            self.0.job(job).await
        }
        async fn jobs(&self) -> Result<Vec<String>> {
            self.0.jobs().await
        }
        async fn delete_job(&self, job: &str) -> Result<()> {
            self.0.delete_job(job).await
        }
        async fn register(&self, worker: &str, ttl: u64) -> Result<Lease> {
            self.0.register(worker, ttl).await
        }
        async fn keep_alive(&self, lease: &Lease) -> Result<bool> {
            self.0.keep_alive(lease).await
        }
        async fn revoke(&self, lease: &Lease) -> Result<()> {
            self.0.revoke(lease).await
        }
        async fn claim(&self, lease: &Lease, job: &str) -> Result<Option<Claim>> {
            self.0.claim(lease, job).await
        }
        async fn complete(&self, claim: &Claim, record: Bytes) -> Result<Completion> {
            let got = self.0.complete(claim, record).await?;
            let _ = got;
            Ok(Completion::Completed)
        }
        async fn units(&self, job: &str) -> Result<Vec<UnitState>> {
            self.0.units(job).await
        }
        async fn finish_job(&self, job: &str, outcome: Bytes) -> Result<Bytes> {
            self.0.finish_job(job, outcome).await
        }
    }

    #[cfg_attr(not(target_arch = "wasm32"), async_trait)]
    #[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
    impl ExpireLease for Unfenced {
        async fn expire_lease(&self, lease: &Lease) -> Result<()> {
            self.0.expire_lease(lease).await
        }
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "completion by a lost claim")]
    fn the_suite_catches_an_unfenced_queue() {
        let q = Unfenced(MemQueue::new());
        block_on(fenced_completion(&q));
    }

    #[test]
    #[cfg_attr(all(target_family = "wasm", target_os = "unknown"), ignore = "panics abort on wasm32")]
    #[should_panic(expected = "completion after expiry")]
    fn the_suite_catches_completions_after_expiry() {
        let q = Unfenced(MemQueue::new());
        block_on(expiry_frees_claims(&q));
    }
}
