//! Overlay messages, generic over the peer id `P` and payload `B`.

use std::fmt;

use crate::entry::LogId;

/// One tree of the overlay, named by 32 bytes: a stream's topic is its log's id, so an entry
/// names the topic it travels on.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Topic(pub [u8; 32]);

impl Topic {
    /// The topic's bytes, as they travel.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl From<LogId> for Topic {
    fn from(log: LogId) -> Topic {
        Topic(log.0)
    }
}

impl fmt::Debug for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Topic(")?;
        self.0[..6].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "…)")
    }
}

/// What the overlay needs of a payload: its size (for rates, queues and overhead).
pub trait Payload: Clone {
    /// Bytes on the wire.
    fn wire_len(&self) -> usize;
}

impl Payload for bytes::Bytes {
    fn wire_len(&self) -> usize {
        self.len()
    }
}

/// Signature checks, behind a trait: the driver verifies with real keys; the simulator plugs in
/// a model that charges verification time without the cryptography.
pub trait Verifier<P, B> {
    /// Does `payload` carry a valid signature by `root` for `topic` and `seq`?
    fn verify_frame(&mut self, topic: &Topic, root: &P, seq: u64, payload: &B) -> bool;
    /// Does `payload` carry a valid signature by `origin` over this destination and message
    /// id (so a relay can neither turn a message to another peer nor replay it under a fresh
    /// id), and is it recent enough to be delivered?
    fn verify_direct(&mut self, origin: &P, dest: &P, id: u64, payload: &B) -> bool;
}

/// Which lane a message should travel on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lane {
    /// Tree control, probes, direct messages.
    Control,
    /// Live frames.
    Data,
    /// Repairs (bulk, may wait).
    Bulk,
}

/// A node a joiner may ask, and how far (in one-way delay, µs) it is from the root as the
/// redirecting node estimates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate<P> {
    /// The node.
    pub peer: P,
    /// Its estimated delay from the root (µs).
    pub delay_us: u64,
}

/// A message between two overlay nodes.
#[derive(Clone, Debug, PartialEq)]
pub enum Message<P, B> {
    /// Asks to become a child in `topic`'s tree.
    Join {
        /// The topic.
        topic: Topic,
        /// Its root.
        root: P,
        /// The joiner's baseline RTT to the receiver as the joiner measured it (µs, 0 if
        /// unmeasured). A self-report, so a hint only: a full node makes room for a much nearer
        /// joiner by its *own* measurement of the joiner (the connection's handshake RTT).
        rtt_us: u64,
    },
    /// Admits the sender's joiner: `path` runs from the root to the sender.
    Accept {
        /// The topic.
        topic: Topic,
        /// Root … sender.
        path: Vec<P>,
        /// The next sequence number the sender will forward.
        next_seq: u64,
        /// The stream rate the sender measures (bytes/s), so a new relay admits children by
        /// bandwidth before it has measured the rate itself.
        rate: u64,
        /// The sender's estimated one-way delay from the root (µs): the joiner adds half its
        /// RTT to the sender to know its own.
        delay_us: u64,
        /// Sent unasked by the receiver's grandparent: the receiver takes its parent's place
        /// (a swap). Kept apart from path updates, which a late one could be mistaken for.
        adoption: bool,
    },
    /// The sender is full (or not in the tree): try these, best first.
    Redirect {
        /// The topic.
        topic: Topic,
        /// Candidates, ranked by the sender's measured cost, each with its estimated delay from
        /// the root: the joiner probes them and picks the one that delivers soonest to it.
        candidates: Vec<Candidate<P>>,
        /// The sender's next frame seq (0: no frame yet). From the root, it tells a joiner
        /// that the stream is live, so a parent that then sends nothing is starving it.
        next_seq: u64,
    },
    /// The sender stops being a child.
    Leave {
        /// The topic.
        topic: Topic,
    },
    /// A frame of the topic, signed by the root.
    Frame {
        /// The topic.
        topic: Topic,
        /// Sequence number.
        seq: u64,
        /// The signed frame.
        payload: B,
    },
    /// Asks the parent to resend `from..=to`.
    Repair {
        /// The topic.
        topic: Topic,
        /// First missing.
        from: u64,
        /// Last missing.
        to: u64,
    },
    /// A child tells its parent how many nodes its subtree holds (itself excluded), so that
    /// redirects can steer joiners away from crowded branches, and how near the root it is,
    /// so that a parent much farther from the root can trade places with it.
    Report {
        /// The topic.
        topic: Topic,
        /// Nodes below the sender.
        descendants: u32,
        /// The sender's baseline RTT to the root (µs, 0 if unmeasured). A self-report: it
        /// makes a parent propose a swap, and the grandparent checks it by its own measurement
        /// before the swap happens.
        root_rtt_us: u64,
    },
    /// A parent and its child `to` trade places (the child is much nearer the root). From a
    /// child to its parent: "give my slot to `to`". From the parent back: "done" — the
    /// receiver then redirects its other children to `to` and joins below it, and `to`
    /// passes its own children down to the receiver. Everyone else keeps its depth; swap by
    /// swap the nodes near the root rise, as if the flash crowd had arrived nearest-first.
    Handover {
        /// The topic.
        topic: Topic,
        /// The child taking the sender's (or receiver's) place.
        to: P,
    },
    /// RTT probe.
    Probe {
        /// A random number the sender remembers with the time it sent the probe: only an
        /// answer echoing it is taken, so a peer cannot make itself look nearer than it is.
        nonce: u64,
    },
    /// Answer to a probe.
    ProbeAck {
        /// The probe's `nonce`.
        nonce: u64,
    },
    /// A message to one peer, routed hop by hop.
    Direct {
        /// Who wrote it.
        origin: P,
        /// Who it is for.
        dest: P,
        /// Origin-unique id (duplicate suppression).
        id: u64,
        /// Hops left.
        hops_left: u8,
        /// Route cost accumulated so far (teaches reverse routes).
        cost: u64,
        /// The signed payload.
        payload: B,
    },
}

impl<P, B: Payload> Message<P, B> {
    /// The lane this message belongs on.
    pub fn lane(&self) -> Lane {
        match self {
            Message::Frame { .. } => Lane::Data,
            Message::Repair { .. } => Lane::Control,
            _ => Lane::Control,
        }
    }

    /// Approximate bytes on the wire (for simulations and byte accounting).
    pub fn wire_len(&self) -> usize {
        const ID: usize = 38;
        match self {
            Message::Join { .. } => 1 + 32 + ID + 8,
            Message::Accept { path, .. } => 1 + 32 + 24 + 1 + ID * path.len(),
            Message::Redirect { candidates, .. } => 1 + 32 + 1 + (ID + 8) * candidates.len() + 8,
            Message::Leave { .. } => 1 + 32,
            Message::Frame { payload, .. } => 1 + 32 + 8 + payload.wire_len(),
            Message::Repair { .. } => 1 + 32 + 16,
            Message::Report { .. } => 1 + 32 + 4 + 8,
            Message::Handover { .. } => 1 + 32 + ID,
            Message::Probe { .. } | Message::ProbeAck { .. } => 1 + 8,
            Message::Direct { payload, .. } => 1 + 2 * ID + 8 + 1 + 8 + payload.wire_len(),
        }
    }
}
