//! One backup shared by several workers through a work queue (issue 16 §3, the core part):
//! workers claim units of the job, run them (`run_claimed_unit`), and whichever sees every unit
//! done writes the manifest (`finish_backup_job`). A worker whose lease expires mid-unit (a
//! frozen process) is fenced: its unit is claimed again, its completion refused, its files
//! removed; the backup names one file set per unit and restores exactly.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common::{Call, Hook, Hooked};
use async_trait::async_trait;
use bytes::Bytes;
use futures::channel::oneshot;
use futures::executor::block_on;
use strata_core::sql::{RestoreStmtOptions, Targets};
use strata_core::ExternalStorageExt;
use strata_core::{
    claim_backup_dir, finish_backup_job, job_run_id, keys, plan_full_backup, prepare_restore, run_claimed_unit,
    run_restore, BackupOptions, BackupPlan, Catalog, Chain, Completion, Executor, ExternalStorage, KeyRequest, Keyring,
    KvSink, KvSource, Locations, MemKv, MemQueue, MemoryOpener, MemoryStorage, PlannedUnit, RestoreRunOptions, Result,
    Span, UnitState, WorkQueue, WorkUnit, MANIFEST_NAME, PLAN_NAME, PROGRESS_DIR,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Holds the `at`-th put of a data file until the gate opens.
struct Gate {
    at: usize,
    seen: AtomicUsize,
    open: Mutex<Option<oneshot::Receiver<()>>>,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Gate {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        let put = matches!(call, Call::Put | Call::PutIfAbsent);
        if put && path.starts_with("data/") && self.seen.fetch_add(1, Ordering::SeqCst) + 1 == self.at {
            let rx = self.open.lock().unwrap().take();
            if let Some(rx) = rx {
                let _ = rx.await;
            }
        }
        Ok(())
    }
}

/// Database `d` with tables `a` and `b` of 300 rows; the plan of its backup as of now, each
/// table cut into three units.
fn source_and_plan() -> (MemKv, Executor, BackupPlan) {
    let kv = MemKv::new();
    let exec = Executor::new(Arc::new(kv.clone()), Arc::new(MemoryOpener::default()));
    let mut ids = Vec::new();
    block_on(async {
        exec.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            exec.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = exec.table_id("d", t, None).await.unwrap();
            let rows = (0..300u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 100]))).collect();
            kv.write_sync(rows);
            ids.push(id);
        }
    });
    let plan = block_on(async {
        let end = kv.now().await.unwrap();
        let catalog = kv.catalog_at(end).await.unwrap();
        let targets = Targets::Databases(vec!["d".into()]);
        plan_full_backup(&catalog, &targets, end, "BACKUP DATABASE d INTO 'x'".into()).unwrap()
    });
    let mut units = Vec::new();
    for (i, task) in plan.tasks.iter().enumerate() {
        let span = &task.span;
        let Some((id, _)) = keys::decode_table_key(&span.start).filter(|_| span.start.len() == 5) else {
            units.push(PlannedUnit { task: i as u32, unit: WorkUnit { span: span.clone(), locality: None } });
            continue;
        };
        let cut = |n: u32| keys::table_key(id, &n.to_be_bytes());
        let bounds = [span.start.clone(), cut(100), cut(200), span.end.clone()];
        for w in bounds.windows(2) {
            let unit = WorkUnit { span: Span::new(w[0].clone(), w[1].clone()), locality: None };
            units.push(PlannedUnit { task: i as u32, unit });
        }
    }
    (kv, exec, plan.with_units(units))
}

fn options() -> BackupOptions {
    BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024)
}

#[test]
fn workers_share_a_job_and_a_fenced_worker_leaves_nothing() {
    let (kv, _exec, plan) = source_and_plan();
    assert_eq!(plan.units.len(), 6);
    let memory = MemoryStorage::new("shared");
    let plain: Arc<dyn ExternalStorage> = Arc::new(memory.clone());
    let dir = Locations::single(plain.clone());
    let queue = MemQueue::new();
    let job = "job-7";
    let payload = Bytes::from(plan.id.clone());
    block_on(async {
        queue.create_job(job, plan.units.len() as u32, payload.clone()).await.unwrap();
        // The creator claims the directory for the job (a retry of it is harmless).
        let claim_options = options().with_run_id(job_run_id(job)).with_new_directory(true);
        claim_backup_dir(&kv, &dir, &plan, &claim_options).await.unwrap();
        claim_backup_dir(&kv, &dir, &plan, &claim_options).await.unwrap();
        assert!(memory.size(PLAN_NAME).await.is_ok());
        let w1 = queue.register("w1", 10).await.unwrap();
        let w2 = queue.register("w2", 10).await.unwrap();
        let w3 = queue.register("w3", 10).await.unwrap();

        // w1 claims a unit and freezes at its second data file.
        let (tx, rx) = oneshot::channel();
        let gate = Arc::new(Gate { at: 2, seen: AtomicUsize::new(0), open: Mutex::new(Some(rx)) });
        let w1_dir = Locations::single(Arc::new(Hooked { inner: plain.clone(), hook: gate }));
        let frozen_claim = queue.claim(&w1, job).await.unwrap().unwrap();
        let opts = options();
        let mut frozen = Box::pin(run_claimed_unit(&queue, &frozen_claim, &kv, &w1_dir, &plan, &opts));
        assert!(futures::poll!(frozen.as_mut()).is_pending(), "w1 should be frozen in its unit");
        assert_eq!(memory.list("data/").await.unwrap().len(), 1, "w1 stored its first file");

        // Its lease expires; w2 and w3 take every unit, w1's too (with a greater token).
        queue.expire("w1");
        assert!(finish_backup_job(&queue, job, &dir, &plan, &opts).await.unwrap().is_none(), "units are left");
        let mut taken_over = None;
        loop {
            let mut progressed = false;
            for lease in [&w2, &w3] {
                if let Some(claim) = queue.claim(lease, job).await.unwrap() {
                    if claim.unit == frozen_claim.unit {
                        assert!(claim.token > frozen_claim.token);
                        taken_over = Some(claim.clone());
                    }
                    let done = run_claimed_unit(&queue, &claim, &kv, &dir, &plan, &opts).await.unwrap();
                    assert_eq!(done, Completion::Completed);
                    progressed = true;
                }
            }
            if !progressed {
                break;
            }
        }
        assert!(taken_over.is_some(), "w1's unit was claimed again");
        // Every unit is done: the finisher writes the manifest (and a second call agrees).
        let manifest = finish_backup_job(&queue, job, &dir, &plan, &opts).await.unwrap().expect("every unit is done");
        let again = finish_backup_job(&queue, job, &dir, &plan, &opts).await.unwrap().unwrap();
        assert_eq!(again.files, manifest.files);

        // w1 wakes up after the commit, stores more files, and is fenced: it removes them.
        tx.send(()).unwrap();
        assert_eq!(frozen.await.unwrap(), Completion::Fenced);
        let states = queue.units(job).await.unwrap();
        assert!(states.iter().all(|s| matches!(s, UnitState::Done { .. })));
        let UnitState::Done { token, .. } = &states[frozen_claim.unit as usize] else { unreachable!() };
        assert_eq!(*token, taken_over.unwrap().token, "the unit's done record is the winner's");

        // One file set per unit: every stored data file is named, each unit's files by one writer.
        let mut stored: Vec<String> = memory.list("data/").await.unwrap().into_iter().map(|o| o.path).collect();
        stored.sort();
        let named: Vec<String> = manifest.files.iter().map(|f| f.path.clone()).collect();
        assert_eq!(stored, named, "data files not named by the manifest are left");
        for unit in 0..plan.units.len() {
            let marker = format!("-{unit:06}-");
            let writers: std::collections::BTreeSet<String> = named
                .iter()
                .filter(|p| p.contains(&marker))
                .map(|p| p.rsplit_once('-').unwrap().0.to_string())
                .collect();
            assert_eq!(writers.len(), 1, "unit {unit} has files of {writers:?}");
        }
        assert!(memory.list(PROGRESS_DIR).await.unwrap().is_empty(), "records are left");
        assert!(memory.size(PLAN_NAME).await.is_err(), "the job's claim of the directory is left");
        assert!(memory.size(MANIFEST_NAME).await.is_ok());
    });

    // The backup restores exactly the source as of its end time.
    block_on(async {
        let chain = Chain::open_dir(&dir, &Keyring::default(), KeyRequest::default()).await.unwrap();
        let target = MemKv::new();
        let targets = Targets::Databases(vec!["d".into()]);
        let selection =
            prepare_restore(&chain, None, &Catalog::default(), &targets, &RestoreStmtOptions::default()).unwrap();
        let first = target.allocate_ids(selection.ids_needed()).await.unwrap();
        let restore = selection.plan(first).unwrap();
        run_restore(&target, &chain, &restore, &RestoreRunOptions::default()).await.unwrap();
        let now = target.now().await.unwrap();
        for (i, t) in restore.tables.iter().enumerate() {
            let got: Vec<_> = target
                .view_at(&t.descriptor.span(), now)
                .into_iter()
                .map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v))
                .collect();
            assert_eq!(got.len(), 300, "table {i}");
            let want: Vec<_> = (0..300u32).map(|n| (n.to_be_bytes().to_vec(), vec![n as u8; 100])).collect();
            assert_eq!(got, want, "table {i} restores exactly");
        }
    });
}
