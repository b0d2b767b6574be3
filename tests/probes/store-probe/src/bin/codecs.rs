//! Issue 14's codec question on a backup's real block format: data-file entries of the bench's
//! `bank.accounts` rows (key_len, key, wall, logical, kind, value_len, value), in blocks of
//! 128 KiB, 256 KiB and 1 MiB, compressed by lz4_flex and by zstd (C) at several levels, and
//! decompressed by C zstd and by ruzstd (what the wasm build would use).
//!
//!     cargo run --release --bin codecs -- [KEYS]        (default 1000000)

use std::time::Instant;

#[path = "../rows.rs"]
mod rows;
use rows::row;

fn main() {
    let n: u64 = std::env::args().nth(1).map_or(1_000_000, |a| a.parse().unwrap());
    let layout = std::env::var("LAYOUT").unwrap_or_default();
    let mut entries = Vec::new();
    let mut logical = 0usize;
    for i in 0..n {
        let (k, v) = row(i, n);
        logical += k.len() + v.len();
        let mut e = Vec::with_capacity(k.len() + v.len() + 21);
        if layout == "split" || layout == "lean" {
            // headers go to one stream, values to another: stored as (header, value) and split per block below
            let mut h = Vec::new();
            if layout == "lean" {
                h.push(k.len() as u8);
                h.extend_from_slice(&k);
                h.push(v.len() as u8);
            } else {
                h.extend_from_slice(&(k.len() as u32).to_le_bytes());
                h.extend_from_slice(&k);
                h.extend_from_slice(&(1_765_000_000_000_000_000u64 + (i / 1000) * 1_000_000).to_le_bytes());
                h.extend_from_slice(&0u32.to_le_bytes());
                h.push(0);
                h.extend_from_slice(&(v.len() as u32).to_le_bytes());
            }
            e.extend_from_slice(&(h.len() as u32).to_le_bytes());
            e.extend_from_slice(&h);
            e.extend_from_slice(&v);
            entries.push(e);
            continue;
        }
        e.extend_from_slice(&(k.len() as u32).to_le_bytes());
        e.extend_from_slice(&k);
        e.extend_from_slice(&(1_765_000_000_000_000_000u64 + (i / 1000) * 1_000_000).to_le_bytes());
        e.extend_from_slice(&0u32.to_le_bytes());
        e.push(0);
        e.extend_from_slice(&(v.len() as u32).to_le_bytes());
        e.extend_from_slice(&v);
        entries.push(e);
    }
    println!("{n} rows, {:.1} MB of keys and values", logical as f64 / 1e6);
    println!("| block | codec | stored MB | ratio (logical/stored) | compress MB/s | decompress MB/s (C) | decompress MB/s (ruzstd) |");
    println!("|---|---|---|---|---|---|---|");
    for block_size in [256usize << 10] {
        let mut blocks: Vec<Vec<u8>> = vec![Vec::new()];
        if layout.is_empty() {
            for e in &entries {
                let last = blocks.last_mut().unwrap();
                last.extend_from_slice(e);
                if last.len() >= block_size {
                    blocks.push(Vec::new());
                }
            }
        } else {
            let (mut heads, mut values) = (Vec::new(), Vec::new());
            for e in &entries {
                let hl = u32::from_le_bytes(e[..4].try_into().unwrap()) as usize;
                heads.extend_from_slice(&e[4..4 + hl]);
                values.extend_from_slice(&e[4 + hl..]);
                if heads.len() + values.len() >= block_size {
                    let last = blocks.last_mut().unwrap();
                    last.append(&mut heads);
                    last.append(&mut values);
                    blocks.push(Vec::new());
                }
            }
            let last = blocks.last_mut().unwrap();
            last.append(&mut heads);
            last.append(&mut values);
        }
        let raw: usize = blocks.iter().map(|b| b.len()).sum();
        let t = Instant::now();
        let lz: Vec<Vec<u8>> = blocks.iter().map(|b| lz4_flex::compress_prepend_size(b)).collect();
        let cs = t.elapsed().as_secs_f64();
        let t = Instant::now();
        for c in &lz {
            std::hint::black_box(lz4_flex::decompress_size_prepended(c).unwrap());
        }
        let ds = t.elapsed().as_secs_f64();
        let stored: usize = lz.iter().map(|c| c.len()).sum();
        print_row(block_size, "lz4", stored, logical, raw, [cs, ds, f64::NAN]);
        for level in [1, 3] {
            let mut comp = zstd::bulk::Compressor::new(level).unwrap();
            let t = Instant::now();
            let zs: Vec<Vec<u8>> = blocks.iter().map(|b| comp.compress(b).unwrap()).collect();
            let cs = t.elapsed().as_secs_f64();
            let mut dec = zstd::bulk::Decompressor::new().unwrap();
            let t = Instant::now();
            for (c, b) in zs.iter().zip(&blocks) {
                std::hint::black_box(dec.decompress(c, b.len()).unwrap());
            }
            let ds = t.elapsed().as_secs_f64();
            let t = Instant::now();
            for (c, b) in zs.iter().zip(&blocks) {
                let mut out = Vec::with_capacity(b.len());
                let mut d = ruzstd::decoding::StreamingDecoder::new(c.as_slice()).unwrap();
                std::io::Read::read_to_end(&mut d, &mut out).unwrap();
                assert_eq!(out.len(), b.len());
            }
            let rs = t.elapsed().as_secs_f64();
            let stored: usize = zs.iter().map(|c| c.len()).sum();
            print_row(block_size, &format!("zstd {level}"), stored, logical, raw, [cs, ds, rs]);
        }
    }
}

/// One row of the table: block size, codec, stored MB, ratio, and MB/s of `raw` bytes for each
/// of compression, decompression and ruzstd decompression (`NaN`: not measured, shown as —).
fn print_row(block_size: usize, codec: &str, stored: usize, logical: usize, raw: usize, seconds: [f64; 3]) {
    let speeds: Vec<String> =
        seconds.iter().map(|s| if s.is_nan() { "—".into() } else { format!("{:.0}", raw as f64 / 1e6 / s) }).collect();
    println!(
        "| {} KiB | {codec} | {:.1} | {:.2} | {} |",
        block_size >> 10,
        stored as f64 / 1e6,
        logical as f64 / stored as f64,
        speeds.join(" | ")
    );
}
