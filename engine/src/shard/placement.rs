//! Where entries live, precomputed: the ring of entry points cut into segments inside which
//! every point has the same holders ([`Ring::holders`] with `r` replicas). Sans-IO.
//!
//! Why segments: an entry at `p` is held by the holders of `p + i·step` (i < r). Those only
//! change where some `p + i·step` crosses a range's start or end, so the cuts are every range
//! boundary `b` shifted back by `i·step` — at most `2·ranges·r` segments. With them a holder
//! lookup is a binary search (not a scan of the ring), and a peer's duties are spans of
//! points: what it must hold, what it shares with whom — which reconciliation scans as key
//! ranges and the simulator sweeps without looking at entries.

use super::ring::{Point, Ring, replica_points};

/// Points `[start, end)`; `end` `None` is the end of the ring (2^64). Spans never wrap: a
/// duty crossing 2^64 is two spans.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    /// The first point in it.
    pub start: Point,
    /// The first point past it (`None`: 2^64).
    pub end: Option<Point>,
}

impl Span {
    /// The whole ring.
    pub const ALL: Span = Span {
        start: 0,
        end: None,
    };

    /// Whether `p` is in the span.
    pub fn contains(&self, p: Point) -> bool {
        p >= self.start && self.end.is_none_or(|e| p < e)
    }

    /// The points in both spans, if any.
    pub fn intersect(&self, other: &Span) -> Option<Span> {
        let start = self.start.max(other.start);
        let end = match (self.end, other.end) {
            (None, e) | (e, None) => e,
            (Some(a), Some(b)) => Some(a.min(b)),
        };
        end.is_none_or(|e| e > start).then_some(Span { start, end })
    }

    /// Its width as a fraction of the ring.
    pub fn fraction(&self) -> f64 {
        let end = self.end.map_or(1u128 << 64, u128::from);
        (end - u128::from(self.start)) as f64 / (1u128 << 64) as f64
    }
}

/// The ring cut into segments, each with its holders (see the module docs).
#[derive(Clone, Debug)]
pub struct Placement<P> {
    /// Where each segment starts, ascending, the first at 0.
    starts: Vec<Point>,
    /// Each segment's holders, in replica order.
    holders: Vec<Vec<P>>,
    replicas: usize,
}

impl<P: Clone + Ord> Placement<P> {
    /// The placement of entries with `replicas` replicas on `ring`.
    pub fn new(ring: &Ring<P>, replicas: usize) -> Placement<P> {
        let replicas = replicas.max(1);
        let step_back: Vec<Point> = replica_points(0, replicas).collect();
        let mut cuts: Vec<Point> = vec![0];
        for b in ring.boundaries() {
            cuts.extend(step_back.iter().map(|s| b.wrapping_sub(*s)));
        }
        cuts.sort_unstable();
        cuts.dedup();
        let mut starts = Vec::with_capacity(cuts.len());
        let mut holders: Vec<Vec<P>> = Vec::with_capacity(cuts.len());
        for start in cuts {
            let h = ring.holders(start, replicas);
            // Neighbouring segments with the same holders are one.
            if holders.last() == Some(&h) {
                continue;
            }
            starts.push(start);
            holders.push(h);
        }
        Placement {
            starts,
            holders,
            replicas,
        }
    }

    /// Replicas per entry this placement was made for.
    pub fn replicas(&self) -> usize {
        self.replicas
    }

    /// Segments (each with its holders), in ring order.
    pub fn segments(&self) -> impl Iterator<Item = (Span, &[P])> + '_ {
        self.starts.iter().enumerate().map(move |(i, &start)| {
            let end = self.starts.get(i + 1).copied();
            (Span { start, end }, &self.holders[i][..])
        })
    }

    /// Segments in the ring.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether no peer holds anything (an empty ring).
    pub fn is_empty(&self) -> bool {
        self.holders.iter().all(Vec::is_empty)
    }

    /// The holders of an entry at `p`.
    pub fn holders(&self, p: Point) -> &[P] {
        let i = self.starts.partition_point(|s| *s <= p) - 1;
        &self.holders[i]
    }

    /// The spans `peer` holds, merged where they touch.
    pub fn spans_of(&self, peer: &P) -> Vec<Span> {
        merge(
            self.segments()
                .filter(|(_, h)| h.contains(peer))
                .map(|(s, _)| s),
        )
    }

    /// The fraction of the ring's entries `peer` holds (a segment held counts its width).
    pub fn share_of(&self, peer: &P) -> f64 {
        self.spans_of(peer).iter().map(Span::fraction).sum()
    }
}

/// Spans in ring order with touching ones joined.
pub fn merge(spans: impl IntoIterator<Item = Span>) -> Vec<Span> {
    let mut out: Vec<Span> = Vec::new();
    for s in spans {
        match out.last_mut() {
            Some(last) if last.end == Some(s.start) => last.end = s.end,
            _ => out.push(s),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::ring::Range;
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn eight_even_ranges_two_replicas_make_eight_segments_with_each_peer_a_quarter() {
        let step = 1u64 << 61;
        let ring = Ring::new((0..8u64).map(|i| {
            (
                i,
                Range {
                    offset: i * step,
                    width: step,
                },
            )
        }));
        let placement = Placement::new(&ring, 2);
        assert_eq!(placement.len(), 8);
        for i in 0..8u64 {
            assert_eq!(placement.holders(i * step + 5), [i, (i + 4) % 8]);
            assert!((placement.share_of(&i) - 0.25).abs() < 1e-12);
            assert_eq!(placement.spans_of(&i).len(), 2);
        }
        let (first, h) = placement.segments().next().unwrap();
        assert_eq!(
            (first, h),
            (
                Span {
                    start: 0,
                    end: Some(step)
                },
                &[0, 4][..]
            )
        );
        assert!(Placement::<u8>::new(&Ring::new([]), 3).is_empty());
        let s = |start, end| Span { start, end };
        assert_eq!(s(0, Some(10)).intersect(&s(5, None)), Some(s(5, Some(10))));
        assert_eq!(s(0, Some(10)).intersect(&s(10, None)), None);
        assert_eq!(Span::ALL.intersect(&s(3, None)), Some(s(3, None)));
    }

    proptest! {
        /// Every point's holders are what the ring says, so segments lose nothing.
        #[test]
        fn segments_agree_with_the_ring_everywhere(
            members in proptest::collection::vec((0u8..8, any::<u64>(), any::<u64>()), 1..8),
            probes in proptest::collection::vec(any::<u64>(), 64),
            r in 1usize..4,
        ) {
            let ring = Ring::new(
                members.iter().map(|&(p, offset, width)| (p, Range { offset, width })),
            );
            let placement = Placement::new(&ring, r);
            let mut points = probes.clone();
            // The cuts themselves and their neighbours, where an off-by-one would show.
            for (span, _) in placement.segments() {
                points.push(span.start);
                points.push(span.start.wrapping_sub(1));
                points.push(span.start.wrapping_add(1));
            }
            for p in points {
                prop_assert_eq!(placement.holders(p), &ring.holders(p, r)[..], "at {}", p);
            }
            let total: f64 = placement.segments().map(|(s, _)| s.fraction()).sum();
            prop_assert!((total - 1.0).abs() < 1e-9);
        }
    }
}
