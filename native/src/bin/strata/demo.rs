//! `strata demo`: the main job end to end on the embedded store.

use std::time::Instant;

use anyhow::{bail, Context};
use strata_core::{keys, read_span, Executor, Timestamp, Value};
use strata_native::workload;

use crate::open;

/// Every row of `db.table` as (user key, value), read at `ts` (or now).
async fn rows(exec: &Executor, table: &str, ts: Option<Timestamp>) -> anyhow::Result<Vec<(Vec<u8>, Vec<u8>)>> {
    let ts = match ts {
        Some(t) => t,
        None => exec.store().now().await?,
    };
    let id = exec.table_id("bank", table, Some(ts)).await?;
    let rows = read_span(exec.store().as_ref(), keys::table_span(id), ts).await?;
    Ok(rows.into_iter().map(|(k, v)| (k[5..].to_vec(), v)).collect())
}

async fn compare(source: &Executor, at: Timestamp, target: &Executor, table: &str) -> anyhow::Result<usize> {
    let expected = rows(source, table, Some(at)).await?;
    let got = rows(target, table, None).await?;
    if expected != got {
        bail!(
            "restored bank.{table} differs from the source: {} rows expected, {} restored",
            expected.len(),
            got.len()
        );
    }
    Ok(got.len())
}

async fn step<T>(what: &str, f: impl std::future::Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    let started = Instant::now();
    let out = f.await.with_context(|| format!("{what} failed"))?;
    println!("  ✓ {what} ({:.2}s)", started.elapsed().as_secs_f64());
    Ok(out)
}

/// Runs the demo with `rows` accounts.
pub async fn run(rows_n: u64) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir().context("cannot create a temporary directory")?;
    let backups = tmp.path().join("backups");
    let uri = format!("file://{}", backups.display());
    println!("strata demo — working in {}", tmp.path().display());

    println!("\n1. A store with the bank workload ({rows_n} accounts, {} customers)", workload::customers_for(rows_n));
    let source = open(&tmp.path().join("source"))?;
    step("workload init bank", workload::init_bank(&source, rows_n, |_| {}).map_err_anyhow()).await?;

    println!("\n2. BACKUP INTO '{uri}' WITH revision_history");
    let stmt = format!("BACKUP INTO '{uri}' WITH revision_history");
    let result = step("full cluster backup", async { Ok(source.execute(&stmt).await?) }).await?;
    println!("{result}");
    let end_time: Timestamp = match result.get(0, "end_time") {
        Some(Value::Text(t)) => t.parse()?,
        other => bail!("BACKUP returned no end_time: {other:?}"),
    };
    println!("{}", source.execute(&format!("SHOW BACKUP LATEST IN '{uri}'")).await?);

    println!("\n3. RESTORE TABLE bank.customers into a fresh store");
    let t1 = open(&tmp.path().join("restore-table"))?;
    t1.execute("CREATE DATABASE bank").await?;
    let stmt = format!("RESTORE TABLE bank.customers FROM LATEST IN '{uri}'");
    step(&stmt, async { Ok(t1.execute(&stmt).await?) }).await?;
    let n = compare(&source, end_time, &t1, "customers").await?;
    println!("  ✓ bank.customers: {n} rows equal the source as of {end_time}");

    println!("\n4. RESTORE DATABASE bank into a fresh store");
    let t2 = open(&tmp.path().join("restore-database"))?;
    let stmt = format!("RESTORE DATABASE bank FROM LATEST IN '{uri}'");
    step(&stmt, async { Ok(t2.execute(&stmt).await?) }).await?;
    for table in ["customers", "accounts"] {
        let n = compare(&source, end_time, &t2, table).await?;
        println!("  ✓ bank.{table}: {n} rows equal the source");
    }

    println!("\n5. RESTORE FROM LATEST (full cluster) into a fresh store");
    let t3 = open(&tmp.path().join("restore-cluster"))?;
    let stmt = format!("RESTORE FROM LATEST IN '{uri}'");
    step(&stmt, async { Ok(t3.execute(&stmt).await?) }).await?;
    for table in ["customers", "accounts"] {
        let n = compare(&source, end_time, &t3, table).await?;
        println!("  ✓ bank.{table}: {n} rows equal the source");
    }
    let err = t3.execute(&stmt).await.expect_err("a second full cluster restore must be refused");
    println!("  ✓ a second full cluster restore is refused: {err}");

    println!("\n6. Change 1% of the accounts, delete a few, then BACKUP INTO LATEST IN (an incremental layer)");
    let id = source.table_id("bank", "accounts", None).await?;
    let mut batch = Vec::new();
    for i in (0..rows_n).step_by(100) {
        batch.push((
            keys::table_key(id, &workload::account_key(i)),
            Some(format!("{{\"id\":{i},\"closed\":true}}").into_bytes()),
        ));
    }
    let mid = source.store().write(batch).await?;
    let deleted: Vec<_> = (1..=5).map(|i| (keys::table_key(id, &workload::account_key(i)), None)).collect();
    source.store().write(deleted).await?;
    let stmt = format!("BACKUP INTO LATEST IN '{uri}' WITH revision_history");
    let inc = step(&stmt, async { Ok(source.execute(&stmt).await?) }).await?;
    println!("{inc}");
    let inc_end: Timestamp = match inc.get(0, "end_time") {
        Some(Value::Text(t)) => t.parse()?,
        other => bail!("BACKUP returned no end_time: {other:?}"),
    };

    println!("\n7. Point-in-time restores from the chain (full + incremental)");
    for (name, at) in [("between the updates and the deletes", mid), ("at the incremental's end", inc_end)] {
        let target = open(&tmp.path().join(format!("pit-{}", at.wall)))?;
        let stmt = format!("RESTORE DATABASE bank FROM LATEST IN '{uri}' AS OF SYSTEM TIME {at}");
        step(&format!("RESTORE … AS OF SYSTEM TIME {at} ({name})"), async { Ok(target.execute(&stmt).await?) }).await?;
        for table in ["customers", "accounts"] {
            let n = compare(&source, at, &target, table).await?;
            println!("  ✓ bank.{table}: {n} rows equal the source as of {at}");
        }
    }

    println!("\ndemo passed: every restored row equals the source");
    Ok(())
}

trait MapErrAnyhow<T> {
    fn map_err_anyhow(self) -> impl std::future::Future<Output = anyhow::Result<T>>;
}

impl<T, F: std::future::Future<Output = strata_core::Result<T>>> MapErrAnyhow<T> for F {
    async fn map_err_anyhow(self) -> anyhow::Result<T> {
        Ok(self.await?)
    }
}
