//! The replication ring (issue 15, first piece): replicators declare ranges of a 64-bit ring;
//! a document's group maps to a point; an entry kept by `r` replicas goes to the holders of `r`
//! evenly spaced points. Sans-IO and deterministic: the same members give the same holders on
//! every peer, whatever order they were learned in.
//!
//! The holder of a point is, among the ranges that cover it, the one that starts nearest
//! before it (so overlapping ranges split the overlap instead of one taking all of it); a
//! point no range covers goes to the range that starts next after it. For `r` replicas the
//! holders are distinct peers: a point whose holder was already chosen takes the next covering
//! range before it, then the next range after it, that belongs to another peer.

/// A place on the ring.
pub type Point = u64;

/// `[offset, offset + width)` on the ring, wrapping past 2^64.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Range {
    /// Where it starts.
    pub offset: Point,
    /// How far it reaches (`u64::MAX`: all but one point; 0: nothing).
    pub width: u64,
}

impl Range {
    /// The whole ring (all but its last point, which wraps to the start).
    pub const FULL: Range = Range {
        offset: 0,
        width: u64::MAX,
    };

    /// Whether `p` is in the range.
    pub fn contains(&self, p: Point) -> bool {
        p.wrapping_sub(self.offset) < self.width
    }
}

/// A document group's point: the group id's first 8 bytes (the group is a BLAKE3 hash, so
/// points are uniform).
pub fn point_of(group: &[u8; 32]) -> Point {
    let mut b = [0u8; 8];
    b.copy_from_slice(&group[..8]);
    u64::from_be_bytes(b)
}

/// `r` points spaced evenly around the ring from `p` (`r` ≥ 1).
pub fn replica_points(p: Point, r: usize) -> impl Iterator<Item = Point> {
    let r = r.max(1) as u128;
    let step = ((1u128 << 64) / r) as u64;
    (0..r as u64).map(move |i| p.wrapping_add(step.wrapping_mul(i)))
}

/// The members' ranges, ordered by offset (then peer, so equal offsets order the same
/// everywhere).
#[derive(Clone, Debug)]
pub struct Ring<P> {
    ranges: Vec<(Range, P)>,
}

impl<P: Clone + Ord> Ring<P> {
    /// A ring of these (peer, range) declarations.
    pub fn new(members: impl IntoIterator<Item = (P, Range)>) -> Ring<P> {
        let mut ranges: Vec<(Range, P)> = members
            .into_iter()
            .filter(|(_, r)| r.width > 0)
            .map(|(p, r)| (r, p))
            .collect();
        ranges.sort();
        ranges.dedup();
        Ring { ranges }
    }

    /// Ranges on the ring.
    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    /// Whether no range is declared.
    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Every range's start and end: where some point's holder can change.
    pub fn boundaries(&self) -> impl Iterator<Item = Point> + '_ {
        self.ranges
            .iter()
            .flat_map(|(r, _)| [r.offset, r.offset.wrapping_add(r.width)])
    }

    /// The declared ranges with their peers, in offset order.
    pub fn ranges(&self) -> &[(Range, P)] {
        &self.ranges
    }

    /// `count` ranges for a replicator joining this ring, each cut from the end of the widest
    /// stretch between two neighbouring range starts (the ranges chosen so far included): a
    /// fair share of the ring once it has joined (2^64 / (ranges + 1)), or half the stretch if
    /// that is less; the whole ring when it is empty. So joins split the largest shares — the
    /// share a departure merged into its neighbour's is the next joiner's — and a stretch two
    /// departures left is split into fair shares, not halves. Several ranges per replicator
    /// average its share over several stretches.
    pub fn join_ranges(&self, count: usize) -> Vec<Range> {
        let mut starts: Vec<Point> = self.ranges.iter().map(|(r, _)| r.offset).collect();
        starts.sort_unstable();
        starts.dedup();
        let mut out = Vec::with_capacity(count);
        for _ in 0..count {
            let n = starts.len();
            if n == 0 {
                out.push(Range::FULL);
                starts.push(0);
                continue;
            }
            let gap = |i: usize| -> u128 {
                if n == 1 {
                    1u128 << 64
                } else {
                    u128::from(starts[(i + 1) % n].wrapping_sub(starts[i]))
                }
            };
            let widest = (0..n)
                .max_by_key(|&i| (gap(i), std::cmp::Reverse(i)))
                .unwrap_or(0);
            let g = gap(widest);
            let fair = (1u128 << 64) / (n as u128 + 1);
            let width = fair.min(g / 2).max(1);
            let offset = starts[widest].wrapping_add((g - width) as u64);
            out.push(Range {
                offset,
                width: u64::try_from(width).unwrap_or(u64::MAX),
            });
            let at = starts.partition_point(|s| *s < offset);
            starts.insert(at, offset);
        }
        out
    }

    /// One range for a replicator joining this ring ([`Ring::join_ranges`] with one).
    pub fn join_range(&self) -> Range {
        self.join_ranges(1)[0]
    }

    /// The index of the range starting nearest at or before `p` (cyclically).
    fn before(&self, p: Point) -> usize {
        let n = self.ranges.len();
        match self.ranges.partition_point(|(r, _)| r.offset <= p) {
            0 => n - 1,
            i => i - 1,
        }
    }

    /// The holder of one point, skipping peers in `taken`.
    fn holder_except(&self, p: Point, taken: &[P]) -> Option<&P> {
        let n = self.ranges.len();
        if n == 0 {
            return None;
        }
        let start = self.before(p);
        // Covering ranges, nearest start first.
        for k in 0..n {
            let (range, peer) = &self.ranges[(start + n - k) % n];
            if range.contains(p) && !taken.contains(peer) {
                return Some(peer);
            }
        }
        // No free covering range: the next one to start after `p`.
        (1..=n)
            .map(|k| &self.ranges[(start + k) % n].1)
            .find(|peer| !taken.contains(peer))
    }

    /// The holder of point `p`.
    pub fn holder(&self, p: Point) -> Option<&P> {
        self.holder_except(p, &[])
    }

    /// The distinct holders of an entry at point `p` with `r` replicas (fewer when there are
    /// fewer peers).
    pub fn holders(&self, p: Point, r: usize) -> Vec<P> {
        let mut out: Vec<P> = Vec::with_capacity(r);
        for q in replica_points(p, r) {
            if let Some(peer) = self.holder_except(q, &out) {
                out.push(peer.clone());
            }
        }
        out
    }

    /// The fraction of the ring covered by at least `k` ranges.
    pub fn coverage(&self, k: usize) -> f64 {
        // Sweep the ring's boundaries: +1 where a range starts, −1 where it ends.
        let mut events: Vec<(Point, i64)> = Vec::with_capacity(self.ranges.len() * 2 + 2);
        let mut depth_at_zero = 0i64;
        for (r, _) in &self.ranges {
            let end = r.offset.wrapping_add(r.width);
            events.push((r.offset, 1));
            // A range ending exactly at 2^64 never ends inside the sweep.
            if end != 0 {
                events.push((end, -1));
            }
            if end != 0 && end <= r.offset {
                // Wraps past 2^64: it covers 0 from the start.
                depth_at_zero += 1;
            }
        }
        events.sort();
        let mut depth = depth_at_zero;
        let mut covered: u128 = 0;
        let mut last: u128 = 0;
        for (at, delta) in events {
            let at = u128::from(at);
            if depth >= k as i64 {
                covered += at - last;
            }
            depth += delta;
            last = at;
        }
        if depth >= k as i64 {
            covered += (1u128 << 64) - last;
        }
        covered as f64 / (1u128 << 64) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use starling_net::overlay::SplitMix64;

    fn even(n: u64) -> Vec<(u64, Range)> {
        let step = u64::MAX / n;
        (0..n)
            .map(|i| {
                (
                    i,
                    Range {
                        offset: i * step,
                        width: step,
                    },
                )
            })
            .collect()
    }

    #[test]
    fn ranges_wrap_and_points_space_evenly() {
        let r = Range {
            offset: u64::MAX - 9,
            width: 20,
        };
        assert!(r.contains(u64::MAX) && r.contains(0) && r.contains(9));
        assert!(!r.contains(10) && !r.contains(u64::MAX - 10));
        let pts: Vec<_> = replica_points(5, 4).collect();
        assert_eq!(pts, [5, 5 + (1 << 62), 5 + (2 << 62), 5 + (3 << 62)]);
    }

    #[test]
    fn eight_even_ranges_give_two_distinct_holders_and_balance() {
        let ring = Ring::new(even(8));
        let mut rng = SplitMix64::new(3);
        let mut held = [0usize; 8];
        for _ in 0..100_000 {
            let h = ring.holders(rng.next_u64(), 2);
            assert_eq!(h.len(), 2);
            assert_ne!(h[0], h[1]);
            for p in h {
                held[p as usize] += 1;
            }
        }
        let mean = held.iter().sum::<usize>() as f64 / 8.0;
        let max = *held.iter().max().unwrap() as f64;
        assert!(max / mean < 1.05, "{held:?}");
        assert!((ring.coverage(1) - 1.0).abs() < 1e-6);
        assert_eq!(ring.coverage(2), 0.0);
        // A wrapping range, and one that ends exactly at the end of the ring.
        let half = 1u64 << 63;
        let ring = Ring::new([
            (
                "w",
                Range {
                    offset: half + (half >> 1),
                    width: half,
                },
            ),
            (
                "e",
                Range {
                    offset: half,
                    width: half,
                },
            ),
        ]);
        assert!(
            (ring.coverage(1) - 0.75).abs() < 1e-9,
            "{}",
            ring.coverage(1)
        );
        assert!(
            (ring.coverage(2) - 0.25).abs() < 1e-9,
            "{}",
            ring.coverage(2)
        );
    }

    #[test]
    fn an_uncovered_point_goes_to_the_next_range_and_overlaps_split() {
        let ring = Ring::new([
            (
                "a",
                Range {
                    offset: 100,
                    width: 100,
                },
            ),
            (
                "b",
                Range {
                    offset: 150,
                    width: 100,
                },
            ),
        ]);
        assert_eq!(ring.holder(120), Some(&"a"));
        assert_eq!(ring.holder(160), Some(&"b"), "the nearest start before it");
        assert_eq!(
            ring.holder(300),
            Some(&"a"),
            "uncovered: the next range to start"
        );
        assert_eq!(ring.holder(50), Some(&"a"));
        assert_eq!(ring.holders(160, 2), ["b", "a"]);
        assert_eq!(ring.holders(160, 5).len(), 2, "only two peers");
        assert!(Ring::<u8>::new([]).holders(1, 2).is_empty());
    }

    #[test]
    fn joiners_split_what_two_departures_left_into_fair_shares() {
        // Eight even ranges, two neighbours gone: two joiners restore shares within 1.15×.
        let e = u64::MAX / 8;
        let six = Ring::new([0u64, 1, 4, 5, 6, 7].into_iter().map(|i| {
            (
                i,
                Range {
                    offset: i * e,
                    width: e,
                },
            )
        }));
        let first = six.join_range();
        let mut seven: Vec<(u64, Range)> = six.ranges().iter().map(|(r, p)| (*p, *r)).collect();
        seven.push((8, first));
        let second = Ring::new(seven.clone()).join_range();
        seven.push((9, second));
        let mut offsets: Vec<u64> = seven.iter().map(|(_, r)| r.offset).collect();
        offsets.sort_unstable();
        let shares: Vec<u64> = (0..8)
            .map(|i| offsets[(i + 1) % 8].wrapping_sub(offsets[i]))
            .collect();
        let max = *shares.iter().max().unwrap() as f64;
        assert!(max / (u64::MAX as f64 / 8.0) < 1.15, "{shares:?}");
    }

    #[test]
    fn a_joiner_takes_the_second_half_of_the_widest_share() {
        assert_eq!(Ring::<u8>::new([]).join_range(), Range::FULL);
        let one = Ring::new([(1u8, Range::FULL)]);
        assert_eq!(
            one.join_range(),
            Range {
                offset: 1 << 63,
                width: 1 << 63
            }
        );
        let q = 1u64 << 62;
        let three = Ring::new([
            (
                1u8,
                Range {
                    offset: 0,
                    width: q,
                },
            ),
            (
                2,
                Range {
                    offset: q,
                    width: 2 * q,
                },
            ),
            (
                3,
                Range {
                    offset: 3 * q,
                    width: q,
                },
            ),
        ]);
        assert_eq!(
            three.join_range(),
            Range {
                offset: 2 * q,
                width: q
            }
        );
        let two = three.join_ranges(2);
        assert_eq!(
            two[1],
            Range {
                offset: q / 2,
                width: q / 2
            },
            "{two:?}"
        );
    }

    proptest! {
        /// Holders do not depend on the order members were learned in, are distinct, and a
        /// point's first holder covers it whenever some range does.
        #[test]
        fn holders_are_deterministic_distinct_and_cover(
            members in proptest::collection::vec((0u8..6, any::<u64>(), any::<u64>()), 1..10),
            p in any::<u64>(), r in 1usize..5,
        ) {
            let decl: Vec<(u8, Range)> = members
                .iter()
                .map(|&(peer, offset, width)| (peer, Range { offset, width }))
                .collect();
            let mut reversed = decl.clone();
            reversed.reverse();
            let (a, b) = (Ring::new(decl.clone()), Ring::new(reversed));
            let h = a.holders(p, r);
            prop_assert_eq!(&h, &b.holders(p, r));
            let mut sorted = h.clone();
            sorted.sort();
            sorted.dedup();
            prop_assert_eq!(sorted.len(), h.len());
            let peers: std::collections::BTreeSet<u8> =
                decl.iter().filter(|(_, r)| r.width > 0).map(|(p, _)| *p).collect();
            prop_assert_eq!(h.len(), r.min(peers.len()));
            let covered = decl.iter().any(|(_, rg)| rg.contains(p));
            if let Some(first) = a.holder(p) {
                let first_covers = decl.iter().any(|(peer, rg)| peer == first && rg.contains(p));
                prop_assert_eq!(first_covers, covered);
            }
        }
    }
}
