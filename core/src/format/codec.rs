//! How a data file's blocks are compressed and decompressed: the codec byte after each
//! block's payload (see [`super::datafile`]) and what it means.

use bytes::Bytes;

use crate::error::{Error, Result};
use crate::format::datafile::MAX_LZ4_BLOCK_LEN;
use crate::format::lz4::lz4_claimed_len;
#[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
use crate::format::zstd::ZstdCompressor;
use crate::format::zstd::{zstd_claimed_len, zstd_decompress};

/// The codec byte of a block stored as it is.
pub(crate) const CODEC_NONE: u8 = 0;
/// The codec byte of an LZ4 block: decompressed length u32 LE ‖ LZ4 block format.
pub(crate) const CODEC_LZ4: u8 = 1;
/// The codec byte of a zstd block: decompressed length u32 LE ‖ one zstd frame.
pub(crate) const CODEC_ZSTD: u8 = 2;

/// How a data file's blocks are compressed. Every build reads every codec; which one a build
/// writes by default ([`BlockCodec::DEFAULT`]) was chosen by measurement on the bench's rows
/// (README, "Benchmark"): zstd natively, LZ4 in the wasm build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BlockCodec {
    /// Blocks stored as they are.
    None,
    /// LZ4 (lz4_flex): fast both ways (~750 MB/s to compress on the bench's rows, 3.4×).
    Lz4,
    /// zstd at this level (the reference library's levels, 1–22, or negative for faster ones).
    /// Native builds only: the wasm build reads zstd blocks but cannot compile the C library,
    /// and writes LZ4 when asked for zstd.
    Zstd {
        /// The compression level.
        level: i32,
    },
}

impl BlockCodec {
    /// What data files are written with unless told otherwise.
    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    pub const DEFAULT: BlockCodec = BlockCodec::Zstd { level: ZSTD_DEFAULT_LEVEL };
    /// What data files are written with unless told otherwise.
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    pub const DEFAULT: BlockCodec = BlockCodec::Lz4;
}

/// The zstd level native builds write ([`BlockCodec::DEFAULT`]).
pub const ZSTD_DEFAULT_LEVEL: i32 = 1;

/// Compresses a writer's blocks with its codec, keeping a zstd context across them.
pub(crate) struct BlockCompressor {
    codec: BlockCodec,
    #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
    zstd: Option<ZstdCompressor>,
}

impl BlockCompressor {
    pub(crate) fn new(codec: BlockCodec) -> BlockCompressor {
        BlockCompressor {
            codec,
            #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
            zstd: match codec {
                BlockCodec::Zstd { level } => ZstdCompressor::new(level),
                _ => None,
            },
        }
    }

    /// Appends `block` compressed to `out` and returns its codec byte, or appends nothing and
    /// returns [`CODEC_NONE`] when compressing would not save an eighth (or the block is larger
    /// than [`MAX_LZ4_BLOCK_LEN`]): the caller then stores it as it is.
    pub(crate) fn compress_into(&mut self, block: &[u8], out: &mut Vec<u8>) -> u8 {
        if self.codec == BlockCodec::None || block.len() > MAX_LZ4_BLOCK_LEN as usize {
            return CODEC_NONE;
        }
        // zstd where this build can write it, else LZ4 (the wasm build, asked for zstd).
        #[cfg(not(all(target_family = "wasm", target_os = "unknown")))]
        if let Some(zstd) = &mut self.zstd {
            return if zstd.compress_into(block, out, block.len() / 8) { CODEC_ZSTD } else { CODEC_NONE };
        }
        // LZ4 with the uncompressed size prepended, compressed straight into the file's buffer.
        let start = out.len();
        let max = lz4_flex::block::get_maximum_output_size(block.len());
        out.resize(start + 4 + max, 0);
        out[start..start + 4].copy_from_slice(&(block.len() as u32).to_le_bytes());
        match lz4_flex::block::compress_into(block, &mut out[start + 4..]) {
            Ok(n) if 4 + n < block.len() - block.len() / 8 => {
                out.truncate(start + 4 + n);
                CODEC_LZ4
            }
            _ => {
                out.truncate(start);
                CODEC_NONE
            }
        }
    }
}

/// The payload of block `index` of `path` stored with `codec`, decompressed; at most
/// `max_payload` bytes (and a compressed block at most [`MAX_LZ4_BLOCK_LEN`]), checked before
/// anything is allocated.
pub(crate) fn decompress_block(codec: u8, payload: &[u8], index: usize, path: &str, max_payload: u64) -> Result<Bytes> {
    let too_big = |n: u64| {
        Error::corrupt(
            path,
            format!("block {index} decodes to {n} bytes, more than the {max_payload} the file's entries can hold"),
        )
    };
    Ok(match codec {
        CODEC_NONE if payload.len() as u64 > max_payload => return Err(too_big(payload.len() as u64)),
        CODEC_NONE => Bytes::copy_from_slice(payload),
        CODEC_ZSTD => {
            let claimed = zstd_claimed_len(payload, index, path)?;
            if claimed as u64 > max_payload {
                return Err(too_big(claimed as u64));
            }
            Bytes::from(zstd_decompress(&payload[4..], claimed, index, path)?)
        }
        CODEC_LZ4 => {
            let claimed = lz4_claimed_len(payload, index, path)?;
            if claimed as u64 > max_payload {
                return Err(too_big(claimed as u64));
            }
            Bytes::from(
                lz4_flex::block::decompress(&payload[4..], claimed as usize)
                    .map_err(|e| Error::corrupt(path, format!("block {index} does not decompress: {e}")))?,
            )
        }
        other => return Err(Error::corrupt(path, format!("block {index} has unknown codec {other}"))),
    })
}
