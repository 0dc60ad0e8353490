//! The data plane: one tree per topic, rooted at the publisher.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;

use super::OverlayConfig;
use super::core::{Action, Shared};
use super::message::{Candidate, Message, Payload, Topic, Verifier};

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
    pub(super) subscribed: bool,
    attach: Attach<P>,
    /// Root … parent.
    path: Vec<P>,
    /// The parent's estimated delay from the root (µs), as it last told us.
    parent_delay_us: u64,
    pub(super) children: Vec<P>,
    /// What each child last reported of its subtree (nodes below it).
    subtrees: BTreeMap<P, u32>,
    /// What we last reported to our parent.
    reported: u32,
    /// When we last moved a child below a nearer joiner.
    last_preempt_at: u64,
    /// Whether the RTT to the root was measured before the first join.
    root_probed: bool,
    /// Root: next seq to publish. Member: next seq to deliver.
    next_seq: u64,
    /// Out-of-order frames waiting for a gap to fill.
    pending: BTreeMap<u64, B>,
    gap_since: Option<u64>,
    last_repair_at: u64,
    /// Recent frames, for children's repairs.
    cache: VecDeque<(u64, B)>,
    /// Wire bytes held in `cache`.
    cache_bytes: usize,
    started: bool,
    last_frame_at: u64,
    /// Smoothed stream rate, bytes/s (for admission).
    rate: f64,
    rate_window_start: u64,
    rate_window_bytes: u64,
    /// Smoothed frame size (bytes): with the upload rate, how long each child waits its turn.
    frame_bytes: f64,
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
    pub(super) fn new(root: P, is_root: bool, _config: &OverlayConfig) -> Self {
        TopicState {
            root,
            is_root,
            subscribed: false,
            attach: Attach::Attached { parent: root },
            path: Vec::new(),
            parent_delay_us: 0,
            children: Vec::new(),
            subtrees: BTreeMap::new(),
            reported: 0,
            last_preempt_at: 0,
            root_probed: false,
            next_seq: 0,
            pending: BTreeMap::new(),
            gap_since: None,
            last_repair_at: 0,
            cache: VecDeque::new(),
            cache_bytes: 0,
            started: false,
            last_frame_at: 0,
            rate: 0.0,
            rate_window_start: 0,
            rate_window_bytes: 0,
            frame_bytes: 0.0,
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

    /// Estimated one-way delay from the root to this node (µs): when the parent sends a frame
    /// our way (it says so in its accept), plus half the baseline RTT to it. The baseline (min
    /// RTT), not the smoothed RTT: a probe that waited behind a frame would make every busy
    /// relay look far away and every idle leaf near, and joiners would pile into chains.
    pub(super) fn delay_us<V>(&self, shared: &Shared<P, V>) -> u64 {
        match self.parent() {
            None => 0,
            Some(parent) => self.parent_delay_us + half_base_rtt(shared, &parent),
        }
    }

    /// When a frame leaves this node towards its `index`-th child, after the root published
    /// it (µs): our delay plus the turns of the children before it on our uplink.
    fn send_delay_us<V>(&self, shared: &Shared<P, V>, index: usize) -> u64 {
        let upload = shared
            .measured_upload()
            .unwrap_or(shared.config.upload_bytes_per_s as f64)
            .max(1.0);
        let turn_us = self.frame_bytes * 1e6 / upload;
        self.delay_us(shared) + ((index + 1) as f64 * turn_us) as u64
    }

    /// `peers` (children of ours) as redirect candidates, each with the delay a joiner placed
    /// in its subtree can expect: when the frame reaches the child, plus one hop per level the
    /// joiner will likely have to descend below it. Without that last term, a child near the
    /// root looks best to every joiner (passing through it costs almost nothing in a metric
    /// space) and its branch grows into a chain.
    fn as_candidates<V>(&self, shared: &Shared<P, V>, peers: &[P]) -> Vec<Candidate<P>> {
        // Siblings are priced at the average send turn: their own places in our send order
        // would bias every joiner towards the first child, and then towards its first…
        let reach =
            |p: &P| self.send_delay_us(shared, self.children.len() / 2) + half_base_rtt(shared, p);
        let hop_us = if self.children.is_empty() {
            0
        } else {
            let arrive: u64 =
                self.children.iter().map(reach).sum::<u64>() / self.children.len() as u64;
            arrive.saturating_sub(self.delay_us(shared))
        };
        let fanout = (self.capacity(shared).max(2)) as f64;
        peers
            .iter()
            .map(|p| {
                let below = f64::from(self.subtrees.get(p).copied().unwrap_or(0));
                let levels = (below + 1.0).ln() / fanout.ln();
                Candidate {
                    peer: *p,
                    delay_us: reach(p) + (levels * hop_us as f64) as u64,
                }
            })
            .collect()
    }

    /// The child to move below a joiner measured at `rtt_us` from us, if the joiner is much
    /// nearer than our farthest child (by baseline RTT) and we have not swapped lately.
    fn farther_child<V>(&self, shared: &Shared<P, V>, rtt_us: u64, now: u64) -> Option<P> {
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
            .filter(|p| self.subtrees.get(p).copied().unwrap_or(0) <= small)
            .filter_map(|p| {
                let rtt = shared.links.get(p)?.min_rtt_us;
                (rtt > 0).then_some((rtt, *p))
            })
            .max()?;
        ((rtt_us as f64) < c.preempt_factor * far_rtt as f64).then_some(far)
    }

    /// Nodes below this one, as the children last reported.
    fn descendants(&self) -> u32 {
        self.children
            .iter()
            .map(|c| 1 + self.subtrees.get(c).copied().unwrap_or(0))
            .fold(0u32, u32::saturating_add)
    }

    /// A child's report of its subtree (ignored from non-children).
    pub(super) fn on_report(&mut self, child: P, descendants: u32) {
        if self.children.contains(&child) {
            self.subtrees.insert(child, descendants);
        }
    }

    pub(super) fn remove_child(&mut self, child: &P) {
        self.children.retain(|c| c != child);
        self.subtrees.remove(child);
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
    pub(super) fn start_join<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        now: u64,
        candidates: Vec<P>,
        out: &mut Vec<Action<P, B>>,
    ) {
        let previous = self.parent();
        self.join_started_at = now;
        let mut queue: VecDeque<P> = candidates
            .into_iter()
            .filter(|c| *c != shared.me && Some(*c) != previous && !self.avoided(c, now))
            .collect();
        if !queue.contains(&self.root) {
            queue.push_back(self.root);
        }
        self.attach = Attach::Joining {
            target: self.root,
            asked_at: now,
            queue,
            previous,
            probing: None,
        };
        self.try_next(shared, topic, now, out);
    }

    /// Asks the next candidate; back to the root when none is left.
    fn try_next<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let root = self.root;
        let unmeasured = |p: &P| shared.links.get(p).is_none_or(|l| l.min_rtt_us == 0);
        // The first join goes to the root, which has no RTT to offer a swap on: measure it
        // first (one round trip, once), so that a joiner near the publisher can be placed near
        // the top.
        let first_join = !self.has_attached;
        let probe_root_first = shared.config.preempt_factor > 0.0
            && !self.root_probed
            && !self.has_attached
            && unmeasured(&root);
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
        *asked_at = now;
        out.push(Action::Connect(next));
        if next == root && probe_root_first {
            self.root_probed = true;
            queue.push_front(root);
            *probing = Some(Probing {
                since: now,
                until: now + shared.config.join_probe_wait_us,
                candidates: vec![Candidate {
                    peer: root,
                    delay_us: 0,
                }],
            });
            out.push(Action::Send {
                to: root,
                message: Message::Probe { sent_at: now },
            });
            return;
        }
        // Only a first join offers its RTT for a swap: a node re-attaching after churn or
        // congestion brings a subtree, and swaps during repairs cascaded (deep trees, losses).
        let rtt_us = if first_join {
            shared.links.get(&next).map_or(0, |l| l.min_rtt_us)
        } else {
            0
        };
        out.push(Action::Send {
            to: next,
            message: Message::Join {
                topic,
                root,
                rtt_us,
            },
        });
    }

    /// A joiner asks us: admit it, or send it to our children ranked by measured cost.
    pub(super) fn on_join<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        joiner: P,
        rtt_us: u64,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        if !self.in_tree() || self.path.contains(&joiner) || joiner == self.root {
            // Not part of the tree (yet), or the joiner is our ancestor: a loop.
            let candidates = if self.in_tree() {
                vec![]
            } else {
                vec![Candidate {
                    peer: self.root,
                    delay_us: 0,
                }]
            };
            out.push(Action::Send {
                to: joiner,
                message: Message::Redirect { topic, candidates },
            });
            return;
        }
        let already = self.children.contains(&joiner);
        let fits_rate = self.children.len() < self.capacity(shared);
        let displaced = if already || fits_rate {
            None
        } else {
            self.farther_child(shared, rtt_us, now)
        };
        if let Some(far) = displaced {
            // Make room: the far child moves under the joiner (it keeps its subtree).
            self.remove_child(&far);
            self.last_preempt_at = now;
            let candidates = vec![Candidate {
                peer: joiner,
                delay_us: self.send_delay_us(shared, self.children.len()) + rtt_us / 2,
            }];
            out.push(Action::Send {
                to: far,
                message: Message::Redirect { topic, candidates },
            });
        }
        if already || fits_rate || displaced.is_some() {
            if !already {
                self.children.push(joiner);
            }
            let mut path = self.path.clone();
            path.push(shared.me);
            let next_seq = self.forward_seq();
            let rate = self.rate as u64;
            let index = self.children.iter().position(|c| *c == joiner).unwrap_or(0);
            let delay_us = self.send_delay_us(shared, index);
            out.push(Action::Send {
                to: joiner,
                message: Message::Accept {
                    topic,
                    path,
                    next_seq,
                    rate,
                    delay_us,
                },
            });
            return;
        }
        // Rank by measured cost, with a little seeded jitter so that joiners arriving together
        // spread over equally good children instead of all trying the same one.
        let mut ranked: Vec<(u64, P)> = self
            .children
            .iter()
            .filter(|c| **c != joiner)
            .map(|c| (shared.cost(c).saturating_add(shared.rng.below(2_000)), *c))
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
        let candidates = self.as_candidates(shared, &ranked);
        out.push(Action::Send {
            to: joiner,
            message: Message::Redirect { topic, candidates },
        });
    }

    /// Children this node can feed: `max_children`, and no more than 85 % of the upload capacity
    /// at the measured stream rate. Until the rate is known, at most 4.
    fn capacity<V>(&self, shared: &Shared<P, V>) -> usize {
        let c = &shared.config;
        if self.rate <= 0.0 {
            return c.max_children.min(4);
        }
        let children_by = |bytes_per_s: f64| (0.85 * bytes_per_s / self.rate) as usize;
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
    fn shed<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let capacity = self.capacity(shared);
        if self.children.len() <= capacity {
            return;
        }
        let mut shed = Vec::new();
        while self.children.len() > capacity {
            let Some(child) = self.children.pop() else {
                break;
            };
            self.subtrees.remove(&child);
            let mut siblings = self.children.clone();
            siblings.sort_by_key(|c| (shared.cost(c), *c));
            let candidates = self.as_candidates(shared, &siblings);
            out.push(Action::Send {
                to: child,
                message: Message::Redirect { topic, candidates },
            });
            shed.push(child);
        }
        // A node that can relay to no one gives its slot back: near the root it would make the
        // parent redirect every joiner to a dead end. It rejoins lower, as a leaf.
        if capacity == 0
            && let Some(parent) = self.parent()
        {
            out.push(Action::Send {
                to: parent,
                message: Message::Leave { topic },
            });
            self.start_join(shared, topic, now, shed, out);
        }
    }

    /// The next seq this node will forward (what a new child starts at).
    fn forward_seq(&self) -> u64 {
        if self.is_root {
            self.next_seq
        } else {
            self.cache
                .back()
                .map_or(self.next_seq, |(s, _)| s + 1)
                .max(self.next_seq)
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_accept<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        from: P,
        path: Vec<P>,
        next_seq: u64,
        rate: u64,
        delay_us: u64,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        if self.rate == 0.0 {
            self.rate = rate as f64;
        }
        if self.is_root || path.contains(&shared.me) {
            out.push(Action::Send {
                to: from,
                message: Message::Leave { topic },
            });
            if let Attach::Joining { target, .. } = &self.attach
                && *target == from
            {
                self.try_next(shared, topic, now, out);
            }
            return;
        }
        let previous = match &self.attach {
            Attach::Joining { previous, .. } => *previous,
            Attach::Attached { parent } => {
                if *parent == from && self.has_attached {
                    // A path update after our parent moved: pass it down.
                    self.path = path;
                    self.parent_delay_us = delay_us;
                    self.send_path_updates(shared, topic, out);
                } else {
                    // A late accept from a candidate we gave up on.
                    out.push(Action::Send {
                        to: from,
                        message: Message::Leave { topic },
                    });
                }
                return;
            }
        };
        if let Some(old) = previous.filter(|p| *p != from) {
            out.push(Action::Send {
                to: old,
                message: Message::Leave { topic },
            });
        }
        if previous.is_some() {
            shared.stats.reattaches += 1;
        }
        self.attach = Attach::Attached { parent: from };
        self.has_attached = true;
        self.path = path;
        self.parent_delay_us = delay_us;
        self.last_attach_at = now;
        self.congested_since = None;
        if !self.started {
            self.next_seq = next_seq;
        } else if next_seq > self.next_seq {
            // The new parent is ahead: ask it for the gap right away.
            self.gap_since.get_or_insert(now);
            self.last_repair_at = now;
            out.push(Action::Send {
                to: from,
                message: Message::Repair {
                    topic,
                    from: self.next_seq,
                    to: next_seq - 1,
                },
            });
        }
        self.last_frame_at = now;
        out.push(Action::Attached {
            topic,
            parent: from,
            depth: self.path.len(),
            took_us: now.saturating_sub(self.join_started_at),
            reattach: previous.is_some(),
        });
        self.send_path_updates(shared, topic, out);
    }

    fn send_path_updates<V>(
        &self,
        shared: &Shared<P, V>,
        topic: Topic,
        out: &mut Vec<Action<P, B>>,
    ) {
        if self.children.is_empty() {
            return;
        }
        let mut path = self.path.clone();
        path.push(shared.me);
        let next_seq = self.forward_seq();
        let rate = self.rate as u64;
        for (index, c) in self.children.iter().enumerate() {
            out.push(Action::Send {
                to: *c,
                message: Message::Accept {
                    topic,
                    path: path.clone(),
                    next_seq,
                    rate,
                    delay_us: self.send_delay_us(shared, index),
                },
            });
        }
    }

    pub(super) fn on_redirect<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        from: P,
        candidates: Vec<Candidate<P>>,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let me = shared.me;
        let avoid = &self.avoid;
        let usable =
            |c: &Candidate<P>| c.peer != me && !avoid.iter().any(|(p, u)| *p == c.peer && *u > now);
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
                    .take(shared.config.join_probes)
                    .copied()
                    .collect();
                if picks.len() >= 2 {
                    // Latency-aware placement: measure before choosing where to descend.
                    for c in &picks {
                        out.push(Action::Connect(c.peer));
                        out.push(Action::Send {
                            to: c.peer,
                            message: Message::Probe { sent_at: now },
                        });
                    }
                    *asked_at = now;
                    *probing = Some(Probing {
                        since: now,
                        until: now + shared.config.join_probe_wait_us,
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
                self.try_next(shared, topic, now, out);
            }
            Attach::Attached { parent } if *parent == from && self.has_attached => {
                // Our parent asks us to move (it is congested towards us).
                self.avoid.push((from, now + shared.config.avoid_us));
                let peers = candidates.iter().map(|c| c.peer).collect();
                self.start_join(shared, topic, now, peers, out);
            }
            _ => {}
        }
    }

    /// Puts `peers` at the front of the join queue, in the given order.
    fn queue_first(&mut self, peers: &[P]) {
        if let Attach::Joining { queue, .. } = &mut self.attach {
            for c in peers.iter().rev() {
                queue.retain(|q| q != c);
                queue.push_front(*c);
            }
        }
    }

    /// A probe answer arrived from `from`: if it was the last candidate outstanding, choose.
    pub(super) fn on_probe_answer<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        from: P,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let Attach::Joining {
            probing: Some(probing),
            ..
        } = &self.attach
        else {
            return;
        };
        if !probing.candidates.iter().any(|c| c.peer == from) {
            return;
        }
        let answered = |c: &Candidate<P>| {
            shared
                .links
                .get(&c.peer)
                .is_some_and(|l| l.srtt_us > 0 && l.measured_at >= probing.since)
        };
        if probing.candidates.iter().all(answered) {
            self.finish_probing(shared, topic, now, out);
        }
    }

    /// Ranks the probed candidates by how soon each would deliver to us — its delay from the
    /// root plus half our RTT to it — and asks the best first. Unanswered ones go last.
    fn finish_probing<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
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
                let score = match shared.links.get(&c.peer) {
                    // The probe's own sample: a candidate whose uplink is backed up right now
                    // (throttled, overloaded) answers late and ranks accordingly.
                    Some(l) if l.srtt_us > 0 && l.measured_at >= probing.since => {
                        c.delay_us + l.last_rtt_us / 2
                    }
                    _ => u64::MAX,
                };
                (score, i, c.peer)
            })
            .collect();
        ranked.sort();
        let peers: Vec<P> = ranked.into_iter().map(|(_, _, p)| p).collect();
        self.queue_first(&peers);
        self.try_next(shared, topic, now, out);
    }

    /// Root: sequence, cache and send a new frame.
    pub(super) fn publish<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        payload: B,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.note_rate(payload.wire_len(), now);
        self.remember(shared, seq, payload.clone());
        self.forward(shared, topic, None, seq, &payload, out);
    }

    fn note_rate(&mut self, bytes: usize, now: u64) {
        if self.rate_window_start == 0 {
            // The first frame opens the first window (no rate from before the stream began).
            self.rate_window_start = now.max(1);
        }
        self.rate_window_bytes += bytes as u64;
        self.frame_bytes = if self.frame_bytes == 0.0 {
            bytes as f64
        } else {
            0.9 * self.frame_bytes + 0.1 * bytes as f64
        };
        let span = now.saturating_sub(self.rate_window_start);
        if span >= 500_000 {
            let sample = self.rate_window_bytes as f64 * 1e6 / span as f64;
            self.rate = if self.rate == 0.0 {
                sample
            } else {
                0.7 * self.rate + 0.3 * sample
            };
            self.rate_window_start = now;
            self.rate_window_bytes = 0;
        }
    }

    fn remember<V>(&mut self, shared: &Shared<P, V>, seq: u64, payload: B) {
        if self.cache.back().is_some_and(|(s, _)| *s >= seq) {
            // Out of order (a repair): keep the cache sorted by inserting in place.
            let at = self.cache.partition_point(|(s, _)| *s < seq);
            if self.cache.get(at).is_some_and(|(s, _)| *s == seq) {
                return;
            }
            self.cache_bytes += payload.wire_len();
            self.cache.insert(at, (seq, payload));
        } else {
            self.cache_bytes += payload.wire_len();
            self.cache.push_back((seq, payload));
        }
        let c = &shared.config;
        while self.cache.len() > c.repair_cache
            || self.cache_bytes > c.repair_cache_bytes && self.cache.len() > 1
        {
            if let Some((_, old)) = self.cache.pop_front() {
                self.cache_bytes -= old.wire_len();
            }
        }
    }

    fn forward<V>(
        &self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        except: Option<P>,
        seq: u64,
        payload: &B,
        out: &mut Vec<Action<P, B>>,
    ) {
        // The longest queue over all links bounds every child's: when even that is short, no
        // per-child lookup is needed (a relay's common case, and this runs for every frame).
        let any_full = shared.own_backlog() > shared.config.max_child_queue_bytes;
        for c in &self.children {
            if Some(*c) == except {
                continue;
            }
            let queued = if any_full {
                shared.links.get(c).map_or(0, |l| l.queued_bytes)
            } else {
                0
            };
            if queued > shared.config.max_child_queue_bytes {
                // Newer wins: a child whose link is full loses this frame, not later ones.
                shared.stats.dropped_congested += 1;
                continue;
            }
            shared.stats.frames_relayed += 1;
            out.push(Action::Send {
                to: *c,
                message: Message::Frame {
                    topic,
                    seq,
                    payload: payload.clone(),
                },
            });
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_frame<V: Verifier<P, B>>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        from: P,
        seq: u64,
        payload: B,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        if self.is_root {
            return;
        }
        if seq < self.next_seq && self.started || self.pending.contains_key(&seq) {
            shared.stats.duplicates += 1;
            return;
        }
        if !shared
            .verifier
            .verify_frame(&topic, &self.root, seq, &payload)
        {
            shared.stats.invalid += 1;
            return;
        }
        if !self.started {
            self.started = true;
            if seq < self.next_seq || self.next_seq == 0 {
                self.next_seq = seq;
            }
        }
        if Some(from) == self.parent() {
            self.last_frame_at = now;
        }
        self.note_rate(payload.wire_len(), now);
        self.remember(shared, seq, payload.clone());
        self.forward(shared, topic, Some(from), seq, &payload, out);
        if seq == self.next_seq {
            self.deliver(shared, topic, seq, payload, out);
            self.next_seq += 1;
            self.drain(shared, topic, out);
        } else if seq > self.next_seq {
            self.pending.insert(seq, payload);
            self.gap_since.get_or_insert(now);
            if seq - self.next_seq > shared.config.reorder_window {
                self.skip_to_first_pending(shared, topic, out);
            }
        }
        if self.pending.is_empty() {
            self.gap_since = None;
        }
    }

    fn deliver<V>(
        &self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        seq: u64,
        payload: B,
        out: &mut Vec<Action<P, B>>,
    ) {
        if self.subscribed {
            shared.stats.frames_delivered += 1;
            out.push(Action::Deliver {
                topic,
                seq,
                payload,
            });
        }
    }

    fn drain<V>(&mut self, shared: &mut Shared<P, V>, topic: Topic, out: &mut Vec<Action<P, B>>) {
        while let Some(payload) = self.pending.remove(&self.next_seq) {
            let seq = self.next_seq;
            self.deliver(shared, topic, seq, payload, out);
            self.next_seq += 1;
        }
        if self.pending.is_empty() {
            self.gap_since = None;
        }
    }

    fn skip_to_first_pending<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        out: &mut Vec<Action<P, B>>,
    ) {
        if let Some((&first, _)) = self.pending.iter().next() {
            if first > self.next_seq {
                shared.stats.skipped += first - self.next_seq;
                out.push(Action::Skipped {
                    topic,
                    from: self.next_seq,
                    to: first - 1,
                });
                self.next_seq = first;
            }
            self.gap_since = None;
            self.drain(shared, topic, out);
        }
    }

    pub(super) fn on_repair<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        child: P,
        from: u64,
        to: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let start = self.cache.partition_point(|(s, _)| *s < from);
        for (seq, payload) in self
            .cache
            .iter()
            .skip(start)
            .take_while(|(s, _)| *s <= to)
            .take(256)
        {
            shared.stats.repairs_sent += 1;
            out.push(Action::Send {
                to: child,
                message: Message::Frame {
                    topic,
                    seq: *seq,
                    payload: payload.clone(),
                },
            });
        }
    }

    pub(super) fn on_link_down<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        peer: P,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        self.remove_child(&peer);
        let lost_parent = self.parent() == Some(peer)
            || matches!(&self.attach, Attach::Joining { target, .. } if *target == peer);
        if lost_parent && !self.is_root {
            let candidates = self.fallbacks(peer);
            self.avoid.push((peer, now + shared.config.avoid_us));
            self.start_join(shared, topic, now, candidates, out);
        }
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

    pub(super) fn on_tick<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        now: u64,
        probe: bool,
        out: &mut Vec<Action<P, B>>,
    ) {
        self.avoid.retain(|(_, until)| *until > now);
        self.shed(shared, topic, now, out);
        if probe {
            for c in &self.children {
                out.push(Action::Send {
                    to: *c,
                    message: Message::Probe { sent_at: now },
                });
            }
        }
        if self.is_root {
            return;
        }
        match self.attach.clone() {
            Attach::Joining {
                asked_at, probing, ..
            } => {
                if probing.is_some_and(|p| now >= p.until) {
                    self.finish_probing(shared, topic, now, out);
                } else if now.saturating_sub(asked_at) > shared.config.join_timeout_us {
                    self.try_next(shared, topic, now, out);
                }
            }
            Attach::Attached { parent } => {
                if !self.has_attached {
                    return;
                }
                if probe {
                    shared
                        .links
                        .entry(parent)
                        .or_default()
                        .probe_outstanding_since
                        .get_or_insert(now);
                    out.push(Action::Send {
                        to: parent,
                        message: Message::Probe { sent_at: now },
                    });
                }
                // Subtree sizes go up at most once per tick, and only when they changed: fresh
                // enough to spread a flash crowd of joiners, cheap when the tree is still.
                let descendants = self.descendants();
                if descendants != self.reported || probe && descendants > 0 {
                    self.reported = descendants;
                    out.push(Action::Send {
                        to: parent,
                        message: Message::Report { topic, descendants },
                    });
                }
                self.check_gap(shared, topic, parent, now, out);
                self.check_congestion(shared, topic, parent, now, out);
            }
        }
    }

    fn check_gap<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        parent: P,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let Some(since) = self.gap_since else { return };
        if now.saturating_sub(since) > shared.config.give_up_us {
            self.skip_to_first_pending(shared, topic, out);
            return;
        }
        if now.saturating_sub(self.last_repair_at) >= shared.config.repair_delay_us
            && let Some((&first, _)) = self.pending.iter().next()
        {
            self.last_repair_at = now;
            out.push(Action::Send {
                to: parent,
                message: Message::Repair {
                    topic,
                    from: self.next_seq,
                    to: first - 1,
                },
            });
        }
    }

    /// Re-attach when the parent congests (RTT inflation, or silence while the stream flows),
    /// but only after the condition has held for `congestion_hold_us` and not within
    /// `reattach_cooldown_us` of the last attach: hysteresis, so nodes do not flap.
    fn check_congestion<V>(
        &mut self,
        shared: &mut Shared<P, V>,
        topic: Topic,
        parent: P,
        now: u64,
        out: &mut Vec<Action<P, B>>,
    ) {
        let c = &shared.config;
        let inflated = shared
            .links
            .get(&parent)
            .is_some_and(|l| l.inflated(c.rtt_congestion_factor, now))
            // Our own full uplink delays our probes too: then the parent is not to blame.
            && shared.own_backlog() < 256 * 1024;
        let silent = self.started && now.saturating_sub(self.last_frame_at) > c.parent_silence_us;
        if !(inflated || silent) {
            self.congested_since = None;
            return;
        }
        let since = *self.congested_since.get_or_insert(now);
        if now - since < c.congestion_hold_us || now - self.last_attach_at < c.reattach_cooldown_us
        {
            return;
        }
        self.avoid.push((parent, now + c.avoid_us));
        let candidates = self.fallbacks(parent);
        self.congested_since = None;
        self.start_join(shared, topic, now, candidates, out);
    }
}

/// Half the baseline RTT to `peer` (µs), 0 if never measured.
fn half_base_rtt<P: Eq + Hash, V>(shared: &Shared<P, V>, peer: &P) -> u64 {
    shared.links.get(peer).map_or(0, |l| l.min_rtt_us / 2)
}
