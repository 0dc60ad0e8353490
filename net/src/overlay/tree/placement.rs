//! Latency-aware placement: delay estimates, redirect candidates, joiner-side probing, and
//! the swap that lets a much nearer joiner take a far child's place.

use std::fmt::Debug;
use std::hash::Hash;

use super::{Attach, ChildReport, Context, Probing, TopicState};
use crate::overlay::message::{Candidate, Payload};
use crate::overlay::shared::Shared;

impl<P, B> TopicState<P, B>
where
    P: Copy + Eq + Hash + Ord + Debug,
    B: Payload,
{
    /// Estimated one-way delay from the root to this node (µs): when the parent sends a frame
    /// our way (it says so in its accept), plus half the baseline RTT to it. The baseline (min
    /// RTT), not the smoothed RTT: a probe that waited behind a frame would make every busy
    /// relay look far away and every idle leaf near, and joiners would pile into chains.
    pub(in crate::overlay) fn delay_us<V>(&self, shared: &Shared<P, V>) -> u64 {
        match self.parent() {
            None => 0,
            Some(parent) => self
                .parent_delay_us
                .saturating_add(half_base_rtt(shared, &parent)),
        }
    }

    /// When a frame leaves this node towards its `index`-th child, after the root published
    /// it (µs): our delay plus the turns of the children before it on our uplink.
    pub(super) fn send_delay_us<V>(&self, shared: &Shared<P, V>, index: usize) -> u64 {
        let upload = shared
            .measured_upload()
            .unwrap_or(shared.config.upload_bytes_per_s as f64)
            .max(1.0);
        let turn_us = self.rate.frame_bytes * 1e6 / upload;
        self.delay_us(shared)
            .saturating_add(((index + 1) as f64 * turn_us) as u64)
    }

    /// `peers` (children of ours) as redirect candidates, each with the delay a joiner placed
    /// in its subtree can expect: when the frame reaches the child, plus one hop per level the
    /// joiner will likely have to descend below it. Without that last term, a child near the
    /// root looks best to every joiner (passing through it costs almost nothing in a metric
    /// space) and its branch grows into a chain.
    pub(super) fn as_candidates<V>(&self, shared: &Shared<P, V>, peers: &[P]) -> Vec<Candidate<P>> {
        // Siblings are priced at the average send turn: their own places in our send order
        // would bias every joiner towards the first child, and then towards its first…
        let sent = self.send_delay_us(shared, self.children.len() / 2);
        // One level costs what one of our hops costs: the turn plus the average link.
        let hop_us = match self.children.len() as u64 {
            0 => 0,
            n => {
                let links = self
                    .children
                    .iter()
                    .map(|c| half_base_rtt(shared, c))
                    .fold(0u64, u64::saturating_add);
                sent.saturating_sub(self.delay_us(shared))
                    .saturating_add(links / n)
            }
        };
        let fanout = (self.capacity(shared).max(2)) as f64;
        peers
            .iter()
            .map(|p| {
                let below = f64::from(self.reports.get(p).map_or(0, |r| r.descendants));
                let levels = (below + 1.0).ln() / fanout.ln();
                Candidate {
                    peer: *p,
                    delay_us: sent
                        .saturating_add(half_base_rtt(shared, p))
                        .saturating_add((levels * hop_us as f64) as u64),
                }
            })
            .collect()
    }

    /// The child to move below a joiner measured at `rtt_us` from us, if the joiner is much
    /// nearer than our farthest child (by baseline RTT) and we have not swapped lately.
    pub(super) fn farther_child<V>(
        &self,
        shared: &Shared<P, V>,
        rtt_us: u64,
        now: u64,
    ) -> Option<P> {
        let c = &shared.config;
        if c.preempt_factor <= 0.0
            || rtt_us == 0
            || now.saturating_sub(self.last_preempt_at) < c.preempt_interval_us
        {
            return None;
        }
        // Only a child with a small subtree moves: moving a large one adds a level to every
        // node in it, and under churn or congestion such moves cascade into deep chains.
        let small = self.capacity(shared).max(1) as u32;
        let (far_rtt, far) = self
            .children
            .iter()
            .filter(|p| self.reports.get(p).map_or(0, |r| r.descendants) <= small)
            .filter_map(|p| {
                let rtt = shared.links.get(p)?.min_rtt_us;
                (rtt > 0).then_some((rtt, *p))
            })
            .max()?;
        ((rtt_us as f64) < c.preempt_factor * far_rtt as f64).then_some(far)
    }

    /// Nodes below this one, as the children last reported.
    pub(super) fn descendants(&self) -> u32 {
        self.children
            .iter()
            .map(|c| {
                self.reports
                    .get(c)
                    .map_or(0, |r| r.descendants)
                    .saturating_add(1)
            })
            .fold(0u32, u32::saturating_add)
    }

    /// A child's report (ignored from non-children).
    pub(in crate::overlay) fn on_report(&mut self, child: P, report: ChildReport) {
        if self.children.contains(&child) {
            self.reports.insert(child, report);
        }
    }

    /// Puts `peers` at the front of the join queue, in the given order.
    pub(super) fn queue_first(&mut self, peers: &[P]) {
        if let Attach::Joining { queue, .. } = &mut self.attach {
            for c in peers.iter().rev() {
                queue.retain(|q| q != c);
                queue.push_front(*c);
            }
        }
    }

    /// A probe answer arrived from `from`: if it was the last candidate outstanding, choose.
    pub(in crate::overlay) fn on_probe_answer<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        from: P,
    ) {
        let Attach::Joining {
            probing: Some(probing),
            ..
        } = &self.attach
        else {
            return;
        };
        if probing.candidates.iter().any(|c| c.peer == from)
            && probing
                .candidates
                .iter()
                .all(|c| probing.sample(cx.shared, &c.peer).is_some())
        {
            self.finish_probing(cx);
        }
    }

    /// Ranks the probed candidates by how soon each would deliver to us — its delay from the
    /// root plus half our RTT to it — and asks the best first. Unanswered ones go last.
    pub(super) fn finish_probing<V>(&mut self, cx: &mut Context<'_, P, V, B>) {
        let Attach::Joining { probing, .. } = &mut self.attach else {
            return;
        };
        let Some(probing) = probing.take() else {
            return;
        };
        let mut ranked: Vec<(u64, usize, P)> = probing
            .candidates
            .iter()
            .enumerate()
            .map(|(i, c)| {
                // The probe's own sample: a candidate whose uplink is backed up right cx.now
                // (throttled, overloaded) answers late and ranks accordingly.
                let score = probing
                    .sample(cx.shared, &c.peer)
                    .map_or(u64::MAX, |rtt| c.delay_us.saturating_add(rtt / 2));
                (score, i, c.peer)
            })
            .collect();
        ranked.sort();
        let peers: Vec<P> = ranked.into_iter().map(|(_, _, p)| p).collect();
        self.queue_first(&peers);
        self.try_next(cx);
    }
}

impl<P: Eq + Hash> Probing<P> {
    /// The RTT sample taken since probing began, if `peer` has answered.
    fn sample<V>(&self, shared: &Shared<P, V>, peer: &P) -> Option<u64> {
        shared
            .links
            .get(peer)
            .filter(|l| l.srtt_us > 0 && l.measured_at >= self.since)
            .map(|l| l.last_rtt_us)
    }
}

/// Half the baseline RTT to `peer` (µs), 0 if never measured.
pub(super) fn half_base_rtt<P: Eq + Hash, V>(shared: &Shared<P, V>, peer: &P) -> u64 {
    shared.links.get(peer).map_or(0, |l| l.min_rtt_us / 2)
}
