//! The passphrase KDF: argon2id (RFC 9106), its parameters stored beside each wrapped key.
//!
//! argon2id is memory-hard: every guess costs an attacker `memory_kib` of memory for
//! `iterations` passes, which makes GPU and ASIC guessing far costlier than with PBKDF2
//! (CockroachDB uses PBKDF2-HMAC-SHA256 at 64,000 iterations). The default, 64 MiB, 3 passes,
//! 4 lanes, is RFC 9106's second recommended setting; it takes a fraction of a second once per
//! statement. The parameters and a random 16-byte salt are stored in `ENCRYPTION-INFO` with the
//! key they derive, and read back from there, so a later build may raise the default for new
//! passphrases while every existing backup still opens with the parameters it was made with.

use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::crypto::KEY_LEN;
use crate::error::{Error, Result};

/// Bytes of a KDF salt.
pub const SALT_LEN: usize = 16;

/// The most memory a stored parameter set may ask for (4 GiB): an `ENCRYPTION-INFO` cannot make a
/// restore allocate without bound.
pub const MAX_MEMORY_KIB: u32 = 4 << 20;
/// The most passes a stored parameter set may ask for.
pub const MAX_ITERATIONS: u32 = 64;
/// The most lanes a stored parameter set may ask for.
pub const MAX_PARALLELISM: u32 = 64;

/// The most work one stored parameter set may ask for, in KiB-passes (`memory_kib × iterations`):
/// 4 GiB-passes, about 21 times the default (64 MiB × 3), a few seconds. Memory and passes are
/// bounded one by one above; this bounds their product, so no single entry of an
/// `ENCRYPTION-INFO` can make opening a backup take minutes.
pub const MAX_COST: u64 = 4 << 20;

/// The KDF algorithm (one so far; the enum keeps the door open in the stored format).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum KdfAlgorithm {
    /// argon2id, version 0x13 (RFC 9106).
    Argon2id,
}

/// How a passphrase becomes a key-encryption key. Stored in `ENCRYPTION-INFO`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct KdfParams {
    /// The algorithm.
    pub algorithm: KdfAlgorithm,
    /// Memory per derivation, in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub iterations: u32,
    /// Lanes.
    pub parallelism: u32,
}

impl Default for KdfParams {
    /// 64 MiB, 3 passes, 4 lanes (RFC 9106 §4, second recommended option).
    fn default() -> Self {
        KdfParams { algorithm: KdfAlgorithm::Argon2id, memory_kib: 64 << 10, iterations: 3, parallelism: 4 }
    }
}

impl KdfParams {
    /// argon2id with these costs, checked (at least 8 KiB per lane; at most [`MAX_MEMORY_KIB`],
    /// [`MAX_ITERATIONS`], [`MAX_PARALLELISM`]).
    pub fn argon2id(memory_kib: u32, iterations: u32, parallelism: u32) -> Result<KdfParams> {
        let p = KdfParams { algorithm: KdfAlgorithm::Argon2id, memory_kib, iterations, parallelism };
        p.check("KDF parameters")?;
        Ok(p)
    }

    /// Checks the parameters are usable and bounded; `source` names where they came from.
    pub fn check(&self, source: &str) -> Result<()> {
        let ok = (1..=MAX_PARALLELISM).contains(&self.parallelism)
            && (1..=MAX_ITERATIONS).contains(&self.iterations)
            && self.memory_kib >= 8 * self.parallelism
            && self.memory_kib <= MAX_MEMORY_KIB
            && self.cost() <= MAX_COST;
        if ok {
            Ok(())
        } else {
            Err(Error::invalid(
                source,
                format!(
                    "argon2id parameters out of range: {} KiB, {} iterations, {} lanes (allowed: 1..={MAX_PARALLELISM} \
                     lanes, 8 KiB per lane ..= {MAX_MEMORY_KIB} KiB, 1..={MAX_ITERATIONS} iterations, KiB × \
                     iterations ..= {MAX_COST})",
                    self.memory_kib, self.iterations, self.parallelism
                ),
            ))
        }
    }

    /// The work of one derivation, in KiB-passes (`memory_kib × iterations`).
    pub fn cost(&self) -> u64 {
        self.memory_kib as u64 * self.iterations as u64
    }

    /// Derives the key-encryption key of `passphrase` with `salt`.
    pub fn derive(&self, passphrase: &str, salt: &[u8; SALT_LEN]) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        self.check("KDF parameters")?;
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, Some(KEY_LEN))
            .map_err(|e| Error::invalid("KDF parameters", e))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut out = Zeroizing::new([0u8; KEY_LEN]);
        argon
            .hash_password_into(passphrase.as_bytes(), salt, &mut out[..])
            .map_err(|e| Error::invalid("encryption_passphrase", e))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(all(target_family = "wasm", target_os = "unknown"))]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[test]
    fn argon2id_matches_rfc9106_shape_and_is_deterministic() {
        let p = KdfParams::argon2id(64, 1, 1).unwrap();
        let a = p.derive("correct horse", &[7; SALT_LEN]).unwrap();
        let b = p.derive("correct horse", &[7; SALT_LEN]).unwrap();
        let c = p.derive("correct horse", &[8; SALT_LEN]).unwrap();
        let d = KdfParams::argon2id(64, 2, 1).unwrap().derive("correct horse", &[7; SALT_LEN]).unwrap();
        assert_eq!(*a, *b);
        assert_ne!(*a, *c, "the salt matters");
        assert_ne!(*a, *d, "the parameters matter");
    }

    #[test]
    fn out_of_range_parameters_are_refused() {
        assert!(KdfParams::argon2id(4, 1, 1).is_err());
        assert!(KdfParams::argon2id(MAX_MEMORY_KIB + 1, 1, 1).is_err());
        assert!(KdfParams::argon2id(64, 0, 1).is_err());
        assert!(KdfParams::argon2id(64, MAX_ITERATIONS + 1, 1).is_err());
        assert!(KdfParams::argon2id(64, 1, 9).is_err(), "8 KiB per lane");
        assert!(KdfParams::argon2id(MAX_MEMORY_KIB, 2, 1).is_err(), "memory × passes is bounded too");
        KdfParams::argon2id(MAX_MEMORY_KIB, 1, 1).unwrap();
        KdfParams::default().check("default").unwrap();
    }
}
