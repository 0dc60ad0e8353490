//! The async driver: runs one [`Overlay`] core over QUIC connections.
//!
//! It owns an [`Endpoint`], dials the peers the core names (addresses travel with peer ids in
//! control messages), feeds quinn's RTT and each link's queued bytes to the core as link
//! measurements, fires its timers, and maps its actions to lanes: topic frames on the high lane
//! as the very `Bytes` that arrived (verified, never re-signed), control on the control lane. A
//! full link drops the frame (`try_send` → `Full`): under congestion newer frames win.

mod book;
mod links;
mod shaper;
mod verifier;

use book::AddressBook;
pub use book::MAX_KNOWN_ADDRESSES;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use super::control::{self, Control};
use super::{
    Action, Command, Event, Message, Overlay, OverlayConfig, OverlayStats, Payload, Topic,
};
use crate::entry::{Entry, EntryFields, EntrySigner, unix_time_us};
use crate::identity::PeerId;
use crate::transport::{Connection, Endpoint, Received, SendError, TransportError};
use crate::wire::{Frame, Lane};
use links::{accept_loop, conn_id};
use shaper::Shaper;

/// Where peers can be reached, learned from connections and from messages.
use verifier::{DIRECT_LOG, direct_group};
pub use verifier::{FrameVerifier, WriterRule};

impl Payload for Entry {
    fn wire_len(&self) -> usize {
        Entry::wire_len(self)
    }
}

/// A frame delivered to a subscriber, in order.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// Its sequence number in the topic.
    pub seq: u64,
    /// The verified entry (payload, clock, signature).
    pub frame: Entry,
}

/// A direct message delivered to this node.
#[derive(Clone, Debug)]
pub struct DirectMessage {
    /// Who wrote it (verified).
    pub origin: PeerId,
    /// What they wrote.
    pub payload: Bytes,
    /// An app frame's place in its link's receive budget, given back when the last clone is
    /// dropped: memory held by messages not yet dealt with stays within the transport's
    /// receive windows. `None` for signed direct messages (copied out of the driver's batch).
    pub credit: Option<std::sync::Arc<crate::transport::Credit>>,
}

/// What a node receives for the programs above it.
#[derive(Debug)]
pub struct Inboxes {
    /// Direct messages routed through the overlay, each signed by its origin
    /// ([`OverlayNode::send`]); lossy: dropped when this inbox is full.
    pub direct: mpsc::Receiver<DirectMessage>,
    /// App frames from connected peers ([`AppLink::send`]), authenticated by the connection;
    /// reliable and in order per link: when this inbox is full the links stop being read, so
    /// senders wait (QUIC flow control) instead of losing messages.
    pub app: mpsc::Receiver<DirectMessage>,
}

/// App frames waiting for the program layer, node-wide, before links stop being read. Their
/// bytes stay within the links' receive windows (each holds its credit).
pub const APP_INBOX: usize = 1024;
/// Peers a node keeps links to for programs ([`OverlayNode::link`]), beyond the tree's own.
pub const MAX_PINNED_LINKS: usize = 1024;

/// A link to one peer for app frames: reliable, in order, and flow-controlled (a send waits
/// while the link's in-flight budget is used up). Cheap to clone.
#[derive(Clone, Debug)]
pub struct AppLink {
    conn: Connection,
}

impl AppLink {
    /// The peer at the other end.
    pub fn peer(&self) -> PeerId {
        self.conn.peer_id()
    }

    /// Sends one app frame (its body starts with the program's protocol tag) on the bulk
    /// lane, waiting for room. The body is not copied.
    pub async fn send(&self, body: Bytes) -> Result<(), SendError> {
        self.conn.send(Lane::Low, &Frame::App(body)).await
    }

    /// Whether the connection is gone (a new [`OverlayNode::link`] dials again).
    pub fn is_closed(&self) -> bool {
        self.conn
            .dangerous_quinn_connection()
            .close_reason()
            .is_some()
    }
}

enum Cmd {
    Connect(SocketAddr, oneshot::Sender<Result<PeerId, TransportError>>),
    Subscribe {
        topic: Topic,
        root: PeerId,
        root_addr: Option<SocketAddr>,
        rule: Option<WriterRule>,
        tx: mpsc::Sender<Delivery>,
    },
    Unsubscribe(Topic),
    Send {
        dest: PeerId,
        payload: Bytes,
    },
    Throttle(Option<u64>),
    Stats(oneshot::Sender<OverlayStats>),
    KnownAddresses(oneshot::Sender<usize>),
    Neighbours(oneshot::Sender<Vec<PeerId>>),
    Link(PeerId, oneshot::Sender<Result<AppLink, TransportError>>),
    Heard(PeerId, SocketAddr),
    Parent(Topic, oneshot::Sender<Option<PeerId>>),
    Children(Topic, oneshot::Sender<Vec<PeerId>>),
    Shutdown(oneshot::Sender<()>),
}

impl std::fmt::Debug for Cmd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Cmd")
    }
}

// Frames travel by value (their entry parsed once); boxing would allocate per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
enum Internal {
    Up(Connection),
    DialFailed(PeerId),
    /// Still holding its link's incoming credit, so a slow driver stalls the peer (QUIC flow
    /// control) instead of buffering without bound in this channel.
    Frame(PeerId, Received),
    Down(PeerId, usize),
}

/// A link event taken from the queue, its frame already decoded.
#[derive(Debug)]
enum Queued {
    Message(PeerId, Control),
    Other(Internal),
}

/// A running overlay node. Cheap to clone; the node stops when [`OverlayNode::shutdown`] is
/// called or every handle is dropped.
#[derive(Clone, Debug)]
pub struct OverlayNode {
    tx: mpsc::UnboundedSender<Cmd>,
    /// Bounded: a publisher faster than its node is told, instead of queueing without bound.
    publish_tx: mpsc::Sender<Entry>,
    peer_id: PeerId,
    local_addr: SocketAddr,
}

/// Frames a subscription buffers for a slow application before dropping (counted in stats).
const SUBSCRIPTION_BUFFER: usize = 1024;
/// Entries published but not yet sent by the node.
const PUBLISH_QUEUE: usize = 256;

/// Why [`OverlayNode::try_reserve_publish_owned`] gave no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PublishRefused {
    /// The node has `PUBLISH_QUEUE` (256) frames it has not sent yet.
    #[error("the node is 256 frames behind on publishing")]
    Behind,
    /// The node was shut down.
    #[error("the node is stopped")]
    Stopped,
}

/// A reserved place in the node's publish queue ([`OverlayNode::try_reserve_publish_owned`]),
/// which can travel to the thread that signs the entry.
#[derive(Debug)]
pub struct OwnedPublishPermit(mpsc::OwnedPermit<Entry>);

impl OwnedPublishPermit {
    /// Publishes `entry` on its log's topic, as the topic's root (the entry must be signed by
    /// this node's key, at the topic's next seq).
    pub fn publish(self, entry: Entry) {
        self.0.send(entry);
    }
}

impl OverlayNode {
    /// Starts a node on `endpoint`; what it receives for programs arrives on the inboxes.
    pub fn start(endpoint: Endpoint, config: OverlayConfig) -> (OverlayNode, Inboxes) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (publish_tx, publish_rx) = mpsc::channel(PUBLISH_QUEUE);
        let (direct_tx, direct_rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let (app_tx, app_rx) = mpsc::channel(APP_INBOX);
        let (internal_tx, internal_rx) = mpsc::unbounded_channel();
        let key = endpoint.keypair().clone();
        let peer_id = key.peer_id();
        let signer = EntrySigner::new(key);
        let local_addr = endpoint.local_addr();
        let seed = u64::from_le_bytes(peer_id.to_bytes()[..8].try_into().unwrap_or([7; 8]));
        let driver = Driver {
            core: Overlay::new(
                peer_id,
                config,
                FrameVerifier::default(),
                seed ^ rand::random::<u64>(),
            ),
            endpoint,
            signer,
            conns: HashMap::new(),
            dialing: HashSet::new(),
            locating: HashMap::new(),
            pending: HashMap::new(),
            book: AddressBook::new(),
            learned: Vec::new(),
            subs: HashMap::new(),
            direct_tx,
            app_tx,
            links_wanted: HashMap::new(),
            pinned: HashSet::new(),
            internal_tx,
            start: Instant::now(),
            next_wake: Instant::now(),
            shaper: None,
            out: Vec::new(),
            batch: Vec::with_capacity(INTERNAL_BATCH),
        };
        tokio::spawn(driver.run(rx, publish_rx, internal_rx));
        (
            OverlayNode {
                tx,
                publish_tx,
                peer_id,
                local_addr,
            },
            Inboxes {
                direct: direct_rx,
                app: app_rx,
            },
        )
    }

    /// This node's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// This node's socket address (others dial it).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connects to a peer (bootstrap); returns its PeerId.
    pub async fn connect(&self, addr: SocketAddr) -> Result<PeerId, TransportError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Connect(addr, tx))
            .map_err(|_| TransportError::Closed)?;
        rx.await.map_err(|_| TransportError::Closed)?
    }

    /// Subscribes to `topic`, published by `root` at `root_addr`; frames arrive in order.
    pub fn subscribe(
        &self,
        topic: Topic,
        root: PeerId,
        root_addr: SocketAddr,
    ) -> mpsc::Receiver<Delivery> {
        self.subscribe_with(topic, root, Some(root_addr), None)
    }

    /// Subscribes to `topic` published by `root`, wherever it is: without an address the node asks
    /// its neighbours where `root` can be reached (a one-hop lookup, so some neighbour — usually a
    /// shared bootstrap node — must be connected to it).
    pub fn subscribe_via(
        &self,
        topic: Topic,
        root: PeerId,
        root_addr: Option<SocketAddr>,
    ) -> mpsc::Receiver<Delivery> {
        self.subscribe_with(topic, root, root_addr, None)
    }

    /// [`OverlayNode::subscribe_via`] with the program's rule for whose entries count (`None`:
    /// only `root`'s).
    pub fn subscribe_with(
        &self,
        topic: Topic,
        root: PeerId,
        root_addr: Option<SocketAddr>,
        rule: Option<WriterRule>,
    ) -> mpsc::Receiver<Delivery> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_BUFFER);
        let _ = self.tx.send(Cmd::Subscribe {
            topic,
            root,
            root_addr,
            rule,
            tx,
        });
        rx
    }

    /// Stops receiving `topic` (leaves its tree; the subscription's receiver ends).
    pub fn unsubscribe(&self, topic: Topic) {
        let _ = self.tx.send(Cmd::Unsubscribe(topic));
    }

    /// Publishes `entry` (signed by this node's key) on its log's topic as the topic's root;
    /// false if the node is `PUBLISH_QUEUE` (256) entries behind (or stopped) and it was dropped.
    pub fn publish(&self, entry: Entry) -> bool {
        self.publish_tx.try_send(entry).is_ok()
    }

    /// Reserves a place in the publish queue first, for a caller that must know the entry will
    /// be sent before it commits to it (a stream numbers and logs its frames); the permit can
    /// move to another thread.
    pub fn try_reserve_publish_owned(&self) -> Result<OwnedPublishPermit, PublishRefused> {
        self.publish_tx
            .clone()
            .try_reserve_owned()
            .map(OwnedPublishPermit)
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => PublishRefused::Behind,
                mpsc::error::TrySendError::Closed(_) => PublishRefused::Stopped,
            })
    }

    /// Sends a signed direct message to `dest`, routed through the overlay.
    pub fn send(&self, dest: PeerId, payload: Bytes) {
        let _ = self.tx.send(Cmd::Send { dest, payload });
    }

    /// Limits this node's upload to `bytes_per_s` (a link shaper for tests and load tests;
    /// `None` lifts it).
    pub fn dangerous_throttle(&self, bytes_per_s: Option<u64>) {
        let _ = self.tx.send(Cmd::Throttle(bytes_per_s));
    }

    /// The core's counters.
    pub async fn stats(&self) -> Option<OverlayStats> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Stats(tx)).ok()?;
        rx.await.ok()
    }

    /// How many peers' addresses the node keeps (bounded: 4,096).
    pub async fn known_addresses(&self) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::KnownAddresses(tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or_default()
    }

    /// The peers this node has a connection to now.
    pub async fn neighbours(&self) -> Vec<PeerId> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Neighbours(tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// A link to `peer` for app frames: the connection there is, or a new one (dialed at an
    /// address the node knows — see [`OverlayNode::heard`] — or asks its neighbours for). The
    /// node keeps links it handed out open (up to [`MAX_PINNED_LINKS`] peers).
    pub async fn link(&self, peer: PeerId) -> Result<AppLink, TransportError> {
        let (tx, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Link(peer, tx))
            .map_err(|_| TransportError::Closed)?;
        rx.await.map_err(|_| TransportError::Closed)?
    }

    /// Tells the node where `peer` may be reached (an address a program learned; checked when
    /// dialed, like every address the node hears of).
    pub fn heard(&self, peer: PeerId, addr: SocketAddr) {
        let _ = self.tx.send(Cmd::Heard(peer, addr));
    }

    /// The current parent in `topic`'s tree.
    pub async fn parent(&self, topic: Topic) -> Option<PeerId> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(Cmd::Parent(topic, tx)).ok()?;
        rx.await.ok().flatten()
    }

    /// The current children in `topic`'s tree (a relay has some, a leaf none).
    pub async fn children(&self, topic: Topic) -> Vec<PeerId> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Children(topic, tx)).is_err() {
            return Vec::new();
        }
        rx.await.unwrap_or_default()
    }

    /// Stops the node and closes its connections.
    pub async fn shutdown(&self) {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Shutdown(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// Most queued events handled (and frames batch-verified) at once.
const INTERNAL_BATCH: usize = 64;

/// Messages kept for a peer being dialed.
const MAX_PENDING: usize = 256;
/// How long to wait for a neighbour to say where a peer of unknown address is.
const LOCATE_TIMEOUT: Duration = Duration::from_secs(3);

struct Driver {
    core: Overlay<PeerId, Entry, FrameVerifier>,
    endpoint: Endpoint,
    /// Signs direct messages (each alone); stream entries arrive signed.
    signer: EntrySigner,
    conns: HashMap<PeerId, Connection>,
    dialing: HashSet<PeerId>,
    /// Peers whose address was asked of the neighbours, with when to give up.
    locating: HashMap<PeerId, Instant>,
    pending: HashMap<PeerId, Vec<Message<PeerId, Entry>>>,
    book: AddressBook,
    /// Addresses named by the message being decoded (reused buffer).
    learned: Vec<(PeerId, SocketAddr)>,
    subs: HashMap<Topic, mpsc::Sender<Delivery>>,
    direct_tx: mpsc::Sender<DirectMessage>,
    /// App frames, handed on by each link's reader (which waits when this is full).
    app_tx: mpsc::Sender<DirectMessage>,
    /// Programs waiting for a link to these peers.
    links_wanted: HashMap<PeerId, Vec<oneshot::Sender<Result<AppLink, TransportError>>>>,
    /// Peers whose links programs use: never closed as unneeded.
    pinned: HashSet<PeerId>,
    internal_tx: mpsc::UnboundedSender<Internal>,
    start: Instant,
    next_wake: Instant,
    shaper: Option<Shaper>,
    out: Vec<Action<PeerId, Entry>>,
    /// Link events being handled together (kept to reuse its allocation).
    batch: Vec<Queued>,
}

impl Driver {
    /// Keeps `peer`'s link open for programs (bounded: beyond [`MAX_PINNED_LINKS`] a link may
    /// be closed as unneeded, and a program's next [`OverlayNode::link`] dials again).
    fn pin(&mut self, peer: PeerId) {
        if self.pinned.len() < MAX_PINNED_LINKS {
            self.pinned.insert(peer);
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64 + 1
    }

    fn feed(&mut self, event: Event<PeerId, Entry>) {
        let now = self.now();
        let mut out = std::mem::take(&mut self.out);
        self.core.handle(now, event, &mut out);
        for action in out.drain(..) {
            self.act(action);
        }
        self.out = out;
    }

    async fn run(
        mut self,
        mut cmds: mpsc::UnboundedReceiver<Cmd>,
        mut publishes: mpsc::Receiver<Entry>,
        mut internal: mpsc::UnboundedReceiver<Internal>,
    ) {
        self.feed(Event::Tick);
        // Accepting runs in its own task: `Endpoint::accept` awaits the handshake, and a select!
        // that dropped it half-way would abort the incoming connection.
        let endpoint = self.endpoint.clone();
        let internal_tx = self.internal_tx.clone();
        let acceptor = tokio::spawn(accept_loop(endpoint, internal_tx));
        loop {
            let shaper_wake = self.shaper.as_ref().and_then(Shaper::next_release);
            tokio::select! {
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Shutdown(done)) => {
                        acceptor.abort();
                        self.endpoint.close().await;
                        let _ = done.send(());
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                    None => break,
                },
                Some(entry) = publishes.recv() => self.publish(entry),
                Some(event) = internal.recv() => {
                    // Take what else is queued, so that frames are verified in one batch. The
                    // buffer is the driver's, reused: no allocation per event.
                    let mut batch = std::mem::take(&mut self.batch);
                    self.enqueue(&mut batch, event);
                    for _ in 1..INTERNAL_BATCH {
                        match internal.try_recv() {
                            Ok(e) => self.enqueue(&mut batch, e),
                            Err(_) => break,
                        }
                    }
                    self.handle_batch(&mut batch);
                    self.batch = batch;
                }
                _ = tokio::time::sleep_until(self.next_wake.into()) => {
                    self.measure();
                    self.expire_lookups();
                    self.feed(Event::Tick);
                }
                _ = async {
                    match shaper_wake {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending::<()>().await,
                    }
                } => self.release_shaped(),
            }
        }
        acceptor.abort();
        self.endpoint.close().await;
    }

    fn command(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Connect(addr, done) => {
                let endpoint = self.endpoint.clone();
                let internal = self.internal_tx.clone();
                tokio::spawn(async move {
                    match endpoint.dial_addr(addr, None).await {
                        Ok(conn) => {
                            let _ = done.send(Ok(conn.peer_id()));
                            let _ = internal.send(Internal::Up(conn));
                        }
                        Err(e) => {
                            let _ = done.send(Err(e));
                        }
                    }
                });
            }
            Cmd::Subscribe {
                topic,
                root,
                root_addr,
                rule,
                tx,
            } => {
                if let Some(addr) = root_addr {
                    self.book.configured(root, addr);
                }
                self.core.verifier_mut().set_rule(topic, rule);
                self.subs.insert(topic, tx);
                self.feed(Event::Command(Command::Subscribe { topic, root }));
            }
            Cmd::Unsubscribe(topic) => {
                self.subs.remove(&topic);
                self.core.verifier_mut().set_rule(topic, None);
                self.feed(Event::Command(Command::Unsubscribe { topic }));
            }
            Cmd::Send { dest, payload } => {
                let id = rand::random::<u64>();
                let signed = self.signer.sign_one(&EntryFields {
                    // The destination, signed: a relay cannot turn the message to another peer.
                    group: direct_group(&dest),
                    ..EntryFields::new(DIRECT_LOG, id, unix_time_us(), payload)
                });
                match signed {
                    Ok(entry) => self.feed(Event::Command(Command::SendDirect {
                        dest,
                        id,
                        payload: entry,
                    })),
                    Err(e) => tracing::debug!(%dest, "direct message not signed: {e}"),
                }
            }
            Cmd::Throttle(rate) => {
                self.shaper = rate.map(Shaper::new);
            }
            Cmd::Stats(tx) => {
                let _ = tx.send(self.core.stats().clone());
            }
            Cmd::KnownAddresses(tx) => {
                let _ = tx.send(self.book.len());
            }
            Cmd::Link(peer, tx) => {
                if let Some(conn) = self.conns.get(&peer).cloned() {
                    self.pin(peer);
                    let _ = tx.send(Ok(AppLink { conn }));
                } else if peer == self.core.me() {
                    let _ = tx.send(Err(TransportError::Closed));
                } else {
                    let waiting = self.links_wanted.entry(peer).or_default();
                    if waiting.len() < MAX_PENDING {
                        waiting.push(tx);
                    }
                    self.dial(peer);
                }
            }
            Cmd::Heard(peer, addr) => self.book.heard(peer, addr),
            Cmd::Neighbours(tx) => {
                let _ = tx.send(self.conns.keys().copied().collect());
            }
            Cmd::Parent(topic, tx) => {
                let _ = tx.send(self.core.parent(&topic));
            }
            Cmd::Children(topic, tx) => {
                let _ = tx.send(self.core.children(&topic).to_vec());
            }
            Cmd::Shutdown(_) => {}
        }
    }

    /// Hands an entry this node signed to the core, as the root of its log's topic.
    fn publish(&mut self, entry: Entry) {
        self.feed(Event::Command(Command::Publish {
            topic: entry.log_id().into(),
            seq: entry.seq(),
            payload: entry,
        }));
    }

    /// Decodes a received frame on its way into the batch (a bad one is logged and dropped).
    fn enqueue(&mut self, batch: &mut Vec<Queued>, event: Internal) {
        match event {
            Internal::Frame(from, received) => {
                match control::decode(received.into_frame(), &mut self.learned) {
                    Ok(d) => {
                        for (peer, addr) in self.learned.drain(..) {
                            self.book.heard(peer, addr);
                        }
                        batch.push(Queued::Message(from, d))
                    }
                    Err(e) => tracing::debug!(%from, "bad overlay message: {e}"),
                }
            }
            other => batch.push(Queued::Other(other)),
        }
    }

    /// Batch-verifies the data frames among `batch`, then handles each event in order.
    fn handle_batch(&mut self, batch: &mut Vec<Queued>) {
        let frames = batch.iter().filter_map(|q| match q {
            Queued::Message(_, Control::Message(Message::Frame { payload, .. })) => Some(payload),
            _ => None,
        });
        self.core.verifier_mut().verify_batch(frames);
        for q in batch.drain(..) {
            match q {
                Queued::Message(from, decoded) => self.decoded(from, decoded),
                Queued::Other(event) => self.internal(event),
            }
        }
    }

    fn decoded(&mut self, from: PeerId, decoded: Control) {
        match decoded {
            Control::Message(message) => {
                if !matches!(message, Message::Frame { .. }) {
                    tracing::trace!(me = %self.core.me(), %from, ?message, "control");
                }
                self.feed(Event::Received { from, message })
            }
            Control::Locate(peer) => {
                if peer != from && self.book.peek(&peer).is_some() {
                    let answer = control::encode_lookup(true, &peer, |p| self.book.peek(p));
                    self.write(from, Lane::Control, &answer);
                }
            }
            Control::Located(peer) => {
                if self.locating.remove(&peer).is_some() {
                    self.dial(peer);
                }
            }
        }
    }

    fn internal(&mut self, event: Internal) {
        match event {
            Internal::Up(conn) => self.register(conn),
            Internal::DialFailed(peer) => {
                self.dialing.remove(&peer);
                self.book.dial_failed(&peer);
                self.pending.remove(&peer);
                for waiting in self.links_wanted.remove(&peer).unwrap_or_default() {
                    let _ = waiting.send(Err(TransportError::Unreachable(peer)));
                }
                self.feed(Event::LinkDown(peer));
            }
            // Frames are decoded as they are queued (`enqueue`).
            Internal::Frame(..) => {}
            Internal::Down(peer, id) => {
                if self.conns.get(&peer).is_some_and(|c| conn_id(c) == id) {
                    self.conns.remove(&peer);
                    self.feed(Event::LinkDown(peer));
                }
            }
        }
    }

    fn act(&mut self, action: Action<PeerId, Entry>) {
        match action {
            Action::Send { to, message } => self.transmit(to, message),
            Action::Deliver {
                topic,
                seq,
                payload,
            } => {
                if let Some(tx) = self.subs.get(&topic) {
                    // A full subscription drops frames rather than stalling the node.
                    let _ = tx.try_send(Delivery {
                        seq,
                        frame: payload,
                    });
                }
            }
            Action::DeliverDirect { origin, payload } => {
                let _ = self.direct_tx.try_send(DirectMessage {
                    origin,
                    payload: payload.stored_payload().clone(),
                    credit: None,
                });
            }
            Action::Connect(peer) => self.dial(peer),
            Action::Disconnect(peer) if self.pinned.contains(&peer) => {}
            Action::Disconnect(peer) => {
                if let Some(c) = self.conns.remove(&peer) {
                    c.close("not needed");
                }
            }
            Action::WakeAt(at_us) => {
                self.next_wake = self.start + Duration::from_micros(at_us.saturating_sub(1));
            }
            Action::Attached {
                topic,
                parent,
                depth,
                reattach,
                ..
            } => {
                tracing::debug!(?topic, %parent, depth, reattach, "attached");
            }
            Action::Skipped { from, to, .. } => tracing::debug!(from, to, "frames skipped"),
        }
    }

    fn transmit(&mut self, to: PeerId, message: Message<PeerId, Entry>) {
        if !self.conns.contains_key(&to) {
            let queue = self.pending.entry(to).or_default();
            if queue.len() < MAX_PENDING {
                queue.push(message);
            }
            self.dial(to);
            return;
        }
        let lane = match message {
            Message::Frame { .. } => Lane::High,
            _ => Lane::Control,
        };
        let frame = control::encode(&message, |p| self.book.peek(p));
        match &mut self.shaper {
            Some(shaper) => shaper.push(to, lane, frame),
            None => self.write(to, lane, &frame),
        }
    }

    fn write(&mut self, to: PeerId, lane: Lane, frame: &Frame) {
        if let Some(conn) = self.conns.get(&to) {
            match conn.try_send(lane, frame) {
                Ok(()) | Err(SendError::Full) => {}
                Err(e) => tracing::debug!(%to, "send failed: {e}"),
            }
        }
    }

    fn release_shaped(&mut self) {
        let ready = self
            .shaper
            .as_mut()
            .map(Shaper::release)
            .unwrap_or_default();
        for (to, lane, frame) in ready {
            self.write(to, lane, &frame);
        }
    }
}
