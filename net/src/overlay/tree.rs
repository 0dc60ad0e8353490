//! The data plane: one tree per topic, rooted at the publisher.
//!
//! Here: membership — joining, admission by capacity, redirects, shedding, re-attachment and
//! the congestion rules. `frames`: sequencing, forwarding, delivery and repair (`cache`: the
//! recent frames repairs are served from; `rate`: the stream rate as measured). `placement`:
//! where in the tree a joiner lands (delay estimates, probing, preemption). `swap`: how the
//! tree sorts itself afterwards (a child much nearer the root trades places with its parent).
//! Handlers take a [`Context`] (shared node state, topic, time, actions out).

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use super::OverlayConfig;
use super::event::Action;
use super::message::{Candidate, Message, Payload, Topic};
use super::shared::Shared;
use crate::entry::session;

mod cache;
mod frames;
mod placement;
mod rate;
mod swap;

use cache::RepairCache;
use frames::{RepairBudget, Sequencing};
use rate::RateMeter;
pub(super) use swap::ChildReport;
use swap::SwapState;

/// What a topic's handlers work with besides the topic's own state: the node's shared state,
/// which topic this is, the time, and where actions go. One value instead of four parameters
/// threaded through every handler.
pub(super) struct Context<'a, P, V, B> {
    pub(super) shared: &'a mut Shared<P, V>,
    pub(super) topic: Topic,
    pub(super) now: u64,
    pub(super) out: &'a mut Vec<Action<P, B>>,
}

impl<'a, P, V, B> Context<'a, P, V, B> {
    pub(super) fn new(
        shared: &'a mut Shared<P, V>,
        topic: Topic,
        now: u64,
        out: &'a mut Vec<Action<P, B>>,
    ) -> Self {
        Context {
            shared,
            topic,
            now,
            out,
        }
    }

    /// Queues `message` for `to`.
    fn send(&mut self, to: P, message: Message<P, B>) {
        self.out.push(Action::Send { to, message });
    }

    /// Probes `to` (a nonce it must echo, remembered with the time).
    fn probe(&mut self, to: P)
    where
        P: Copy + Eq + Hash,
    {
        let nonce = self.shared.new_probe(to, self.now);
        self.send(to, Message::Probe { nonce });
    }
}

/// Where a member stands in the tree.
#[derive(Clone, Debug)]
enum Attach<P> {
    /// Asking `target`; `queue` holds the candidates still to try.
    Joining {
        target: P,
        asked_at: u64,
        queue: VecDeque<P>,
        /// The parent being replaced, if this is a re-attach.
        previous: Option<P>,
        /// Candidates of the last redirect being probed before choosing among them.
        probing: Option<Probing<P>>,
    },
    /// Receiving from `parent`.
    Attached { parent: P },
}

/// A joiner measuring the candidates a full node redirected it to.
#[derive(Clone, Debug)]
struct Probing<P> {
    since: u64,
    until: u64,
    candidates: Vec<Candidate<P>>,
}

/// One topic's state at one node.
pub(super) struct TopicState<P, B> {
    root: P,
    is_root: bool,
    /// Opened by a peer's join naming us as the root, before we published anything: kept
    /// only while it has children, and given up for any local publish or subscribe.
    pub(super) opened_by_peer: bool,
    pub(super) subscribed: bool,
    attach: Attach<P>,
    /// Root … parent.
    path: Vec<P>,
    /// The parent's estimated delay from the root (µs), as it last told us.
    parent_delay_us: u64,
    pub(super) children: Vec<P>,
    /// What each child last reported (its subtree, its distance from the root).
    reports: BTreeMap<P, ChildReport>,
    /// What we last reported to our parent (none yet to this parent).
    reported: Option<ChildReport>,
    /// When we last moved a child below a nearer joiner.
    last_preempt_at: u64,
    /// When a join last reached us.
    last_join_at: u64,
    /// Swaps under way (ours and our children's).
    swap: SwapState<P>,
    /// Whether the RTT to the root was measured before the first join.
    root_probed: bool,
    /// Whether the root told us the stream has frames (see `note_root_seq`).
    root_says_live: bool,
    /// Which frames came, which are missing, which are next.
    seq: Sequencing<B>,
    /// Recent frames, for children's repairs.
    cache: RepairCache<B>,
    /// What we may still send for repairs.
    repair_budget: RepairBudget,
    /// The stream's rate and frame size as we see them.
    rate: RateMeter,
    join_started_at: u64,
    congested_since: Option<u64>,
    last_attach_at: u64,
    avoid: Vec<(P, u64)>,
    has_attached: bool,
    redirects: usize,
}

impl<P, B> TopicState<P, B>
where
    P: Copy + Eq + Hash + Ord + Debug,
    B: Payload,
{
    pub(super) fn new(root: P, is_root: bool, config: &OverlayConfig) -> Self {
        TopicState {
            root,
            is_root,
            opened_by_peer: false,
            subscribed: false,
            attach: Attach::Attached { parent: root },
            path: Vec::new(),
            parent_delay_us: 0,
            children: Vec::new(),
            reports: BTreeMap::new(),
            reported: None,
            last_preempt_at: 0,
            last_join_at: 0,
            swap: SwapState::default(),
            root_probed: false,
            root_says_live: false,
            seq: Sequencing::default(),
            cache: RepairCache::default(),
            repair_budget: RepairBudget::new(config),
            rate: RateMeter::default(),
            join_started_at: 0,
            congested_since: None,
            last_attach_at: 0,
            avoid: Vec::new(),
            has_attached: false,
            redirects: 0,
        }
    }

    pub(super) fn parent(&self) -> Option<P> {
        match (&self.attach, self.is_root) {
            (_, true) => None,
            (Attach::Attached { parent }, false) if self.has_attached => Some(*parent),
            _ => None,
        }
    }

    pub(super) fn depth(&self) -> Option<usize> {
        if self.is_root {
            Some(0)
        } else {
            self.parent().map(|_| self.path.len())
        }
    }

    pub(super) fn remove_child(&mut self, child: &P) {
        self.children.retain(|c| c != child);
        self.reports.remove(child);
    }

    /// Whether `peer` has a part in this topic for us: root, parent, child, or a candidate of
    /// the join under way.
    pub(super) fn involves(&self, peer: &P) -> bool {
        self.root == *peer
            || self.children.contains(peer)
            || matches!(&self.attach, Attach::Attached { parent } if parent == peer)
            || self.asking(peer)
    }

    /// Whether `peer` is a candidate of the join under way (asked, queued or being probed).
    fn asking(&self, peer: &P) -> bool {
        match &self.attach {
            Attach::Attached { .. } => false,
            Attach::Joining {
                target,
                queue,
                probing,
                ..
            } => {
                target == peer
                    || queue.contains(peer)
                    || probing
                        .as_ref()
                        .is_some_and(|p| p.candidates.iter().any(|c| c.peer == *peer))
            }
        }
    }

    /// Whether we may take `joiner` in: we are in the tree, or re-attaching with our subtree.
    /// A re-attaching node still gets frames from its old parent until the new one accepts it
    /// (make before break), and a joiner below it moves with it. Sending joiners back to the
    /// root instead made a swarm in flux bounce them between the root and re-attaching relays
    /// (1,000 loopback subscribers: 8,140 such redirects in 120 s, a quarter never attached).
    /// Not a node we are asking ourselves: each would take the other, a loop.
    fn admits(&self, joiner: &P) -> bool {
        let rejoining = matches!(
            &self.attach,
            Attach::Joining {
                previous: Some(_),
                ..
            }
        );
        self.in_tree() || rejoining && !self.asking(joiner)
    }

    /// Whether frames from `peer` are taken: our parent, the node we are joining, and our
    /// ancestors (the path to the root: the parent we are leaving still sends until a new one
    /// accepts us, and the grandparent answers repairs our parent cannot serve).
    pub(super) fn sends_us_frames(&self, peer: &P) -> bool {
        self.path.contains(peer)
            || match &self.attach {
                Attach::Attached { parent } => parent == peer,
                Attach::Joining {
                    target, previous, ..
                } => target == peer || previous.as_ref() == Some(peer),
            }
    }

    /// The root told us its next seq: past 0, the stream is live, and a parent that sends us
    /// nothing is starving us. Only the root's word counts (it is the stream's owner, and the
    /// link proves who sent it).
    fn note_root_seq(&mut self, from: P, next_seq: u64) {
        if from == self.root && next_seq > 0 {
            self.root_says_live = true;
            self.enter_session(session::session_of(next_seq));
        }
    }

    /// Whether `joiner`'s source network already has `max_children_per_network` of our
    /// children (unknown networks — loopback, the simulator — are not counted).
    fn network_full<V>(&self, shared: &Shared<P, V>, joiner: &P) -> bool {
        let Some(network) = shared.networks.get(joiner) else {
            return false;
        };
        let same = self
            .children
            .iter()
            .filter(|c| shared.networks.get(*c) == Some(network))
            .count();
        same >= shared.config.max_children_per_network
    }

    /// How long since a join last reached us (or the topic was opened by one).
    pub(super) fn idle_for(&self, now: u64) -> u64 {
        now.saturating_sub(self.last_join_at)
    }

    fn in_tree(&self) -> bool {
        self.is_root || self.parent().is_some()
    }

    fn avoided(&self, peer: &P, now: u64) -> bool {
        self.avoid
            .iter()
            .any(|(p, until)| p == peer && *until > now)
    }

    /// Starts (or restarts) joining, trying `candidates` in order (then the root).
    pub(super) fn start_join<V>(&mut self, cx: &mut Context<'_, P, V, B>, candidates: Vec<P>) {
        let previous = self.parent();
        self.join_started_at = cx.now;
        self.swap.handed_by = None;
        let mut queue: VecDeque<P> = candidates
            .into_iter()
            .filter(|c| *c != cx.shared.me && Some(*c) != previous && !self.avoided(c, cx.now))
            .collect();
        if !queue.contains(&self.root) {
            queue.push_back(self.root);
        }
        self.attach = Attach::Joining {
            target: self.root,
            asked_at: cx.now,
            queue,
            previous,
            probing: None,
        };
        self.try_next(cx);
    }

    /// Asks the next candidate; back to the root when none is left.
    fn try_next<V>(&mut self, cx: &mut Context<'_, P, V, B>) {
        let root = self.root;
        // The first join goes to the root, which has no RTT to offer a swap on: measure it
        // first (one round trip, once), so that a joiner near the publisher can be placed near
        // the top.
        let first_join = !self.has_attached;
        let probe_root_first = first_join
            && cx.shared.config.preempt_factor > 0.0
            && !self.root_probed
            && cx.shared.links.get(&root).is_none_or(|l| l.min_rtt_us == 0);
        let Attach::Joining {
            target,
            asked_at,
            queue,
            probing,
            ..
        } = &mut self.attach
        else {
            return;
        };
        *probing = None;
        let next = queue.pop_front().unwrap_or(root);
        *target = next;
        *asked_at = cx.now;
        cx.out.push(Action::Connect(next));
        if next == root && probe_root_first {
            self.root_probed = true;
            queue.push_front(root);
            *probing = Some(Probing {
                since: cx.now,
                until: cx.now + cx.shared.config.join_probe_wait_us,
                candidates: vec![Candidate {
                    peer: root,
                    delay_us: 0,
                }],
            });
            cx.probe(root);
            return;
        }
        // Only a first join offers its RTT for a swap: a node re-attaching after churn or
        // congestion brings a subtree, and swaps during repairs cascaded (deep trees, losses).
        let rtt_us = if first_join {
            cx.shared.links.get(&next).map_or(0, |l| l.min_rtt_us)
        } else {
            0
        };
        cx.send(
            next,
            Message::Join {
                topic: cx.topic,
                root,
                rtt_us,
            },
        );
    }

    /// A joiner asks us: admit it, or send it to our children ranked by measured cost. Room
    /// is made for a much nearer joiner only by our own measurement of it (the RTT its join
    /// claims is ignored: a Sybil claiming 1 µs preempted the root's farthest child).
    pub(super) fn on_join<V>(&mut self, cx: &mut Context<'_, P, V, B>, joiner: P) {
        let rtt_us = cx.shared.links.get(&joiner).map_or(0, |l| l.min_rtt_us);
        self.last_join_at = cx.now;
        if !self.admits(&joiner) || self.path.contains(&joiner) || joiner == self.root {
            // Not part of the tree (yet), or the joiner is our ancestor: a loop.
            let candidates = if self.admits(&joiner) {
                vec![]
            } else {
                vec![Candidate {
                    peer: self.root,
                    delay_us: 0,
                }]
            };
            cx.send(
                joiner,
                Message::Redirect {
                    topic: cx.topic,
                    candidates,
                    next_seq: self.forward_seq(),
                },
            );
            return;
        }
        let already = self.children.contains(&joiner);
        if !already && !self.in_tree() && !self.children.is_empty() {
            // Re-attaching: a joiner goes on to our children (they stay put while we move)
            // rather than into a subtree in flux. Taking joiners in here deepened trees under
            // congestion (10,000 nodes, 10 % throttled: p99 325 → 583 ms).
            self.redirect_to_children(cx, joiner);
            return;
        }
        if !already && self.network_full(cx.shared, &joiner) {
            // Enough children from the joiner's network: it goes on to our children, like
            // any joiner we cannot take.
            self.redirect_to_children(cx, joiner);
            return;
        }
        // Our old parent, joining us after a swap, is admitted beyond capacity: our old
        // children are about to go below it.
        let fits_rate = self.children.len() < self.capacity(cx.shared)
            || self.expects(&joiner, cx.shared, cx.now);
        let displaced = if already || fits_rate {
            None
        } else {
            self.farther_child(cx.shared, rtt_us, cx.now)
        };
        if !(already || fits_rate || displaced.is_some()) {
            self.redirect_to_children(cx, joiner);
            return;
        }
        if let Some(far) = displaced {
            self.remove_child(&far);
            self.last_preempt_at = cx.now;
        }
        if !already {
            self.children.push(joiner);
        }
        let mut path = self.path.clone();
        path.push(cx.shared.me);
        let index = self.children.iter().position(|c| *c == joiner).unwrap_or(0);
        let delay_us = self.send_delay_us(cx.shared, index);
        cx.send(
            joiner,
            Message::Accept {
                topic: cx.topic,
                path,
                next_seq: self.forward_seq(),
                rate: self.rate.bytes_per_s as u64,
                delay_us,
                adoption: false,
            },
        );
        if let Some(far) = displaced {
            // The far child moves under the joiner, keeping its subtree. The joiner's accept
            // went first, so it is in the tree by the time the child asks it.
            let candidates = vec![Candidate {
                peer: joiner,
                delay_us: delay_us.saturating_add(rtt_us / 2),
            }];
            cx.send(
                far,
                Message::Redirect {
                    topic: cx.topic,
                    candidates,
                    next_seq: self.forward_seq(),
                },
            );
        }
        self.pass_children(cx, joiner, delay_us);
    }

    /// A full node sends a joiner on to its children.
    fn redirect_to_children<V>(&mut self, cx: &mut Context<'_, P, V, B>, joiner: P) {
        // Rank by measured cost, with a little seeded jitter so that joiners arriving together
        // spread over equally good children instead of all trying the same one.
        let mut ranked: Vec<(u64, P)> = self
            .children
            .iter()
            .filter(|c| **c != joiner)
            .map(|c| {
                (
                    cx.shared.cost(c).saturating_add(cx.shared.rng.below(2_000)),
                    *c,
                )
            })
            .collect();
        ranked.sort();
        let mut ranked: Vec<P> = ranked.into_iter().map(|(_, c)| c).collect();
        // Rotate through the children redirect by redirect, so that joiners spread over all
        // subtrees (a balanced, shallow tree) instead of all descending the cheapest branch;
        // the joiner then picks the nearest of the first `join_probes` by measurement.
        if !ranked.is_empty() {
            let turn = self.redirects % ranked.len();
            ranked.rotate_left(turn);
            self.redirects += 1;
        }
        let candidates = self.as_candidates(cx.shared, &ranked);
        cx.send(
            joiner,
            Message::Redirect {
                topic: cx.topic,
                candidates,
                next_seq: self.forward_seq(),
            },
        );
    }

    /// Children this node can feed: `max_children`, and no more than 85 % of the upload capacity
    /// at the measured stream rate. Until the rate is known, at most 4.
    fn capacity<V>(&self, shared: &Shared<P, V>) -> usize {
        let c = &shared.config;
        if self.rate.bytes_per_s <= 0.0 {
            return c.max_children.min(4);
        }
        let children_by = |bytes_per_s: f64| (0.85 * bytes_per_s / self.rate.bytes_per_s) as usize;
        // The configured budget admits at least one child: a stream larger than the budget
        // then forms chains and still reaches everyone (joiners would otherwise bounce between
        // nodes that all refuse). A *measured* shortfall — a throttled or congested uplink —
        // may go to zero: its children are better off elsewhere.
        let budget = children_by(c.upload_bytes_per_s as f64).max(1);
        let measured = shared.measured_upload().map_or(usize::MAX, children_by);
        // The root has no elsewhere to send its children: it always keeps one.
        let floor = usize::from(self.is_root);
        c.max_children
            .min(budget)
            .min(measured)
            .max(floor.min(c.max_children))
    }

    /// Sheds the newest child when the stream outgrew the upload capacity: it is redirected to
    /// its siblings, best first.
    fn shed<V>(&mut self, cx: &mut Context<'_, P, V, B>) {
        let capacity = self.capacity(cx.shared) + self.swap_allowance(cx.shared, cx.now);
        if self.children.len() <= capacity {
            return;
        }
        let mut shed = Vec::new();
        while self.children.len() > capacity {
            let Some(child) = self.children.pop() else {
                break;
            };
            self.reports.remove(&child);
            let mut siblings = self.children.clone();
            siblings.sort_by_key(|c| (cx.shared.cost(c), *c));
            let candidates = self.as_candidates(cx.shared, &siblings);
            cx.send(
                child,
                Message::Redirect {
                    topic: cx.topic,
                    candidates,
                    next_seq: self.forward_seq(),
                },
            );
            shed.push(child);
        }
        // A node that can relay to no one gives its slot back: near the root it would make the
        // parent redirect every joiner to a dead end. It rejoins lower, as a leaf.
        if capacity == 0
            && let Some(parent) = self.parent()
        {
            cx.send(parent, Message::Leave { topic: cx.topic });
            self.start_join(cx, shed);
        }
    }

    /// The next seq this node will forward (what a new child starts at).
    fn forward_seq(&self) -> u64 {
        if self.is_root {
            self.seq.next
        } else {
            self.cache
                .last_seq()
                .map_or(self.seq.next, |s| s.saturating_add(1))
                .max(self.seq.next)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_accept<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        from: P,
        path: Vec<P>,
        next_seq: u64,
        rate: u64,
        delay_us: u64,
        adoption: bool,
    ) {
        // An accept is taken only from the peer our state expects — the node we asked, our
        // parent (a path update), our grandparent (an adoption, checked below) — and only with
        // a path that runs from the root to its sender. Anything else changes nothing, not
        // even the rate (one `Accept{rate: MAX}` from anyone once made a root shed its
        // children), and not the parent: taking an accept from any neighbour let a stranger
        // become the parent and send our real one a `Leave`.
        let expected = match &self.attach {
            Attach::Joining { target, .. } => *target == from,
            Attach::Attached { parent } => *parent == from || adoption,
        };
        let well_formed = path.first() == Some(&self.root) && path.last() == Some(&from);
        if self.is_root || !expected || !well_formed {
            cx.shared.stats.unexpected += 1;
            let from_previous =
                matches!(&self.attach, Attach::Joining { previous, .. } if *previous == Some(from));
            // (A path update from the parent we are leaving is stale, but that parent still
            // sends to us until a new one accepts us: it gets no `Leave`.)
            if !from_previous {
                cx.send(from, Message::Leave { topic: cx.topic });
            }
            return;
        }
        if path.contains(&cx.shared.me) {
            cx.send(from, Message::Leave { topic: cx.topic });
            match &self.attach {
                Attach::Joining { target, .. } if *target == from => self.try_next(cx),
                // Our parent's path runs through us: a loop (re-attaching subtrees took each
                // other in). Nothing in it gets frames; ask the root.
                Attach::Attached { parent } if *parent == from && self.has_attached => {
                    cx.shared.stats.lost_parent += 1;
                    self.start_join(cx, Vec::new());
                }
                _ => {}
            }
            return;
        }
        let previous = match &self.attach {
            Attach::Joining { previous, .. } => *previous,
            Attach::Attached { parent }
                if adoption && self.is_adoption(cx.shared, &from, &path, cx.now) =>
            {
                // Our parent handed us its place (a swap): take it. It joins below us, and
                // our children go below it once it has.
                let old = *parent;
                self.took_place_of(cx, old, cx.shared.me);
                Some(old)
            }
            Attach::Attached { parent } => {
                if *parent == from && self.has_attached {
                    // A path update after our parent moved: pass it down.
                    self.rate.adopt(rate);
                    self.note_root_seq(from, next_seq);
                    self.path = path;
                    self.parent_delay_us = delay_us;
                    self.send_path_updates(cx);
                } else {
                    // An adoption we cannot take now (or from someone else): our parent gets
                    // its slot back when we leave the adopter.
                    cx.send(from, Message::Leave { topic: cx.topic });
                }
                return;
            }
        };
        self.rate.adopt(rate);
        self.note_root_seq(from, next_seq);
        if let Some(old) = previous.filter(|p| *p != from) {
            cx.send(old, Message::Leave { topic: cx.topic });
        }
        if previous.is_some() {
            cx.shared.stats.reattaches += 1;
        }
        self.attach = Attach::Attached { parent: from };
        self.has_attached = true;
        self.reported = None;
        self.path = path;
        self.parent_delay_us = delay_us;
        self.last_attach_at = cx.now;
        self.congested_since = None;
        if !self.seq.started {
            self.seq.next = next_seq;
        } else if next_seq > self.seq.next
            && session::session_of(next_seq) == session::session_of(self.seq.next)
        {
            // The new parent is ahead: ask it for the gap right away.
            self.seq.gap_since.get_or_insert(cx.now);
            self.seq.last_repair_at = cx.now;
            cx.send(
                from,
                Message::Repair {
                    topic: cx.topic,
                    from: self.seq.next,
                    to: next_seq - 1,
                },
            );
        }
        self.seq.last_frame_at = cx.now;
        cx.out.push(Action::Attached {
            topic: cx.topic,
            parent: from,
            depth: self.path.len(),
            took_us: cx.now.saturating_sub(self.join_started_at),
            reattach: previous.is_some(),
        });
        self.send_path_updates(cx);
    }

    fn send_path_updates<V>(&self, cx: &mut Context<'_, P, V, B>) {
        if self.children.is_empty() {
            return;
        }
        let mut path = self.path.clone();
        path.push(cx.shared.me);
        let next_seq = self.forward_seq();
        let rate = self.rate.bytes_per_s as u64;
        for (index, c) in self.children.iter().enumerate() {
            cx.send(
                *c,
                Message::Accept {
                    topic: cx.topic,
                    path: path.clone(),
                    next_seq,
                    rate,
                    delay_us: self.send_delay_us(cx.shared, index),
                    adoption: false,
                },
            );
        }
    }

    pub(super) fn on_redirect<V>(
        &mut self,
        cx: &mut Context<'_, P, V, B>,
        from: P,
        candidates: Vec<Candidate<P>>,
        next_seq: u64,
    ) {
        self.note_root_seq(from, next_seq);
        let me = cx.shared.me;
        let avoid = &self.avoid;
        let usable = |c: &Candidate<P>| {
            c.peer != me && !avoid.iter().any(|(p, u)| *p == c.peer && *u > cx.now)
        };
        match &mut self.attach {
            Attach::Joining {
                target,
                probing: probing @ None,
                asked_at,
                ..
            } if *target == from => {
                let picks: Vec<Candidate<P>> = candidates
                    .iter()
                    .filter(|c| usable(c))
                    .take(cx.shared.config.join_probes)
                    .copied()
                    .collect();
                // A re-attaching node skips the measuring: its subtree is losing frames while
                // it looks, and repair only reaches back as far as the caches do (over QUIC,
                // probing on re-attach cost 1–3 % of the frames under throttling).
                if picks.len() >= 2 && !self.has_attached {
                    // Latency-aware placement: measure before choosing where to descend.
                    for c in &picks {
                        cx.shared.note_probe_only(c.peer, cx.now);
                        cx.out.push(Action::Connect(c.peer));
                        cx.probe(c.peer);
                    }
                    *asked_at = cx.now;
                    *probing = Some(Probing {
                        since: cx.now,
                        until: cx.now + cx.shared.config.join_probe_wait_us,
                        candidates: picks,
                    });
                    return;
                }
                let peers: Vec<P> = candidates
                    .iter()
                    .filter(|c| usable(c))
                    .map(|c| c.peer)
                    .collect();
                self.queue_first(&peers);
                self.try_next(cx);
            }
            Attach::Attached { parent } if *parent == from && self.has_attached => {
                // Our parent asks us to move (it is congested towards us).
                cx.shared.stats.moved_by_parent += 1;
                self.avoid.push((from, cx.now + cx.shared.config.avoid_us));
                let peers = candidates.iter().map(|c| c.peer).collect();
                self.start_join(cx, peers);
            }
            _ => {}
        }
    }

    pub(super) fn on_link_down<V>(&mut self, cx: &mut Context<'_, P, V, B>, peer: P) {
        self.remove_child(&peer);
        let lost_parent = self.parent() == Some(peer)
            || matches!(&self.attach, Attach::Joining { target, .. } if *target == peer);
        if lost_parent && !self.is_root {
            cx.shared.stats.lost_parent += u64::from(self.parent() == Some(peer));
            let candidates = self.fallbacks(peer);
            self.avoid.push((peer, cx.now + cx.shared.config.avoid_us));
            self.start_join(cx, candidates);
        }
    }

    /// Whether the RTT inflation towards `parent` shows on our other links too (children, the
    /// root): then the delay is ours — a busy CPU, a loaded access link — and any other parent
    /// would look as bad. Re-attaching would only add joins to an overloaded swarm: in one
    /// process on two cores, 1,000 loopback peers all saw their parents "congest" and kept
    /// re-joining, and most never stayed attached.
    fn delay_is_ours<V>(&self, shared: &Shared<P, V>, parent: &P, now: u64) -> bool {
        let factor = shared.config.rtt_congestion_factor;
        let (mut measured, mut inflated) = (0usize, 0usize);
        let root = (self.root != *parent).then_some(&self.root);
        for peer in self.children.iter().chain(root) {
            if let Some(l) = shared.links.get(peer).filter(|l| l.min_rtt_us > 0) {
                measured += 1;
                inflated += usize::from(l.inflated(factor, now, 0));
            }
        }
        measured > 0 && 2 * inflated >= measured
    }

    /// Where to re-attach: ancestors nearest first (local repair), then the root.
    fn fallbacks(&self, leaving: P) -> Vec<P> {
        self.path
            .iter()
            .rev()
            .copied()
            .filter(|p| *p != leaving)
            .collect()
    }

    pub(super) fn on_tick<V>(&mut self, cx: &mut Context<'_, P, V, B>, probe: bool) {
        self.avoid.retain(|(_, until)| *until > cx.now);
        self.shed(cx);
        if probe {
            for c in &self.children {
                cx.probe(*c);
            }
        }
        if self.is_root {
            return;
        }
        match self.attach.clone() {
            Attach::Joining {
                asked_at, probing, ..
            } => {
                if probing.is_some_and(|p| cx.now >= p.until) {
                    self.finish_probing(cx);
                } else if cx.now.saturating_sub(asked_at) > cx.shared.config.join_timeout_us {
                    self.try_next(cx);
                }
            }
            Attach::Attached { parent } => {
                if !self.has_attached {
                    return;
                }
                if probe {
                    cx.shared
                        .links
                        .entry(parent)
                        .or_default()
                        .probe_outstanding_since
                        .get_or_insert(cx.now);
                    cx.probe(parent);
                }
                self.report(cx, parent, probe);
                self.check_gap(cx, parent);
                self.check_congestion(cx, parent);
                self.consider_swap(cx, parent);
            }
        }
    }

    /// Re-attach when the parent congests (RTT inflation, or silence while the stream flows),
    /// but only after the condition has held for `congestion_hold_us` and not within
    /// `reattach_cooldown_us` of the last attach: hysteresis, so nodes do not flap.
    fn check_congestion<V>(&mut self, cx: &mut Context<'_, P, V, B>, parent: P) {
        let c = &cx.shared.config;
        let inflated = cx.shared
            .links
            .get(&parent)
            .is_some_and(|l| l.inflated(c.rtt_congestion_factor, cx.now, cx.shared.own_lag_us()))
            // Our own full uplink delays our probes too: then the parent is not to blame.
            && cx.shared.own_backlog() < 256 * 1024
            && !self.delay_is_ours(cx.shared, &parent, cx.now);
        // Silence counts once frames have flowed to us — or once the root has told us the
        // stream is live: a parent that accepts and then sends nothing would otherwise starve
        // a node that never got its first frame, for ever.
        let expecting = self.seq.started || self.root_says_live;
        let silent = expecting
            && cx.now.saturating_sub(self.seq.last_frame_at)
                > c.parent_silence_us.max(8 * self.rate.frame_interval_us());
        if !(inflated || silent) {
            self.congested_since = None;
            return;
        }
        let since = *self.congested_since.get_or_insert(cx.now);
        if cx.now.saturating_sub(since) < c.congestion_hold_us
            || cx.now.saturating_sub(self.last_attach_at) < c.reattach_cooldown_us
        {
            return;
        }
        self.avoid.push((parent, cx.now + c.avoid_us));
        let candidates = self.fallbacks(parent);
        self.congested_since = None;
        cx.shared.stats.left_congested += 1;
        self.start_join(cx, candidates);
    }
}
