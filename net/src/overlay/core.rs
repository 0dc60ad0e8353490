//! The state machine: events in, actions out, time passed in.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::hash::Hash;

use super::OverlayConfig;
use super::event::{Action, Command, Event, OverlayStats};
use super::link::LinkMetrics;
use super::message::{Candidate, Message, Payload, Topic, Verifier};
use super::routing::Routing;
use super::shared::Shared;
use super::tree::{ChildReport, Context, TopicState};

/// One node of the direct-sub overlay. `P` is how peers are named (a PeerId in the driver, a
/// small integer in the simulator), `B` the payload, `V` the signature checker.
pub struct Overlay<P: Copy + Eq + Hash, B, V> {
    shared: Shared<P, V>,
    // Ordered: iteration order is part of what makes runs reproducible.
    topics: BTreeMap<Topic, TopicState<P, B>>,
    routing: Routing<P>,
    next_wake: u64,
    last_probe: u64,
}

impl<P: Debug + Copy + Eq + Hash, B, V> Debug for Overlay<P, B, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlay")
            .field("me", &self.shared.me)
            .field("topics", &self.topics.len())
            .field("links", &self.shared.links.len())
            .finish_non_exhaustive()
    }
}

impl<P, B, V> Overlay<P, B, V>
where
    P: Copy + Eq + Hash + Ord + Debug,
    B: Payload,
    V: Verifier<P, B>,
{
    /// A node named `me`, with randomness from `seed`.
    pub fn new(me: P, config: OverlayConfig, verifier: V, seed: u64) -> Self {
        let routing = Routing::new(&config);
        Overlay {
            shared: Shared::new(me, config, verifier, seed),
            topics: BTreeMap::new(),
            routing,
            next_wake: 0,
            last_probe: 0,
        }
    }

    /// This node's name.
    pub fn me(&self) -> P {
        self.shared.me
    }

    /// The signature checker (a driver may hand it frames it already verified in a batch).
    pub fn verifier_mut(&mut self) -> &mut V {
        &mut self.shared.verifier
    }

    /// Counters.
    pub fn stats(&self) -> &OverlayStats {
        &self.shared.stats
    }

    /// The link metrics of a neighbour.
    pub fn link(&self, peer: &P) -> Option<&LinkMetrics> {
        self.shared.links.get(peer)
    }

    /// The parent in `topic`'s tree, if attached.
    pub fn parent(&self, topic: &Topic) -> Option<P> {
        self.topics.get(topic).and_then(TopicState::parent)
    }

    /// The children in `topic`'s tree.
    pub fn children(&self, topic: &Topic) -> &[P] {
        self.topics.get(topic).map_or(&[], |t| &t.children[..])
    }

    /// Depth in `topic`'s tree (root 0), if attached.
    pub fn depth(&self, topic: &Topic) -> Option<usize> {
        self.topics.get(topic).and_then(TopicState::depth)
    }

    /// Handles one event at time `now` (µs), appending the resulting actions to `out`.
    pub fn handle(&mut self, now: u64, event: Event<P, B>, out: &mut Vec<Action<P, B>>) {
        if self.next_wake == 0 {
            self.schedule(now, out);
        }
        match event {
            Event::LinkUp(peer) => {
                let nonce = self.shared.new_probe(peer, now);
                out.push(Action::Send {
                    to: peer,
                    message: Message::Probe { nonce },
                });
            }
            Event::LinkNetwork { peer, network } => {
                // Only for a live link: the table is bounded by the links.
                if self.shared.links.contains_key(&peer) {
                    self.shared.networks.insert(peer, network);
                }
            }
            Event::LinkDown(peer) => {
                self.shared.networks.remove(&peer);
                self.shared.links.remove(&peer);
                self.shared.note_link(&peer);
                self.routing.forget(&peer);
                for (topic, state) in self.topics.iter_mut() {
                    state.on_link_down(&mut Context::new(&mut self.shared, *topic, now, out), peer);
                }
            }
            Event::LinkMeasured {
                peer,
                rtt_us,
                queued_bytes,
                delivery_rate,
                lost,
            } => {
                let link = self.shared.links.entry(peer).or_default();
                if let Some(rtt) = rtt_us {
                    link.on_rtt(rtt, now);
                }
                link.queued_bytes = queued_bytes;
                link.delivery_rate = delivery_rate;
                link.lost = lost;
                self.shared.note_link(&peer);
            }
            Event::Received { from, message } => self.on_message(now, from, message, out),
            Event::Tick => {
                if now >= self.next_wake {
                    self.shared.note_tick_lateness(now - self.next_wake);
                    self.on_tick(now, out);
                    self.schedule(now, out);
                }
            }
            Event::Command(command) => self.on_command(now, command, out),
        }
    }

    fn schedule(&mut self, now: u64, out: &mut Vec<Action<P, B>>) {
        self.next_wake = now + self.shared.config.tick_us;
        out.push(Action::WakeAt(self.next_wake));
    }

    fn on_message(
        &mut self,
        now: u64,
        from: P,
        message: Message<P, B>,
        out: &mut Vec<Action<P, B>>,
    ) {
        // Any message makes its sender a known link — except frames, which come only over
        // links already known (parent, or a child repairing), and are too many to pay a table
        // lookup each.
        if !matches!(message, Message::Frame { .. }) {
            self.shared.links.entry(from).or_default();
        }
        match message {
            Message::Probe { nonce } => out.push(Action::Send {
                to: from,
                message: Message::ProbeAck { nonce },
            }),
            Message::ProbeAck { nonce } => {
                // Only an answer to a probe of ours counts, once: an RTT is what we measured,
                // never what a peer says (a forged or replayed answer would make it look near).
                let Some(link) = self.shared.links.get_mut(&from) else {
                    return;
                };
                let Some(sent_at) = link.take_probe(nonce) else {
                    self.shared.stats.unexpected += 1;
                    return;
                };
                link.on_rtt(now.saturating_sub(sent_at), now);
                if link.probe_outstanding_since.is_some_and(|t| t <= sent_at) {
                    link.probe_outstanding_since = None;
                }
                for (topic, state) in self.topics.iter_mut() {
                    state.on_probe_answer(
                        &mut Context::new(&mut self.shared, *topic, now, out),
                        from,
                    );
                }
            }
            Message::Direct { .. } => {
                self.routing
                    .on_direct(&mut self.shared, now, from, message, out)
            }
            Message::Join { topic, root, .. } => {
                // A join naming us as the root opens the topic's tree even before our first
                // frame: viewers may arrive before the stream starts. Such topics are bounded
                // (half the table), kept only while they have viewers, and make way for our
                // own: a peer naming us as the root of made-up topics once filled the table
                // for good, and later publishes and subscribes were dropped.
                if root == self.shared.me
                    && !self.topics.contains_key(&topic)
                    && self.topics.len() < self.shared.config.max_topics
                    && self.opened_by_peers() < self.shared.config.max_topics / 2
                {
                    let mut state = TopicState::new(root, true, &self.shared.config);
                    state.opened_by_peer = true;
                    self.topics.insert(topic, state);
                }
                match self.topics.get_mut(&topic) {
                    Some(state) => {
                        state.on_join(&mut Context::new(&mut self.shared, topic, now, out), from)
                    }
                    None => out.push(Action::Send {
                        to: from,
                        message: Message::Redirect {
                            topic,
                            candidates: if root == self.shared.me {
                                vec![]
                            } else {
                                vec![Candidate {
                                    peer: root,
                                    delay_us: 0,
                                }]
                            },
                            next_seq: 0,
                        },
                    }),
                }
            }
            Message::Accept {
                topic,
                path,
                next_seq,
                rate,
                delay_us,
                adoption,
            } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_accept(
                        &mut Context::new(&mut self.shared, topic, now, out),
                        from,
                        path,
                        next_seq,
                        rate,
                        delay_us,
                        adoption,
                    );
                } else {
                    out.push(Action::Send {
                        to: from,
                        message: Message::Leave { topic },
                    });
                }
            }
            Message::Redirect {
                topic,
                candidates,
                next_seq,
            } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_redirect(
                        &mut Context::new(&mut self.shared, topic, now, out),
                        from,
                        candidates,
                        next_seq,
                    );
                }
            }
            Message::Leave { topic } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_leave(from);
                }
            }
            Message::Report {
                topic,
                descendants,
                root_rtt_us,
            } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_report(
                        from,
                        ChildReport {
                            descendants,
                            root_rtt_us,
                        },
                    );
                }
            }
            Message::Handover { topic, to } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_handover(
                        &mut Context::new(&mut self.shared, topic, now, out),
                        from,
                        to,
                    );
                }
            }
            Message::Frame {
                topic,
                seq,
                payload,
            } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_frame(
                        &mut Context::new(&mut self.shared, topic, now, out),
                        from,
                        seq,
                        payload,
                    );
                }
            }
            Message::Repair {
                topic,
                from: first,
                to,
            } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.on_repair(
                        &mut Context::new(&mut self.shared, topic, now, out),
                        from,
                        first,
                        to,
                    );
                }
            }
        }
    }

    /// Topics a peer's join opened that we have not published on.
    fn opened_by_peers(&self) -> usize {
        self.topics.values().filter(|t| t.opened_by_peer).count()
    }

    /// Makes room for a topic of our own: true if the table has room, after giving up a topic
    /// only a peer opened (the one with the fewest children) if it was full.
    fn room_for_own_topic(&mut self) -> bool {
        if self.topics.len() < self.shared.config.max_topics {
            return true;
        }
        let Some(victim) = self
            .topics
            .iter()
            .filter(|(_, t)| t.opened_by_peer)
            .min_by_key(|(_, t)| t.children.len())
            .map(|(topic, _)| *topic)
        else {
            return false;
        };
        self.topics.remove(&victim);
        true
    }

    fn on_tick(&mut self, now: u64, out: &mut Vec<Action<P, B>>) {
        self.shared.refresh_uplink();
        if !self.shared.probe_only.is_empty() {
            self.close_probe_links(now, out);
        }
        let probe = now.saturating_sub(self.last_probe) >= self.shared.config.probe_interval_us;
        if probe {
            self.last_probe = now;
        }
        // A topic a peer opened and nobody watches is given up after a few join timeouts.
        let idle = 4 * self.shared.config.join_timeout_us;
        self.topics
            .retain(|_, t| !(t.opened_by_peer && t.children.is_empty() && t.idle_for(now) > idle));
        for (topic, state) in self.topics.iter_mut() {
            state.on_tick(&mut Context::new(&mut self.shared, *topic, now, out), probe);
        }
        self.routing.expire(now);
    }

    /// Closes connections made only to measure join candidates, once the join is long over
    /// and nothing else uses them (every joiner would otherwise keep ~3 idle QUIC connections
    /// per tree level: +64 % peak RSS per subscriber in a 200-peer swarm, +38 % with this).
    fn close_probe_links(&mut self, now: u64, out: &mut Vec<Action<P, B>>) {
        let settle = 4 * self.shared.config.join_timeout_us;
        let mut pending = std::mem::take(&mut self.shared.probe_only);
        pending.retain(|(peer, since)| {
            if now.saturating_sub(*since) < settle {
                return true;
            }
            let used = self.topics.values().any(|t| t.involves(peer)) || self.routing.uses(peer);
            if !used {
                self.shared.links.remove(peer);
                self.shared.networks.remove(peer);
                self.shared.note_link(peer);
                out.push(Action::Disconnect(*peer));
            }
            false
        });
        self.shared.probe_only = pending;
    }

    fn on_command(&mut self, now: u64, command: Command<P, B>, out: &mut Vec<Action<P, B>>) {
        match command {
            Command::Subscribe { topic, root } => {
                if self.topics.contains_key(&topic) || root == self.shared.me {
                    if let Some(t) = self.topics.get_mut(&topic) {
                        t.subscribed = true;
                    }
                    return;
                }
                if !self.room_for_own_topic() {
                    return;
                }
                let mut state = TopicState::new(root, false, &self.shared.config);
                state.subscribed = true;
                state.start_join(
                    &mut Context::new(&mut self.shared, topic, now, out),
                    vec![root],
                );
                self.topics.insert(topic, state);
            }
            Command::Unsubscribe { topic } => {
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.subscribed = false;
                    if state.children.is_empty() {
                        if let Some(parent) = state.parent() {
                            out.push(Action::Send {
                                to: parent,
                                message: Message::Leave { topic },
                            });
                        }
                        self.topics.remove(&topic);
                    }
                }
            }
            Command::Publish {
                topic,
                seq,
                payload,
            } => {
                if !self.topics.contains_key(&topic) {
                    if !self.room_for_own_topic() {
                        return;
                    }
                    let me = self.shared.me;
                    self.topics
                        .insert(topic, TopicState::new(me, true, &self.shared.config));
                }
                if let Some(state) = self.topics.get_mut(&topic) {
                    state.opened_by_peer = false;
                    state.publish(
                        &mut Context::new(&mut self.shared, topic, now, out),
                        seq,
                        payload,
                    );
                }
            }
            Command::SendDirect { dest, id, payload } => {
                self.routing
                    .send_direct(&mut self.shared, now, dest, id, payload, out);
            }
        }
    }
}
