//! Helpers shared by the model-based tests.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::collections::BTreeMap;

use strata_core::{keys, Catalog, MemKv, TableDescriptor, Timestamp};

/// Rows of a table as the user sees them: user key → value.
pub type Rows = BTreeMap<Vec<u8>, Vec<u8>>;

/// `db.table -> rows` for the tables of `catalog` that `keep` selects, read from `kv` at `ts`.
pub fn logical_view(
    kv: &MemKv,
    catalog: &Catalog,
    ts: Timestamp,
    keep: impl Fn(&str, &TableDescriptor) -> bool,
) -> BTreeMap<String, Rows> {
    catalog
        .tables
        .values()
        .filter(|t| keep(catalog.database_name(t.parent_id), t))
        .map(|t| {
            let rows = kv
                .view_at(&t.span(), ts)
                .into_iter()
                .map(|(k, v)| (keys::decode_table_key(&k).expect("a table key").1.to_vec(), v))
                .collect();
            (format!("{}.{}", catalog.database_name(t.parent_id), t.name), rows)
        })
        .collect()
}

/// splitmix64: a small, fast, reproducible generator for seeded tests.
pub struct Rng(pub u64);

impl Rng {
    /// The next value.
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// A value in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    /// True with the given probability in percent.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

// The fault-injecting storage lives in the conformance kit, for plugin authors too.
#[allow(unused_imports)] // each test binary uses a different part of the kit
pub use strata_core::conformance::faults::{Call, Hook, Hooked, HookedOpener};
