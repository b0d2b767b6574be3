//! strata-etcd against a real 3-member etcd cluster on 127.0.0.1 (one cluster per test binary).

use std::sync::OnceLock;

use strata_etcd::testing::{skip_without_etcd, EtcdCluster};

/// The cluster every test of this binary shares.
#[allow(dead_code)]
fn cluster() -> &'static EtcdCluster {
    static CLUSTER: OnceLock<EtcdCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| EtcdCluster::start_blocking(3).expect("start a 3-member etcd cluster"))
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
