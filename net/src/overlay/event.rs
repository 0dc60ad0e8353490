//! What goes in and out of the sans-IO core: events, commands, actions, and the node's counters.
//!
//! Their own module so that the core, the tree and the routing plane all depend on it and not
//! on each other.

use super::message::{Message, Topic};

/// Something that happened, fed to [`Overlay::handle`](super::Overlay::handle).
#[derive(Clone, Debug)]
pub enum Event<P, B> {
    /// A connection to `P` is up.
    LinkUp(P),
    /// The connection to `P` is gone.
    LinkDown(P),
    /// The source network the connection to `peer` comes from (the driver hashes an IPv4 /24
    /// or an IPv6 /48; loopback is not reported): a node takes at most
    /// `max_children_per_network` children from one network, so a handful of identities on
    /// one host cannot fill the top of a tree.
    LinkNetwork {
        /// Which peer.
        peer: P,
        /// Its network, as an opaque number.
        network: u64,
    },
    /// The transport measured a link.
    LinkMeasured {
        /// Which.
        peer: P,
        /// An RTT sample (µs), e.g. quinn's estimate.
        rtt_us: Option<u64>,
        /// Bytes queued towards the peer.
        queued_bytes: u64,
        /// Delivery rate towards the peer (bytes/s), 0 if unknown.
        delivery_rate: f64,
        /// Cumulative packets lost.
        lost: u64,
    },
    /// A message arrived from a neighbour.
    Received {
        /// The neighbour.
        from: P,
        /// The message.
        message: Message<P, B>,
    },
    /// The wake-up time asked for with [`Action::WakeAt`] has come.
    Tick,
    /// The application asks for something.
    Command(Command<P, B>),
}

/// What the application can ask of the overlay.
#[derive(Clone, Debug)]
pub enum Command<P, B> {
    /// Receive `topic`, whose tree is rooted at `root`.
    Subscribe {
        /// The topic.
        topic: Topic,
        /// Its publisher.
        root: P,
    },
    /// Stop receiving `topic`.
    Unsubscribe {
        /// The topic.
        topic: Topic,
    },
    /// Publish a frame as the root of `topic`.
    Publish {
        /// The topic.
        topic: Topic,
        /// The frame's sequence number (the entry's own): above every one published before.
        seq: u64,
        /// The signed frame.
        payload: B,
    },
    /// Send a direct message (`id` unique per origin).
    SendDirect {
        /// Recipient.
        dest: P,
        /// Origin-unique id.
        id: u64,
        /// The signed payload.
        payload: B,
    },
}

/// What the overlay wants done.
#[derive(Clone, Debug)]
pub enum Action<P, B> {
    /// Send a message to a neighbour (connecting first if needed).
    Send {
        /// The neighbour.
        to: P,
        /// The message.
        message: Message<P, B>,
    },
    /// Deliver a topic frame to the application, in order.
    Deliver {
        /// The topic.
        topic: Topic,
        /// Its sequence number.
        seq: u64,
        /// The frame.
        payload: B,
    },
    /// Deliver a direct message to the application.
    DeliverDirect {
        /// Who wrote it.
        origin: P,
        /// The payload.
        payload: B,
    },
    /// Frames `from..=to` of `topic` were given up (lost beyond repair).
    Skipped {
        /// The topic.
        topic: Topic,
        /// First skipped.
        from: u64,
        /// Last skipped.
        to: u64,
    },
    /// This node (re-)attached to a parent.
    Attached {
        /// The topic.
        topic: Topic,
        /// The new parent.
        parent: P,
        /// Depth (root's children are at depth 1).
        depth: usize,
        /// Time from the start of the join (µs).
        took_us: u64,
        /// Whether this replaced an earlier parent.
        reattach: bool,
    },
    /// A connection to `P` would help (a parent or candidate).
    Connect(P),
    /// The connection to `P` is no longer needed.
    Disconnect(P),
    /// Call [`Overlay::handle`](super::Overlay::handle) with [`Event::Tick`] at this time (µs).
    WakeAt(u64),
}

/// Counters of one overlay node.
#[derive(Clone, Debug, Default)]
pub struct OverlayStats {
    /// Frames forwarded to children.
    pub frames_relayed: u64,
    /// Frames delivered to the application.
    pub frames_delivered: u64,
    /// Frames received twice.
    pub duplicates: u64,
    /// Frames not sent to a child whose link was full (newer wins).
    pub dropped_congested: u64,
    /// Frames or messages that failed verification.
    pub invalid: u64,
    /// Frames and accepts from peers the state did not expect (a frame from outside our path
    /// to the root, an accept we did not ask for): dropped before any check or change.
    pub unexpected: u64,
    /// Frames from a session of the stream older than the newest one its owner vouched for
    /// (a publisher that lost its log started again; see `entry::session`): refused.
    pub stale: u64,
    /// Frames skipped after repair gave up.
    pub skipped: u64,
    /// Re-attachments to a new parent.
    pub reattaches: u64,
    /// Parents left because they congested (RTT inflation, or silence while the stream flows).
    pub left_congested: u64,
    /// Times the parent sent us elsewhere (it was full, shed us, or made room for a nearer node).
    pub moved_by_parent: u64,
    /// Parents lost (link down, or a path through ourselves: a loop).
    pub lost_parent: u64,
    /// Swaps carried out here: a child's child took the child's place (tree sorting).
    pub swaps: u64,
    /// Frames resent for repair.
    pub repairs_sent: u64,
    /// Repair frames asked for but not sent: over the topic's repair budget.
    pub repairs_refused: u64,
    /// Direct messages delivered here.
    pub direct_delivered: u64,
    /// Direct messages forwarded.
    pub direct_forwarded: u64,
    /// Direct messages dropped (hop limit, no route, invalid, duplicate).
    pub direct_dropped: u64,
}
