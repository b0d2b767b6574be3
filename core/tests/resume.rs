//! Resume in-process: a backup future dropped mid-way (as a killed process stops: no cleanup
//! runs) leaves its `BACKUP-PLAN` and per-unit done records; the same statement run again resumes it
//! without writing the finished files again, and the backup restores exactly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::common;
// Plans as data and the runs that execute them, driven without the executor (in this test binary:
// each binary costs a link and, on wasm32, a browser session).
#[path = "resume/plan_runs.rs"]
mod plan_runs;
// Runs that meet in one collection: two stores at once, a killed run of another store, killed
// encrypted and superseded runs (issue 13 §3, §6).
#[path = "resume/collisions.rs"]
mod collisions;
// One backup's units shared by workers through a work queue, one of them fenced (issue 16 §3).
#[path = "resume/shared_job.rs"]
mod shared_job;
// Abandoned runs of any statement, store or key removed by the next run once their lease is
// stale; live runs and committed backups never (issue 13 §6).
#[path = "resume/abandoned.rs"]
mod abandoned;

use async_trait::async_trait;
use bytes::Bytes;
use common::{Call, Hook, HookedOpener};
use futures::executor::block_on;
use futures::FutureExt;
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, read_run, BackupOptions, BackupPlanV1, CheckpointV1, Executor, ExternalStorage, FileCodec, MemKv,
    MemoryOpener, Result, RunState, StorageOpener, UnitCheckpointV1, CHECKPOINT_NAME, MANIFEST_NAME, PLAN_NAME,
    PROGRESS_DIR,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Records every put; the `hang_at`-th put of a path containing `pattern` (a data file's, by
/// default) never completes.
#[derive(Default)]
struct Recorder {
    puts: Mutex<Vec<String>>,
    data_puts: AtomicUsize,
    hang_at: usize,
    pattern: &'static str,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Recorder {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if matches!(call, Call::Put | Call::PutIfAbsent)
            && path.contains(self.pattern)
            && self.data_puts.fetch_add(1, Ordering::SeqCst) + 1 == self.hang_at
        {
            futures::future::pending::<()>().await;
        }
        if matches!(call, Call::Put | Call::PutIfAbsent) {
            self.puts.lock().unwrap().push(path.to_string());
        }
        Ok(())
    }
}

/// Storage over `inner` whose puts are recorded (and whose `hang_at`-th data file hangs).
fn recorded(inner: &MemoryOpener, hang_at: usize) -> (Arc<HookedOpener>, Arc<Recorder>) {
    recorded_on(inner, "/data/", hang_at)
}

/// Storage over `inner` whose puts are recorded (and whose `hang_at`-th put of a path containing
/// `pattern` hangs).
fn recorded_on(inner: &MemoryOpener, pattern: &'static str, hang_at: usize) -> (Arc<HookedOpener>, Arc<Recorder>) {
    let recorder = Arc::new(Recorder { hang_at, pattern, ..Recorder::default() });
    (Arc::new(HookedOpener { inner: inner.clone(), hook: recorder.clone() }), recorder)
}

fn opener(inner: &MemoryOpener, hang_at: usize) -> Arc<HookedOpener> {
    recorded(inner, hang_at).0
}

fn executor(kv: &MemKv, opener: Arc<HookedOpener>) -> Executor {
    Executor::new(Arc::new(kv.clone()), opener)
        .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024))
}

/// Database `d` with tables `a` and `b`, 400 rows of 100 bytes each, written through `setup`'s
/// store `kv`.
fn create_two_tables(setup: &Executor, kv: &MemKv) {
    block_on(async {
        setup.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            setup.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = setup.table_id("d", t, None).await.unwrap();
            let rows = (0..400u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 100]))).collect();
            kv.write_sync(rows);
        }
    });
}

/// Restores database `d` from `memory://c` into a fresh store and checks that tables `a` and `b`
/// hold exactly the source's 400 rows each as of `end_time` (`source` resolves their ids).
fn assert_restores_as_of(memory: &MemoryOpener, kv: &MemKv, source: &Executor, end_time: strata_core::Timestamp) {
    let target_kv = MemKv::new();
    let target = executor(&target_kv, opener(memory, 0));
    block_on(target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c'")).unwrap();
    for t in ["a", "b"] {
        let src = block_on(source.table_id("d", t, None)).unwrap();
        let dst = block_on(target.table_id("d", t, None)).unwrap();
        let want: Vec<_> = kv
            .view_at(&keys::table_span(src), end_time)
            .into_iter()
            .map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v))
            .collect();
        let got: Vec<_> = target_kv
            .view_at(&keys::table_span(dst), block_on(strata_core::KvSource::now(&target_kv)).unwrap())
            .into_iter()
            .map(|(k, v)| (keys::decode_table_key(&k).unwrap().1.to_vec(), v))
            .collect();
        assert_eq!(got.len(), 400);
        assert_eq!(got, want, "table {t}");
    }
}

#[test]
fn a_dropped_backup_resumes_from_its_checkpoint() {
    let kv = MemKv::new();
    let memory = MemoryOpener::default();
    let setup = executor(&kv, opener(&memory, 0));
    create_two_tables(&setup, &kv);
    let statement = "BACKUP DATABASE d INTO 'memory://c'";

    // First run: the 8th data file never gets written; the future is dropped there.
    let first = executor(&kv, opener(&memory, 8));
    assert!(block_on(async { first.execute(statement).now_or_never() }).is_none(), "the backup should hang");
    let root = memory.open("memory://c").unwrap();
    let listed = block_on(root.list("")).unwrap();
    let checkpoint_path = listed.iter().find(|o| o.path.ends_with(PLAN_NAME)).expect("a plan").path.clone();
    let dir = checkpoint_path.strip_suffix(&format!("/{PLAN_NAME}")).unwrap().to_string();
    assert!(!listed.iter().any(|o| o.path.ends_with(MANIFEST_NAME)));
    let dir_storage = memory.open(&format!("memory://c/{dir}")).unwrap();
    let checkpoint = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    let finished: BTreeMap<String, Bytes> =
        checkpoint.files().map(|f| (f.path.clone(), block_on(dir_storage.get(&f.path)).unwrap())).collect();
    assert!(finished.len() >= 5, "finished files: {:?}", finished.keys());

    // Second run of the same statement, later: it adopts the unfinished directory and its end time.
    kv.write_sync(vec![(b"\x10late".to_vec(), Some(b"x".to_vec()))]);
    let (second_opener, second_recorder) = recorded(&memory, 0);
    let second = executor(&kv, second_opener);
    let r = block_on(second.execute(statement)).unwrap();
    assert_eq!(r.get(0, "path").unwrap().to_string(), format!("/{dir}"));
    assert_eq!(r.get(0, "end_time").unwrap().to_string(), checkpoint.plan.end_time.to_string());
    let puts = second_recorder.puts.lock().unwrap().clone();
    for path in finished.keys() {
        assert!(!puts.iter().any(|p| p.ends_with(&format!("/{path}"))), "{path} was written again");
        assert_eq!(&block_on(dir_storage.get(path)).unwrap(), &finished[path], "{path} changed");
    }
    assert!(block_on(dir_storage.size(PLAN_NAME)).is_err(), "the plan is removed at the end");
    assert!(block_on(dir_storage.list(PROGRESS_DIR)).unwrap().is_empty(), "so are the done records");
    assert_eq!(block_on(second.execute("SHOW BACKUPS IN 'memory://c'")).unwrap().rows.len(), 1);

    // It restores exactly the data as of the backup's end time.
    assert_restores_as_of(&memory, &kv, &setup, checkpoint.plan.end_time);
}

#[test]
fn a_dropped_incremental_resumes_its_layer() {
    let kv = MemKv::new();
    let memory = MemoryOpener::default();
    let setup = executor(&kv, opener(&memory, 0));
    let write = |from: u32, to: u32| {
        let id = block_on(setup.table_id("d", "a", None)).unwrap();
        kv.write_sync((from..to).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 100]))).collect());
    };
    block_on(async {
        setup.execute("CREATE DATABASE d").await.unwrap();
        setup.execute("CREATE TABLE d.a").await.unwrap();
    });
    write(0, 100);
    block_on(setup.execute("BACKUP DATABASE d INTO 'memory://c'")).unwrap();
    write(100, 600);
    let statement = "BACKUP DATABASE d INTO LATEST IN 'memory://c'";
    let first = executor(&kv, opener(&memory, 6));
    assert!(block_on(async { first.execute(statement).now_or_never() }).is_none(), "the backup should hang");
    let root = memory.open("memory://c").unwrap();
    let checkpoint_path =
        block_on(root.list("")).unwrap().into_iter().find(|o| o.path.ends_with(PLAN_NAME)).expect("a plan").path;
    assert!(checkpoint_path.contains("/incrementals/"), "{checkpoint_path}");
    let dir = checkpoint_path.strip_suffix(&format!("/{PLAN_NAME}")).unwrap().to_string();
    let dir_storage = memory.open(&format!("memory://c/{dir}")).unwrap();
    let checkpoint = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    assert!(checkpoint.files().count() >= 4);

    write(600, 700); // after the adopted end time: not in the layer
    let (second_opener, second_recorder) = recorded(&memory, 0);
    let second = executor(&kv, second_opener);
    let r = block_on(second.execute(statement)).unwrap();
    assert_eq!(format!("{}", r.get(0, "path").unwrap()), format!("/{dir}"));
    let puts = second_recorder.puts.lock().unwrap().clone();
    for f in checkpoint.files() {
        assert!(!puts.iter().any(|p| p.ends_with(&format!("/{}", f.path))), "{} was written again", f.path);
    }
    let target_kv = MemKv::new();
    let target = executor(&target_kv, opener(&memory, 0));
    block_on(target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c'")).unwrap();
    let dst = block_on(target.table_id("d", "a", None)).unwrap();
    let now = block_on(strata_core::KvSource::now(&target_kv)).unwrap();
    assert_eq!(target_kv.view_at(&keys::table_span(dst), now).len(), 600);
}

const LEGACY_STATEMENT: &str = "BACKUP DATABASE d INTO 'memory://c'";

/// A source with tables `d.a` and `d.b` of 400 rows, and a backup of `d` into `memory://c`
/// killed at its 8th data file, then turned into what an older strata leaves: its
/// `BACKUP-CHECKPOINT` only (the same plan and finished files, no `BACKUP-PLAN`, no done records).
/// Returns the source, the backup directory, its storage, the run as the checkpoint holds it and
/// the finished files' bytes.
fn legacy_killed_backup(
    memory: &MemoryOpener,
) -> (MemKv, String, Arc<dyn ExternalStorage>, RunState, BTreeMap<String, Bytes>) {
    let kv = MemKv::new();
    let setup = executor(&kv, opener(memory, 0));
    create_two_tables(&setup, &kv);
    let first = executor(&kv, opener(memory, 8));
    assert!(block_on(async { first.execute(LEGACY_STATEMENT).now_or_never() }).is_none(), "the backup should hang");
    let root = memory.open("memory://c").unwrap();
    let plan_path = block_on(root.list("")).unwrap().into_iter().find(|o| o.path.ends_with(PLAN_NAME)).unwrap().path;
    let dir = plan_path.strip_suffix(&format!("/{PLAN_NAME}")).unwrap().to_string();
    let dir_storage = memory.open(&format!("memory://c/{dir}")).unwrap();
    let run = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    let p = &run.plan;
    let checkpoint = CheckpointV1 {
        plan: BackupPlanV1 {
            scope: p.scope.clone(),
            is_full_cluster: p.is_full_cluster,
            start_time: p.start_time,
            end_time: p.end_time,
            mvcc_filter: p.mvcc_filter,
            revision_start_time: p.revision_start_time,
            spans: p.spans.clone(),
            introduced_spans: p.introduced_spans.clone(),
            tasks: p.tasks.clone(),
            descriptors: p.descriptors.clone(),
            descriptor_changes: p.descriptor_changes.clone(),
            dependencies: p.dependencies.clone(),
            // Older strata recorded the statement as printed.
            statement: strata_core::sql::parse(LEGACY_STATEMENT).unwrap().to_string(),
        },
        units: p
            .units
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let record = run.units.iter().find(|r| r.unit as usize == i);
                UnitCheckpointV1 {
                    task: u.task,
                    unit: u.unit.clone(),
                    files: record.map(|r| r.files.clone()).unwrap_or_default(),
                    next_key: record.map(|r| r.next_key.clone()).unwrap_or_else(|| u.unit.span.start.clone()),
                    done: record.is_some_and(|r| r.done),
                }
            })
            .collect(),
    };
    assert_eq!(checkpoint.plan.statement, p.statement, "the plan records the printed statement");
    // The converted plan is the very plan that ran (same id, so same data file names).
    assert_eq!(checkpoint.clone().into_run(None).plan.id, p.id);
    let stored = FileCodec::plain().seal(CHECKPOINT_NAME, checkpoint.encode());
    block_on(async {
        dir_storage.put(CHECKPOINT_NAME, Bytes::from(stored)).await.unwrap();
        dir_storage.delete(PLAN_NAME).await.unwrap();
        for o in dir_storage.list(PROGRESS_DIR).await.unwrap() {
            dir_storage.delete(&o.path).await.unwrap();
        }
    });
    let legacy = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    assert!(legacy.legacy);
    let finished: BTreeMap<String, Bytes> =
        legacy.files().map(|f| (f.path.clone(), block_on(dir_storage.get(&f.path)).unwrap())).collect();
    assert!(finished.len() >= 5, "finished files: {:?}", finished.keys());
    (kv, dir, dir_storage, legacy, finished)
}

/// Runs the statement to the end and checks it finished the legacy run in `dir`: no finished
/// file written again (nor changed), no run records left, and the backup restores exactly.
fn finish_and_check(
    memory: &MemoryOpener,
    kv: &MemKv,
    dir: &str,
    dir_storage: &Arc<dyn ExternalStorage>,
    run: &RunState,
    finished: &BTreeMap<String, Bytes>,
) {
    kv.write_sync(vec![(b"\x10late".to_vec(), Some(b"x".to_vec()))]);
    let (rerun_opener, recorder) = recorded(memory, 0);
    let rerun = executor(kv, rerun_opener);
    let r = block_on(rerun.execute(LEGACY_STATEMENT)).unwrap();
    assert_eq!(r.get(0, "path").unwrap().to_string(), format!("/{dir}"), "resumed in the same directory");
    assert_eq!(r.get(0, "end_time").unwrap().to_string(), run.plan.end_time.to_string());
    let puts = recorder.puts.lock().unwrap().clone();
    for (path, bytes) in finished {
        assert!(!puts.iter().any(|p| p.ends_with(&format!("/{path}"))), "{path} was written again");
        assert_eq!(&block_on(dir_storage.get(path)).unwrap(), bytes, "{path} changed");
    }
    for name in [CHECKPOINT_NAME, PLAN_NAME] {
        assert!(block_on(dir_storage.size(name)).is_err(), "{name} is left behind");
    }
    assert!(block_on(dir_storage.list(PROGRESS_DIR)).unwrap().is_empty(), "done records are left behind");
    assert_eq!(block_on(rerun.execute("SHOW BACKUPS IN 'memory://c'")).unwrap().rows.len(), 1);

    assert_restores_as_of(memory, kv, &rerun, run.plan.end_time);
}

#[test]
fn a_backup_killed_under_an_older_strata_resumes_from_its_checkpoint() {
    let memory = MemoryOpener::default();
    let (kv, dir, dir_storage, run, finished) = legacy_killed_backup(&memory);
    finish_and_check(&memory, &kv, &dir, &dir_storage, &run, &finished);
}

#[test]
fn a_converted_checkpoint_killed_again_still_resumes() {
    let memory = MemoryOpener::default();
    let (kv, dir, dir_storage, run, mut finished) = legacy_killed_backup(&memory);
    // The upgraded strata converts the checkpoint, stores one more file, and is killed too.
    let second = executor(&kv, opener(&memory, 2));
    assert!(block_on(async { second.execute(LEGACY_STATEMENT).now_or_never() }).is_none(), "should hang");
    assert!(block_on(dir_storage.size(CHECKPOINT_NAME)).is_err(), "the checkpoint was converted");
    let converted = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    assert!(!converted.legacy);
    assert_eq!(converted.plan.id, run.plan.id);
    for f in converted.files() {
        finished.entry(f.path.clone()).or_insert_with(|| block_on(dir_storage.get(&f.path)).unwrap());
    }
    finish_and_check(&memory, &kv, &dir, &dir_storage, &run, &finished);
}

#[test]
fn a_run_killed_while_converting_a_checkpoint_still_resumes() {
    let memory = MemoryOpener::default();
    let (kv, dir, dir_storage, run, finished) = legacy_killed_backup(&memory);
    // Killed at the first done record the conversion writes.
    let (killed, _) = recorded_on(&memory, "/progress/", 1);
    let second = executor(&kv, killed);
    assert!(block_on(async { second.execute(LEGACY_STATEMENT).now_or_never() }).is_none(), "should hang");
    finish_and_check(&memory, &kv, &dir, &dir_storage, &run, &finished);
}

#[test]
fn a_killed_runs_records_hold_no_secret() {
    let kv = MemKv::new();
    let memory = MemoryOpener::default();
    let setup = executor(&kv, opener(&memory, 0));
    block_on(async {
        setup.execute("CREATE DATABASE d").await.unwrap();
        setup.execute("CREATE TABLE d.a").await.unwrap();
        let id = setup.table_id("d", "a", None).await.unwrap();
        kv.write_sync((0..400u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![1; 100]))).collect());
    });
    let uri = "'memory://c?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=hunter2'";
    block_on(setup.execute(&format!("BACKUP DATABASE d INTO {uri}"))).unwrap();
    let id = block_on(setup.table_id("d", "a", None)).unwrap();
    kv.write_sync((0..400u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![2; 100]))).collect());
    // A full backup and an incremental layer, each killed mid-way: their plans and records
    // are in storage, and none of them names the secret.
    let other = "'memory://c/other?AWS_ACCESS_KEY_ID=id&AWS_SECRET_ACCESS_KEY=hunter2'";
    for statement in [format!("BACKUP DATABASE d INTO {other}"), format!("BACKUP DATABASE d INTO LATEST IN {uri}")] {
        let killed = executor(&kv, opener(&memory, 3));
        let r = block_on(async { killed.execute(&statement).now_or_never() });
        assert!(r.is_none(), "{statement} should hang: {r:?}");
    }
    let root = memory.open("memory://c").unwrap();
    let listed = block_on(root.list("")).unwrap();
    assert_eq!(listed.iter().filter(|o| o.path.ends_with(PLAN_NAME)).count(), 2, "two unfinished runs");
    assert!(listed.iter().any(|o| o.path.contains("/progress/")));
    let mut statements = 0;
    for o in listed {
        let bytes = block_on(root.get(&o.path)).unwrap();
        let found = bytes.windows(7).any(|w| w == b"hunter2");
        assert!(!found, "{} holds the secret", o.path);
        statements += usize::from(bytes.windows(21).any(|w| w == b"AWS_SECRET_ACCESS_KEY"));
    }
    assert!(statements >= 2, "the plans record their (redacted) statements");
}

#[test]
fn a_run_of_the_previous_format_resumes() {
    // A run killed under the previous strata: `BACKUP-PLAN` version 1 (the plan alone, no store
    // or run id) and one untagged done record per unit (`progress/<plan>-<unit>`).
    let kv = MemKv::new();
    let memory = MemoryOpener::default();
    let setup = executor(&kv, opener(&memory, 0));
    create_two_tables(&setup, &kv);
    let first = executor(&kv, opener(&memory, 8));
    assert!(block_on(async { first.execute(LEGACY_STATEMENT).now_or_never() }).is_none(), "the backup should hang");
    let root = memory.open("memory://c").unwrap();
    let plan_path = block_on(root.list("")).unwrap().into_iter().find(|o| o.path.ends_with(PLAN_NAME)).unwrap().path;
    let dir = plan_path.strip_suffix(&format!("/{PLAN_NAME}")).unwrap().to_string();
    let dir_storage = memory.open(&format!("memory://c/{dir}")).unwrap();
    let run = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    block_on(async {
        // Version 2's body is the plan's postcard bytes followed by the store id and the run id.
        let stored = dir_storage.get(PLAN_NAME).await.unwrap();
        assert_eq!(&stored[8..10], &2u16.to_le_bytes());
        let store_len = run.store.as_ref().map_or(1, |s| 2 + s.len());
        let trailing = store_len + 1 + run.run.len();
        let mut v1 = stored[..8].to_vec();
        v1.extend_from_slice(&1u16.to_le_bytes());
        v1.extend_from_slice(&stored[10..stored.len() - trailing]);
        dir_storage.put(PLAN_NAME, Bytes::from(v1)).await.unwrap();
        for (path, record) in &run.records {
            let bytes = dir_storage.get(path).await.unwrap();
            dir_storage.delete(path).await.unwrap();
            if run.units.contains(record) {
                let untagged = format!("{PROGRESS_DIR}/{}-{:06}", run.plan.file_prefix(), record.unit);
                dir_storage.put(&untagged, bytes).await.unwrap();
            }
        }
    });
    let old = block_on(read_run(dir_storage.as_ref(), &FileCodec::plain())).unwrap();
    assert_eq!((old.plan.id.as_str(), old.store.as_ref(), old.run.as_str()), (run.plan.id.as_str(), None, ""));
    assert!(old.records.iter().all(|(p, _)| p.matches('-').count() == 1), "untagged records: {:?}", old.records);
    let finished: BTreeMap<String, Bytes> =
        old.files().map(|f| (f.path.clone(), block_on(dir_storage.get(&f.path)).unwrap())).collect();
    assert!(finished.len() >= 5, "finished files: {:?}", finished.keys());
    finish_and_check(&memory, &kv, &dir, &dir_storage, &old, &finished);
}
