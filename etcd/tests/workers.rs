//! The etcd work queue and worker processes against a real etcd cluster.

use std::time::Duration;

use strata_etcd::{ClaimOutcome, Connection, EtcdQueue};

fn endpoints() -> Option<Vec<String>> {
    std::env::var("STRATA_TEST_ETCD").ok().map(|s| s.split(',').map(String::from).collect())
}

#[tokio::test]
async fn claims_are_fenced_by_their_revision() {
    let Some(eps) = endpoints() else { return };
    let q = EtcdQueue::new(Connection::new(&eps).unwrap(), format!("/test-{}/", std::process::id()));
    assert!(q.create("j1", 2, b"plan").await.unwrap());
    assert!(!q.create("j1", 2, b"other").await.unwrap());
    let a = q.grant_lease(2).await.unwrap();
    let b = q.grant_lease(5).await.unwrap();
    let ClaimOutcome::Claimed(c0) = q.claim("j1", &a, "a", 0).await.unwrap() else { panic!() };
    let ClaimOutcome::Claimed(c1) = q.claim("j1", &b, "b", 0).await.unwrap() else { panic!() };
    assert_ne!(c0.unit, c1.unit);
    let busy = q.claim("j1", &b, "b", 0).await.unwrap();
    let ClaimOutcome::Busy { revision } = busy else { panic!("{busy:?}") };
    assert!(q.complete("j1", c1, b"r1").await.unwrap());
    // a stops renewing its lease: the server expires it and deletes a's claim.
    drop(a);
    assert!(q.wait_change(Some("j1"), revision, Duration::from_secs(1)).await.unwrap());
    for _ in 0..20 {
        if q.claims("j1").await.unwrap().is_empty() {
            break;
        }
        let rev = q.revision().await.unwrap();
        q.wait_change(Some("j1"), rev, Duration::from_secs(1)).await.unwrap();
    }
    let ClaimOutcome::Claimed(again) = q.claim("j1", &b, "b", 0).await.unwrap() else { panic!() };
    assert_eq!(again.unit, c0.unit);
    assert!(again.token > c0.token);
    assert!(!q.complete("j1", c0, b"late").await.unwrap(), "the expired claim completed");
    assert!(q.complete("j1", again, b"r0").await.unwrap());
    assert!(q.complete("j1", again, b"r0").await.unwrap(), "a retried completion is ours");
    assert_eq!(q.claim("j1", &b, "b", 0).await.unwrap(), ClaimOutcome::AllDone);
    let done = q.done("j1").await.unwrap();
    assert_eq!(done.len(), 2);
    assert_eq!(done[c0.unit as usize].payload, b"r0");
    assert_eq!(done[c0.unit as usize].token, again.token);
    q.remove("j1").await.unwrap();
}
