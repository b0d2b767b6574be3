//! The bench's `bank.accounts` rows, shared by the probe's binaries (a copy of the workload's
//! value format in `native/src/workload.rs`: the probe builds outside the workspace).

pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// The bench's account rows: `/Table/105/` ++ 10-digit id, a ~100-byte JSON value.
pub fn row(i: u64, rows: u64) -> (Vec<u8>, Vec<u8>) {
    let mut key = vec![0x10, 0, 0, 0, 105];
    key.extend_from_slice(format!("{i:010}").as_bytes());
    let r = mix(i);
    let value = format!(
        "{{\"id\":{i},\"customer_id\":{},\"balance\":{}.{:02},\"currency\":\"{}\",\"status\":\"{}\",\"opened\":\"20{:02}-{:02}-{:02}\"}}",
        r % (rows / 10).max(1),
        (r >> 8) % 1_000_000,
        (r >> 40) % 100,
        ["USD", "EUR", "GBP", "JPY"][(r >> 20) as usize % 4],
        ["open", "open", "open", "frozen", "closed"][(r >> 24) as usize % 5],
        10 + (r >> 30) % 16,
        1 + (r >> 34) % 12,
        1 + (r >> 38) % 28
    );
    (key, value.into_bytes())
}
