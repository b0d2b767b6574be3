//! strata-etcd against a real 3-member etcd cluster on 127.0.0.1: one cluster for the whole test
//! binary (a `static`), each test in its own root prefix.
//!
//! etcd compaction is cluster-wide, so the tests that compact take [`HISTORY`] exclusively and
//! every other test takes it shared.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

use strata_core::conformance::kv;
use strata_etcd::testing::{skip_without_etcd, EtcdCluster};
use strata_etcd::{EtcdKv, EtcdOptions};
use tokio::sync::RwLock;

/// The cluster every test of this binary shares.
fn cluster() -> &'static EtcdCluster {
    static CLUSTER: OnceLock<EtcdCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| EtcdCluster::start_blocking(3).expect("start a 3-member etcd cluster"))
}

/// Held exclusively by tests that compact etcd's history, shared by the others.
static HISTORY: RwLock<()> = RwLock::const_new(());

/// A fresh root prefix for one store.
fn fresh_root(test: &str) -> Vec<u8> {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!("/t/{test}/{}/", N.fetch_add(1, Ordering::Relaxed)).into_bytes()
}

async fn open(root: Vec<u8>) -> EtcdKv {
    EtcdKv::open(cluster().endpoints(), EtcdOptions::default().with_root(root)).await.expect("open the etcd store")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kv_conformance_on_a_3_member_cluster() {
    if skip_without_etcd("kv_conformance_on_a_3_member_cluster") {
        return;
    }
    let _exclusive = HISTORY.write().await;
    let make =
        || tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(open(fresh_root("conformance"))));
    kv::run_all_with_gc(make, |store: EtcdKv, threshold| async move { store.compact(threshold).await }).await;
}

#[tokio::test]
async fn harness_kills_stops_and_restarts_members() {
    if skip_without_etcd("harness_kills_stops_and_restarts_members") {
        return;
    }
    let cluster = EtcdCluster::start(3).await.expect("start");
    assert_eq!(cluster.endpoints().len(), 3);
    let leader = cluster.leader().await.expect("a leader");
    cluster.kill(leader);
    assert!(cluster.pid(leader).is_none());
    let next = (leader + 1) % 3;
    cluster.stop(next);
    cluster.cont(next);
    cluster.restart(leader).await.expect("restart the killed leader");
    cluster.leader().await.expect("a leader after the restart");
    let dir = cluster.dir().to_path_buf();
    drop(cluster);
    assert!(!dir.exists(), "dropping the cluster removes {}", dir.display());
}
