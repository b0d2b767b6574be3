//! zstd blocks of a data file: `claimed: u32 LE ‖ one zstd frame` (RFC 8878).
//!
//! Native builds compress and decompress them with the reference library (`zstd`, C). The wasm
//! build cannot compile C: it decompresses them with ruzstd (pure Rust), so backups written
//! natively restore in a browser, and writes LZ4 blocks itself (ruzstd's encoder is 6× slower
//! than LZ4 for a smaller gain than C zstd's; see [`BlockCodec`](super::datafile::BlockCodec)).
//!
//! Before anything is allocated for a block, its frame header is read: the frame must say it
//! decompresses to exactly the claimed size (itself bounded by [`MAX_LZ4_BLOCK_LEN`] and the
//! file's decode budget), use no dictionary, and ask for a window of at most twice that size.
//! So a forged header can make a reader allocate no more than the block's claimed size, as for
//! LZ4 blocks; the decoder then writes into a buffer of exactly that size and the block is
//! refused unless it fills it.

use crate::error::{Error, Result};
use crate::format::datafile::MAX_LZ4_BLOCK_LEN;

const MAGIC: [u8; 4] = [0x28, 0xb5, 0x2f, 0xfd];

/// The size a zstd block claims, checked against [`MAX_LZ4_BLOCK_LEN`] and against its frame
/// header (see the module docs).
pub(crate) fn zstd_claimed_len(payload: &[u8], index: usize, path: &str) -> Result<u32> {
    let bad = |what: &str| Error::corrupt(path, format!("block {index} {what}"));
    let Some(head) = payload.get(..4) else {
        return Err(bad("is too short for its zstd header"));
    };
    let claimed = u32::from_le_bytes(head.try_into().expect("4 bytes"));
    if claimed > MAX_LZ4_BLOCK_LEN {
        return Err(bad(&format!(
            "claims to decompress to {claimed} bytes, more than a block holds ({MAX_LZ4_BLOCK_LEN})"
        )));
    }
    let frame = &payload[4..];
    if frame.get(..4) != Some(&MAGIC[..]) {
        return Err(bad("is not a zstd frame"));
    }
    let Some(&descriptor) = frame.get(4) else {
        return Err(bad("is cut short in its zstd frame header"));
    };
    let single_segment = descriptor & 0x20 != 0;
    if descriptor & 0x08 != 0 || descriptor & 0x03 != 0 {
        return Err(bad("has a zstd frame with reserved bits or a dictionary"));
    }
    let mut pos = 5;
    let window_descriptor = if single_segment {
        None
    } else {
        let wd = *frame.get(pos).ok_or_else(|| bad("is cut short in its zstd frame header"))?;
        pos += 1;
        Some(wd)
    };
    let content_size = match (descriptor >> 6, single_segment) {
        (0, false) => None,
        (0, true) => frame.get(pos).map(|&b| b as u64),
        (1, _) => frame.get(pos..pos + 2).map(|b| u16::from_le_bytes(b.try_into().expect("2 bytes")) as u64 + 256),
        (2, _) => frame.get(pos..pos + 4).map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")) as u64),
        _ => frame.get(pos..pos + 8).map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes"))),
    };
    if content_size != Some(claimed as u64) {
        return Err(bad(&format!(
            "claims to decompress to {claimed} bytes, but its zstd frame says {}",
            content_size.map_or_else(|| "nothing or is cut short".to_string(), |n| format!("{n}"))
        )));
    }
    let window = match window_descriptor {
        None => claimed as u64,
        Some(wd) => {
            let base = 1u64 << (10 + (wd >> 3));
            base + base / 8 * (wd & 7) as u64
        }
    };
    if window > (2 * claimed as u64).max(1 << 10) {
        return Err(bad(&format!("asks for a zstd window of {window} bytes for {claimed} bytes of content")));
    }
    Ok(claimed)
}

/// Decompresses a block's frame (`payload` without its 4-byte claimed size) into exactly
/// `claimed` bytes.
pub(crate) fn zstd_decompress(frame: &[u8], claimed: u32, index: usize, path: &str) -> Result<Vec<u8>> {
    let mut out = vec![0u8; claimed as usize];
    let written = decompress_into(frame, &mut out)
        .map_err(|e| Error::corrupt(path, format!("block {index} does not decompress: {e}")))?;
    if written != out.len() {
        return Err(Error::corrupt(
            path,
            format!("block {index} decompresses to {written} bytes, its header says {claimed}"),
        ));
    }
    Ok(out)
}

#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
fn decompress_into(frame: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    use std::cell::RefCell;
    thread_local! {
        // One decompression context per thread, reused across blocks (zstd allocates ~100 KiB
        // for one).
        static CONTEXT: RefCell<Option<zstd::bulk::Decompressor<'static>>> = const { RefCell::new(None) };
    }
    CONTEXT.with(|cell| {
        let mut cell = cell.borrow_mut();
        if cell.is_none() {
            *cell = Some(zstd::bulk::Decompressor::new().map_err(|e| e.to_string())?);
        }
        cell.as_mut().expect("set above").decompress_to_buffer(frame, out).map_err(|e| e.to_string())
    })
}

#[cfg(any(all(target_family = "wasm", target_os = "unknown"), test))]
fn ruzstd_decompress_into(frame: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    ruzstd::decoding::FrameDecoder::new().decode_all(frame, out).map_err(|e| e.to_string())
}

#[cfg(all(target_family = "wasm", target_os = "unknown"))]
fn decompress_into(frame: &[u8], out: &mut [u8]) -> std::result::Result<usize, String> {
    ruzstd_decompress_into(frame, out)
}

/// A zstd compressor at one level, kept by a data file writer across its blocks (native only).
#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
pub(crate) struct ZstdCompressor(zstd::bulk::Compressor<'static>);

#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
impl ZstdCompressor {
    pub(crate) fn new(level: i32) -> Option<ZstdCompressor> {
        let mut c = zstd::bulk::Compressor::new(level).ok()?;
        // The frame records its content size (what the reader checks); the block's CRC-32
        // covers the bytes, so no frame checksum.
        c.include_contentsize(true).ok()?;
        c.include_checksum(false).ok()?;
        Some(ZstdCompressor(c))
    }

    /// Appends `claimed ‖ frame` for `block` to `out`; `false` (and `out` unchanged) when the
    /// frame would not save `min_saving` bytes.
    pub(crate) fn compress_into(&mut self, block: &[u8], out: &mut Vec<u8>, min_saving: usize) -> bool {
        let start = out.len();
        let bound = zstd::zstd_safe::compress_bound(block.len());
        out.resize(start + 4 + bound, 0);
        out[start..start + 4].copy_from_slice(&(block.len() as u32).to_le_bytes());
        match self.0.compress_to_buffer(block, &mut out[start + 4..]) {
            Ok(n) if 4 + n + min_saving <= block.len() => {
                out.truncate(start + 4 + n);
                true
            }
            _ => {
                out.truncate(start);
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    /// A block's claimed size and a zstd frame header of single-segment form declaring
    /// `content` bytes (4-byte content size), with no blocks after it.
    fn header(claimed: u32, content: u32) -> Vec<u8> {
        let mut out = claimed.to_le_bytes().to_vec();
        out.extend_from_slice(&MAGIC);
        out.push(0xa0); // content size: 4 bytes; single segment
        out.extend_from_slice(&content.to_le_bytes());
        out
    }

    /// The header checks are the same code on every build (the wasm build included).
    #[test]
    fn headers_are_checked_before_anything_is_allocated() {
        assert_eq!(zstd_claimed_len(&header(70_000, 70_000), 0, "f"), Ok(70_000));
        let refused = |p: &[u8]| zstd_claimed_len(p, 3, "f").unwrap_err().to_string();
        assert!(refused(&header(70_000, 70_001)).contains("its zstd frame says 70001"));
        assert!(refused(&header(MAX_LZ4_BLOCK_LEN + 1, MAX_LZ4_BLOCK_LEN + 1)).contains("more than a block holds"));
        let mut dictionary = header(10, 10);
        dictionary[8] |= 0x01;
        assert!(refused(&dictionary).contains("dictionary"));
        // A frame whose blocks are missing decodes to nothing: refused after the header.
        let frame = header(300, 300);
        assert!(zstd_decompress(&frame[4..], 300, 0, "f").is_err());
    }

    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    fn block(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8 ^ (i / 1000) as u8).collect()
    }

    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    fn compressed(data: &[u8], level: i32) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(ZstdCompressor::new(level).unwrap().compress_into(data, &mut out, 0));
        out
    }

    /// Both decoders (C natively, ruzstd in the wasm build) read what the native writer writes.
    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    #[test]
    fn c_and_ruzstd_read_the_native_frames() {
        for (len, level) in [(4096usize, 3), (128 << 10, 1), (1 << 20, -1), (1 << 20, 5)] {
            let data = block(len);
            let payload = compressed(&data, level);
            let claimed = zstd_claimed_len(&payload, 0, "f").unwrap();
            assert_eq!(claimed as usize, len);
            assert_eq!(zstd_decompress(&payload[4..], claimed, 0, "f").unwrap(), data);
            let mut out = vec![0; len];
            assert_eq!(ruzstd_decompress_into(&payload[4..], &mut out), Ok(len));
            assert_eq!(out, data, "ruzstd, {len} bytes at level {level}");
        }
    }

    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    #[test]
    fn forged_headers_are_refused_before_allocating() {
        let data = block(64 << 10);
        let payload = compressed(&data, 3);
        let refuse = |p: &[u8], says: &str| {
            let err = zstd_claimed_len(p, 7, "data/x.sst").unwrap_err().to_string();
            assert!(err.starts_with("corrupt data/x.sst: block 7") && err.contains(says), "{says}: {err}");
        };
        let mut forged = payload.clone();
        forged[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        refuse(&forged, "more than a block holds");
        forged[..4].copy_from_slice(&(data.len() as u32 + 1).to_le_bytes());
        refuse(&forged, "but its zstd frame says 65536");
        forged = payload.clone();
        forged[4] ^= 1;
        refuse(&forged, "not a zstd frame");
        refuse(&payload[..8], "cut short");
        // A frame without a content size, or with a window far larger than its content.
        let mut forged = payload.clone();
        forged[8] = 0x00; // no content size, not single-segment: a window descriptor follows
        forged.insert(9, 0x00);
        refuse(&forged, "says nothing");
        let mut forged = payload.clone();
        forged[8] = 0x80; // 4-byte content size, not single-segment
        forged.splice(9..9, [(30 - 10) << 3]);
        let fcs_at = 10;
        forged.splice(fcs_at..fcs_at, (data.len() as u32).to_le_bytes());
        refuse(&forged, "asks for a zstd window of 1073741824 bytes");
        // A frame that decodes to fewer bytes than it claims is refused after decoding.
        let short = compressed(&data[..1000], 3);
        let mut forged = short.clone();
        forged[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert_eq!(zstd_decompress(&forged[4..], 1000, 0, "f").unwrap(), data[..1000].to_vec());
        assert!(zstd_decompress(&forged[4..], 999, 0, "f").is_err());
    }
}
