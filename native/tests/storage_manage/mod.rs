//! Copy, compact and forget through the real storage servers the other tests use (S3 → Azure,
//! local → WebDAV, …; started by scripts/test-all.sh, see `support`), and through local
//! directories always: the copy restores like the source and verifies clean, the compacted
//! chain restores like the chain, and after forget the kept backup restores.

use std::sync::Arc;

use strata_core::verify::{layer_dirs, verify_chain};
use strata_core::{
    compact_in_collection, copy_collection, forget, open_locations, CompactOptions, CopyOptions, Executor, KeyRequest,
    Keyring, MemKv, RetentionPolicy, Timestamp,
};
use strata_native::{os_entropy, NativeOpener};

use crate::support::*;
use crate::{opener, rows, value, write, PASSPHRASE};

fn keyring() -> Keyring {
    Keyring::default().with_entropy(os_entropy())
}

/// A collection of two chains at `from` (encrypted), copied to `to` with a new passphrase;
/// compacted there; then forgotten down to the newest backup. Every restore equals the source.
async fn copy_compact_forget(from: &str, to: &str) {
    let opener: Arc<NativeOpener> = opener();
    let with = format!(" WITH encryption_passphrase = '{PASSPHRASE}'");
    let exec = Executor::new(Arc::new(MemKv::new()), opener.clone()).with_entropy(os_entropy());
    exec.execute("CREATE DATABASE bank").await.unwrap();
    exec.execute("CREATE TABLE bank.accounts").await.unwrap();
    write(&exec, "accounts", (0..200).map(|i| (format!("{i:05}"), value(i, 0)))).await;
    exec.execute(&format!("BACKUP DATABASE bank INTO '{from}'{with}")).await.unwrap();
    write(&exec, "accounts", (0..40).map(|i| (format!("{:05}", i * 5), value(i, 1)))).await;
    write(&exec, "accounts", (50..60).map(|i| (format!("{i:05}"), None))).await;
    exec.execute(&format!("BACKUP DATABASE bank INTO LATEST IN '{from}'{with}")).await.unwrap();
    write(&exec, "accounts", (200..230).map(|i| (format!("{i:05}"), value(i, 2)))).await;
    exec.execute(&format!("BACKUP DATABASE bank INTO LATEST IN '{from}'{with}")).await.unwrap();
    let expected = rows(&exec, "accounts").await;

    let src = open_locations(opener.as_ref(), &[from.to_string()]).unwrap();
    let dst = open_locations(opener.as_ref(), &[to.to_string()]).unwrap();
    let new = "a new passphrase for the copy";
    let options =
        CopyOptions { from: KeyRequest::new(Some(PASSPHRASE), &[]), to: Some(KeyRequest::new(Some(new), &[])) };
    let report = copy_collection(&src, &dst, &keyring(), options).await.unwrap();
    assert_eq!((report.chains, report.layers), (1, 3), "{from} -> {to}: {report:?}");
    let new_with = format!(" WITH encryption_passphrase = '{new}'");
    let target = Executor::new(Arc::new(MemKv::new()), opener.clone());
    target.execute(&format!("RESTORE DATABASE bank FROM LATEST IN '{to}'{new_with}")).await.unwrap();
    assert!(rows(&target, "accounts").await == expected, "{from} -> {to}: the copy restores differently");
    for full in strata_core::manage::forget::list_chains(dst.storage()).await.unwrap() {
        let dir = dst.subdir(&full.full);
        let report = verify_chain(&dir, &layer_dirs(&dir).await.unwrap(), None).await;
        assert!(report.problems.is_empty(), "{to}: {:?}", report.problems);
    }

    // Compact the copy's chain; the compacted backup restores the same rows.
    let keys = KeyRequest::new(Some(new), &[]);
    let (dir, _) = compact_in_collection(&dst, None, &keyring(), keys, &CompactOptions::default()).await.unwrap();
    let target = Executor::new(Arc::new(MemKv::new()), opener.clone());
    target.execute(&format!("RESTORE DATABASE bank FROM '/{dir}' IN '{to}'{new_with}")).await.unwrap();
    assert!(rows(&target, "accounts").await == expected, "{to}: the compacted chain restores differently");

    // Forget all but the newest backup (the compacted one).
    let policy = RetentionPolicy { keep_last: 1, ..RetentionPolicy::default() };
    let plan = forget(dst.storage(), &policy, Timestamp::MAX, true).await.unwrap();
    assert_eq!(plan.removed().count(), 3, "{to}: {plan:?}");
    assert_eq!(plan.kept().map(|e| e.dir.clone()).collect::<Vec<_>>(), vec![dir.clone()]);
    let target = Executor::new(Arc::new(MemKv::new()), opener.clone());
    target.execute(&format!("RESTORE DATABASE bank FROM '/{dir}' IN '{to}'{new_with}")).await.unwrap();
    assert!(rows(&target, "accounts").await == expected, "{to}: the kept backup restores differently");
    let after = forget(dst.storage(), &policy, Timestamp::MAX, false).await.unwrap();
    assert_eq!(after.entries.len(), 1, "{to}: {after:?}");
}

fn local(dir: &str) -> String {
    format!("nodelocal://1/{}", unique(dir))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_compact_forget_between_local_directories() {
    copy_compact_forget(&local("manage-src"), &local("manage-dst")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_s3_to_azure_then_compact_and_forget() {
    let (Some(endpoint), Some(azure)) = (s3_endpoint(), azure_server()) else { return };
    let from = s3_uri(&endpoint, S3_BUCKETS[1], &unique("manage-src"));
    copy_compact_forget(&from, &azure_uri(&azure, &unique("manage-dst"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_local_to_webdav_then_compact_and_forget() {
    let Some(url) = webdav_url() else { return };
    copy_compact_forget(&local("manage-src"), &webdav_uri(&url, &unique("manage-dst"))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_from_local_to_s3_then_compact_and_forget() {
    let Some(endpoint) = s3_endpoint() else { return };
    copy_compact_forget(&local("manage-src"), &s3_uri(&endpoint, S3_BUCKETS[1], &unique("manage-dst"))).await;
}
