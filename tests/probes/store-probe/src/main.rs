//! Issue 14's first question, measured on raw engines: how fast do redb 4 (today's embedded store)
//! and fjall 3 (an LSM with bulk ingestion) take a restore's sorted versions, a workload's plain
//! writes, and a backup's full scan, and how large are their files? The rows are the bench's
//! `bank.accounts` rows (same key and value shapes), each key stored as strata's embedded store
//! stores a version: the key in an order-preserving encoding, then the inverted timestamp.
//!
//!     cargo run --release -- [KEYS] [DIR]        (default 1000000, a temporary directory)

use std::path::Path;
use std::time::Instant;

use redb::{ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

mod rows;
use rows::row;

const MVCC: TableDefinition<(&[u8], u64, u32), &[u8]> = TableDefinition::new("mvcc");
const CHANGES: TableDefinition<(u64, u32, &[u8]), &[u8]> = TableDefinition::new("change_log");

/// An order-preserving encoding of (key, timestamp) for an engine without a custom comparator:
/// 0x00 in the key becomes 0x00 0xff, the key ends with 0x00 0x01, then the inverted timestamp
/// (newest version first), so keys that prefix one another still sort as strata sorts them.
fn mvcc_key(key: &[u8], wall: u64, logical: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(key.len() + 14);
    for &b in key {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 1]);
    out.extend_from_slice(&(u64::MAX - wall).to_be_bytes());
    out.extend_from_slice(&(u32::MAX - logical).to_be_bytes());
    out
}

fn dir_bytes_of_file(path: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// Bytes allocated on disk below `dir` (not apparent sizes: fjall preallocates its journal).
fn dir_bytes(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut sum = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        sum += if m.is_dir() { dir_bytes(&e.path()) } else { m.blocks() * 512 };
    }
    sum
}

struct Row {
    what: &'static str,
    engine: &'static str,
    secs: f64,
    bytes_on_disk: Option<u64>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u64 = args.next().map_or(1_000_000, |a| a.parse().expect("KEYS"));
    let tmp = tempfile_dir(args.next());
    let rows: Vec<(Vec<u8>, Vec<u8>)> = (0..n).map(|i| row(i, n)).collect();
    let logical: u64 = rows.iter().map(|(k, v)| (k.len() + v.len()) as u64).sum();
    println!("{n} keys, {:.1} MB of keys and values, in {}", logical as f64 / 1e6, tmp.display());
    let mut out = Vec::new();
    let wall = 1_800_000_000_000_000_000u64;

    // --- restore: sorted versions of one timestamp, in batches of 64 Ki pairs --------------------
    {
        let path = tmp.join("redb-ingest.redb");
        let db = redb::Database::create(&path).unwrap();
        let t = Instant::now();
        for chunk in rows.chunks(1 << 16) {
            let mut txn = db.begin_write().unwrap();
            txn.set_durability(redb::Durability::None).unwrap();
            {
                let mut mvcc = txn.open_table(MVCC).unwrap();
                let mut buf = vec![1u8];
                for (k, v) in chunk {
                    buf.truncate(1);
                    buf.extend_from_slice(v);
                    mvcc.insert((k.as_slice(), u64::MAX - wall, u32::MAX), buf.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let txn = db.begin_write().unwrap();
        txn.commit().unwrap();
        out.push(Row {
            what: "restore (ingest sorted)",
            engine: "redb",
            secs: t.elapsed().as_secs_f64(),
            bytes_on_disk: Some(dir_bytes_of_file(&path)),
        });

        let t = Instant::now();
        let txn = db.begin_read().unwrap();
        let mvcc = txn.open_table(MVCC).unwrap();
        let mut bytes = 0usize;
        for r in mvcc.iter().unwrap() {
            let (k, v) = r.unwrap();
            bytes += k.value().0.len() + v.value().len();
        }
        assert!(bytes as u64 >= logical && mvcc.len().unwrap() == n);
        out.push(Row {
            what: "backup read (full scan)",
            engine: "redb",
            secs: t.elapsed().as_secs_f64(),
            bytes_on_disk: None,
        });
    }
    {
        let dir = tmp.join("fjall-ingest");
        let db = fjall::Database::builder(&dir).open().unwrap();
        let ks = db.keyspace("mvcc", fjall::KeyspaceCreateOptions::default).unwrap();
        let t = Instant::now();
        for chunk in rows.chunks(1 << 16) {
            let mut ingestion = ks.start_ingestion().unwrap();
            let mut buf = vec![1u8];
            for (k, v) in chunk {
                buf.truncate(1);
                buf.extend_from_slice(v);
                ingestion.write(mvcc_key(k, wall, 0), buf.clone()).unwrap();
            }
            ingestion.finish().unwrap();
        }
        db.persist(fjall::PersistMode::SyncAll).unwrap();
        let secs = t.elapsed().as_secs_f64();
        out.push(Row { what: "restore (ingest sorted)", engine: "fjall", secs, bytes_on_disk: Some(dir_bytes(&dir)) });
        println!(
            "fjall after the ingests: {} tables, {} in L0, keyspace {:.1} MB on disk",
            ks.table_count(),
            ks.l0_table_count(),
            ks.disk_space() as f64 / 1e6
        );

        let t = Instant::now();
        let mut bytes = 0usize;
        let mut count = 0u64;
        for guard in ks.iter() {
            let (k, v) = guard.into_inner().unwrap();
            bytes += k.len() - 14 + v.len();
            count += 1;
        }
        assert!(bytes as u64 >= logical && count == n, "{bytes} {count}");
        out.push(Row {
            what: "backup read (full scan)",
            engine: "fjall",
            secs: t.elapsed().as_secs_f64(),
            bytes_on_disk: None,
        });
    }

    // --- plain writes: durable batches of 1,000 keys, each version also in a change log ----------
    {
        let path = tmp.join("redb-writes.redb");
        let db = redb::Database::create(&path).unwrap();
        let t = Instant::now();
        for (b, chunk) in rows.chunks(1000).enumerate() {
            let txn = db.begin_write().unwrap();
            {
                let mut mvcc = txn.open_table(MVCC).unwrap();
                let mut changes = txn.open_table(CHANGES).unwrap();
                let mut buf = vec![1u8];
                for (k, v) in chunk {
                    buf.truncate(1);
                    buf.extend_from_slice(v);
                    mvcc.insert((k.as_slice(), u64::MAX - wall - b as u64, u32::MAX), buf.as_slice()).unwrap();
                    changes.insert((wall + b as u64, 0, k.as_slice()), buf.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        out.push(Row {
            what: "plain writes (+ change log)",
            engine: "redb",
            secs,
            bytes_on_disk: Some(dir_bytes_of_file(&path)),
        });
    }
    {
        let dir = tmp.join("fjall-writes");
        let db = fjall::Database::builder(&dir).open().unwrap();
        let mvcc = db.keyspace("mvcc", fjall::KeyspaceCreateOptions::default).unwrap();
        // The change log as an index: (timestamp, key) without the value, which the scan of
        // changes reads from "mvcc" (an LSM's point reads of recent keys hit its cache).
        let changes = db.keyspace("changes", fjall::KeyspaceCreateOptions::default).unwrap();
        let t = Instant::now();
        for (b, chunk) in rows.chunks(1000).enumerate() {
            let mut batch = db.batch();
            let mut buf = vec![1u8];
            for (k, v) in chunk {
                buf.truncate(1);
                buf.extend_from_slice(v);
                batch.insert(&mvcc, mvcc_key(k, wall + b as u64, 0), buf.clone());
                let mut c = (wall + b as u64).to_be_bytes().to_vec();
                c.extend_from_slice(k);
                batch.insert(&changes, c, []);
            }
            batch.commit().unwrap();
            db.persist(fjall::PersistMode::SyncData).unwrap();
        }
        let secs = t.elapsed().as_secs_f64();
        drop((mvcc, changes));
        drop(db);
        out.push(Row {
            what: "plain writes (+ change log)",
            engine: "fjall",
            secs,
            bytes_on_disk: Some(dir_bytes(&dir)),
        });
    }

    // --- codecs of a backup's data blocks: 1 MiB of consecutive keys and values each -----------
    let mut blocks: Vec<Vec<u8>> = vec![Vec::new()];
    for (k, v) in &rows {
        let last = blocks.last_mut().unwrap();
        last.extend_from_slice(k);
        last.extend_from_slice(v);
        if last.len() >= 1 << 20 {
            blocks.push(Vec::new());
        }
    }
    let t = Instant::now();
    let lz4: usize = blocks.iter().map(|b| lz4_flex::compress_prepend_size(b).len()).sum();
    let lz4_secs = t.elapsed().as_secs_f64();
    let t = Instant::now();
    let zstd: usize = blocks
        .iter()
        .map(|b| ruzstd::encoding::compress_to_vec(b.as_slice(), ruzstd::encoding::CompressionLevel::Fastest).len())
        .sum();
    let zstd_secs = t.elapsed().as_secs_f64();
    println!("codecs on 1 MiB blocks of keys and values ({:.1} MB):", logical as f64 / 1e6);
    println!(
        "  lz4_flex      {:.1} MB ({:.2}×) at {:.0} MB/s",
        lz4 as f64 / 1e6,
        logical as f64 / lz4 as f64,
        logical as f64 / 1e6 / lz4_secs
    );
    println!(
        "  ruzstd fastest {:.1} MB ({:.2}×) at {:.0} MB/s",
        zstd as f64 / 1e6,
        logical as f64 / zstd as f64,
        logical as f64 / 1e6 / zstd_secs
    );

    println!("| step | engine | s | MB/s (logical) | on disk | on disk / logical |");
    println!("|---|---|---|---|---|---|");
    for r in &out {
        let disk = r.bytes_on_disk.map_or(String::from("—"), |b| format!("{:.1} MB", b as f64 / 1e6));
        let ratio = r.bytes_on_disk.map_or(String::from("—"), |b| format!("{:.2}×", b as f64 / logical as f64));
        println!(
            "| {} | {} | {:.2} | {:.1} | {} | {} |",
            r.what,
            r.engine,
            r.secs,
            logical as f64 / 1e6 / r.secs,
            disk,
            ratio
        );
    }
}

fn tempfile_dir(arg: Option<String>) -> std::path::PathBuf {
    let dir = match arg {
        Some(d) => std::path::PathBuf::from(d),
        None => std::env::temp_dir().join(format!("store-probe-{}", std::process::id())),
    };
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
