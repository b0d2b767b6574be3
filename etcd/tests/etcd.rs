//! strata-etcd against a real 3-member etcd cluster on 127.0.0.1: one cluster for the whole test
//! binary (a `static`), each test in its own root prefix.
//!
//! etcd compaction is cluster-wide, so the tests that compact take [`HISTORY`] exclusively and
//! every other test takes it shared.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

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

/// The suite, one test per check, each in its own root prefix; the checks that compact hold
/// [`HISTORY`] exclusively, the others shared. Without etcd, each check passes without running.
mod kv_conformance_on_a_3_member_cluster {
    use super::*;

    strata_core::kv_conformance_tests! {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        let skip = skip_without_etcd("kv_conformance_on_a_3_member_cluster");
        store: if skip { return } else { open(fresh_root("conformance")).await },
        hold: HISTORY.read().await,
        gc: |store: EtcdKv, threshold| async move { store.compact(threshold).await },
        hold_gc: HISTORY.write().await,
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_keeps_working_when_the_leader_it_uses_dies() {
    if skip_without_etcd("a_store_keeps_working_when_the_leader_it_uses_dies") {
        return;
    }
    use strata_core::{keys, read_span, KvSource, KvStore};
    // A cluster of its own: this test kills the leader, which the store uses (first endpoint).
    let cluster = EtcdCluster::start(3).await.expect("start");
    let leader = cluster.leader().await.expect("a leader");
    let mut endpoints = cluster.endpoints();
    endpoints.rotate_left(leader);
    // A request to the dead leader waits for its deadline before moving on: keep it short.
    let options = EtcdOptions::default().with_request_timeout(std::time::Duration::from_secs(2));
    let store = EtcdKv::open(endpoints, options).await.expect("open");
    let key = |k: &str| keys::table_key(300, k.as_bytes());
    let t1 = store.write(vec![(key("a"), Some(b"1".to_vec()))]).await.expect("write");
    let used = store.conn().current();
    assert_eq!(used, 0, "the store starts on its first endpoint, the leader");
    cluster.kill(leader);
    let t2 = store.write(vec![(key("b"), Some(b"2".to_vec()))]).await.expect("write after the member died");
    assert!(t2 > t1);
    assert_ne!(store.conn().current(), used, "the store moved to another member");
    let rows = read_span(&store, keys::table_span(300), store.now().await.expect("now")).await.expect("read");
    assert_eq!(rows, vec![(key("a"), b"1".to_vec()), (key("b"), b"2".to_vec())]);
    let before = read_span(&store, keys::table_span(300), t1).await.expect("read at t1");
    assert_eq!(before, vec![(key("a"), b"1".to_vec())]);
}

/// A compaction by another program (a Kubernetes API server compacts every 5 minutes) is the GC
/// threshold of a mapped table: found by `gc_threshold`, reads below it refused, reads above it
/// whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_by_another_program_is_the_gc_threshold() {
    if skip_without_etcd("a_compaction_by_another_program_is_the_gc_threshold") {
        return;
    }
    use etcd_client::{GetOptions, PutOptions};
    use strata_core::{keys, Error, KvSource, MvccFilter, ScanRequest, Timestamp};
    use strata_etcd::MapMode;
    let _exclusive = HISTORY.write().await;
    let root = fresh_root("compaction");
    let prefix = format!("/compaction-{}/", String::from_utf8_lossy(&root).replace('/', "-")).into_bytes();
    let id = open(root.clone())
        .await
        .map_table("k8s", "registry", &prefix, MapMode::Create)
        .await
        .expect("map")
        .expect("an id");
    let store = open(root).await;
    let put = |k: &str, v: &str| {
        let (key, value) = ([prefix.as_slice(), k.as_bytes()].concat(), v.as_bytes().to_vec());
        let conn = store.conn().clone();
        async move {
            conn.kv("put", |mut kv| {
                let (key, value) = (key.clone(), value.clone());
                async move { kv.put(key, value, None::<PutOptions>).await }
            })
            .await
            .expect("put")
        }
    };
    put("a", "1").await;
    let t1 = store.now().await.expect("now");
    put("a", "2").await;
    put("b", "1").await;
    let t2 = store.now().await.expect("now");
    // Another program compacts at the current revision.
    let current = store
        .conn()
        .kv("read", |mut kv| async move { kv.get("x", Some(GetOptions::new().with_count_only())).await })
        .await
        .expect("read")
        .header()
        .expect("header")
        .revision();
    store.conn().kv("compact", |mut kv| async move { kv.compact(current, None).await }).await.expect("compact");
    let span = keys::table_span(id);
    let threshold = store.gc_threshold(&span).await.expect("gc_threshold");
    assert!(t1 < threshold && threshold <= t2, "threshold {threshold} after a compaction between {t1} and {t2}");
    match store.scan(ScanRequest::new(span.clone(), t1, t2, MvccFilter::AllRevisions)).await {
        Err(Error::InvalidTime(m)) => assert!(m.contains("GC threshold"), "{m}"),
        other => panic!("revisions below the compaction: {other:?}"),
    }
    let page = store.scan(ScanRequest::new(span, Timestamp::ZERO, t2, MvccFilter::Latest)).await.expect("latest");
    let rows: Vec<_> = page.entries.iter().map(|e| (e.key.to_vec(), e.value.as_deref().map(<[u8]>::to_vec))).collect();
    assert_eq!(
        rows,
        vec![(keys::table_key(id, b"a"), Some(b"2".to_vec())), (keys::table_key(id, b"b"), Some(b"1".to_vec()))]
    );
}
