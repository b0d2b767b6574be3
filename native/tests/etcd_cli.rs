//! The `strata` CLI on etcd stores (`--store etcd://HOST:PORT,…`) against real etcd clusters on
//! 127.0.0.1 (strata_etcd::testing): every command, and the round trip of keys other programs
//! wrote (`etcdctl put /registry/…`) through backups into a fresh cluster and another prefix.
//! Skipped with a message when `etcd` is not installed (failing under STRATA_REQUIRE_ETCD=1).

#[path = "support/mod.rs"]
mod support;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::OnceLock;

use strata_etcd::testing::{skip_without_etcd, EtcdCluster};

/// The 3-member source cluster the tests of this binary share (each under its own root).
fn source() -> &'static EtcdCluster {
    static CLUSTER: OnceLock<EtcdCluster> = OnceLock::new();
    CLUSTER.get_or_init(|| EtcdCluster::start_blocking(3).expect("start a 3-member etcd cluster"))
}

fn run(store: &str, root: &str, nodelocal: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_strata"));
    command.args(["--store", store, "--etcd-root", root, "--nodelocal"]).arg(nodelocal).args(args);
    for (k, v) in env {
        command.env(k, v);
    }
    command.env_remove("STRATA_STORE").output().expect("run strata")
}

/// Runs strata and returns its stdout, failing the test on a non-zero exit.
fn ok(store: &str, root: &str, nodelocal: &Path, args: &[&str]) -> String {
    let out = run(store, root, nodelocal, args, &[]);
    assert!(
        out.status.success(),
        "strata {args:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}

fn etcdctl(cluster: &EtcdCluster, args: &[&str]) -> String {
    let out = Command::new("etcdctl")
        .args(["--endpoints", &cluster.host_ports()])
        .args(args)
        .env("ETCDCTL_API", "3")
        .output()
        .expect("run etcdctl");
    assert!(out.status.success(), "etcdctl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8 output")
}

#[test]
fn every_command_works_on_an_etcd_store() {
    if skip_without_etcd("every_command_works_on_an_etcd_store") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (store, root, ext) = (source().store_uri(), "/cli-commands/", dir.path());
    let s = |args: &[&str]| ok(&store, root, ext, args);
    s(&["sql", "CREATE DATABASE shop"]);
    s(&["sql", "CREATE TABLE shop.items"]);
    s(&["put", "shop.items", "apple", "3"]);
    s(&["put", "shop.items", "pear", "5"]);
    let t = s(&["now"]).trim().to_string();
    s(&["delete", "shop.items", "apple"]);
    assert_eq!(s(&["scan", "shop.items"]), "pear\t5\n");
    assert_eq!(s(&["scan", "shop.items", "--as-of", &t]), "apple\t3\npear\t5\n");
    assert_eq!(s(&["get", "shop.items", "pear"]), "5\n");
    assert_eq!(s(&["get", "shop.items", "apple", "--as-of", &t]), "3\n");
    let missing = run(&store, root, ext, &["get", "shop.items", "apple"], &[]);
    assert!(!missing.status.success(), "get of a deleted key fails");
    assert!(String::from_utf8_lossy(&missing.stderr).contains("key not found"));
    s(&["workload", "init", "bank", "--rows", "300"]);
    assert_eq!(s(&["scan", "bank.accounts"]).lines().count(), 300, "accounts written in transactions of 100");
    let tables = s(&["sql", "SHOW TABLES"]);
    assert!(tables.contains("accounts") && tables.contains("items"), "{tables}");
    // The store's own rows are under its root, not elsewhere.
    assert!(etcdctl(source(), &["get", "--prefix", "/cli-commands/d/", "--keys-only"]).contains("/cli-commands/d/"));
}

#[test]
fn registry_keys_round_trip_through_backups_into_a_fresh_cluster_and_another_prefix() {
    if skip_without_etcd("registry_keys_round_trip_through_backups_into_a_fresh_cluster_and_another_prefix") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ext = dir.path();
    let (a, root) = (source().store_uri(), "/strata/");
    let collection = match std::env::var("STRATA_TEST_S3_ENDPOINT") {
        Ok(endpoint) if !endpoint.is_empty() => {
            support::s3_uri(&endpoint, support::S3_BUCKETS[0], &support::unique("etcd-registry"))
        }
        _ => "nodelocal://1/registry".to_string(),
    };
    let src = |args: &[&str]| ok(&a, root, ext, args);
    let put = |k: &str, v: &str| etcdctl(source(), &["put", k, v]);
    // Keys another program (a Kubernetes control plane) wrote before strata knew them.
    put("/registry/pods/default/web-1", r#"{"kind":"Pod","v":1}"#);
    put("/registry/pods/default/web-2", r#"{"kind":"Pod","v":2}"#);
    put("/registry/services/specs/default/kubernetes", r#"{"kind":"Service"}"#);
    put("/registryx/not-mapped", "x");
    assert!(src(&["map", "/registry/", "k8s.registry"]).contains("k8s.registry"));
    assert_eq!(src(&["scan", "k8s.registry"]).lines().count(), 3, "the existing keys are the table's rows");
    let t1 = src(&["now"]).trim().to_string();
    let at_t1 = etcdctl(source(), &["get", "--prefix", "/registry/"]);

    let with = "WITH revision_history, encryption_passphrase = 'etcd-secret'";
    src(&["sql", &format!("BACKUP DATABASE k8s INTO '{collection}' AS OF SYSTEM TIME {t1} {with}")]);
    put("/registry/pods/default/web-1", r#"{"kind":"Pod","v":11}"#);
    let t_mid = src(&["now"]).trim().to_string();
    let at_mid = etcdctl(source(), &["get", "--prefix", "/registry/"]);
    etcdctl(source(), &["del", "/registry/pods/default/web-2"]);
    put("/registry/pods/default/web-3", r#"{"kind":"Pod","v":3}"#);
    src(&["put", "k8s.registry", "pods/default/web-4", r#"{"kind":"Pod","v":4}"#]);
    let at_t2 = etcdctl(source(), &["get", "--prefix", "/registry/"]);
    src(&["sql", &format!("BACKUP DATABASE k8s INTO LATEST IN '{collection}' {with}")]);
    assert_eq!(
        src(&["scan", "k8s.registry", "--as-of", &t1]),
        "pods/default/web-1\t{\"kind\":\"Pod\",\"v\":1}\npods/default/web-2\t{\"kind\":\"Pod\",\"v\":2}\n\
         services/specs/default/kubernetes\t{\"kind\":\"Service\"}\n",
        "AS OF SYSTEM TIME on the source"
    );
    // A relative time maps through the clock ticks: a millisecond ago is after the last write
    // (a BACKUP ran since).
    assert_eq!(src(&["scan", "k8s.registry", "--as-of=-1ms"]), src(&["scan", "k8s.registry"]));

    // A fresh cluster: the restored keys are exactly the source's at the backup's time.
    let fresh = EtcdCluster::start_blocking(1).expect("start a fresh etcd cluster");
    let b = fresh.store_uri();
    let dst = |args: &[&str]| ok(&b, root, ext, args);
    let from = format!("FROM LATEST IN '{collection}'");
    let key = "encryption_passphrase = 'etcd-secret'";
    dst(&["map", "/registry/", "k8s.registry", "--for-restore"]);
    dst(&["sql", &format!("RESTORE DATABASE k8s {from} WITH {key}")]);
    assert_eq!(etcdctl(&fresh, &["get", "--prefix", "/registry/"]), at_t2, "the fresh cluster's /registry/");
    assert_eq!(dst(&["scan", "k8s.registry"]), src(&["scan", "k8s.registry"]));

    // Into other prefixes, at earlier times (revision history inside the chain).
    let renamed = |text: &str, prefix: &str| text.replace("/registry/", prefix);
    for (db, prefix, at, expected) in
        [("at_t1", "/restored/t1/", &t1, &at_t1), ("at_mid", "/restored/mid/", &t_mid, &at_mid)]
    {
        dst(&["map", prefix, &format!("{db}.registry"), "--for-restore"]);
        let statement = format!("RESTORE DATABASE k8s {from} AS OF SYSTEM TIME {at} WITH {key}, new_db_name = '{db}'");
        dst(&["sql", &statement]);
        assert_eq!(etcdctl(&fresh, &["get", "--prefix", prefix]), renamed(expected, prefix), "{prefix}");
    }

    // A restore killed after copying rows, before its publish: strata shows nothing of it, and
    // the retried restore starts clean and ends with exactly the source's keys.
    dst(&["map", "/killed/", "killed.registry", "--for-restore"]);
    let statement = format!("RESTORE DATABASE k8s {from} WITH {key}, new_db_name = 'killed'");
    let killed = run(&b, root, ext, &["sql", &statement], &[("STRATA_ETCD_FAILPOINT", "abort-before-publish")]);
    assert!(!killed.status.success(), "the restore was killed");
    assert!(String::from_utf8_lossy(&killed.stderr).contains("abort-before-publish"));
    assert!(!dst(&["sql", "SHOW DATABASES"]).contains("killed"), "a killed restore publishes nothing");
    assert_eq!(
        etcdctl(&fresh, &["get", "--prefix", "/killed/"]),
        renamed(&at_t2, "/killed/"),
        "the copy before the switch is visible to etcdctl (the documented window)"
    );
    dst(&["sql", &statement]);
    assert_eq!(etcdctl(&fresh, &["get", "--prefix", "/killed/"]), renamed(&at_t2, "/killed/"));
    assert!(dst(&["sql", "SHOW DATABASES"]).contains("killed"));
    assert_eq!(etcdctl(source(), &["get", "--prefix", "/registryx/"]), "/registryx/not-mapped\nx\n");
}
