//! `BACKUP-CHECKPOINT` keeps reading its older versions: a committed v1 checkpoint decodes to the
//! value that produced it. A killed backup written by an older strata must still resume (or,
//! at worst, be recognised and started over) after an upgrade.
//!
//! Regenerate (only when adding a new version, never to make a failing test pass):
//! `STRATA_WRITE_FIXTURES=1 cargo test -p strata-core --test checkpoint_fixture`

use strata_core::manifest::{BackupScope, FileInfo};
use strata_core::{keys, BackupPlan, Checkpoint, ExportTask, MvccFilter, Timestamp, UnitCheckpoint, WorkUnit};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn v1_checkpoint() -> Checkpoint {
    let span = keys::table_span(52);
    let end = Timestamp::new(1_795_000_000_000_000_000, 3);
    let task = ExportTask {
        span: span.clone(),
        start: Timestamp::ZERO,
        end,
        filter: MvccFilter::Latest,
        drop_tombstones: true,
    };
    let plan = BackupPlan {
        scope: BackupScope::Tables(vec![52]),
        is_full_cluster: false,
        start_time: Timestamp::ZERO,
        end_time: end,
        mvcc_filter: MvccFilter::Latest,
        revision_start_time: end,
        spans: vec![span.clone()],
        introduced_spans: vec![],
        tasks: vec![task],
        descriptors: vec![],
        descriptor_changes: vec![],
        dependencies: vec![],
        statement: "BACKUP TABLE d.t INTO 'nodelocal://1/c'".into(),
    };
    let file = FileInfo {
        path: "data/0a1b2c3d-000000-0000.sst".into(),
        span: strata_core::Span::new(span.start.clone(), keys::table_key(52, b"m")),
        size: 4096,
        sha256: [7; 32],
        entries: 100,
        rows: 100,
        logical_bytes: 6400,
        locality: None,
    };
    Checkpoint {
        plan,
        units: vec![UnitCheckpoint {
            task: 0,
            unit: WorkUnit { span: span.clone(), locality: None },
            files: vec![file],
            next_key: keys::table_key(52, b"m"),
            done: false,
        }],
    }
}

#[test]
fn checkpoint_v1_fixture_still_reads() {
    let value = v1_checkpoint();
    if std::env::var_os("STRATA_WRITE_FIXTURES").is_some() {
        let path = format!("{}/tests/fixtures/checkpoint-v1.bin", env!("CARGO_MANIFEST_DIR"));
        std::fs::write(path, value.encode()).unwrap();
    }
    let committed: &[u8] = include_bytes!("fixtures/checkpoint-v1.bin");
    assert_eq!(Checkpoint::decode(committed, "checkpoint-v1.bin").unwrap(), value);
    assert_eq!(value.encode(), committed, "v1 encodes as it did");
}
