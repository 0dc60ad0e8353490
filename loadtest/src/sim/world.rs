//! Virtual time, virtual links and the event queue that drives thousands of overlay cores.
//!
//! Links: every node can reach every other (the internet model). One-way latency comes from node
//! positions in a unit square, scaled to the configured RTT range, so it obeys the triangle
//! inequality and stretch is meaningful. Each node has one upload queue (a FIFO serialiser at
//! its upload bandwidth): a throttled relay's queue grows, which delays its frames and inflates
//! the RTT its children measure. Loss is modelled as QUIC sees it: a message crossing a lossy path
//! loses one of its packets with probability 1-(1-p)^packets and arrives one RTT later
//! (retransmission), never not at all.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use starling_net::overlay::{Action, Event, Message, Overlay, OverlayConfig, SplitMix64, Topic};

use super::model::{ModelVerifier, SimFrame, VERIFY_US};

pub(crate) type Node = Overlay<u32, SimFrame, ModelVerifier>;
pub(crate) type Msg = Message<u32, SimFrame>;

#[derive(Debug)]
pub(crate) enum Kind {
    Deliver { to: u32, from: u32, msg: Msg },
    Tick { node: u32 },
    Publish { publisher: u32 },
    Join { node: u32 },
    Kill { node: u32 },
    Notice { node: u32, gone: u32 },
    Congest,
    Churn,
}

/// Events ordered by (time, insertion), so equal times replay identically.
///
/// A calendar queue: events within the next `BUCKETS × BUCKET_US` go into unsorted per-bucket
/// lists, and a bucket is sorted only when time reaches it; later events wait in a heap. At
/// 100,000 nodes a plain binary heap of a few hundred thousand pending events was a quarter of
/// the run (a cache miss per level of every sift); the order is exactly the heap's.
pub(crate) struct Queue {
    slots: Vec<Option<Kind>>,
    free: Vec<usize>,
    seq: u64,
    /// The bucket being drained, sorted so that the next event is last.
    current: Vec<Entry>,
    current_bucket: u64,
    ring: Vec<Vec<Entry>>,
    in_ring: usize,
    far: BinaryHeap<Reverse<Entry>>,
}

/// (time, insertion number, slot).
type Entry = (u64, u64, usize);

const BUCKET_US: u64 = 250;
const BUCKETS: u64 = 4096;

impl Queue {
    pub(crate) fn new() -> Self {
        Queue {
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            current: Vec::new(),
            current_bucket: 0,
            ring: (0..BUCKETS).map(|_| Vec::new()).collect(),
            in_ring: 0,
            far: BinaryHeap::new(),
        }
    }

    pub(crate) fn push(&mut self, at: u64, kind: Kind) {
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i] = Some(kind);
                i
            }
            None => {
                self.slots.push(Some(kind));
                self.slots.len() - 1
            }
        };
        self.seq += 1;
        let entry = (at, self.seq, slot);
        let bucket = at / BUCKET_US;
        if bucket <= self.current_bucket {
            // Due in the bucket being drained: keep it sorted (descending).
            let i = self.current.partition_point(|e| *e > entry);
            self.current.insert(i, entry);
        } else if bucket < self.current_bucket + BUCKETS {
            self.ring[(bucket % BUCKETS) as usize].push(entry);
            self.in_ring += 1;
        } else {
            self.far.push(Reverse(entry));
        }
    }

    pub(crate) fn pop(&mut self) -> Option<(u64, Kind)> {
        loop {
            if let Some((at, _, slot)) = self.current.pop() {
                let kind = self.slots[slot].take()?;
                self.free.push(slot);
                return Some((at, kind));
            }
            self.advance()?;
        }
    }

    /// Moves to the next bucket that holds anything; `None` when nothing is left.
    fn advance(&mut self) -> Option<()> {
        if self.in_ring == 0 {
            // Only far events: jump straight to the first of them.
            let Reverse((at, _, _)) = self.far.peek()?;
            self.current_bucket = (at / BUCKET_US).max(self.current_bucket + 1) - 1;
        }
        self.current_bucket += 1;
        let i = (self.current_bucket % BUCKETS) as usize;
        std::mem::swap(&mut self.current, &mut self.ring[i]);
        self.in_ring -= self.current.len();
        while let Some(Reverse(e)) = self.far.peek() {
            if e.0 / BUCKET_US > self.current_bucket {
                break;
            }
            self.current.push(*e);
            self.far.pop();
        }
        self.current.sort_unstable_by(|a, b| b.cmp(a));
        Some(())
    }
}

/// Per-node simulation state beside its overlay core.
pub(crate) struct Host {
    pub(crate) x: f32,
    pub(crate) y: f32,
    pub(crate) upload_bps: f64,
    /// When this node's upload queue is next free (µs).
    pub(crate) upload_free_at: u64,
    pub(crate) alive: bool,
    pub(crate) next_tick: u64,
    /// The link figures last fed to the core (queued bytes, rate) and to which children.
    pub(crate) fed: (u64, f64),
    pub(crate) fed_children: Vec<u32>,
    /// An attacker (`--sybils`): runs the same core but forwards no frames, and (unless the
    /// run is the starve-only baseline) claims a 1 µs RTT in its joins and reports.
    pub(crate) sybil: bool,
}

/// Byte counters.
#[derive(Debug, Default)]
pub(crate) struct Bytes {
    pub(crate) payload_sent: u64,
    pub(crate) control_sent: u64,
    pub(crate) frame_msgs_received: u64,
}

pub(crate) struct World {
    pub(crate) nodes: Vec<Node>,
    pub(crate) hosts: Vec<Host>,
    pub(crate) queue: Queue,
    pub(crate) rng: SplitMix64,
    pub(crate) min_one_way_us: u64,
    pub(crate) spread_one_way_us: u64,
    pub(crate) loss: f64,
    pub(crate) bytes: Bytes,
    pub(crate) now: u64,
    scratch: Vec<Action<u32, SimFrame>>,
    /// Whether Sybils lie (claims of 1 µs) besides starving their children.
    pub(crate) sybils_lie: bool,
}

/// Payload bytes per simulated packet (for loss).
const PACKET: u64 = 1200;

impl World {
    pub(crate) fn new(
        n: usize,
        config: &OverlayConfig,
        seed: u64,
        rtt_min_ms: f64,
        rtt_max_ms: f64,
        upload_bps: f64,
        loss: f64,
    ) -> World {
        let mut rng = SplitMix64::new(seed);
        let hosts = (0..n)
            .map(|_| Host {
                x: rng.next_f64() as f32,
                y: rng.next_f64() as f32,
                upload_bps,
                upload_free_at: 0,
                alive: true,
                next_tick: 0,
                fed: (u64::MAX, 0.0),
                fed_children: Vec::new(),
                sybil: false,
            })
            .collect();
        let nodes = (0..n as u32)
            .map(|i| {
                Overlay::new(
                    i,
                    config.clone(),
                    ModelVerifier::default(),
                    seed ^ u64::from(i) << 20,
                )
            })
            .collect();
        World {
            nodes,
            hosts,
            queue: Queue::new(),
            rng,
            min_one_way_us: (rtt_min_ms * 500.0) as u64,
            spread_one_way_us: ((rtt_max_ms - rtt_min_ms) * 500.0) as u64,
            loss,
            bytes: Bytes::default(),
            now: 0,
            scratch: Vec::new(),
            sybils_lie: false,
        }
    }

    /// One-way latency between two nodes (µs).
    pub(crate) fn latency(&self, a: u32, b: u32) -> u64 {
        let (ha, hb) = (&self.hosts[a as usize], &self.hosts[b as usize]);
        let d = ((ha.x - hb.x).powi(2) + (ha.y - hb.y).powi(2)).sqrt() as f64
            / std::f64::consts::SQRT_2;
        self.min_one_way_us + (d * self.spread_one_way_us as f64) as u64
    }

    /// Bytes waiting in a node's upload queue.
    pub(crate) fn queued_bytes(&self, node: u32) -> u64 {
        let h = &self.hosts[node as usize];
        let backlog = h.upload_free_at.saturating_sub(self.now);
        (backlog as f64 * h.upload_bps / 1e6) as u64
    }

    /// Feeds one event to a node and carries out its actions.
    pub(crate) fn feed(
        &mut self,
        node: u32,
        event: Event<u32, SimFrame>,
    ) -> Vec<Action<u32, SimFrame>> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.nodes[node as usize].handle(self.now, event, &mut out);
        let mut delivered = Vec::new();
        for action in out.drain(..) {
            match action {
                Action::Send { to, message } => {
                    if self.hosts[node as usize].sybil {
                        if let Some(message) = sybil_rewrite(message, self.sybils_lie) {
                            self.send(node, to, message);
                        }
                    } else {
                        self.send(node, to, message);
                    }
                }
                Action::WakeAt(at) => {
                    let h = &mut self.hosts[node as usize];
                    if at > h.next_tick || h.next_tick <= self.now {
                        h.next_tick = at;
                        self.queue.push(at, Kind::Tick { node });
                    }
                }
                other @ (Action::Deliver { .. }
                | Action::Attached { .. }
                | Action::Skipped { .. }) => delivered.push(other),
                _ => {}
            }
        }
        self.scratch = out;
        delivered
    }

    /// The transport's backpressure signal: this node's upload backlog and rate, per child.
    /// Skipped when nothing changed since the last tick (same figures, same children): feeding
    /// them again would change nothing in the core, and these feeds were roughly one event in
    /// five at 100,000 nodes.
    pub(crate) fn feed_link_figures(&mut self, node: u32, topics: &[Topic]) {
        let figures = (
            self.queued_bytes(node),
            self.hosts[node as usize].upload_bps,
        );
        let mut children = std::mem::take(&mut self.hosts[node as usize].fed_children);
        let core = &self.nodes[node as usize];
        let unchanged = self.hosts[node as usize].fed == figures
            && topics
                .iter()
                .flat_map(|t| core.children(t))
                .eq(children.iter());
        if !unchanged {
            children.clear();
            for t in topics {
                children.extend_from_slice(core.children(t));
            }
            for c in &children {
                self.feed(
                    node,
                    Event::LinkMeasured {
                        peer: *c,
                        rtt_us: None,
                        queued_bytes: figures.0,
                        delivery_rate: figures.1,
                        lost: 0,
                    },
                );
            }
            self.hosts[node as usize].fed = figures;
        }
        self.hosts[node as usize].fed_children = children;
    }

    fn send(&mut self, from: u32, to: u32, msg: Msg) {
        if !self.hosts[to as usize].alive || !self.hosts[from as usize].alive {
            return;
        }
        let size = msg.wire_len() as u64;
        match &msg {
            Message::Frame { .. } => self.bytes.payload_sent += size,
            _ => self.bytes.control_sent += size,
        }
        let host = &mut self.hosts[from as usize];
        let start = host.upload_free_at.max(self.now)
            + if matches!(msg, Message::Frame { .. }) {
                VERIFY_US
            } else {
                0
            };
        let serialise = (size as f64 * 1e6 / host.upload_bps) as u64;
        host.upload_free_at = start + serialise;
        let mut arrive = start + serialise + self.latency(from, to);
        if self.loss > 0.0 {
            let packets = size.div_ceil(PACKET).max(1) as i32;
            let p_hit = 1.0 - (1.0 - self.loss).powi(packets);
            if self.rng.next_f64() < p_hit {
                // QUIC retransmits after about one RTT (plus the loss detection delay).
                arrive += 3 * self.latency(from, to);
            }
        }
        self.queue.push(arrive, Kind::Deliver { to, from, msg });
    }
}

/// What a Sybil sends instead of `message`: no frames (it starves whoever it took in), and
/// when lying, joins and reports claiming to be 1 µs from everyone (to be placed high and
/// handed slots).
fn sybil_rewrite(message: Msg, lie: bool) -> Option<Msg> {
    use starling_net::overlay::Message;
    match message {
        Message::Frame { .. } => None,
        Message::Join { topic, root, .. } if lie => Some(Message::Join {
            topic,
            root,
            rtt_us: 1,
        }),
        Message::Report {
            topic, descendants, ..
        } if lie => Some(Message::Report {
            topic,
            descendants,
            root_rtt_us: 1,
        }),
        other => Some(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calendar queue pops in exactly a binary heap's (time, insertion) order, whatever
    /// the mix: same bucket, later buckets, beyond the ring, pushes while draining.
    #[test]
    fn the_calendar_queue_pops_in_heap_order() {
        let mut rng = SplitMix64::new(7);
        let mut queue = Queue::new();
        let mut heap: BinaryHeap<Reverse<(u64, u64)>> = BinaryHeap::new();
        let (mut now, mut seq) = (0u64, 0u64);
        for step in 0..50_000u64 {
            if step % 3 != 2 {
                // Mostly near (same bucket or the next few), sometimes far past the ring.
                let ahead = match rng.below(10) {
                    0 => rng.below(4 * BUCKETS * BUCKET_US),
                    1..=3 => rng.below(BUCKET_US),
                    _ => rng.below(200_000),
                };
                seq += 1;
                queue.push(now + ahead, Kind::Tick { node: seq as u32 });
                heap.push(Reverse((now + ahead, seq)));
            } else if let Some(Reverse((at, s))) = heap.pop() {
                let Some((got_at, Kind::Tick { node })) = queue.pop() else {
                    panic!("queue empty or wrong kind at step {step}")
                };
                assert_eq!((got_at, u64::from(node)), (at, s), "step {step}");
                now = at;
            }
        }
        while let Some(Reverse((at, s))) = heap.pop() {
            let Some((got_at, Kind::Tick { node })) = queue.pop() else {
                panic!("queue ran dry early")
            };
            assert_eq!((got_at, u64::from(node)), (at, s));
        }
        assert!(queue.pop().is_none());
    }
}
