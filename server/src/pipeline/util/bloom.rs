//! Impression bloom filters (spec §4.2 format): bit i of id x is
//! `(h1 + i·h2) mod m`, where h1 and h2 are the low and high halves of the
//! xxh3-128 hash of x's 8 little-endian bytes; `may_contain` iff all k bits
//! are set. Bits are little-endian within each byte.
//!
//! Limits (ours, spec §4.4): m is at most [`MAX_BLOOM_BITS`], k at most
//! [`MAX_BLOOM_HASHES`], and the bitset holds m bits with at most
//! [`MAX_BLOOM_PADDING_BYTES`] to spare.
//! [`BloomFilterEntry::check`] says which rule an entry breaks; the
//! GetScoredPosts conversion rejects such an entry, and `may_contain` treats
//! one as containing nothing.

use xxhash_rust::xxh3::xxh3_128;

use crate::pipeline::home_mixer::BloomFilterEntry;

/// The most hash functions (k) an impression filter may use. Every
/// candidate id probes k bits of every filter, so k bounds the filter's
/// cost per candidate: an all-ones filter with k = 2³² − 1 pinned a core for
/// seconds. The best k for n ids in m bits is (m/n)·ln 2, so 64 would only
/// pay off at ~92 bits per id, far past any useful filter (k = 10 already
/// gives ~0.1 % false positives); real filters use well under 20.
pub const MAX_BLOOM_HASHES: u32 = 64;

/// The most bits (m) an impression filter may have: 8 Mi bits (1 MiB), so a
/// filter stays cache-sized while k probes per candidate id jump around it.
/// At 1 % false positives a filter needs ~9.6 bits per id, so this holds
/// ~870 000 ids, hundreds of times the few thousand impressions a client
/// tracks.
pub const MAX_BLOOM_BITS: u64 = 1 << 23;

/// Bytes a bitset may hold past the ⌈m/8⌉ it needs: up to a whole 64-bit
/// word, for clients that keep their bitset in words. Anything longer is a
/// malformed entry, not a bigger filter.
pub const MAX_BLOOM_PADDING_BYTES: u64 = 7;

/// Why a bloom filter entry is malformed. Each message starts with the
/// entry's field, so a caller can prefix the entry's place in a request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BloomFilterError {
    /// m = 0.
    #[error("num_bits is 0, expected at least 1")]
    NoBits,
    /// m above [`MAX_BLOOM_BITS`].
    #[error("num_bits is {0}; the limit is {MAX_BLOOM_BITS}")]
    TooManyBits(u64),
    /// k outside 1..=[`MAX_BLOOM_HASHES`].
    #[error("num_hashes is {0}, expected 1 to {MAX_BLOOM_HASHES} (the limit)")]
    NumHashes(u32),
    /// The bitset does not hold m bits, or holds far more.
    #[error(
        "bitset has {len} bytes, expected {needed} to {} for num_bits {num_bits}",
        .needed.saturating_add(MAX_BLOOM_PADDING_BYTES)
    )]
    BitsetLength {
        /// Bytes in the bitset.
        len: u64,
        /// m.
        num_bits: u64,
        /// ⌈m/8⌉.
        needed: u64,
    },
}

fn bit_positions(id: i64, m: u64, k: u32) -> impl Iterator<Item = u64> {
    let h = xxh3_128(&id.to_le_bytes());
    let (h1, h2) = (h as u64, (h >> 64) as u64);
    (0..u64::from(k)).map(move |i| h1.wrapping_add(i.wrapping_mul(h2)) % m)
}

impl BloomFilterEntry {
    /// An empty filter of `num_bits` bits and `num_hashes` hashes.
    pub fn new(num_bits: u64, num_hashes: u32) -> Self {
        Self {
            bits: vec![0; num_bits.div_ceil(8) as usize],
            num_bits,
            num_hashes,
        }
    }

    /// Adds `id`.
    pub fn insert(&mut self, id: i64) {
        if self.num_bits == 0 {
            return;
        }
        for b in bit_positions(id, self.num_bits, self.num_hashes) {
            if let Some(byte) = self.bits.get_mut((b / 8) as usize) {
                *byte |= 1 << (b % 8);
            }
        }
    }

    /// True if `id` may have been added (false positives possible, false
    /// negatives not). A malformed filter ([`Self::check`] fails) contains
    /// nothing.
    pub fn may_contain(&self, id: i64) -> bool {
        if !self.is_well_formed() {
            return false;
        }
        bit_positions(id, self.num_bits, self.num_hashes)
            .all(|b| self.bits[(b / 8) as usize] & (1 << (b % 8)) != 0)
    }

    /// 0 < m ≤ [`MAX_BLOOM_BITS`], 0 < k ≤ [`MAX_BLOOM_HASHES`], and the
    /// bitset holds m bits with at most [`MAX_BLOOM_PADDING_BYTES`] to spare.
    pub fn check(&self) -> Result<(), BloomFilterError> {
        if self.num_bits == 0 {
            return Err(BloomFilterError::NoBits);
        }
        if self.num_bits > MAX_BLOOM_BITS {
            return Err(BloomFilterError::TooManyBits(self.num_bits));
        }
        if !(1..=MAX_BLOOM_HASHES).contains(&self.num_hashes) {
            return Err(BloomFilterError::NumHashes(self.num_hashes));
        }
        let len = u64::try_from(self.bits.len()).unwrap_or(u64::MAX);
        let needed = self.num_bits.div_ceil(8);
        if len < needed || len - needed > MAX_BLOOM_PADDING_BYTES {
            return Err(BloomFilterError::BitsetLength {
                len,
                num_bits: self.num_bits,
                needed,
            });
        }
        Ok(())
    }

    /// [`Self::check`] passes.
    pub fn is_well_formed(&self) -> bool {
        self.check().is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inserted_ids_are_contained_and_others_mostly_not() {
        let mut f = BloomFilterEntry::new(8192, 5);
        for id in 0..500 {
            f.insert(id * 7919);
        }
        assert!((0..500).all(|id| f.may_contain(id * 7919)));
        let fp = (1_000_000..1_010_000)
            .filter(|&id| f.may_contain(id))
            .count();
        // 500 items, 8192 bits, k 5: about 0.3 % false positives.
        assert!(fp < 100, "{fp} false positives in 10000");
    }

    #[test]
    fn malformed_filters_contain_nothing() {
        let mut f = BloomFilterEntry::new(64, 3);
        f.insert(1);
        f.bits.truncate(4); // 32 bits for m = 64
        assert!(!f.may_contain(1));
        assert!(!BloomFilterEntry::new(0, 3).may_contain(1));
    }

    #[test]
    fn check_bounds_hashes_and_bitset_length_inclusively() {
        let entry = |bytes: usize, num_bits: u64, num_hashes: u32| BloomFilterEntry {
            bits: vec![0xff; bytes],
            num_bits,
            num_hashes,
        };
        assert_eq!(entry(8, 64, MAX_BLOOM_HASHES).check(), Ok(()));
        assert_eq!(
            entry(8, 64, MAX_BLOOM_HASHES + 1).check(),
            Err(BloomFilterError::NumHashes(65))
        );
        assert_eq!(entry(8, 64, 0).check(), Err(BloomFilterError::NumHashes(0)));
        assert_eq!(entry(8, 0, 3).check(), Err(BloomFilterError::NoBits));
        // 61 bits need 8 bytes; 8 + 7 is the most accepted.
        assert_eq!(entry(15, 61, 3).check(), Ok(()));
        let long = entry(16, 61, 3).check().expect_err("one byte too many");
        assert_eq!(
            long.to_string(),
            "bitset has 16 bytes, expected 8 to 15 for num_bits 61"
        );
        assert!(entry(7, 61, 3).check().is_err(), "one byte short");
        let bytes = (MAX_BLOOM_BITS / 8) as usize;
        assert_eq!(entry(bytes, MAX_BLOOM_BITS, 3).check(), Ok(()));
        let huge = entry(bytes, MAX_BLOOM_BITS + 1, 3).check().expect_err("m");
        assert_eq!(
            huge.to_string(),
            format!(
                "num_bits is {}; the limit is {MAX_BLOOM_BITS}",
                MAX_BLOOM_BITS + 1
            )
        );
    }

    #[test]
    fn an_entry_at_the_hash_limit_still_filters() {
        let mut f = BloomFilterEntry::new(1 << 14, MAX_BLOOM_HASHES);
        f.insert(42);
        assert!(f.may_contain(42));
        assert!(!f.may_contain(43));
        let mut over = BloomFilterEntry::new(1 << 14, MAX_BLOOM_HASHES + 1);
        over.insert(42);
        assert!(!over.may_contain(42), "malformed: contains nothing");
    }
}
