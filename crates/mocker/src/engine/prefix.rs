//! The driver's prefix cache: which prompt blocks were computed recently.
//!
//! The scheduler's own cache is content free; the mocker sees real token
//! ids, so it hashes each prompt's full blocks as vLLM does (a chain: each
//! block's hash covers every token before it too, so equal hashes mean
//! equal prefixes) and passes the longest cached run of leading blocks to
//! the scheduler as `cached_prefix_tokens`. The set is an LRU bounded to the
//! KV pool's block count: a simplification of vLLM, whose cached blocks are
//! the free ones and so shrink while the pool is busy.

use std::collections::{BTreeMap, HashMap};

/// Chained hashes of the full `block_size`-token blocks of `tokens`.
pub fn block_hashes(tokens: &[u32], block_size: u32) -> Vec<u64> {
    let bs = block_size.max(1) as usize;
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    tokens
        .chunks_exact(bs)
        .map(|block| {
            // FNV-1a over 32-bit words, then a SplitMix64 finaliser so that
            // similar prompts spread over the whole hash space.
            for &t in block {
                h = (h ^ u64::from(t)).wrapping_mul(0x0000_0100_0000_01b3);
            }
            let mut z = h.wrapping_add(0x9e37_79b9_7f4a_7c15);
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            h = z ^ (z >> 31);
            h
        })
        .collect()
}

/// Least-recently-used set of block hashes.
#[derive(Debug, Default)]
pub struct PrefixLru {
    cap: usize,
    tick: u64,
    last_use: HashMap<u64, u64>,
    by_age: BTreeMap<u64, u64>,
}

impl PrefixLru {
    pub fn new(cap: usize) -> Self {
        PrefixLru {
            cap,
            ..Default::default()
        }
    }

    fn touch(&mut self, h: u64) {
        self.tick += 1;
        if let Some(old) = self.last_use.insert(h, self.tick) {
            self.by_age.remove(&old);
        }
        self.by_age.insert(self.tick, h);
    }

    /// Leading blocks of `hashes` that are cached; they become the most
    /// recently used.
    pub fn lookup(&mut self, hashes: &[u64]) -> usize {
        let n = hashes
            .iter()
            .take_while(|h| self.last_use.contains_key(h))
            .count();
        for &h in &hashes[..n] {
            self.touch(h);
        }
        n
    }

    /// Remembers computed blocks, evicting the least recently used beyond
    /// the capacity.
    pub fn insert(&mut self, hashes: &[u64]) {
        for &h in hashes {
            self.touch(h);
        }
        while self.last_use.len() > self.cap {
            let Some((_, h)) = self.by_age.pop_first() else {
                break;
            };
            self.last_use.remove(&h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chained_hashes_share_prefixes_only() {
        let a = block_hashes(&[1, 2, 3, 4, 5, 6, 7], 2);
        let b = block_hashes(&[1, 2, 3, 4, 9, 9], 2);
        assert_eq!(a.len(), 3);
        assert_eq!(a[..2], b[..2]);
        assert_ne!(a[2], b[2]);
        // Same block content after a different prefix hashes differently.
        let c = block_hashes(&[0, 0, 3, 4], 2);
        assert_ne!(a[1], c[1]);
    }

    #[test]
    fn lru_evicts_oldest() {
        let mut lru = PrefixLru::new(2);
        lru.insert(&[1, 2]);
        assert_eq!(lru.lookup(&[1, 2, 3]), 2);
        lru.insert(&[3]);
        // 1 was touched before 2, so 1 is the oldest.
        assert_eq!(lru.lookup(&[1]), 0);
        assert_eq!(lru.lookup(&[2, 3]), 2);
    }
}
