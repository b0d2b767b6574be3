//! Resume in-process: a backup future dropped mid-way (as a killed process stops: no cleanup
//! runs) leaves its `BACKUP-PLAN` and per-unit done records; the same statement run again resumes it
//! without writing the finished files again, and the backup restores exactly.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

mod common;

use async_trait::async_trait;
use bytes::Bytes;
use common::{Call, Hook, HookedOpener};
use futures::executor::block_on;
use futures::FutureExt;
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, read_run, BackupOptions, Executor, FileCodec, MemKv, MemoryOpener, Result, StorageOpener, MANIFEST_NAME,
    PLAN_NAME, PROGRESS_DIR,
};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

/// Records every put; the `hang_at`-th data file put never completes.
#[derive(Default)]
struct Recorder {
    puts: Mutex<Vec<String>>,
    data_puts: AtomicUsize,
    hang_at: usize,
}

#[cfg_attr(not(target_arch = "wasm32"), async_trait)]
#[cfg_attr(target_arch = "wasm32", async_trait(?Send))]
impl Hook for Recorder {
    async fn before(&self, call: Call, path: &str) -> Result<()> {
        if call == Call::Put
            && path.contains("/data/")
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
    let recorder = Arc::new(Recorder { hang_at, ..Recorder::default() });
    (Arc::new(HookedOpener { inner: inner.clone(), hook: recorder.clone() }), recorder)
}

fn opener(inner: &MemoryOpener, hang_at: usize) -> Arc<HookedOpener> {
    recorded(inner, hang_at).0
}

fn executor(kv: &MemKv, opener: Arc<HookedOpener>) -> Executor {
    Executor::new(Arc::new(kv.clone()), opener)
        .with_backup_options(BackupOptions::default().with_target_file_size(2048).with_page_bytes(1024))
}

#[test]
fn a_dropped_backup_resumes_from_its_checkpoint() {
    let kv = MemKv::new();
    let memory = MemoryOpener::default();
    let setup = executor(&kv, opener(&memory, 0));
    block_on(async {
        setup.execute("CREATE DATABASE d").await.unwrap();
        for t in ["a", "b"] {
            setup.execute(&format!("CREATE TABLE d.{t}")).await.unwrap();
            let id = setup.table_id("d", t, None).await.unwrap();
            let rows = (0..400u32).map(|i| (keys::table_key(id, &i.to_be_bytes()), Some(vec![i as u8; 100]))).collect();
            kv.write_sync(rows);
        }
    });
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
    let target_kv = MemKv::new();
    let target = executor(&target_kv, opener(&memory, 0));
    block_on(target.execute("RESTORE DATABASE d FROM LATEST IN 'memory://c'")).unwrap();
    for t in ["a", "b"] {
        let src = block_on(setup.table_id("d", t, None)).unwrap();
        let dst = block_on(target.table_id("d", t, None)).unwrap();
        let want: Vec<_> = kv
            .view_at(&keys::table_span(src), checkpoint.plan.end_time)
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
