//! LZ4 blocks of a data file, bounded before anything is allocated: the size a block's header
//! claims is checked against [`MAX_LZ4_BLOCK_LEN`] and against the size its sequences really
//! decompress to, counted from their lengths alone, so that a forged header cannot make a reader
//! allocate more than the block's own bytes decode to.

use crate::error::{Error, Result};
use crate::format::datafile::MAX_LZ4_BLOCK_LEN;

/// The size an LZ4 block's header claims, checked against [`MAX_LZ4_BLOCK_LEN`] and against
/// the size its sequences really decompress to (counted without decompressing), so that what is
/// allocated for it is what its bytes hold.
pub(crate) fn lz4_claimed_len(payload: &[u8], index: usize, path: &str) -> Result<u32> {
    let Some(head) = payload.get(..4) else {
        return Err(Error::corrupt(path, format!("block {index} is too short for its LZ4 header")));
    };
    let claimed = u32::from_le_bytes(head.try_into().expect("4 bytes"));
    if claimed > MAX_LZ4_BLOCK_LEN {
        return Err(Error::corrupt(
            path,
            format!(
                "block {index} claims to decompress to {claimed} bytes, more than a block holds ({MAX_LZ4_BLOCK_LEN})"
            ),
        ));
    }
    match lz4_decompressed_len(&payload[4..], claimed as u64) {
        Some(n) if n == claimed as u64 => Ok(claimed),
        Some(n) => Err(Error::corrupt(
            path,
            format!("block {index} claims to decompress to {claimed} bytes, but its LZ4 sequences hold {n}"),
        )),
        None => Err(Error::corrupt(path, format!("block {index} is not a well-formed LZ4 block"))),
    }
}

/// The bytes an LZ4 block's sequences decompress to, counted from their lengths alone (no
/// output is written), stopping once past `limit`; `None` when the sequences are cut short.
fn lz4_decompressed_len(input: &[u8], limit: u64) -> Option<u64> {
    fn length(input: &[u8], pos: &mut usize, nibble: u8) -> Option<u64> {
        let mut n = nibble as u64;
        if nibble == 15 {
            loop {
                let b = *input.get(*pos)?;
                *pos += 1;
                n += b as u64;
                if b != 255 {
                    break;
                }
            }
        }
        Some(n)
    }
    let (mut pos, mut total) = (0usize, 0u64);
    loop {
        let token = *input.get(pos)?;
        pos += 1;
        let literals = length(input, &mut pos, token >> 4)?;
        if literals > (input.len() - pos) as u64 {
            return None;
        }
        pos += literals as usize;
        total += literals;
        if pos == input.len() {
            return Some(total);
        }
        // A 2-byte offset, then the match's length beyond the minimum of 4.
        pos = pos.checked_add(2).filter(|&p| p <= input.len())?;
        total += 4 + length(input, &mut pos, token & 15)?;
        if total > limit {
            return Some(total);
        }
    }
}
