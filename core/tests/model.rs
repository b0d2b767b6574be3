//! Model-based property test: random MVCC histories (writes, deletes, tables created and
//! dropped) in the reference store, a full backup at a random time, a restore into an empty
//! store — the restored data must equal the source's view at the backup time, key for key.

use crate::common;

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::executor::block_on;
use proptest::prelude::*;
use strata_core::sql::{RestoreStmtOptions, TableName, Targets};
use strata_core::ExternalStorageExt;
use strata_core::{
    keys, plan_full_backup, prepare_restore, run_backup, run_restore, BackupOptions, Catalog, DataFileOptions,
    DatabaseDescriptor, Descriptor, DescriptorChange, IndexDescriptor, IndexState, KvSink, KvSource, MemKv,
    MemoryStorage, RestoreRunOptions, TableDescriptor, Timestamp,
};
use strata_core::{Chain, KeyRequest, Keyring, Locations};
#[cfg(all(target_family = "wasm", target_os = "unknown"))]
use wasm_bindgen_test::wasm_bindgen_test as test;

#[derive(Debug, Clone)]
enum Op {
    Put { table: usize, key: u8, value: u16 },
    Delete { table: usize, key: u8 },
    CreateTable(usize),
    DropTable(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..4usize, any::<u8>(), any::<u16>()).prop_map(|(table, key, value)| Op::Put { table, key: key % 24, value }),
        2 => (0..4usize, any::<u8>()).prop_map(|(table, key)| Op::Delete { table, key: key % 24 }),
        1 => (0..4usize).prop_map(Op::CreateTable),
        1 => (0..4usize).prop_map(Op::DropTable),
    ]
}

const DBS: [&str; 2] = ["alpha", "beta"];

fn table_db(t: usize) -> usize {
    t % 2
}

/// Applies the ops; returns the timestamp after each op.
async fn apply(kv: &MemKv, ops: &[Op]) -> Vec<Timestamp> {
    let mut db_ids = Vec::new();
    for name in DBS {
        let id = kv.allocate_ids(1).await.unwrap();
        let db = DatabaseDescriptor { id, name: name.into(), version: 1, modification_time: Timestamp::ZERO };
        kv.publish(vec![DescriptorChange::Put(Descriptor::Database(db))]).await.unwrap();
        db_ids.push(id);
    }
    // The live id of each of the four table names, if it exists now.
    let mut live: [Option<u32>; 4] = [None; 4];
    let mut times = Vec::new();
    for op in ops {
        match *op {
            Op::CreateTable(t) if live[t].is_none() => {
                let id = kv.allocate_ids(1).await.unwrap();
                let desc = TableDescriptor {
                    id,
                    name: format!("t{t}"),
                    parent_id: db_ids[table_db(t)],
                    version: 1,
                    modification_time: Timestamp::ZERO,
                    indexes: vec![IndexDescriptor {
                        id: 1,
                        name: "primary".into(),
                        unique: true,
                        state: IndexState::Public,
                    }],
                };
                kv.publish(vec![DescriptorChange::Put(Descriptor::Table(desc))]).await.unwrap();
                live[t] = Some(id);
            }
            Op::DropTable(t) => {
                if let Some(id) = live[t].take() {
                    kv.publish(vec![DescriptorChange::Delete(id)]).await.unwrap();
                }
            }
            Op::Put { table, key, value } => {
                if let Some(id) = live[table] {
                    kv.write_sync(vec![(
                        keys::table_key(id, &[b'k', key]),
                        Some(value.to_be_bytes().repeat(1 + key as usize % 5)),
                    )]);
                }
            }
            Op::Delete { table, key } => {
                if let Some(id) = live[table] {
                    kv.write_sync(vec![(keys::table_key(id, &[b'k', key]), None)]);
                }
            }
            Op::CreateTable(_) => {}
        }
        times.push(kv.now().await.unwrap());
    }
    times
}

fn logical_view(kv: &MemKv, catalog: &Catalog, ts: Timestamp) -> BTreeMap<String, common::Rows> {
    common::logical_view(kv, catalog, ts, |_, _| true)
}

fn check(ops: Vec<Op>, at: prop::sample::Index, target: u8, block_size: usize) -> Result<(), TestCaseError> {
    block_on(async {
        let source = MemKv::new();
        let times = apply(&source, &ops).await;
        let end = times[at.index(times.len())];
        let catalog = source.catalog_at(end).await.unwrap();
        let targets = match target % 3 {
            0 => Targets::Cluster,
            1 => Targets::Databases(vec!["alpha".into()]),
            _ => Targets::Tables(vec![TableName { database: Some("beta".into()), table: "*".into() }]),
        };
        if let Targets::Tables(names) = &targets {
            // `RESTORE TABLE beta.*` of a database without tables is an error (its backup is not): nothing
            // to compare then.
            prop_assume!(strata_core::expand_table_name(&catalog, &names[0]).is_ok());
        }
        let expected_catalog = match &targets {
            Targets::Cluster => catalog.clone(),
            Targets::Databases(_) | Targets::Tables(_) => {
                let (_, descs) = strata_core::resolve_targets(&catalog, &targets).unwrap();
                Catalog::from_descriptors(descs)
            }
        };
        let expected = logical_view(&source, &expected_catalog, end);

        let storage = Arc::new(MemoryStorage::new("model"));
        let plan = plan_full_backup(&catalog, &targets, end, "BACKUP".into()).unwrap();
        let options = BackupOptions::default()
            .with_target_file_size(300)
            .with_data_file(DataFileOptions::default().with_block_size(block_size));
        let dir = Locations::single(storage.clone());
        let manifest = run_backup(&source, &dir, &plan, &options).await.unwrap();
        let chain = Chain::open_dir(&dir, &Keyring::default(), KeyRequest::default()).await.unwrap();
        prop_assert_eq!(manifest.end_time, end);

        let target_kv = MemKv::new();
        if let Targets::Tables(_) = targets {
            // RESTORE TABLE needs its database to exist in the target.
            let id = target_kv.allocate_ids(1).await.unwrap();
            let db = DatabaseDescriptor { id, name: "beta".into(), version: 1, modification_time: Timestamp::ZERO };
            target_kv.publish(vec![DescriptorChange::Put(Descriptor::Database(db))]).await.unwrap();
        }
        let target_catalog = target_kv.catalog().await.unwrap();
        let selection =
            prepare_restore(&chain, None, &target_catalog, &targets, &RestoreStmtOptions::default()).unwrap();
        let first = target_kv.allocate_ids(selection.ids_needed()).await.unwrap();
        let plan = selection.plan(first).unwrap();
        run_restore(&target_kv, &chain, &plan, &RestoreRunOptions::default()).await.unwrap();

        let now = target_kv.now().await.unwrap();
        let restored_catalog = target_kv.catalog_at(now).await.unwrap();
        let got = logical_view(&target_kv, &restored_catalog, now);
        prop_assert_eq!(got, expected);
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn restore_equals_source_view_at_backup_time(
        ops in prop::collection::vec(op(), 1..120),
        at in any::<prop::sample::Index>(),
        target in any::<u8>(),
        block_size in 32usize..2048,
    ) {
        check(ops, at, target, block_size)?;
    }
}

#[test]
fn a_failed_restore_leaves_nothing_visible() {
    block_on(async {
        let source = MemKv::new();
        let ops: Vec<Op> = (0..40).map(|i| Op::Put { table: 0, key: i, value: i as u16 }).collect();
        let mut all = vec![Op::CreateTable(0)];
        all.extend(ops);
        let times = apply(&source, &all).await;
        let end = *times.last().unwrap();
        let catalog = source.catalog_at(end).await.unwrap();
        let storage = Arc::new(MemoryStorage::new("fail"));
        let plan = plan_full_backup(&catalog, &Targets::Cluster, end, "BACKUP".into()).unwrap();
        let dir = Locations::single(storage.clone());
        let manifest = run_backup(&source, &dir, &plan, &BackupOptions::default()).await.unwrap();
        let chain = Chain::open_dir(&dir, &Keyring::default(), KeyRequest::default()).await.unwrap();
        // Damage the only data file of the table: the restore must fail and leave nothing behind.
        let file = manifest.files.iter().find(|f| keys::decode_table_key(&f.span.start).is_some()).unwrap();
        let mut bytes = storage.get(&file.path).await.unwrap().to_vec();
        let mid = bytes.len() / 3;
        bytes[mid] ^= 0x40;
        storage.set_raw(&file.path, bytes);

        let target = MemKv::new();
        let target_catalog = target.catalog().await.unwrap();
        let selection =
            prepare_restore(&chain, None, &target_catalog, &Targets::Cluster, &RestoreStmtOptions::default()).unwrap();
        let first = target.allocate_ids(selection.ids_needed()).await.unwrap();
        let plan = selection.plan(first).unwrap();
        let err = run_restore(&target, &chain, &plan, &RestoreRunOptions::default()).await.unwrap_err();
        assert!(err.to_string().contains(&file.path), "error should name the damaged file: {err}");
        assert!(target.catalog().await.unwrap().has_no_user_objects());
        for t in &plan.tables {
            assert!(
                target.view_at(&t.descriptor.span(), Timestamp::MAX).is_empty(),
                "ingested rows were not discarded"
            );
        }
    });
}
