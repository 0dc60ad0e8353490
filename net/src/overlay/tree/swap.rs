//! Sorting the tree after it formed. A flash crowd fills the top of the tree in arrival order,
//! so nodes near the publisher end up deep, behind relays far away, and wait several times
//! their direct latency. Joins cannot fix that once the tree is full. Instead a parent asks its
//! own parent to take one of its children in its place when that child may be much nearer the
//! grandparent (by the parent's own measurements; children's reported root RTTs only order
//! them), and the grandparent trades them if its own measurement agrees:
//!
//! 1. parent P → its parent G: `Handover { to: X }`;
//! 2. G puts X in P's slot and accepts X;
//! 3. X takes the slot (an accept from its grandparent) and tells P: `Handover { to: X }`;
//! 4. P redirects its other children to X and joins X;
//! 5. X admits P even when full, and redirects the children it had to P.
//!
//! X, not G, tells P, so that P's join cannot reach X before X has left P.
//!
//! Only X and P change depth; everyone else keeps its level, so the tree does not deepen.
//! Swap by swap (at most one per node per `swap_interval_us`) the tree approaches the order a
//! nearest-first construction would have given it.

use std::fmt::Debug;
use std::hash::Hash;

use super::{Context, TopicState};
use crate::overlay::event::Action;
use crate::overlay::message::{Candidate, Message, Payload};
use crate::overlay::shared::Shared;

/// The swaps a node takes part in.
#[derive(Debug)]
pub(super) struct SwapState<P> {
    /// When we last asked our parent to trade places with a child (step 1).
    pub(super) asked_at: u64,
    /// The child we asked to trade places with.
    pub(super) partner: Option<P>,
    /// How many times in a row we asked for `partner`.
    pub(super) asks: u8,
    /// Children asked for twice in vain, and until when they wait (at most `max_children`).
    pub(super) passed: Vec<(P, u64)>,
    /// When we last gave a child's slot to its child (step 2).
    pub(super) gave_slot_at: u64,
    /// Children that gave their slot away, the ones that took them, and when: kept until they
    /// have moved (or get the slot back if the other refuses). At most `max_children`.
    pub(super) swapped_out: Vec<(P, P, u64)>,
    /// After taking our old parent's place (step 3): it, the children we had (they go below
    /// it once it has joined us), and when.
    pub(super) handed_by: Option<(P, Vec<P>, u64)>,
}

impl<P> Default for SwapState<P> {
    fn default() -> Self {
        SwapState {
            asked_at: 0,
            partner: None,
            asks: 0,
            passed: Vec::new(),
            gave_slot_at: 0,
            swapped_out: Vec::new(),
            handed_by: None,
        }
    }
}

/// Swap intervals a child asked for twice in vain waits before it is asked for again.
const SWAP_PASS: u64 = 30;
/// A swap must bring its node this much nearer (µs): on a LAN or loopback, where every RTT is
/// a fraction of a millisecond, relative differences are noise, and each swap moves two nodes
/// and a subtree.
const MIN_SWAP_GAIN_US: u64 = 5_000;
/// Round trips to the parent an ask of ours may take to be answered.
const ASK_SETTLE: u64 = 4;
/// …and at least this long (µs).
const ASK_SETTLE_MIN_US: u64 = 100_000;

/// What a child last told its parent about itself.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(in crate::overlay) struct ChildReport {
    /// Nodes below the child.
    pub(in crate::overlay) descendants: u32,
    /// Its baseline RTT to the root (µs, 0 if unmeasured).
    pub(in crate::overlay) root_rtt_us: u64,
}

impl<P, B> TopicState<P, B>
where
    P: Copy + Eq + Hash + Ord + Debug,
    B: Payload,
{
    /// Our baseline RTT to the root (µs, 0 if never measured; a first join measures it).
    fn root_rtt_us<V>(&self, shared: &Shared<P, V>) -> u64 {
        shared.links.get(&self.root).map_or(0, |l| l.min_rtt_us)
    }

    /// Which swaps we may take part in now: one at a time, in any role. Two swaps overlapping
    /// at one node can each move nodes the other is moving, and someone ends up attached to
    /// a parent that does not know it (seen in the simulator: 3 s without frames). A node
    /// that is moving (it asked for a swap, or was just attached) or whose children are
    /// changing (it gave a slot) takes part in no other swap for `swap_interval_us`. Giving
    /// several slots at once also deepened the tree (the freed parents filled up with
    /// joiners before the children meant for them arrived), and so did swaps while joiners
    /// still streamed through: a node gives no slot within `swap_interval_us` of a join.
    fn recently<V>(&self, shared: &Shared<P, V>, now: u64, at: u64) -> bool {
        at > 0 && now.saturating_sub(at) < shared.config.swap_interval_us
    }

    fn moving<V>(&self, shared: &Shared<P, V>, now: u64) -> bool {
        self.recently(shared, now, self.swap.asked_at)
            || !self.is_root && self.recently(shared, now, self.last_attach_at)
    }

    /// Whether an ask of ours may still be answered (our parent adopting our child): for
    /// `ASK_SETTLE` round trips to the parent, not the whole `swap_interval_us` — every node
    /// with a child that might be nearer its parent asks once per interval, and a node
    /// counting its own asks for a whole interval would never give a slot.
    fn asked_lately<V>(&self, shared: &Shared<P, V>, now: u64) -> bool {
        let to_parent = self
            .parent()
            .and_then(|p| shared.links.get(&p))
            .map_or(0, |l| l.srtt_us.max(l.min_rtt_us));
        let settle = ASK_SETTLE
            .saturating_mul(to_parent)
            .clamp(ASK_SETTLE_MIN_US, shared.config.swap_interval_us);
        self.swap.asked_at > 0 && now.saturating_sub(self.swap.asked_at) < settle
    }

    fn children_changing<V>(&self, shared: &Shared<P, V>, now: u64) -> bool {
        self.recently(shared, now, self.swap.gave_slot_at)
    }

    /// Swaps are for a calm tree: not while we miss frames, see our parent congest, or
    /// measure an uplink slower than configured. Promoting a throttled node puts a whole
    /// branch behind it, and moving nodes in a struggling subtree only adds to the churn
    /// (25 Mbit/s with 10 % throttled: 95 % delivered within 2 s with swaps there, 99.9 %
    /// without).
    fn calm<V>(&self, shared: &Shared<P, V>) -> bool {
        let configured = shared.config.upload_bytes_per_s as f64;
        self.seq.gap_since.is_none()
            && self.congested_since.is_none()
            && shared
                .measured_upload()
                .is_none_or(|m| m >= 0.9 * configured)
    }

    /// Whether an accept from `from` with `path` is our grandparent taking us in our parent's
    /// place, and we are free to go: it is our parent's parent and its path is ours without
    /// our parent (a path update or a late accept would differ), and we are not in another
    /// swap. If we are, the accept is refused like a late one: we leave `from`, which gives
    /// our parent its slot back.
    pub(super) fn is_adoption<V>(
        &self,
        shared: &Shared<P, V>,
        from: &P,
        path: &[P],
        now: u64,
    ) -> bool {
        let Some(grandparent) = self.path.len().checked_sub(2) else {
            return false;
        };
        !self.recently(shared, now, self.swap.asked_at)
            && !self.children_changing(shared, now)
            && self.calm(shared)
            && self.has_attached
            && self.path[grandparent] == *from
            && path.len() == grandparent + 1
            && path.last() == Some(from)
            && path[..grandparent] == self.path[..grandparent]
    }

    /// Tells the parent about us, at most once per tick and only when something changed (or,
    /// on probe ticks, while we have a subtree): subtree sizes spread a flash crowd of joiners,
    /// root distances drive swaps.
    pub(super) fn report<V>(&mut self, cx: &mut Context<'_, P, V, B>, parent: P, probe: bool) {
        let report = ChildReport {
            descendants: self.descendants(),
            root_rtt_us: self.root_rtt_us(cx.shared),
        };
        if self.reported != Some(report) || probe && report.descendants > 0 {
            self.reported = Some(report);
            cx.send(
                parent,
                Message::Report {
                    topic: cx.topic,
                    descendants: report.descendants,
                    root_rtt_us: report.root_rtt_us,
                },
            );
        }
    }

    /// Step 1: asks `parent` to give our slot to one of our children that may be much nearer
    /// it than we are. Not while settling after an attach, and at most once per
    /// `swap_interval_us`.
    ///
    /// Which children may be asked for is our own measurements' choice: only a child at least
    /// `1 − swap_factor` of our RTT to the parent away from us can be `swap_factor` nearer the
    /// parent than we are (triangle inequality), and the parent decides by its own
    /// measurement (`give_slot`). Children's reported root RTTs only order them (near the
    /// root is likely near the parent); each is asked for twice (the parent measures it on the
    /// first ask) and then passed over for `SWAP_PASS` intervals. A report once also decided
    /// *whether* to ask: a Sybil claiming 1 µs was asked for whenever its place allowed, an
    /// honest node in the same place only if really near the root, and Sybils climbed (5 %
    /// Sybils, 10,000 nodes, seed 3: 2.2× the honest nodes captured of Sybils that did not
    /// lie). Now a lie buys at most an earlier turn.
    pub(super) fn consider_swap<V>(&mut self, cx: &mut Context<'_, P, V, B>, parent: P) {
        let c = &cx.shared.config;
        if c.swap_factor <= 0.0
            || self.moving(cx.shared, cx.now)
            || self.children_changing(cx.shared, cx.now)
            || !self.calm(cx.shared)
        {
            return;
        }
        let rtt = |peer: &P| cx.shared.links.get(peer).map_or(0, |l| l.min_rtt_us);
        let to_parent = rtt(&parent);
        if to_parent == 0 {
            return;
        }
        let now = cx.now;
        // The child asked for last time is still ours, not swapped: after two asks it waits.
        if let Some(prev) = self.swap.partner.take() {
            if self.swap.asks >= 2 {
                let until = now.saturating_add(SWAP_PASS.saturating_mul(c.swap_interval_us));
                self.swap.passed.push((prev, until));
                self.swap.asks = 0;
            } else {
                self.swap.partner = Some(prev);
            }
        }
        let children = &self.children;
        self.swap
            .passed
            .retain(|(p, until)| *until > now && children.contains(p));
        // (And at least `MIN_SWAP_GAIN_US` away: the gain cannot exceed our RTT to the child.)
        let far_enough = (((1.0 - c.swap_factor) * to_parent as f64) as u64).max(MIN_SWAP_GAIN_US);
        let mine = self.root_rtt_us(cx.shared);
        let passed = &self.swap.passed;
        let chosen = self
            .children
            .iter()
            .filter(|child| rtt(child) > far_enough && !passed.iter().any(|(p, _)| p == *child))
            .map(|child| {
                let claimed = self.reports.get(child).map_or(0, |r| r.root_rtt_us);
                // Unreported children go last; ties go to the farthest from us. A claim is
                // taken no lower than our measurements allow (our root RTT minus our RTT to
                // the child: triangle inequality).
                let claimed = if claimed == 0 {
                    u64::MAX
                } else {
                    claimed.max(mine.saturating_sub(rtt(child)))
                };
                (claimed, std::cmp::Reverse(rtt(child)), *child)
            })
            .min();
        let Some((_, _, child)) = chosen else {
            return;
        };
        if self.swap.partner == Some(child) {
            self.swap.asks += 1;
        } else {
            self.swap.partner = Some(child);
            self.swap.asks = 1;
        }
        self.swap.asked_at = now;
        cx.send(
            parent,
            Message::Handover {
                topic: cx.topic,
                to: child,
            },
        );
    }

    /// A `Handover` from a child: step 2 when it names one of the child's children, step 4
    /// when it names the child itself (the one we asked for: it has taken our place).
    pub(in crate::overlay) fn on_handover<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        from: P,
        to: P,
    ) {
        if to == from {
            // (Its `Leave` may overtake this: it need not still be our child.)
            if self.swap.partner == Some(from)
                && cx.now.saturating_sub(self.swap.asked_at) <= cx.shared.config.swap_interval_us
            {
                self.swap.partner = None;
                self.leave_place_to(cx, to);
            }
        } else if let Some(slot) = self.children.iter().position(|c| *c == from) {
            self.give_slot(cx, slot, to);
        }
    }

    /// Step 3: we took our old parent's place (an accept from our grandparent); tell it, and
    /// remember our children for it.
    pub(super) fn took_place_of<V>(&mut self, cx: &mut Context<'_, P, V, B>, old_parent: P, me: P) {
        self.swap.handed_by = Some((old_parent, self.children.clone(), cx.now));
        cx.send(
            old_parent,
            Message::Handover {
                topic: cx.topic,
                to: me,
            },
        );
    }

    /// Step 2: our child `children[slot]` gives its slot (and its turn in our send order) to
    /// `to`, one of its children. Refused if `to` is already ours or one of our ancestors, and
    /// while a swap we took part in may still be under way: two overlapping swaps along one
    /// path would each move nodes the other is moving.
    fn give_slot<V>(&mut self, cx: &mut Context<'_, P, V, B>, slot: usize, to: P) {
        if !self.in_tree()
            || to == self.root
            || self.children.contains(&to)
            || self.path.contains(&to)
            || self.asked_lately(cx.shared, cx.now)
            || !self.is_root && self.recently(cx.shared, cx.now, self.last_attach_at)
            || self.children_changing(cx.shared, cx.now)
            || self.recently(cx.shared, cx.now, self.last_join_at)
            || !self.calm(cx.shared)
        {
            return;
        }
        // That `to` is much nearer the root is its own report, passed on by its parent: we
        // check it by our own measurement before moving anyone (a child reporting
        // `root_rtt_us = 1` was handed its parent's slot). `to` takes `from`'s place below us,
        // so it must be much nearer to us; not measured yet, we measure it now and refuse —
        // the parent asks again after `swap_interval_us`.
        let ours = |peer: &P| cx.shared.links.get(peer).map_or(0, |l| l.min_rtt_us);
        let (to_rtt, from_rtt) = (ours(&to), ours(&self.children[slot]));
        if to_rtt == 0 {
            cx.shared.note_probe_only(to, cx.now);
            cx.out.push(Action::Connect(to));
            cx.probe(to);
            return;
        }
        if from_rtt == 0
            || to_rtt as f64 >= cx.shared.config.swap_factor * from_rtt as f64
            || from_rtt - to_rtt < MIN_SWAP_GAIN_US
        {
            return;
        }
        self.swap.gave_slot_at = cx.now;
        // `from` keeps getting frames, at the last turn, until it has joined `to` and leaves
        // us (make before break); if the swap stalls, it is shed like any extra child.
        let from = std::mem::replace(&mut self.children[slot], to);
        self.children.push(from);
        let entries = std::mem::take(&mut self.swap.swapped_out);
        self.swap.swapped_out = entries
            .into_iter()
            .filter(|entry| self.still_moving(entry, cx.shared, cx.now))
            .collect();
        self.swap
            .swapped_out
            .truncate(cx.shared.config.max_children.saturating_sub(1));
        self.swap.swapped_out.push((from, to, cx.now));
        cx.shared.stats.swaps += 1;
        let mut path = self.path.clone();
        path.push(cx.shared.me);
        cx.out.push(Action::Connect(to));
        cx.out.push(Action::Send {
            to,
            message: Message::Accept {
                topic: cx.topic,
                path,
                next_seq: self.forward_seq(),
                rate: self.rate.bytes_per_s as u64,
                delay_us: self.send_delay_us(cx.shared, slot),
                adoption: true,
            },
        });
    }

    /// Step 4: `to` has our place. Our other children go to it (it keeps them at their depth)
    /// and we join below it.
    fn leave_place_to<V>(&mut self, cx: &mut Context<'_, P, V, B>, to: P) {
        let others: Vec<P> = std::mem::take(&mut self.children)
            .into_iter()
            .filter(|c| *c != to)
            .collect();
        self.reports.clear();
        let target = Candidate {
            peer: to,
            delay_us: self.parent_delay_us,
        };
        Self::redirect_to(cx, others, target);
        self.start_join(cx, vec![to]);
    }

    /// Children beyond capacity we keep for now: those that gave their slot away and are on
    /// their way below their replacements (for two join timeouts).
    pub(super) fn swap_allowance<V>(&self, shared: &Shared<P, V>, now: u64) -> usize {
        self.swap
            .swapped_out
            .iter()
            .filter(|entry| self.still_moving(entry, shared, now))
            .count()
    }

    /// Whether a child that gave its slot away (`swapped_out` entry) is still ours and still
    /// within two join timeouts of the swap.
    fn still_moving<V>(&self, (old, _, at): &(P, P, u64), shared: &Shared<P, V>, now: u64) -> bool {
        self.children.contains(old) && now.saturating_sub(*at) <= 2 * shared.config.join_timeout_us
    }

    /// Redirects `children` to `to` alone (a swap moving them to the node now in their
    /// parent's place, or below it).
    fn redirect_to<V>(
        cx: &mut Context<'_, P, V, B>,
        children: impl IntoIterator<Item = P>,
        to: Candidate<P>,
    ) {
        for child in children {
            cx.send(
                child,
                Message::Redirect {
                    topic: cx.topic,
                    candidates: vec![to],
                    next_seq: 0,
                },
            );
        }
    }

    /// A child left. If it was the replacement of a swap still under way (it refused the
    /// slot), the child it was to replace gets its slot back.
    pub(in crate::overlay) fn on_leave(&mut self, child: P) {
        let Some(slot) = self.children.iter().position(|c| *c == child) else {
            return;
        };
        let refused = self
            .swap
            .swapped_out
            .iter()
            .position(|(old, to, _)| *to == child && self.children.contains(old));
        match refused {
            Some(i) => {
                let (old, _, _) = self.swap.swapped_out.swap_remove(i);
                self.children.retain(|c| *c != old);
                self.reports.remove(&child);
                // `old` sat after `child` (it was appended), so `slot` is still `child`'s.
                if let Some(c) = self.children.get_mut(slot) {
                    *c = old;
                }
            }
            None => self.remove_child(&child),
        }
    }

    /// Whether `joiner` is the old parent we are expecting after a swap (for a join timeout).
    pub(super) fn expects<V>(&self, joiner: &P, shared: &Shared<P, V>, now: u64) -> bool {
        self.swap.handed_by.as_ref().is_some_and(|(old, _, at)| {
            old == joiner && now.saturating_sub(*at) <= shared.config.join_timeout_us
        })
    }

    /// Step 5: our old parent has joined us; the children we had when we took its place go
    /// below it (they keep their depth).
    pub(super) fn pass_children<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        joiner: P,
        joiner_delay_us: u64,
    ) {
        if !self.expects(&joiner, cx.shared, cx.now) {
            return;
        }
        let Some((_, old_children, _)) = self.swap.handed_by.take() else {
            return;
        };
        let moving: Vec<P> = old_children
            .into_iter()
            .filter(|c| *c != joiner && self.children.contains(c))
            .collect();
        for child in &moving {
            self.remove_child(child);
        }
        let target = Candidate {
            peer: joiner,
            delay_us: joiner_delay_us,
        };
        Self::redirect_to(cx, moving, target);
    }
}
