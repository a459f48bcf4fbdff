//! Impression bloom filters (spec §4.2 format): bit i of id x is
//! `(h1 + i·h2) mod m`, where h1 and h2 are the low and high halves of the
//! xxh3-128 hash of x's 8 little-endian bytes; `may_contain` iff all k bits
//! are set. Bits are little-endian within each byte.

use xxhash_rust::xxh3::xxh3_128;

use crate::pipeline::home_mixer::BloomFilterEntry;

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
    /// negatives not). A malformed filter (no bits, no hashes, or fewer
    /// bytes than `num_bits` needs) contains nothing.
    pub fn may_contain(&self, id: i64) -> bool {
        if !self.is_well_formed() {
            return false;
        }
        bit_positions(id, self.num_bits, self.num_hashes)
            .all(|b| self.bits[(b / 8) as usize] & (1 << (b % 8)) != 0)
    }

    /// m > 0, k > 0 and the bitset holds m bits.
    pub fn is_well_formed(&self) -> bool {
        self.num_bits > 0
            && self.num_hashes > 0
            && (self.bits.len() as u64).saturating_mul(8) >= self.num_bits
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
}
