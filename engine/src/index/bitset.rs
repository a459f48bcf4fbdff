//! A fixed-length set of row numbers, one bit a row: a segment's
//! tombstones (shared with snapshots, copied on write) and the writer's
//! dead rows.

/// Bits `0 .. len`, all clear at first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Bitset {
    words: Vec<u64>,
    len: usize,
}

impl Bitset {
    /// `len` clear bits.
    pub fn new(len: usize) -> Self {
        Self {
            words: vec![0; len.div_ceil(64)],
            len,
        }
    }

    /// Whether `i` is set (false past the end).
    #[inline]
    pub fn contains(&self, i: usize) -> bool {
        self.words
            .get(i / 64)
            .is_some_and(|w| w & (1u64 << (i % 64)) != 0)
    }

    /// Sets `i`; true when it was clear (false past the end, where nothing
    /// is set).
    pub fn insert(&mut self, i: usize) -> bool {
        if i >= self.len {
            return false;
        }
        match self.words.get_mut(i / 64) {
            Some(w) => {
                let bit = 1u64 << (i % 64);
                let was_clear = *w & bit == 0;
                *w |= bit;
                was_clear
            }
            None => false,
        }
    }

    /// Heap bytes held.
    pub fn heap_bytes(&self) -> usize {
        self.words.capacity() * 8
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_reports_only_the_first_set_and_ignores_rows_past_the_end() {
        let mut b = Bitset::new(70);
        assert!(b.insert(69));
        assert!(!b.insert(69));
        assert!(!b.insert(70));
        assert!(b.contains(69) && !b.contains(68) && !b.contains(70));
        assert!(!b.contains(1000));
    }
}
