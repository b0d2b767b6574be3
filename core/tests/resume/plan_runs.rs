//! Backup plans as data and the runs that execute them, driven directly (no executor): a plan's
//! id hashes its content only; a run refuses a plan made for another key; a directory holding
//! another plan's run is cleaned (in every location) before the new run writes; two runs in
//! one directory never leave a committed backup without its files; a restore plan naming layers
//! the chain does not have fails cleanly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{Call, Hook, Hooked};
use async_trait::async_trait;
use futures::channel::oneshot;
use futures::executor::block_on;
use futures::FutureExt;
use strata_core::sql::{RestoreStmtOptions, Targets};
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, plan_full_backup, prepare_restore, read_run, run_backup, run_restore, split_units, BackupOptions, BackupPlan,
    Catalog, Chain, DataKey, Error, Executor, ExternalStorage, FileCodec, KeyRequest, Keyring, KvSink, KvSource,
    Locations, MemKv, MemoryOpener, MemoryStorage, PlannedUnit, RestoreRunOptions, Result, Status, Timestamp, WorkUnit,
    MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// A hook on puts whose path contains `pattern`: the `at`-th such put waits until its gate
/// opens (forever without one), then fails if `fail` is set.
struct Gate {
    pattern: &'static str,
    at: usize,
    seen: AtomicUsize,
    open: Mutex<Option<oneshot::Receiver<()>>>,
    fail: bool,
}

impl Gate {
    fn new(pattern: &'static str, at: usize, fail: bool) -> (Arc<Gate>, oneshot::Sender<()>) {
        let (tx, rx) = oneshot::channel();
        let gate = Gate { pattern, at, seen: AtomicUsize::new(0), open: Mutex::new(Some(rx)), fail };
        (Arc::new(gate), tx)
    }
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Gate {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        let put = matches!(call, Call::Put | Call::PutIfAbsent);
        if put && path.contains(self.pattern) && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let rx = self.open.lock().unwrap().take();
            match rx {
                Some(rx) => {
                    let _ = rx.await;
                }
                None => futures::future::pending::<()>().await,
            }
            if self.fail {
                return Err(Error::Storage {
                    path: path.into(),
                    message: "injected fault".into(),
                    status: Status::Temporary,
                });
            }
        }
        Ok(())
    }
}

fn hooked(inner: &MemoryStorage, hook: Arc<Gate>) -> Arc<dyn ExternalStorage> {
    Arc::new(Hooked { inner: Arc::new(inner.clone()), hook })
}

/// A source with database `d` and tables `a`, `b` of 300 rows each.
fn source() -> MemKv {
    let kv = MemKv::new();
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()));
    block_on(async {
        exec.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = exec.table_id("d", t, None).await.unwrap();
            let rows = (0..300u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 100]))).collect();
            kv.write_sync(rows);
        }
    });
    kv
}

/// The plan of a backup of `d` as of now (its units as the source cuts them).
fn plan_now(kv: &MemKv) -> BackupPlan {
    block_on(async {
        let end = kv.now().await.unwrap();
        let catalog = kv.catalog_at(end).await.unwrap();
        let targets = Targets::Databases(vec!["d".into()]);
        let plan = plan_full_backup(&catalog, &targets, end, "BACKUP DATABASE d INTO 'x'".into()).unwrap();
        split_units(kv, plan).await.unwrap()
    })
}

fn small_files() -> BackupOptions {
    BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024).with_concurrency(1)
}

fn paths(storage: &dyn ExternalStorage, prefix: &str) -> Vec<String> {
    block_on(storage.list(prefix)).unwrap().into_iter().map(|o| o.path).collect()
}

/// Restores `d` from the backup in `dir` into a new store; its tables' row counts.
fn restored_rows(dir: &Locations) -> Vec<usize> {
    block_on(async {
        let chain = Chain::open_dir(dir, &Keyring::default(), KeyRequest::default()).await.unwrap();
        let target = MemKv::new();
        let targets = Targets::Databases(vec!["d".into()]);
        let selection =
            prepare_restore(&chain, None, &Catalog::default(), &targets, &RestoreStmtOptions::default()).unwrap();
        let first = target.allocate_ids(selection.ids_needed()).await.unwrap();
        let plan = selection.plan(first).unwrap();
        run_restore(&target, &chain, &plan, &RestoreRunOptions::default()).await.unwrap();
        let now = target.now().await.unwrap();
        plan.tables.iter().map(|t| target.view_at(&t.descriptor.span(), now).len()).collect()
    })
}

/// A fixed small plan: the whole (empty) cluster as of a fixed time, cut into one unit with a
/// locality, encrypted with a fixed key check.
fn fixed_plan() -> BackupPlan {
    let end = Timestamp::new(1_795_000_000_000_000_000, 3);
    let plan =
        plan_full_backup(&Catalog::default(), &Targets::Cluster, end, "BACKUP INTO 'nodelocal://1/c'".into()).unwrap();
    let unit = WorkUnit { span: plan.tasks[0].span.clone(), locality: Some("region=us-west".into()) };
    plan.with_units(vec![PlannedUnit { task: 0, unit }]).with_key_check(Some([7; 16]))
}

#[test]
fn a_plan_id_hashes_its_content_only() {
    let plan = fixed_plan();
    assert!(plan.is_intact());
    // Committed once: a change here means every unfinished run's plan changes identity (and its
    // data file names) across an upgrade. Never update it to make the test pass by accident.
    assert_eq!(plan.id, "eb82b50a8c3478b21c41bc44233f1702ae94a1a005e9817a1ef7b2662e2a9649");

    // The statement (printed SQL) and the request are not part of the identity.
    let mut renamed = plan.clone();
    renamed.statement = "BACKUP INTO 'nodelocal://1/c' WITH detached".into();
    renamed.request = "another request".into();
    assert_eq!(renamed.content_id(), plan.id);
    assert!(renamed.is_intact());

    // Everything the run does is.
    let changed: Vec<(&str, BackupPlan)> = vec![
        ("units", plan.clone().with_units(vec![])),
        ("key check", plan.clone().with_key_check(None)),
        ("key check value", plan.clone().with_key_check(Some([8; 16]))),
        ("end time", {
            let mut p = plan.clone();
            p.end_time = Timestamp::new(1_795_000_000_000_000_001, 0);
            p
        }),
        ("task", {
            let mut p = plan.clone();
            p.tasks[0].drop_tombstones = !p.tasks[0].drop_tombstones;
            p
        }),
        ("unit locality", {
            let mut p = plan.clone();
            p.units[0].unit.locality = None;
            p
        }),
        ("dependencies", {
            let mut p = plan.clone();
            p.dependencies.push("memory://full".into());
            p
        }),
    ];
    for (what, p) in changed {
        assert_ne!(p.content_id(), plan.id, "changing the {what} changes the id");
    }

    // A tampered plan (content changed, id kept) is not intact, and no run accepts it.
    let mut tampered = plan.clone();
    tampered.end_time = Timestamp::new(1, 0);
    assert!(!tampered.is_intact());
    let tampered = tampered.with_key_check(None);
    let mut tampered = tampered.clone();
    tampered.tasks[0].end = Timestamp::new(2, 0);
    let dir = Locations::single(Arc::new(MemoryStorage::new("t")));
    let err = block_on(run_backup(&MemKv::new(), &dir, &tampered, &BackupOptions::default())).unwrap_err();
    assert!(err.to_string().contains("does not match its content"), "{err}");
    assert!(paths(dir.storage().as_ref(), "").is_empty(), "a refused plan writes nothing");
}

#[test]
fn a_run_refuses_a_plan_made_for_another_key() {
    let kv = source();
    let plan = plan_now(&kv);
    let key = DataKey::from_bytes(&[5; 32]).unwrap();
    let dir = Locations::single(Arc::new(MemoryStorage::new("k")));
    let cases = [
        // A plain plan run encrypted.
        (plan.clone(), FileCodec::encrypted(key.clone())),
        // An encrypted plan run plain.
        (plan.clone().with_key_check(Some(key.check_value())), FileCodec::plain()),
        // An encrypted plan run with another key.
        (plan.clone().with_key_check(Some([1; 16])), FileCodec::encrypted(key.clone())),
    ];
    for (plan, codec) in cases {
        let options = small_files().with_codec(codec);
        let err = block_on(run_backup(&kv, &dir, &plan, &options)).unwrap_err();
        assert!(err.to_string().contains("made for another encryption key"), "{err}");
        assert!(paths(dir.storage().as_ref(), "").is_empty(), "a refused plan writes nothing");
    }
    // The matching key runs.
    let plan = plan.with_key_check(Some(key.check_value()));
    let options = small_files().with_codec(FileCodec::encrypted(key));
    block_on(run_backup(&kv, &dir, &plan, &options)).unwrap();
}

#[test]
fn another_plans_run_is_removed_from_every_location_before_the_new_run_writes() {
    let kv = source();
    let default = MemoryStorage::new("default");
    let west = MemoryStorage::new("west");
    let routed = |plan: BackupPlan| {
        let units = plan
            .units
            .iter()
            .map(|u| PlannedUnit {
                task: u.task,
                unit: WorkUnit { span: u.unit.span.clone(), locality: Some("region=west".into()) },
            })
            .collect();
        plan.with_units(units)
    };
    let first = routed(plan_now(&kv));
    // The first run stores 2 data files (in the west location) and their records, then a third
    // data file, whose record never gets written: the process dies there.
    let (gate, _never) = Gate::new("progress/", 3, false);
    let dir = Locations::new(hooked(&default, gate), vec![("region=west".into(), Arc::new(west.clone()))]);
    assert!(run_backup(&kv, &dir, &first, &small_files()).now_or_never().is_none());
    let prefix = first.file_prefix().to_string();
    assert_eq!(paths(&west, "data/").len(), 3, "{:?}", paths(&west, ""));
    assert_eq!(paths(&default, PROGRESS_DIR).len(), 1);
    let found = block_on(read_run(&default, &FileCodec::plain())).unwrap();
    assert_eq!(found.plan.id, first.id);
    assert_eq!(found.files().count(), 2, "the third file is named by no record");

    // A later plan into the same directory: the first run's files and records go first.
    kv.write_sync(vec![(b"\x10late".to_vec(), Some(b"x".to_vec()))]);
    let second = routed(plan_now(&kv));
    assert_ne!(second.id, first.id);
    let dir = Locations::new(Arc::new(default.clone()), vec![("region=west".into(), Arc::new(west.clone()))]);
    let manifest = block_on(run_backup(&kv, &dir, &second, &small_files())).unwrap();
    for location in [&default, &west] {
        let left: Vec<String> = paths(location, "").into_iter().filter(|p| p.contains(&prefix)).collect();
        assert!(left.is_empty(), "the other plan's files are left: {left:?}");
    }
    assert!(paths(&default, PROGRESS_DIR).is_empty());
    assert!(block_on(default.size(PLAN_NAME)).is_err());
    let mut data: Vec<String> = paths(&west, "data/");
    data.sort();
    let mut named: Vec<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
    named.sort();
    assert_eq!(data, named, "only the new backup's files are left");
    assert_eq!(restored_rows(&dir), [300, 300]);
}

#[test]
fn a_run_that_fails_after_another_run_of_its_plan_committed_removes_nothing() {
    let kv = source();
    let plan = plan_now(&kv);
    let memory = MemoryStorage::new("shared");
    // A first run dies after 2 data files.
    let (gate, _never) = Gate::new("data/", 3, false);
    let killed = Locations::single(hooked(&memory, gate));
    assert!(run_backup(&kv, &killed, &plan, &small_files()).now_or_never().is_none());
    block_on(async {
        // Two re-runs of the same plan: the slow one adopts the run and waits in its first data
        // file's upload, which then fails; the other finishes meanwhile.
        let (gate, release) = Gate::new("data/", 1, true);
        let slow_dir = Locations::single(hooked(&memory, gate));
        let options = small_files();
        let mut slow = Box::pin(run_backup(&kv, &slow_dir, &plan, &options));
        assert!(futures::poll!(slow.as_mut()).is_pending());
        let fast_dir = Locations::single(Arc::new(memory.clone()));
        let manifest = run_backup(&kv, &fast_dir, &plan, &small_files()).await.unwrap();
        release.send(()).unwrap();
        let err = slow.await.unwrap_err();
        assert!(err.to_string().contains("injected fault"), "{err}");
        for f in &manifest.files {
            assert!(memory.size(&f.path).await.is_ok(), "{} of the committed backup was removed", f.path);
        }
        assert!(memory.size(strata_core::MANIFEST_CHECKSUM_NAME).await.is_ok());
        assert!(memory.list(PROGRESS_DIR).await.unwrap().is_empty(), "no done record is left behind");
        assert!(memory.size(PLAN_NAME).await.is_err());
    });
    assert_eq!(restored_rows(&Locations::single(Arc::new(memory.clone()))), [300, 300]);
}

#[test]
fn a_run_whose_directory_another_plan_took_over_does_not_commit() {
    let kv = source();
    let memory = MemoryStorage::new("taken");
    let first = plan_now(&kv);
    kv.write_sync(vec![(b"\x10late".to_vec(), Some(b"x".to_vec()))]);
    let second = plan_now(&kv);
    block_on(async {
        // The first run waits in its third data file's upload (it is slow, not dead).
        let (gate, release_first) = Gate::new("data/", 3, false);
        let first_dir = Locations::single(hooked(&memory, gate));
        let options = small_files();
        let mut first_run = Box::pin(run_backup(&kv, &first_dir, &first, &options));
        assert!(futures::poll!(first_run.as_mut()).is_pending());
        // A run of another plan takes the directory over (removing the first run's files), and
        // waits in its own first data file's upload.
        let (gate, release_second) = Gate::new("data/", 1, false);
        let second_dir = Locations::single(hooked(&memory, gate));
        let mut second_run = Box::pin(run_backup(&kv, &second_dir, &second, &options));
        assert!(futures::poll!(second_run.as_mut()).is_pending());
        let data = memory.list("data/").await.unwrap();
        assert!(data.iter().all(|o| !o.path.contains(first.file_prefix())), "{data:?}");
        // The first run goes on: it must not commit a manifest naming removed files.
        release_first.send(()).unwrap();
        let err = first_run.await.unwrap_err();
        assert!(err.to_string().contains("another backup run took over"), "{err}");
        assert!(memory.size(MANIFEST_NAME).await.is_err());
        assert!(memory.size(PLAN_NAME).await.is_ok(), "the second run's plan stays");
        release_second.send(()).unwrap();
        let manifest = second_run.await.unwrap();
        assert_eq!(manifest.end_time, second.end_time);
    });
    assert_eq!(restored_rows(&Locations::single(Arc::new(memory.clone()))), [300, 300]);
    assert!(paths(&memory, "data/").iter().all(|p| !p.contains(first.file_prefix())));
}

#[test]
fn a_restore_plan_naming_what_the_chain_lacks_fails_clearly() {
    let kv = source();
    let plan = plan_now(&kv);
    let dir = Locations::single(Arc::new(MemoryStorage::new("r")));
    block_on(run_backup(&kv, &dir, &plan, &small_files())).unwrap();
    block_on(async {
        let chain = Chain::open_dir(&dir, &Keyring::default(), KeyRequest::default()).await.unwrap();
        let targets = Targets::Databases(vec!["d".into()]);
        let target = MemKv::new();
        let selection =
            prepare_restore(&chain, None, &Catalog::default(), &targets, &RestoreStmtOptions::default()).unwrap();
        let first = target.allocate_ids(selection.ids_needed()).await.unwrap();
        let restore = selection.plan(first).unwrap();

        let mut missing = restore.clone();
        missing.layers = vec!["memory://elsewhere".into()];
        let err = run_restore(&target, &chain, &missing, &RestoreRunOptions::default()).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid restore: the plan reads layer memory://elsewhere, which the chain does not have"
        );

        // A file of a layer the plan does not name is an error too, not a panic.
        let mut out_of_range = restore.clone();
        out_of_range.files[0].layer = 3;
        let err = run_restore(&target, &chain, &out_of_range, &RestoreRunOptions::default()).await.unwrap_err();
        assert!(err.to_string().contains("but names only 1 layers"), "{err}");

        // Nothing became visible; the real plan still restores.
        let now = target.now().await.unwrap();
        assert!(restore.tables.iter().all(|t| target.view_at(&t.descriptor.span(), now).is_empty()));
        run_restore(&target, &chain, &restore, &RestoreRunOptions::default()).await.unwrap();
    });
}

#[test]
fn a_resumed_runs_progress_counts_the_whole_backup_once() {
    let kv = source();
    let plan = plan_now(&kv);
    let memory = MemoryStorage::new("p");
    let (gate, _never) = Gate::new("data/", 5, false);
    assert!(run_backup(&kv, &Locations::single(hooked(&memory, gate)), &plan, &small_files()).now_or_never().is_none());
    let reports: Arc<Mutex<Vec<strata_core::Progress>>> = Arc::default();
    let sink = reports.clone();
    let options = small_files().with_progress(strata_core::ProgressReporter::new(move |p: &strata_core::Progress| {
        sink.lock().unwrap().push(*p)
    }));
    let manifest = block_on(run_backup(&kv, &Locations::single(Arc::new(memory.clone())), &plan, &options)).unwrap();
    let reports = reports.lock().unwrap().clone();
    let first = reports.first().unwrap();
    assert_eq!(first.files, 4, "the first report counts the files the killed run finished");
    for pair in reports.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert!(b.fraction >= a.fraction && b.files >= a.files && b.rows >= a.rows, "{a:?} then {b:?}");
    }
    let last = reports.last().unwrap();
    assert_eq!(last.fraction, 1.0);
    assert_eq!(last.files, manifest.files.len() as u64);
    assert_eq!(last.rows, manifest.files.iter().map(|f| f.rows).sum::<u64>());
    assert_eq!(last.bytes, manifest.files.iter().map(|f| f.logical_bytes).sum::<u64>());
    assert_eq!(last.storage_bytes, manifest.files.iter().map(|f| f.size).sum::<u64>());
}

#[test]
fn an_encrypted_run_resumes_with_its_key_only_and_its_records_are_sealed() {
    let kv = source();
    let key = DataKey::from_bytes(&[9; 32]).unwrap();
    let plan = plan_now(&kv).with_key_check(Some(key.check_value()));
    let codec = FileCodec::encrypted(key);
    let memory = MemoryStorage::new("e");
    let (gate, _never) = Gate::new("data/", 4, false);
    let options = small_files().with_codec(codec.clone());
    assert!(run_backup(&kv, &Locations::single(hooked(&memory, gate)), &plan, &options).now_or_never().is_none());
    // The plan and the records are sealed: no file name or statement in plaintext.
    for o in paths(&memory, "") {
        let bytes = block_on(memory.get(&o)).unwrap();
        for needle in [&b"data/"[..], b"BACKUP DATABASE"] {
            assert!(!bytes.windows(needle.len()).any(|w| w == needle), "{o} holds plaintext");
        }
    }
    assert!(block_on(read_run(&memory, &FileCodec::plain())).is_none(), "unreadable without the key");
    let other = FileCodec::encrypted(DataKey::from_bytes(&[8; 32]).unwrap());
    assert!(block_on(read_run(&memory, &other)).is_none(), "unreadable with another key");
    let run = block_on(read_run(&memory, &codec)).unwrap();
    assert_eq!((run.plan.id.as_str(), run.files().count()), (plan.id.as_str(), 3));

    // Run with the key, the same plan resumes: writing a finished file again would fail.
    let first_file = run.files().next().unwrap().path.clone();
    let (gate, release) = Gate::new(Box::leak(first_file.into_boxed_str()), 1, true);
    release.send(()).unwrap();
    let manifest = block_on(run_backup(&kv, &Locations::single(hooked(&memory, gate)), &plan, &options)).unwrap();
    assert!(manifest.files.len() > 3);
    assert!(paths(&memory, PROGRESS_DIR).is_empty());
    assert!(block_on(memory.size(PLAN_NAME)).is_err());
}
