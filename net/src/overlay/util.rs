//! Small deterministic helpers: a seeded RNG, a bounded set and a token bucket.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// SplitMix64: tiny, fast and seedable; the core's only source of randomness.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A float in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An integer in [0, n).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }
}

/// A token bucket on a caller's clock (µs): `rate` tokens per second, at most `burst` saved
/// up. Bounds what a node sends for others' asking (repairs, floods, catch-ups), however many
/// identities ask.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    tokens: f64,
    last_us: u64,
    rate_per_s: f64,
    burst: f64,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_s: u64, burst: u64) -> Self {
        TokenBucket {
            tokens: burst as f64,
            last_us: 0,
            rate_per_s: rate_per_s as f64,
            burst: burst as f64,
        }
    }

    /// Takes up to `want` tokens at `now` (µs); how many it got.
    pub fn take_up_to(&mut self, want: usize, now: u64) -> usize {
        self.refill(now);
        let got = (self.tokens.floor() as usize).min(want);
        self.tokens -= got as f64;
        got
    }

    /// Takes `want` tokens at `now` (µs) if there are that many, else none.
    pub fn try_take(&mut self, want: u64, now: u64) -> bool {
        self.refill(now);
        let ok = self.tokens >= want as f64;
        if ok {
            self.tokens -= want as f64;
        }
        ok
    }

    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.last_us) as f64 / 1e6;
        self.last_us = self.last_us.max(now);
        self.tokens = (self.tokens + elapsed * self.rate_per_s).min(self.burst);
    }
}

/// Remembers the last `cap` items inserted (FIFO eviction): duplicate suppression in bounded
/// memory.
#[derive(Debug)]
pub(super) struct BoundedSet<T: Hash + Eq + Copy> {
    set: HashSet<T>,
    order: VecDeque<T>,
    cap: usize,
}

impl<T: Hash + Eq + Copy> BoundedSet<T> {
    pub(super) fn new(cap: usize) -> Self {
        // Grows on demand: a simulator holds 100,000 of these, most nearly empty.
        BoundedSet {
            set: HashSet::new(),
            order: VecDeque::new(),
            cap: cap.max(1),
        }
    }

    /// Whether `item` is remembered.
    pub(super) fn contains(&self, item: &T) -> bool {
        self.set.contains(item)
    }

    /// Inserts; false if it was already there.
    pub(super) fn insert(&mut self, item: T) -> bool {
        if !self.set.insert(item) {
            return false;
        }
        self.order.push_back(item);
        if self.order.len() > self.cap
            && let Some(old) = self.order.pop_front()
        {
            self.set.remove(&old);
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_its_rate() {
        let mut b = TokenBucket::new(10, 5);
        assert_eq!(b.take_up_to(8, 1_000_000), 5, "the burst");
        assert_eq!(b.take_up_to(8, 1_000_000), 0);
        assert_eq!(b.take_up_to(8, 1_300_000), 3, "0.3 s at 10/s");
        assert_eq!(b.take_up_to(8, 60_000_000), 5, "saved up to the burst only");
        assert_eq!(b.take_up_to(8, 1_000), 0, "time does not run backwards");
        assert!(!b.try_take(6, 61_000_000), "all or nothing");
        assert!(b.try_take(5, 61_000_000));
        assert!(!b.try_take(1, 61_000_000));
    }
}
