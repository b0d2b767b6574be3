//! The `bank` sample workload: a database `bank` with tables `customers` and `accounts`, rows
//! with realistic, partly compressible values. Deterministic for a given row count.

use strata_core::sql::{Statement, TableName};
use strata_core::{keys, Executor, Result, Timestamp};

/// Rows written per write transaction.
const BATCH: u64 = 5_000;

/// What `init_bank` wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BankSummary {
    /// Rows in `bank.accounts`.
    pub accounts: u64,
    /// Rows in `bank.customers`.
    pub customers: u64,
    /// Key and value bytes written.
    pub logical_bytes: u64,
    /// Timestamp of the last write.
    pub last_write: Timestamp,
}

/// Number of customers for `rows` accounts: one per ten accounts, at least one.
pub fn customers_for(rows: u64) -> u64 {
    (rows / 10).max(1)
}

/// The key of account `i` (zero-padded so keys sort by id).
pub fn account_key(i: u64) -> Vec<u8> {
    format!("{i:010}").into_bytes()
}

/// The value of account `i`.
pub fn account_value(i: u64, rows: u64) -> Vec<u8> {
    let r = mix(i);
    format!(
        "{{\"id\":{i},\"customer_id\":{},\"balance\":{}.{:02},\"currency\":\"{}\",\"status\":\"{}\",\"opened\":\"20{:02}-{:02}-{:02}\"}}",
        r % customers_for(rows),
        (r >> 8) % 1_000_000,
        (r >> 40) % 100,
        ["USD", "EUR", "GBP", "JPY"][(r >> 20) as usize % 4],
        ["open", "open", "open", "frozen", "closed"][(r >> 24) as usize % 5],
        10 + (r >> 30) % 16,
        1 + (r >> 34) % 12,
        1 + (r >> 38) % 28
    )
    .into_bytes()
}

/// The value of customer `i`.
pub fn customer_value(i: u64) -> Vec<u8> {
    let r = mix(i ^ 0x5bd1_e995);
    const FIRST: [&str; 8] = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
    const LAST: [&str; 8] = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"];
    let first = FIRST[r as usize % 8];
    let last = LAST[(r >> 3) as usize % 8];
    format!(
        "{{\"id\":{i},\"name\":\"{first} {last}\",\"email\":\"{}.{}{}@example.com\",\"city\":\"{}\"}}",
        first.to_lowercase(),
        last.to_lowercase(),
        r % 10_000,
        ["Lisbon", "Oslo", "Austin", "Nairobi", "Osaka", "Quito"][(r >> 6) as usize % 6]
    )
    .into_bytes()
}

fn mix(mut x: u64) -> u64 {
    // splitmix64: a cheap, well-distributed deterministic hash.
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Creates `bank.customers` and `bank.accounts` (and the database) and fills them: `rows`
/// accounts and [`customers_for`]`(rows)` customers. Calls `progress(rows_written)` after each batch.
pub async fn init_bank(exec: &Executor, rows: u64, progress: impl FnMut(u64)) -> Result<BankSummary> {
    init_bank_in_batches(exec, rows, BATCH, progress).await
}

/// [`init_bank`] writing `batch` rows per write transaction (an etcd store takes at most 128
/// operations per transaction).
pub async fn init_bank_in_batches(
    exec: &Executor,
    rows: u64,
    batch: u64,
    mut progress: impl FnMut(u64),
) -> Result<BankSummary> {
    let batch_rows = batch.max(1);
    exec.execute_statement(&Statement::CreateDatabase { name: "bank".into(), if_not_exists: true }).await?;
    for t in ["customers", "accounts"] {
        let name = TableName { database: Some("bank".into()), table: t.into() };
        exec.execute_statement(&Statement::CreateTable { name, if_not_exists: true }).await?;
    }
    let customers = customers_for(rows);
    let mut summary = BankSummary { accounts: rows, customers, logical_bytes: 0, last_write: Timestamp::ZERO };
    let mut written = 0;
    for (table, count) in [("customers", customers), ("accounts", rows)] {
        let id = exec.table_id("bank", table, None).await?;
        let mut start = 0;
        while start < count {
            let end = (start + batch_rows).min(count);
            let batch: Vec<(Vec<u8>, Option<Vec<u8>>)> = (start..end)
                .map(|i| {
                    let (k, v) = if table == "accounts" {
                        (account_key(i), account_value(i, rows))
                    } else {
                        (format!("{i:08}").into_bytes(), customer_value(i))
                    };
                    summary.logical_bytes += (k.len() + v.len()) as u64;
                    (keys::table_key(id, &k), Some(v))
                })
                .collect();
            summary.last_write = exec.store().write(batch).await?;
            written += end - start;
            progress(written);
            start = end;
        }
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_and_json_shaped() {
        assert_eq!(account_value(7, 100), account_value(7, 100));
        assert_ne!(account_value(7, 100), account_value(8, 100));
        let v: serde_json::Value = serde_json::from_slice(&account_value(42, 1000)).unwrap();
        assert_eq!(v["id"], 42);
        let c: serde_json::Value = serde_json::from_slice(&customer_value(3)).unwrap();
        assert!(c["email"].as_str().unwrap().ends_with("@example.com"));
    }
}
