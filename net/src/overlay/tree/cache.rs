//! A relay's recent frames, kept for its children's repairs: sorted by seq, bounded by count
//! and by wire bytes (the byte bound keeps large frames from pinning megabytes per topic).

use std::collections::VecDeque;

use crate::overlay::message::Payload;

/// Recent frames by seq, oldest first.
#[derive(Debug)]
pub(super) struct RepairCache<B> {
    frames: VecDeque<(u64, B)>,
    /// Wire bytes held in `frames`.
    bytes: usize,
}

impl<B> Default for RepairCache<B> {
    fn default() -> Self {
        RepairCache {
            frames: VecDeque::new(),
            bytes: 0,
        }
    }
}

impl<B: Payload> RepairCache<B> {
    /// Keeps `payload` as frame `seq` (once), then drops the oldest frames beyond `max_frames`
    /// or `max_bytes` — but never the newest one.
    pub(super) fn insert(&mut self, seq: u64, payload: B, max_frames: usize, max_bytes: usize) {
        if self.frames.back().is_some_and(|(s, _)| *s >= seq) {
            // Out of order (a repair): keep the frames sorted by inserting in place.
            let at = self.frames.partition_point(|(s, _)| *s < seq);
            if self.frames.get(at).is_some_and(|(s, _)| *s == seq) {
                return;
            }
            self.bytes += payload.wire_len();
            self.frames.insert(at, (seq, payload));
        } else {
            self.bytes += payload.wire_len();
            self.frames.push_back((seq, payload));
        }
        while self.frames.len() > max_frames || self.bytes > max_bytes && self.frames.len() > 1 {
            if let Some((_, old)) = self.frames.pop_front() {
                self.bytes -= old.wire_len();
            }
        }
    }

    /// The newest seq held.
    pub(super) fn last_seq(&self) -> Option<u64> {
        self.frames.back().map(|(s, _)| *s)
    }

    /// Up to `most` frames held with seq in `from..=to`, in order.
    pub(super) fn range(&self, from: u64, to: u64, most: usize) -> impl Iterator<Item = &(u64, B)> {
        let start = self.frames.partition_point(|(s, _)| *s < from);
        self.frames
            .iter()
            .skip(start)
            .take_while(move |(s, _)| *s <= to)
            .take(most)
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn frame(len: usize) -> Bytes {
        Bytes::from(vec![0u8; len])
    }

    fn seqs(cache: &RepairCache<Bytes>) -> Vec<u64> {
        cache
            .range(0, u64::MAX, usize::MAX)
            .map(|(s, _)| *s)
            .collect()
    }

    #[test]
    fn late_frames_are_inserted_in_order_and_once() {
        let mut cache = RepairCache::default();
        for seq in [1, 2, 5, 3, 4, 3, 5] {
            cache.insert(seq, frame(10), 100, 1 << 20);
        }
        assert_eq!(seqs(&cache), [1, 2, 3, 4, 5]);
        assert_eq!(cache.bytes, 5 * frame(10).wire_len());
        assert_eq!(cache.last_seq(), Some(5));
    }

    #[test]
    fn the_oldest_frames_go_first_by_count_and_by_bytes() {
        let mut cache = RepairCache::default();
        for seq in 0..10 {
            cache.insert(seq, frame(10), 4, 1 << 20);
        }
        assert_eq!(seqs(&cache), [6, 7, 8, 9]);
        let per_frame = frame(100).wire_len();
        let mut cache = RepairCache::default();
        for seq in 0..10 {
            cache.insert(seq, frame(100), 100, 3 * per_frame);
        }
        assert_eq!(seqs(&cache), [7, 8, 9]);
        assert_eq!(cache.bytes, 3 * per_frame);
    }

    #[test]
    fn a_frame_larger_than_the_byte_bound_is_still_kept() {
        let mut cache = RepairCache::default();
        cache.insert(0, frame(10), 100, 50);
        cache.insert(1, frame(1_000), 100, 50);
        assert_eq!(seqs(&cache), [1], "the newest frame stays, alone");
    }

    #[test]
    fn a_range_stops_at_its_end_and_at_most() {
        let mut cache = RepairCache::default();
        for seq in 10..30 {
            cache.insert(seq, frame(1), 100, 1 << 20);
        }
        let got: Vec<u64> = cache.range(5, 14, 100).map(|(s, _)| *s).collect();
        assert_eq!(got, [10, 11, 12, 13, 14]);
        let got: Vec<u64> = cache.range(12, 100, 3).map(|(s, _)| *s).collect();
        assert_eq!(got, [12, 13, 14]);
        assert_eq!(cache.range(31, 40, 10).count(), 0);
    }
}
