//! The etcd work queue against a real etcd cluster: the core's work-queue conformance suite, and
//! (in `processes`) one backup shared by worker processes while workers and members die.

use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use strata_core::conformance::workqueue::{self, ExpireLease};
use strata_core::{Claim, Completion, Created, JobInfo, Lease, Result, UnitState, WorkQueue};
use strata_etcd::testing::{skip_without_etcd, EtcdCluster};
use strata_etcd::{Connection, EtcdQueue};

/// The etcd queue, with lease expiry done the way the server does it when a lease runs out
/// (revoking deletes the lease's keys as expiry does).
struct Expiring(EtcdQueue);

#[async_trait]
impl WorkQueue for Expiring {
    async fn create_job(&self, job: &str, units: u32, payload: Bytes) -> Result<Created> {
        self.0.create_job(job, units, payload).await
    }
    async fn job(&self, job: &str) -> Result<Option<JobInfo>> {
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
        self.0.complete(claim, record).await
    }
    async fn units(&self, job: &str) -> Result<Vec<UnitState>> {
        self.0.units(job).await
    }
    async fn finish_job(&self, job: &str, outcome: Bytes) -> Result<Bytes> {
        self.0.finish_job(job, outcome).await
    }
}

#[async_trait]
impl ExpireLease for Expiring {
    async fn expire_lease(&self, lease: &Lease) -> Result<()> {
        self.0.revoke(lease).await
    }
}

#[tokio::test]
async fn the_etcd_queue_conforms() {
    if skip_without_etcd("the_etcd_queue_conforms") {
        return;
    }
    let cluster = EtcdCluster::start(3).await.unwrap();
    // The leader's endpoint first: the connection talks to it until it dies.
    let leader = cluster.leader().await.unwrap();
    let mut endpoints = cluster.endpoints();
    endpoints.rotate_left(leader);
    let conn = Connection::new(&endpoints).unwrap();
    let n = AtomicUsize::new(0);
    workqueue::run_all(|| {
        let root = format!("/conformance-{}-{}/", std::process::id(), n.fetch_add(1, Ordering::SeqCst));
        let q = Expiring(EtcdQueue::new(conn.clone(), root));
        async move { q }
    })
    .await;
    // The leader dies: the single-endpoint clients move on to the members that answer, and
    // claims and completions keep their guarantees.
    cluster.kill(leader);
    workqueue::run_all(|| {
        let root = format!("/conformance-{}-{}/", std::process::id(), n.fetch_add(1, Ordering::SeqCst));
        let q = Expiring(EtcdQueue::new(conn.clone(), root));
        async move { q }
    })
    .await;
}
