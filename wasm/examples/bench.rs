//! The native half of the wasm benchmark: the same full backup `wasm/bench/bench.js` runs in
//! Node, of the same generated rows, through the same code (strata-wasm's `Strata` over the
//! in-memory MVCC store, backing up to `memory://`), compiled natively. One thread on both sides:
//! the core's concurrency is `futures` combinators on one executor.
//!
//!   cargo run --release -p strata-wasm --example bench -- [ROWS] [REPEATS]
//!
//! Prints one JSON line: {"side":"native","rows":…,"logical_bytes":…,"full_s":…,"full_mb_s":…,
//! "encrypted_s":…,"encrypted_mb_s":…}. `wasm/bench/run.sh` runs both halves and the ratio.

use std::time::Instant;

use futures::executor::block_on;
use strata_wasm::Strata;

/// SplitMix64's finalizer: the same generator as bench.js.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Row `i`: a 15-byte key and a ~120-byte value, half templated text (compressible), half hex
/// of random bits (not) — exactly what bench.js generates.
fn row(i: u64) -> (Vec<u8>, Vec<u8>) {
    let r = mix(i);
    let key = format!("acct-{i:010}");
    let value = format!(
        "{{\"id\":{i},\"balance\":{},\"currency\":\"{}\",\"status\":\"open\",\"token\":\"{:016x}{:016x}{:016x}\"}}",
        r % 1_000_000,
        ["USD", "EUR", "GBP", "JPY"][((r >> 20) % 4) as usize],
        mix(i ^ 1),
        mix(i ^ 2),
        mix(i ^ 3)
    );
    (key.into_bytes(), value.into_bytes())
}

fn main() {
    let mut args = std::env::args().skip(1);
    let rows: u64 = args.next().map_or(200_000, |a| a.parse().expect("ROWS is a number"));
    let repeats: u32 = args.next().map_or(3, |a| a.parse().expect("REPEATS is a number"));
    let s = Strata::in_memory();
    let logical = block_on(async {
        s.execute("CREATE DATABASE bench").await.unwrap();
        s.execute("CREATE TABLE bench.accounts").await.unwrap();
        let mut logical = 0u64;
        for start in (0..rows).step_by(10_000) {
            let batch: Vec<_> = (start..(start + 10_000).min(rows)).map(row).collect();
            logical += batch.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum::<u64>();
            s.put_many("bench", "accounts", batch).await.unwrap();
        }
        logical
    });
    let best = |sql: &dyn Fn(u32) -> String| {
        (0..repeats)
            .map(|n| {
                let started = Instant::now();
                block_on(s.execute(&sql(n))).unwrap();
                started.elapsed().as_secs_f64()
            })
            .fold(f64::INFINITY, f64::min)
    };
    let full = best(&|n| format!("BACKUP DATABASE bench INTO 'memory://plain{n}'"));
    let encrypted =
        best(&|n| format!("BACKUP DATABASE bench INTO 'memory://enc{n}' WITH encryption_passphrase = 'benchmark'"));
    let mb_s = |secs: f64| logical as f64 / 1e6 / secs;
    println!(
        "{{\"side\":\"native\",\"rows\":{rows},\"logical_bytes\":{logical},\"full_s\":{full:.4},\"full_mb_s\":{:.1},\"encrypted_s\":{encrypted:.4},\"encrypted_mb_s\":{:.1}}}",
        mb_s(full),
        mb_s(encrypted)
    );
}
