//! How much slower an encrypted full backup is than a plain one of the same data.
//!
//! ```sh
//! cargo run --release -p strata-native --example enc_overhead -- [ROWS] [ROUNDS]
//! ```
//!
//! Fills an embedded store with the `bank` workload (ROWS accounts, default 500,000), then takes
//! ROUNDS (default 5) pairs of full backups of `bank` into fresh local directories — one plain,
//! one `WITH encryption_passphrase` at the default argon2id cost (64 MiB, 3 passes, 4 lanes),
//! alternating which goes first — and reports the median of each and the overhead. The encrypted
//! time includes deriving the key from the passphrase once (reported separately too).

use std::sync::Arc;
use std::time::{Duration, Instant};

use strata_core::crypto::kdf::KdfParams;
use strata_core::{Executor, QueryResult};
use strata_native::{os_entropy, workload, EmbeddedStore, FileKmsOpener, NativeOpener};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn total_bytes(r: &QueryResult) -> u64 {
    r.get(0, "bytes").map(|v| v.to_string().parse().unwrap_or(0)).unwrap_or(0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map(|a| a.parse()).transpose()?.unwrap_or(500_000);
    let rounds: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(5);
    let dir = tempfile::tempdir()?;
    let store = EmbeddedStore::open(&dir.path().join("store"))?;
    let exec = Executor::new(Arc::new(store), Arc::new(NativeOpener::new(dir.path().join("extern"))))
        .with_entropy(os_entropy())
        .with_kms_opener(Arc::new(FileKmsOpener));
    let started = Instant::now();
    let summary = workload::init_bank(&exec, rows, |_| {}).await?;
    eprintln!(
        "bank: {} accounts, {} customers, {:.1} MB logical, loaded in {:.1}s",
        summary.accounts,
        summary.customers,
        summary.logical_bytes as f64 / 1e6,
        started.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    KdfParams::default().derive("a passphrase", &[0; 16])?;
    let kdf = t.elapsed();

    let backups = dir.path().join("backups");
    let (mut plain, mut encrypted) = (Vec::new(), Vec::new());
    let (mut plain_bytes, mut enc_bytes) = (0, 0);
    // One warm-up pair (page cache, allocator), not counted.
    for round in 0..=rounds {
        for encrypt in if round % 2 == 0 { [false, true] } else { [true, false] } {
            let uri = format!("file://{}/{}-{round}", backups.display(), if encrypt { "enc" } else { "plain" });
            let with = if encrypt { " WITH encryption_passphrase = 'benchmark passphrase'" } else { "" };
            let t = Instant::now();
            let r = exec.execute(&format!("BACKUP DATABASE bank TO '{uri}'{with}")).await?;
            let took = t.elapsed();
            if round == 0 {
                continue;
            }
            if encrypt {
                encrypted.push(took);
                enc_bytes = total_bytes(&r);
            } else {
                plain.push(took);
                plain_bytes = total_bytes(&r);
            }
        }
    }
    let (p, e) = (median(plain), median(encrypted));
    let mb = summary.logical_bytes as f64 / 1e6;
    println!("rows                 {rows} accounts ({mb:.1} MB of keys and values)");
    println!(
        "plain full backup    {:>8.3}s  {:>7.1} MB/s  {} bytes stored",
        p.as_secs_f64(),
        mb / p.as_secs_f64(),
        plain_bytes
    );
    println!(
        "encrypted            {:>8.3}s  {:>7.1} MB/s  {} bytes stored",
        e.as_secs_f64(),
        mb / e.as_secs_f64(),
        enc_bytes
    );
    println!("  of which argon2id  {:>8.3}s  (once per statement, 64 MiB / 3 passes / 4 lanes)", kdf.as_secs_f64());
    println!(
        "overhead             {:>+7.1}%  ({:+.1}% without the key derivation); median of {rounds}",
        (e.as_secs_f64() / p.as_secs_f64() - 1.0) * 100.0,
        ((e.as_secs_f64() - kdf.as_secs_f64()) / p.as_secs_f64() - 1.0) * 100.0
    );
    Ok(())
}
