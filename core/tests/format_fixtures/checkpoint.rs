//! `BACKUP-CHECKPOINT`, the single object older strata rewrote while a backup ran, keeps
//! reading: a committed v1 checkpoint decodes to the value that produced it, and converts into
//! today's plan and per-unit done records, so a killed backup written by an older strata
//! resumes after an upgrade.
//!
//! Regenerate (only when adding a new version, never to make a failing test pass):
//! `STRATA_WRITE_FIXTURES=1 cargo test -p strata-core --test integration format_fixtures::`

use strata_core::manifest::{BackupScope, FileInfo};
use strata_core::{keys, BackupPlanV1, CheckpointV1, ExportTask, MvccFilter, Timestamp, UnitCheckpointV1, WorkUnit};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

fn v1_checkpoint() -> CheckpointV1 {
    let span = keys::table_span(52);
    let end = Timestamp::new(1_795_000_000_000_000_000, 3);
    let task = ExportTask {
        span: span.clone(),
        start: Timestamp::ZERO,
        end,
        filter: MvccFilter::Latest,
        drop_tombstones: true,
    };
    let plan = BackupPlanV1 {
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
    CheckpointV1 {
        plan,
        units: vec![UnitCheckpointV1 {
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
    let committed: &[u8] = include_bytes!("../fixtures/checkpoint-v1.bin");
    assert_eq!(CheckpointV1::decode(committed, "checkpoint-v1.bin").unwrap(), value);
    assert_eq!(value.encode(), committed, "v1 encodes as it did");
}

#[test]
fn a_legacy_checkpoint_converts_into_a_plan_and_done_records() {
    let committed: &[u8] = include_bytes!("../fixtures/checkpoint-v1.bin");
    let checkpoint = CheckpointV1::decode(committed, "checkpoint-v1.bin").unwrap();
    let old_prefix = checkpoint.file_prefix();
    let run = checkpoint.clone().into_run(None);
    assert!(run.legacy);
    assert!(run.plan.is_intact(), "the converted plan's id hashes its content");
    assert_eq!(run.plan.statement, checkpoint.plan.statement);
    assert_eq!(run.plan.tasks, checkpoint.plan.tasks);
    assert_eq!(run.plan.units.len(), 1);
    assert_eq!(run.plan.units[0].unit, checkpoint.units[0].unit);
    assert_eq!(run.units.len(), 1);
    let record = &run.units[0];
    assert_eq!((record.plan.as_str(), record.unit, record.done), (run.plan.id.as_str(), 0, false));
    assert_eq!(record.files, checkpoint.units[0].files, "finished files are kept, under their old names");
    assert_eq!(record.next_key, keys::table_key(52, b"m"));
    assert_eq!(old_prefix.len(), 8);
    // Another key check value is another plan.
    assert_ne!(checkpoint.into_run(Some([1; 16])).plan.id, run.plan.id);
}
