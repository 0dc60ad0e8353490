//! What one replicator does where, from the two placements ([`Views`]): the rules of
//! rebalancing and pruning, sans-IO, shared by the node's driver and the simulator.
//!
//! On each span of the ring a replicator is one of:
//! - [`Role::Hold`]: a target holder — it must get every entry there (from the other keepers,
//!   by reconciliation; a newcomer counts as settled only once it has them, see
//!   [`Readiness`]);
//! - [`Role::Keep`]: a settled holder that is no longer a target holder — a newcomer is taking
//!   the span over; it keeps serving and holding until the newcomer is ready;
//! - [`Role::Prune`]: neither — what it holds there may be deleted, each entry once every
//!   target holder has confirmed holding it ([`prunable`]), never on a guess.

use std::collections::BTreeMap;

use super::membership::Views;
use super::placement::{Span, merge};
use super::ring::Point;

/// A replicator's part on a span (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// A target holder.
    Hold,
    /// A settled holder only.
    Keep,
    /// Neither: prune once confirmed elsewhere.
    Prune,
}

/// One span where the holders in both placements do not change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Duty<P> {
    /// Where.
    pub span: Span,
    /// This replicator's part there.
    pub role: Role,
    /// Target holders, in replica order.
    pub target: Vec<P>,
    /// Settled holders, in replica order.
    pub settled: Vec<P>,
}

impl<P: PartialEq> Duty<P> {
    /// Whether `peer` keeps entries here (a holder in either placement).
    pub fn keeps(&self, peer: &P) -> bool {
        self.target.contains(peer) || self.settled.contains(peer)
    }
}

/// The spans where both placements' holders stay the same, in ring order, with the target
/// and settled holders of each.
fn segments<P: Clone + Ord>(views: &Views<P>) -> impl Iterator<Item = (Span, &[P], &[P])> {
    let mut cuts: Vec<Point> = views
        .target
        .segments()
        .chain(views.settled.segments())
        .map(|(s, _)| s.start)
        .collect();
    cuts.sort_unstable();
    cuts.dedup();
    (0..cuts.len()).map(move |i| {
        let span = Span {
            start: cuts[i],
            end: cuts.get(i + 1).copied(),
        };
        (
            span,
            views.target.holders(span.start),
            views.settled.holders(span.start),
        )
    })
}

/// Appends a duty, joined to the last one when it continues it.
fn push_duty<P: PartialEq>(out: &mut Vec<Duty<P>>, duty: Duty<P>) {
    match out.last_mut() {
        Some(d)
            if d.span.end == Some(duty.span.start)
                && d.role == duty.role
                && d.target == duty.target
                && d.settled == duty.settled =>
        {
            d.span.end = duty.span.end;
        }
        _ => out.push(duty),
    }
}

/// `me`'s duties over the whole ring, in ring order.
pub fn duties<P: Clone + Ord>(views: &Views<P>, me: &P) -> Vec<Duty<P>> {
    let mut out: Vec<Duty<P>> = Vec::new();
    for (span, target, settled) in segments(views) {
        let role = if target.contains(me) {
            Role::Hold
        } else if settled.contains(me) {
            Role::Keep
        } else {
            Role::Prune
        };
        push_duty(
            &mut out,
            Duty {
                span,
                role,
                target: target.to_vec(),
                settled: settled.to_vec(),
            },
        );
    }
    out
}

/// Every keeper's duties where it keeps (no [`Role::Prune`] spans), in one sweep of the ring:
/// what [`duties`] gives each peer, for a simulator holding thousands of them.
pub fn keeping_duties<P: Clone + Ord>(views: &Views<P>) -> BTreeMap<P, Vec<Duty<P>>> {
    let mut out: BTreeMap<P, Vec<Duty<P>>> = BTreeMap::new();
    for (span, target, settled) in segments(views) {
        for peer in target.iter().chain(settled) {
            let role = if target.contains(peer) {
                Role::Hold
            } else {
                Role::Keep
            };
            let list = out.entry(peer.clone()).or_default();
            // A peer in both lists is visited twice: once is enough.
            if list.last().is_some_and(|d| d.span == span) {
                continue;
            }
            push_duty(
                list,
                Duty {
                    span,
                    role,
                    target: target.to_vec(),
                    settled: settled.to_vec(),
                },
            );
        }
    }
    out
}

/// For each other keeper, the spans it and `me` both keep: what the two reconcile.
pub fn partners<P: Clone + Ord>(duties: &[Duty<P>], me: &P) -> BTreeMap<P, Vec<Span>> {
    let mut out: BTreeMap<P, Vec<Span>> = BTreeMap::new();
    for d in duties.iter().filter(|d| d.role != Role::Prune) {
        for peer in d.target.iter().chain(&d.settled) {
            if peer == me {
                continue;
            }
            let spans = out.entry(peer.clone()).or_default();
            if spans.last() != Some(&d.span) {
                spans.push(d.span);
            }
        }
    }
    for spans in out.values_mut() {
        *spans = merge(spans.drain(..));
    }
    out
}

/// Spans where `me`'s entries may go once every listed target holder confirms holding them.
pub fn prunable<P: Clone>(duties: &[Duty<P>]) -> Vec<(Span, Vec<P>)> {
    duties
        .iter()
        .filter(|d| d.role == Role::Prune && !d.target.is_empty())
        .map(|d| (d.span, d.target.clone()))
        .collect()
}

/// What a leaving replicator hands off: every span with target holders, each entry it holds
/// there to be deleted once all of them confirm holding it (it goes when nothing is left).
pub fn handoff<P: Clone>(duties: &[Duty<P>]) -> Vec<(Span, Vec<P>)> {
    duties
        .iter()
        .filter(|d| !d.target.is_empty())
        .map(|d| (d.span, d.target.clone()))
        .collect()
}

/// A joining replicator's progress: spans where it found it holds what a settled holder
/// holds (their digests matched). It is ready when no span of its own is left to fetch.
#[derive(Clone, Debug, Default)]
pub struct Readiness {
    matched: Vec<Span>,
}

impl Readiness {
    /// Spans `me` holds (target) that settled holders other than `me` hold, not matched yet,
    /// each with the settled holders to compare with. Empty: `me` is ready.
    pub fn pending<P: Clone + Ord>(&self, duties: &[Duty<P>], me: &P) -> Vec<(Span, Vec<P>)> {
        let mut out: Vec<(Span, Vec<P>)> = Vec::new();
        for d in duties {
            if d.role != Role::Hold || d.settled.contains(me) {
                continue;
            }
            let others: Vec<P> = d.settled.iter().filter(|p| *p != me).cloned().collect();
            if others.is_empty() || self.is_matched(&d.span) {
                continue;
            }
            match out.last_mut() {
                Some((s, o)) if s.end == Some(d.span.start) && *o == others => s.end = d.span.end,
                _ => out.push((d.span, others)),
            }
        }
        out
    }

    /// A digest over `span` matched a settled holder's.
    pub fn matched(&mut self, span: Span) {
        let mut all = std::mem::take(&mut self.matched);
        all.push(span);
        all.sort();
        self.matched = merge(all);
    }

    fn is_matched(&self, span: &Span) -> bool {
        self.matched.iter().any(|m| {
            m.start <= span.start
                && match (m.end, span.end) {
                    (None, _) => true,
                    (Some(_), None) => false,
                    (Some(a), Some(b)) => b <= a,
                }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::membership::{Announcement, Membership};
    use super::super::ring::Range;
    use super::*;

    const Q: u64 = 1 << 62;

    fn ann(offset: u64, width: u64, ready: bool) -> Announcement {
        Announcement {
            ranges: vec![Range { offset, width }],
            ready,
            leaving: false,
        }
    }

    /// Peers 1 and 2 hold halves with one replica; peer 3 joins taking 2's second quarter.
    fn joining() -> Membership<u8> {
        let mut m = Membership::new(3u8, ann(3 * Q, Q, false), 1, 1_000, 8);
        m.announce(1, ann(0, 2 * Q, true), 0).unwrap();
        m.announce(2, ann(2 * Q, 2 * Q, true), 0).unwrap();
        m
    }

    #[test]
    fn a_newcomer_fetches_from_the_settled_holder_which_keeps_until_it_is_ready() {
        let mut m = joining();
        let views = m.views();
        let mine = duties(&views, &3);
        let last = Span {
            start: 3 * Q,
            end: None,
        };
        assert!(mine.contains(&Duty {
            span: last,
            role: Role::Hold,
            target: vec![3],
            settled: vec![2],
        }));
        assert_eq!(partners(&mine, &3).get(&2), Some(&vec![last]));
        assert!(
            !partners(&mine, &3).contains_key(&1),
            "shares nothing with 1"
        );
        let two = duties(&views, &2);
        assert!(two.iter().any(|d| d.span == last && d.role == Role::Keep));
        assert!(
            prunable(&two)
                .iter()
                .all(|(s, _)| s.end.is_some_and(|e| e <= 2 * Q)),
            "keeps the last quarter until the newcomer is ready"
        );
        let mut ready = Readiness::default();
        assert_eq!(ready.pending(&mine, &3), [(last, vec![2])]);
        ready.matched(last);
        assert!(ready.pending(&mine, &3).is_empty());
        // Ready announced: 2 may now prune that quarter, once 3 confirms.
        m.set_mine(ann(3 * Q, Q, true));
        let mut two_view = Membership::new(2u8, ann(2 * Q, 2 * Q, true), 1, 1_000, 8);
        two_view.announce(1, ann(0, 2 * Q, true), 0).unwrap();
        two_view.announce(3, ann(3 * Q, Q, true), 0).unwrap();
        let two = duties(&two_view.views(), &2);
        assert!(prunable(&two).contains(&(last, vec![3])));
    }

    #[test]
    fn one_sweep_gives_every_keeper_what_duties_gives_it() {
        let mut m = joining();
        let views = m.views();
        let all = keeping_duties(&views);
        for peer in [1u8, 2, 3] {
            let keeping: Vec<Duty<u8>> = duties(&views, &peer)
                .into_iter()
                .filter(|d| d.role != Role::Prune)
                .collect();
            assert_eq!(all.get(&peer), Some(&keeping), "peer {peer}");
        }
    }

    /// Two newcomers take parts of one holder's span at once: the old holder keeps every
    /// part until the newcomer taking it is ready, then that part alone becomes prunable —
    /// each newcomer fetches only its own part, from the old holder.
    #[test]
    fn overlapping_moves_release_each_part_only_when_its_newcomer_is_ready() {
        let mut m = Membership::new(1u8, ann(0, u64::MAX, true), 1, 1_000, 8);
        m.announce(2, ann(Q, Q, false), 0).unwrap();
        m.announce(3, ann(3 * Q, Q, false), 0).unwrap();
        let views = m.views();
        let old = duties(&views, &1);
        assert!(prunable(&old).is_empty(), "1 keeps both parts: {old:?}");
        let keep: Vec<Span> = old
            .iter()
            .filter(|d| d.role == Role::Keep)
            .map(|d| d.span)
            .collect();
        assert_eq!(keep.len(), 2);
        for (me, part) in [(2u8, Q), (3, 3 * Q)] {
            let mine = duties(&views, &me);
            let pending = Readiness::default().pending(&mine, &me);
            assert_eq!(pending.len(), 1, "{me}: {pending:?}");
            assert_eq!(pending[0].1, vec![1], "fetched from the old holder");
            assert_eq!(pending[0].0.start, part);
        }
        // Newcomer 2 is ready, 3 is not: only 2's part is released.
        m.announce(2, ann(Q, Q, true), 1).unwrap();
        let old = duties(&m.views(), &1);
        let released: Vec<(Span, Vec<u8>)> = prunable(&old);
        assert_eq!(released.len(), 1, "{released:?}");
        assert_eq!((released[0].0.start, &released[0].1), (Q, &vec![2]));
        assert!(
            old.iter()
                .any(|d| d.role == Role::Keep && d.span.start == 3 * Q)
        );
        // A newcomer that dies before it is ready leaves the old holder holding its part.
        m.remove(&3);
        let old = duties(&m.views(), &1);
        assert!(
            old.iter()
                .any(|d| d.role == Role::Hold && d.span.contains(3 * Q))
        );
    }

    #[test]
    fn a_fresh_store_has_nothing_to_fetch() {
        let mut m = Membership::new(0u8, ann(0, 2 * Q, false), 2, 1_000, 8);
        m.announce(1, ann(2 * Q, 2 * Q, false), 0).unwrap();
        let mine = duties(&m.views(), &0);
        assert!(Readiness::default().pending(&mine, &0).is_empty());
        assert!(mine.iter().all(|d| d.role == Role::Hold), "{mine:?}");
        assert_eq!(partners(&mine, &0).get(&1), Some(&vec![Span::ALL]));
    }

    #[test]
    fn matching_part_of_a_span_leaves_it_pending() {
        let m = &mut joining();
        let mine = duties(&m.views(), &3);
        let mut ready = Readiness::default();
        ready.matched(Span {
            start: 3 * Q,
            end: Some(3 * Q + 10),
        });
        assert_eq!(ready.pending(&mine, &3).len(), 1);
        ready.matched(Span {
            start: 3 * Q + 10,
            end: None,
        });
        assert!(ready.pending(&mine, &3).is_empty());
    }
}
