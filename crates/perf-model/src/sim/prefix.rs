//! A content-free prefix cache: it knows prefixes only by the hash and
//! length the caller assigns, never by token contents.
//!
//! Real engines keep a prefix's KV blocks shared while requests use them,
//! and afterwards in the free pool, evicting them least recently used first
//! when an allocation needs room. The model mirrors that: an entry is pinned
//! while a running request uses it (its blocks are then counted in that
//! request's allocation), and unpinned entries are trimmed to the engine's
//! free blocks after every allocation. A request that hits still allocates
//! its whole sequence (conservative: a hit saves compute, not memory).

/// Entries beyond this are evicted LRU. Lookups scan linearly, which is
/// cheaper than hashing for the few distinct prefixes (system prompts) a
/// benchmark has, and it runs once per admission, not per step.
const MAX_ENTRIES: usize = 256;

#[derive(Debug, Clone, Copy)]
struct Entry {
    hash: u64,
    blocks: u32,
    pins: u32,
    last_used: u64,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct PrefixCache {
    entries: Vec<Entry>,
    /// Blocks of entries no running request uses: the evictable ones.
    unpinned_blocks: u64,
    clock: u64,
}

impl PrefixCache {
    fn find(&mut self, hash: u64) -> Option<&mut Entry> {
        self.entries.iter_mut().find(|e| e.hash == hash)
    }

    /// Whole blocks cached for `hash` (0 on a miss); a hit refreshes it.
    pub(crate) fn lookup(&mut self, hash: u64) -> u32 {
        self.clock += 1;
        let clock = self.clock;
        match self.find(hash) {
            Some(e) => {
                e.last_used = clock;
                e.blocks
            }
            None => 0,
        }
    }

    /// A running request starts using the entry (after a hit).
    pub(crate) fn pin(&mut self, hash: u64) -> bool {
        let Some(e) = self.find(hash) else {
            return false;
        };
        e.pins += 1;
        let blocks = u64::from(e.blocks);
        if e.pins == 1 {
            self.unpinned_blocks -= blocks;
        }
        true
    }

    pub(crate) fn unpin(&mut self, hash: u64) {
        let Some(e) = self.find(hash) else {
            return;
        };
        if e.pins == 0 {
            return;
        }
        e.pins -= 1;
        let blocks = u64::from(e.blocks);
        if e.pins == 0 {
            self.unpinned_blocks += blocks;
        }
    }

    /// A request finished computing a `blocks`-block prefix. With `pin`, the
    /// request starts holding the entry. Returns whether it now does.
    pub(crate) fn publish(&mut self, hash: u64, blocks: u32, pin: bool) -> bool {
        self.clock += 1;
        let clock = self.clock;
        if let Some(e) = self.find(hash) {
            let (old, was_pinned) = (u64::from(e.blocks), e.pins > 0);
            e.blocks = e.blocks.max(blocks);
            e.last_used = clock;
            e.pins += u32::from(pin);
            let new = u64::from(e.blocks);
            match (was_pinned, e.pins > 0) {
                (false, false) => self.unpinned_blocks += new - old,
                (false, true) => self.unpinned_blocks -= old,
                _ => {}
            }
            return pin;
        }
        if blocks == 0 || (self.entries.len() >= MAX_ENTRIES && !self.evict_lru()) {
            return false;
        }
        self.entries.push(Entry {
            hash,
            blocks,
            pins: u32::from(pin),
            last_used: clock,
        });
        if !pin {
            self.unpinned_blocks += u64::from(blocks);
        }
        pin
    }

    /// Evicts least recently used unpinned prefixes until at most `free`
    /// evictable blocks remain.
    #[inline]
    pub(crate) fn shrink_to(&mut self, free: u64) {
        while self.unpinned_blocks > free && self.evict_lru() {}
    }

    /// Drops the least recently used unpinned entry, if any.
    fn evict_lru(&mut self) -> bool {
        let Some((i, _)) = self
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| e.pins == 0)
            .min_by_key(|(_, e)| e.last_used)
        else {
            return false;
        };
        let e = self.entries.swap_remove(i);
        self.unpinned_blocks -= u64::from(e.blocks);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hit_refreshes_and_shrink_evicts_lru() {
        let mut c = PrefixCache::default();
        c.publish(1, 4, false);
        c.publish(2, 4, false);
        assert_eq!(c.lookup(1), 4); // 2 is now least recently used
        c.shrink_to(5);
        assert_eq!(c.lookup(2), 0);
        assert_eq!(c.lookup(1), 4);
        assert_eq!(c.unpinned_blocks, 4);
        c.shrink_to(0);
        assert_eq!(c.unpinned_blocks, 0);
        assert_eq!(c.lookup(1), 0);
    }

    #[test]
    fn pinned_entries_survive_until_released() {
        let mut c = PrefixCache::default();
        assert!(c.publish(1, 8, true));
        c.publish(2, 2, false);
        assert!(c.pin(1));
        c.shrink_to(0);
        assert_eq!((c.lookup(1), c.lookup(2)), (8, 0));
        c.unpin(1);
        c.shrink_to(0);
        assert_eq!(c.lookup(1), 8); // one pin left
        c.unpin(1);
        c.shrink_to(7);
        assert_eq!(c.lookup(1), 0);
    }

    #[test]
    fn republish_keeps_the_longer_prefix() {
        let mut c = PrefixCache::default();
        c.publish(7, 2, false);
        c.publish(7, 5, false);
        c.publish(7, 3, false);
        assert_eq!(c.lookup(7), 5);
        assert_eq!(c.unpinned_blocks, 5);
        assert!(c.publish(7, 6, true));
        assert_eq!(c.unpinned_blocks, 0);
        c.unpin(7);
        assert_eq!(c.unpinned_blocks, 6);
    }

    #[test]
    fn entry_count_is_bounded() {
        let mut c = PrefixCache::default();
        for h in 0..(MAX_ENTRIES as u64 + 10) {
            c.publish(h, 1, false);
        }
        assert_eq!(c.entries.len(), MAX_ENTRIES);
        assert_eq!(c.lookup(0), 0);
        assert_eq!(c.lookup(MAX_ENTRIES as u64 + 9), 1);
    }
}
