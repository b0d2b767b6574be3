//! Tests of copying, compacting and forgetting backups (issue 15 §2–§4), against the memory
//! storage, with seeded random histories and collections, and injected storage faults.
//!
//! Seeded and reproducible: `STRATA_SEED=<n>` replays one seed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use futures::executor::block_on;
use strata_core::conformance::faults::{Call, Hook, Hooked};
use strata_core::verify::{layer_dirs, verify_chain};
use strata_core::{
    apply_forget, compact_in_collection, copy_collection, forget_plan, CompactOptions, CopyOptions, Error, Executor,
    ExternalStorage, ExternalStorageExt, KdfParams, KeyRequest, Keyring, KvSource, Locations, MemKv, MemoryOpener,
    RetentionPolicy, Status, StorageOpener, Timestamp,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

use crate::common::{self, Rng};

const TABLES: [&str; 3] = ["t0", "t1", "t2"];
const HOUR: u64 = 3_600_000_000_000;

fn seeds(default: usize) -> Vec<u64> {
    match std::env::var("STRATA_SEED").ok().and_then(|s| s.parse().ok()) {
        Some(seed) => vec![seed],
        None => (1..=default as u64).map(|i| 0xc0_4ac7_0000 + i).collect(),
    }
}

/// A store, an executor and a clock the test moves.
struct World {
    rng: Rng,
    clock: Arc<AtomicU64>,
    source: MemKv,
    opener: MemoryOpener,
    exec: Executor,
}

fn keyring() -> Keyring {
    // Deterministic "randomness", never repeating within a run: SHA-256 of a counter.
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let entropy = strata_core::Entropy::new(|buf| {
        for chunk in buf.chunks_mut(32) {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            chunk.copy_from_slice(&strata_core::manifest::sha256(&n.to_le_bytes())[..chunk.len()]);
        }
        Ok(())
    });
    Keyring::default().with_kdf_params(KdfParams::argon2id(256, 1, 1).unwrap()).with_entropy(entropy)
}

impl World {
    fn new(seed: u64) -> World {
        // 2026-01-05 00:00 UTC, a Monday.
        let clock = Arc::new(AtomicU64::new(1_767_571_200_000_000_000));
        let c = clock.clone();
        let source = MemKv::with_clock(Arc::new(move || c.load(Ordering::SeqCst)));
        let opener = MemoryOpener::default();
        let exec = Executor::new(Arc::new(source.clone()), Arc::new(opener.clone())).with_keyring(keyring());
        World { rng: Rng(seed), clock, source, opener, exec }
    }

    fn advance(&self, nanos: u64) {
        self.clock.fetch_add(nanos, Ordering::SeqCst);
    }

    async fn sql(&self, s: &str) -> strata_core::QueryResult {
        self.exec.execute(s).await.unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    /// A random change: writes and deletes, or a table created or dropped.
    async fn change(&mut self) {
        let gap = 1 + self.rng.below(600_000_000_000);
        self.advance(gap);
        let table = *self.rng.pick(&TABLES);
        match self.rng.below(10) {
            0 => drop(self.exec.execute(&format!("CREATE TABLE IF NOT EXISTS d.{table}")).await),
            1 => drop(self.exec.execute(&format!("DROP TABLE IF EXISTS d.{table}")).await),
            _ => {
                let now = self.source.now_ts().await;
                let catalog = self.source.catalog_at(now).await.unwrap();
                let Some(t) = catalog.table("d", table) else { return };
                let id = t.id;
                let batch = (0..1 + self.rng.below(5))
                    .map(|_| {
                        let key = strata_core::keys::table_key(id, format!("k{}", self.rng.below(20)).as_bytes());
                        let value = (!self.rng.chance(25)).then(|| format!("v{}", self.rng.below(1000)).into_bytes());
                        (key, value)
                    })
                    .collect();
                self.source.write_sync(batch);
            }
        }
    }

    fn root(&self, uri: &str) -> Locations {
        Locations::single(self.opener.open(uri).unwrap())
    }

    /// `db.table -> rows` restored from `from` (a RESTORE source) as of `t`, in a fresh store.
    async fn restored(&self, from: &str, t: Timestamp, with: &str) -> Result<BTreeMap<String, common::Rows>, Error> {
        let target = MemKv::new();
        let texec = Executor::new(Arc::new(target.clone()), Arc::new(self.opener.clone())).with_keyring(keyring());
        texec.execute(&format!("RESTORE FROM {from} AS OF SYSTEM TIME {t}{with}")).await?;
        let now = target.now_ts().await;
        let catalog = target.catalog_at(now).await.unwrap();
        Ok(common::logical_view(&target, &catalog, now, |_, _| true))
    }
}

trait NowTs {
    async fn now_ts(&self) -> Timestamp;
}
impl NowTs for MemKv {
    async fn now_ts(&self) -> Timestamp {
        strata_core::KvSource::now(self).await.unwrap()
    }
}

/// Fails the `n`-th call of the kinds `calls` (counting from 1), once.
struct FailNth {
    n: usize,
    seen: AtomicUsize,
    calls: fn(Call) -> bool,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait::async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait::async_trait(?Send))]
impl Hook for FailNth {
    async fn before(&self, call: Call, path: &str) -> strata_core::Result<()> {
        if (self.calls)(call) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.n {
            return Err(Error::Storage { path: path.into(), message: "injected".into(), status: Status::Temporary });
        }
        Ok(())
    }
}

fn hooked(storage: Arc<dyn ExternalStorage>, n: usize, calls: fn(Call) -> bool) -> Arc<dyn ExternalStorage> {
    Arc::new(Hooked { inner: storage, hook: Arc::new(FailNth { n, seen: AtomicUsize::new(0), calls }) })
}

// ---------------------------------------------------------------------------------------------
// §3 compaction

async fn compaction_seed(seed: u64) -> usize {
    let mut w = World::new(seed);
    w.sql("CREATE DATABASE d").await;
    w.sql("CREATE TABLE d.t0").await;
    let history = w.rng.chance(50);
    let with = if history { " WITH revision_history" } else { "" };
    let mut times = Vec::new();
    for _ in 0..w.rng.below(15) {
        w.change().await;
    }
    w.advance(HOUR);
    w.sql(&format!("BACKUP INTO 'memory://c'{with}")).await;
    let mut ends = Vec::new();
    for _ in 0..1 + w.rng.below(5) {
        for _ in 0..w.rng.below(12) {
            w.change().await;
            times.push(w.source.now_ts().await);
        }
        w.advance(HOUR);
        let r = w.sql(&format!("BACKUP INTO LATEST IN 'memory://c'{with}")).await;
        ends.push(r.get(0, "end_time").unwrap().to_string().parse::<Timestamp>().unwrap());
    }
    let end = *ends.last().unwrap();
    let keep_history = history && w.rng.chance(70);
    let options =
        CompactOptions { keep_history, target_file_size: 1 + w.rng.below(600) as usize, ..Default::default() };
    let root = w.root("memory://c");
    let (dir, manifest) =
        compact_in_collection(&root, None, &keyring(), KeyRequest::default(), &options).await.unwrap();
    assert!(manifest.is_full() && manifest.end_time == end && manifest.dependencies.is_empty());
    let mut checks = 0;
    let mut at = vec![end];
    if keep_history {
        at.extend(times.iter().copied().filter(|t| *t <= end).take(4));
    }
    for t in at {
        let chain = w.restored("LATEST IN 'memory://c'", t, "").await.unwrap();
        let compacted = w.restored(&format!("'/{dir}' IN 'memory://c'"), t, "").await.unwrap();
        assert_eq!(compacted, chain, "seed {seed}: compacted /{dir} differs from its chain at {t}");
        checks += 1;
    }
    if !keep_history && history {
        let inside = times.iter().copied().find(|t| *t < end && !ends.contains(t));
        if let Some(t) = inside {
            assert!(w.restored(&format!("'/{dir}' IN 'memory://c'"), t, "").await.is_err());
        }
    }
    let compacted = root.subdir(&dir);
    let report = verify_chain(&compacted, &layer_dirs(&compacted).await.unwrap(), None).await;
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    checks
}

#[test]
fn a_compacted_chain_restores_like_the_chain() {
    let (mut checks, seeds) = (0, seeds(24));
    let runs = seeds.len();
    for seed in seeds {
        println!("compaction: seed {seed} (replay with STRATA_SEED={seed})");
        checks += block_on(compaction_seed(seed));
    }
    assert!(checks >= runs, "{checks} checks in {runs} runs");
}

#[test]
fn compaction_of_an_encrypted_chain_keeps_its_key() {
    block_on(async {
        let mut w = World::new(7);
        w.sql("CREATE DATABASE d").await;
        w.sql("CREATE TABLE d.t0").await;
        let with = " WITH encryption_passphrase = 'pw'";
        w.sql(&format!("BACKUP INTO 'memory://e'{with}")).await;
        for _ in 0..6 {
            w.change().await;
        }
        w.advance(HOUR);
        w.sql(&format!("BACKUP INTO LATEST IN 'memory://e'{with}")).await;
        let end = w.source.now_ts().await;
        let root = w.root("memory://e");
        let options = CompactOptions { keep_history: false, ..Default::default() };
        let keys = KeyRequest::new(Some("pw"), &[]);
        let (dir, m) = compact_in_collection(&root, None, &keyring(), keys, &options).await.unwrap();
        let t = m.end_time;
        assert!(t <= end);
        let a = w.restored("LATEST IN 'memory://e'", t, with).await.unwrap();
        let b = w.restored(&format!("'/{dir}' IN 'memory://e'"), t, with).await.unwrap();
        assert_eq!(a, b);
        assert!(w.restored(&format!("'/{dir}' IN 'memory://e'"), t, "").await.is_err(), "needs the key");
    });
}

// ---------------------------------------------------------------------------------------------
// §2 copy

#[test]
fn a_copy_restores_identically_and_an_interrupted_copy_resumes() {
    block_on(async {
        for seed in seeds(4) {
            let mut w = World::new(seed);
            w.sql("CREATE DATABASE d").await;
            w.sql("CREATE TABLE d.t0").await;
            let encrypted = seed % 2 == 0;
            let with = if encrypted { " WITH encryption_passphrase = 'old'" } else { "" };
            for full in 0..2 {
                for _ in 0..8 {
                    w.change().await;
                }
                w.advance(HOUR);
                let into = if full == 0 { "INTO 'memory://src'" } else { "INTO LATEST IN 'memory://src'" };
                w.sql(&format!("BACKUP {into}{with}")).await;
                w.advance(2 * HOUR);
                w.sql(&format!("BACKUP INTO 'memory://src'{with}")).await;
            }
            let end = w.source.now_ts().await;
            let _ = end;
            let src = w.root("memory://src");
            let old = if encrypted { KeyRequest::new(Some("old"), &[]) } else { KeyRequest::default() };
            let new = KeyRequest::new(Some("new"), &[]);
            // Re-encrypted on odd runs of the loop below, copied as stored otherwise.
            for reencrypt in [false, true] {
                let uri = format!("memory://dst{seed}{reencrypt}");
                let options = CopyOptions {
                    from: if reencrypt { old } else { KeyRequest::default() },
                    to: reencrypt.then_some(new),
                };
                // Fail the n-th write or read of the destination, for growing n, until it finishes.
                let mut n = 1;
                let report = loop {
                    let dst = Locations::single(hooked(w.opener.open(&uri).unwrap(), n, |c| {
                        matches!(c, Call::Put | Call::PutIfAbsent | Call::Get | Call::Size)
                    }));
                    match copy_collection(&src, &dst, &keyring(), options).await {
                        Ok(r) => break r,
                        Err(Error::Storage { .. }) => {
                            // A half copy: whatever is a backup there restores (and verifies).
                            let partial = w.root(&uri);
                            for full in strata_core_full_backups(&partial).await {
                                let dir = partial.subdir(&full);
                                let report = verify_chain(&dir, &layer_dirs(&dir).await.unwrap(), None).await;
                                let finished: Vec<_> =
                                    report.problems.iter().filter(|p| !p.path.contains("/incrementals/")).collect();
                                assert!(finished.is_empty(), "seed {seed}: half copy /{full}: {finished:?}");
                                let with_dst = if reencrypt { " WITH encryption_passphrase = 'new'" } else { with };
                                let from = format!("'/{full}' IN '{uri}'");
                                let end = chain_end(&w, &from, with_dst).await;
                                w.restored(&from, end, with_dst).await.unwrap();
                            }
                            n += 1 + w.rng.below(3) as usize;
                        }
                        Err(e) => panic!("seed {seed}: copy failed: {e}"),
                    }
                };
                assert!(report.chains >= 2 && n > 3, "{report:?} after {n}");
                let with_new = if reencrypt { " WITH encryption_passphrase = 'new'" } else { with };
                let dst = w.root(&uri);
                for full in strata_core_full_backups(&src).await {
                    let from_src = format!("'/{full}' IN 'memory://src'");
                    let from_dst = format!("'/{full}' IN '{uri}'");
                    let t = w
                        .exec
                        .execute(&format!("SHOW BACKUP FROM {from_src}{with}"))
                        .await
                        .map(|r| r.rows.len())
                        .unwrap_or(0);
                    let _ = t;
                    let chain_end = chain_end(&w, &from_src, with).await;
                    let a = w.restored(&from_src, chain_end, with).await.unwrap();
                    let b = w.restored(&from_dst, chain_end, with_new).await.unwrap();
                    assert_eq!(a, b, "seed {seed}: copy of /{full} differs");
                    let dir = dst.subdir(&full);
                    let report = verify_chain(&dir, &layer_dirs(&dir).await.unwrap(), None).await;
                    assert!(report.problems.is_empty(), "{:?}", report.problems);
                }
                if reencrypt {
                    let full = strata_core_full_backups(&src).await.remove(0);
                    let err = w
                        .restored(
                            &format!("'/{full}' IN '{uri}'"),
                            Timestamp::MAX,
                            " WITH encryption_passphrase = 'old'",
                        )
                        .await;
                    assert!(err.is_err(), "the copy opens with its new key only");
                }
            }
        }
    });
}

#[test]
fn a_copy_into_a_place_with_another_backup_is_refused() {
    block_on(async {
        let mut w = World::new(3);
        w.sql("CREATE DATABASE d").await;
        w.sql("CREATE TABLE d.t0").await;
        w.sql("BACKUP TO 'memory://one'").await;
        w.change().await;
        w.advance(HOUR);
        w.sql("BACKUP TO 'memory://two'").await;
        let (one, two) = (w.root("memory://one"), w.root("memory://two"));
        let before = two.storage().list("").await.unwrap();
        let err = strata_core::copy_chain(&one, &two, &keyring(), CopyOptions::default()).await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
        assert_eq!(two.storage().list("").await.unwrap(), before, "nothing written");
    });
}

async fn strata_core_full_backups(root: &Locations) -> Vec<String> {
    let suffix = "/BACKUP_MANIFEST";
    let mut out: Vec<String> = root
        .storage()
        .list("")
        .await
        .unwrap()
        .iter()
        .filter_map(|o| o.path.strip_suffix(suffix))
        .filter(|d| strata_core::is_dated_subdir(d))
        .map(str::to_string)
        .collect();
    out.sort();
    out
}

/// The end time of the newest layer of a chain (from `SHOW BACKUP`).
async fn chain_end(w: &World, from: &str, with: &str) -> Timestamp {
    let r = w.sql(&format!("SHOW BACKUP FROM {from}{with}")).await;
    let col = r.columns.iter().position(|c| c == "end_time_decimal").expect("SHOW BACKUP has end_time_decimal");
    r.rows
        .iter()
        .filter_map(|row| row[col].to_string().parse::<Timestamp>().ok())
        .max()
        .expect("a layer has an end time")
}

// ---------------------------------------------------------------------------------------------
// §4 forget

/// The backups a policy keeps by itself, computed independently: per rule, group the backups by
/// period, take each period's newest, and keep the newest `n` periods.
fn expected_by_policy(all: &[(String, Timestamp)], p: &RetentionPolicy, now: Timestamp) -> Vec<String> {
    let mut keep = Vec::new();
    let mut sorted = all.to_vec();
    sorted.sort_by_key(|b| std::cmp::Reverse(b.1));
    keep.extend(sorted.iter().take(p.keep_last).map(|b| b.0.clone()));
    let day = 24 * HOUR;
    type Period = Box<dyn Fn(Timestamp) -> i64>;
    let rules: [(usize, Period); 5] = [
        (p.keep_hourly, Box::new(|t: Timestamp| (t.wall / HOUR) as i64)),
        (p.keep_daily, Box::new(move |t: Timestamp| (t.wall / day) as i64)),
        (p.keep_weekly, Box::new(move |t: Timestamp| ((t.wall / day) as i64 + 3) / 7)),
        (
            p.keep_monthly,
            Box::new(|t: Timestamp| {
                let c = t.civil();
                c.year * 12 + c.month as i64
            }),
        ),
        (p.keep_yearly, Box::new(|t: Timestamp| t.civil().year)),
    ];
    for (n, key) in rules.iter() {
        let mut newest: BTreeMap<i64, &(String, Timestamp)> = BTreeMap::new();
        for b in &sorted {
            newest.entry(key(b.1)).or_insert(b);
        }
        keep.extend(newest.values().rev().take(*n).map(|b| b.0.clone()));
    }
    if let Some(within) = p.keep_within {
        keep.extend(all.iter().filter(|b| b.1.wall + within >= now.wall).map(|b| b.0.clone()));
    }
    keep
}

async fn forget_seed(seed: u64) -> usize {
    let mut w = World::new(seed);
    w.sql("CREATE DATABASE d").await;
    w.sql("CREATE TABLE d.t0").await;
    // A collection: full backups and incrementals, hours to weeks apart.
    let mut all: Vec<(String, Timestamp)> = Vec::new();
    let mut chains: Vec<Vec<String>> = Vec::new();
    for i in 0..3 + w.rng.below(12) {
        w.change().await;
        let gap = HOUR / 2 + w.rng.below(10 * 24) * HOUR / 2;
        w.advance(gap);
        let full = i == 0 || w.rng.chance(35);
        let r = if full {
            w.sql("BACKUP INTO 'memory://f'").await
        } else {
            w.sql("BACKUP INTO LATEST IN 'memory://f'").await
        };
        let end: Timestamp = r.get(0, "end_time").unwrap().to_string().parse().unwrap();
        let path = r.get(0, "path").unwrap().to_string();
        let _ = path;
        let dir = if full {
            strata_core::dated_subdir(end)
        } else {
            format!("{}/{}", chains.last().unwrap()[0], strata_core::layer_dir(end))
        };
        if full {
            chains.push(vec![dir.clone()]);
        } else {
            chains.last_mut().unwrap().push(dir.clone());
        }
        all.push((dir, end));
    }
    let now = Timestamp::from_nanos(w.clock.load(Ordering::SeqCst) + w.rng.below(48) * HOUR);
    let mut policy = RetentionPolicy::default();
    // At least one count (keep_within alone may keep nothing: tested below).
    while (RetentionPolicy { keep_within: None, ..policy }).is_empty() {
        policy = RetentionPolicy {
            keep_last: w.rng.below(3) as usize,
            keep_hourly: w.rng.below(3) as usize,
            keep_daily: w.rng.below(4) as usize,
            keep_weekly: w.rng.below(3) as usize,
            keep_monthly: w.rng.below(2) as usize,
            keep_yearly: 0,
            keep_within: w.rng.chance(20).then(|| w.rng.below(72) * HOUR),
        };
    }
    if w.rng.chance(10) {
        // Only keep_within, and nothing that young: refused, nothing removed.
        policy = RetentionPolicy { keep_within: Some(HOUR), ..RetentionPolicy::default() };
        let now = Timestamp::from_nanos(all.last().unwrap().1.wall + 2 * HOUR);
        let err = forget_plan(w.root("memory://f").storage(), &policy, now).await.unwrap_err();
        assert!(err.to_string().contains("keeps none"), "{err}");
        return 1;
    }
    let root = w.root("memory://f");
    let plan = forget_plan(root.storage(), &policy, now).await.unwrap();
    assert_eq!(plan.entries.len(), all.len(), "seed {seed}: every backup is in the plan");
    // What the policy keeps is kept; a kept layer keeps its predecessors; a removed one is
    // needed by nothing kept.
    for dir in expected_by_policy(&all, &policy, now) {
        assert!(plan.entries.iter().any(|e| e.dir == dir && e.kept()), "seed {seed}: {dir} must be kept by {policy:?}");
    }
    for chain in &chains {
        let kept: Vec<bool> = chain.iter().map(|d| plan.entries.iter().find(|e| &e.dir == d).unwrap().kept()).collect();
        let last = kept.iter().rposition(|k| *k);
        for (i, k) in kept.iter().enumerate() {
            assert_eq!(*k, last.is_some_and(|l| i <= l), "seed {seed}: chain {chain:?} kept {kept:?}");
        }
    }
    assert!(plan.entries.iter().any(|e| e.kept()));
    // Prune, failing at some delete; every kept backup stays restorable; then finish.
    let deletes = w.rng.below(8) as usize + 1;
    let faulty = Locations::single(hooked(root.storage().clone(), deletes, |c| c == Call::Delete));
    let interrupted = apply_forget(faulty.storage(), &plan).await.is_err();
    let mut checks = check_kept(&w, &plan, &chains, &all).await;
    if interrupted {
        let again = forget_plan(root.storage(), &policy, now).await.unwrap();
        apply_forget(root.storage(), &again).await.unwrap();
        checks += check_kept(&w, &plan, &chains, &all).await;
    }
    // Nothing of a removed backup is left, and no leftovers.
    let listed = root.storage().list("").await.unwrap();
    for e in plan.removed() {
        assert!(
            !listed.iter().any(|o| o.path.starts_with(&format!("{}/", e.dir))
                && !plan.kept().any(|k| k.dir.len() > e.dir.len() && o.path.starts_with(&format!("{}/", k.dir)))),
            "seed {seed}: files of removed {} are left",
            e.dir
        );
    }
    let after = forget_plan(root.storage(), &policy, now).await.unwrap();
    assert!(after.leftovers.is_empty(), "{:?}", after.leftovers);
    assert_eq!(after.entries.len(), plan.kept().count());
    checks
}

/// Restores every kept backup at its end time and verifies its chain.
async fn check_kept(
    w: &World,
    plan: &strata_core::ForgetPlan,
    chains: &[Vec<String>],
    all: &[(String, Timestamp)],
) -> usize {
    let root = w.root("memory://f");
    let mut n = 0;
    for e in plan.kept() {
        let full = chains.iter().find(|c| c.contains(&e.dir)).unwrap()[0].clone();
        // The exact end time (a full backup's directory name has it to the hundredth).
        let end = all.iter().find(|b| b.0 == e.dir).unwrap().1;
        let restored = w.restored(&format!("'/{full}' IN 'memory://f'"), end, "").await;
        assert!(restored.is_ok(), "kept {} does not restore: {:?}", e.dir, restored.err());
        let dir = root.subdir(&full);
        let report = verify_chain(&dir, &layer_dirs(&dir).await.unwrap(), None).await;
        let problems: Vec<_> = report
            .problems
            .iter()
            .filter(|p| !plan.removed().any(|r| p.path.contains(&format!("{}/", r.dir))))
            .collect();
        assert!(problems.is_empty(), "{problems:?}");
        n += 1;
    }
    n
}

#[test]
fn forget_keeps_what_the_policy_needs_and_every_kept_backup_restores() {
    let (mut checks, seeds) = (0, seeds(24));
    let runs = seeds.len();
    for seed in seeds {
        println!("forget: seed {seed} (replay with STRATA_SEED={seed})");
        checks += block_on(forget_seed(seed));
    }
    assert!(checks >= runs, "{checks} checks in {runs} runs");
}

#[test]
fn forget_refuses_an_empty_policy() {
    let err = strata_core::plan_forget(&[], &RetentionPolicy::default(), Timestamp::ZERO).unwrap_err();
    assert!(err.to_string().contains("no policy"), "{err}");
}

#[test]
fn forget_leaves_a_starting_backup_alone_and_removes_older_leftovers() {
    block_on(async {
        let w = World::new(5);
        w.sql("CREATE DATABASE d").await;
        w.sql("BACKUP INTO 'memory://l'").await;
        w.advance(HOUR);
        w.sql("BACKUP INTO 'memory://l'").await;
        let root = w.root("memory://l");
        let storage = root.storage();
        let raw = storage.as_ref();
        // A full backup starting now has written its ENCRYPTION-INFO, not yet its plan; an older
        // directory without a manifest is what an interrupted forget leaves.
        raw.put("2099/01/01-000000.00/ENCRYPTION-INFO", "x".into()).await.unwrap();
        raw.put("2000/01/01-000000.00/data/x.sst", "x".into()).await.unwrap();
        let plan = forget_plan(storage, &RetentionPolicy { keep_last: 2, ..Default::default() }, Timestamp::MAX)
            .await
            .unwrap();
        assert_eq!(plan.leftovers, vec!["2000/01/01-000000.00".to_string()]);
        apply_forget(storage, &plan).await.unwrap();
        assert!(raw.size("2099/01/01-000000.00/ENCRYPTION-INFO").await.is_ok());
        assert!(raw.size("2000/01/01-000000.00/data/x.sst").await.is_err());
        assert_eq!(
            strata_core::manage::forget::time_of_dir("incrementals/2026/11/23-101500.123456789-2"),
            Some(Timestamp::new(1_795_428_900_123_456_789, 2))
        );
    });
}
