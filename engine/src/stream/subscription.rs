//! The subscriber's side: a task that turns the tree's deliveries into an ordered stream of
//! frames for the application, following the `Playout` rules, optionally storing each entry in
//! a local copy of the log.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bytes::Bytes;
use starling_net::crypto::{CryptoError, Opener};
use starling_net::entry::EntryError;
use starling_net::overlay::{Delivery, OverlayNode};
use tokio::sync::mpsc;

use super::StreamAddress;
use super::StreamError;
use super::delegation::StreamWriters;
use super::playout::{Item, Output, Playout, PlayoutConfig};
use super::record::{CatchUp, Record, Sequenced};
use crate::log::{Entry, Log, LogId};

/// Settings of a subscription.
#[derive(Clone, Debug)]
pub struct SubscribeOptions {
    /// Where the publisher (the owner, or [`SubscribeOptions::publisher`]) listens, if known;
    /// otherwise neighbours are asked.
    pub owner_addr: Option<SocketAddr>,
    /// The device publishing the stream for its owner, when that is not the owner itself: the
    /// root of the stream's tree. Needs [`SubscribeOptions::delegates`]. Default `None`.
    pub publisher: Option<starling_net::PeerId>,
    /// The owner's trust graph (rooted at the owner's key): frames signed by a key it trusts at
    /// the frame's clock count as the owner's (any scope; a clock more than
    /// [`BACKDATE_LIMIT_US`](super::delegation::BACKDATE_LIMIT_US) old is judged as that old).
    /// Wait for [`Trust::wait_caught_up`](crate::trust::Trust::wait_caught_up) first: until
    /// then delegated frames are refused. Default `None`: the owner's signatures only.
    pub delegates: Option<crate::trust::Trust>,
    /// Frames buffered for the application; when it falls further behind the subscription
    /// skips to the next keyframe. Default 128 (4 s at 30 fps).
    pub buffer_frames: usize,
    /// A late joiner fetches the frames since the latest keyframe from the owner's window
    /// (else it waits for the next keyframe). Default on.
    pub catch_up: bool,
    /// How long a catch-up may take before the subscriber gives up on it. Default 2 s.
    pub catch_up_timeout: Duration,
    /// Store every entry in this peer's own copy of the log (verifying its signature; costs
    /// one signature check per frame). Default off.
    pub persist: bool,
}

impl Default for SubscribeOptions {
    fn default() -> Self {
        SubscribeOptions {
            owner_addr: None,
            publisher: None,
            delegates: None,
            buffer_frames: 128,
            catch_up: true,
            catch_up_timeout: Duration::from_secs(2),
            persist: false,
        }
    }
}

/// A verified frame of a stream, in order.
#[derive(Clone, Debug)]
pub struct StreamFrame {
    /// Sequence number in the stream: the publisher's session and the frame's index in it
    /// (`starling_net::entry::session::{session_of, index_of}`).
    pub seq: u64,
    /// Decodable on its own.
    pub keyframe: bool,
    /// The media clock, µs.
    pub media_ts_us: u64,
    /// When the owner sent it, µs since the epoch.
    pub published_us: u64,
    /// Frames before this one that were not delivered (lost, or skipped to reach a keyframe).
    pub skipped: u64,
    /// The media bytes (shared with the received packet, not copied).
    pub data: Bytes,
    record: Record,
}

impl StreamFrame {
    /// The signed log entry this frame was published as.
    pub fn entry(&self) -> &Entry {
        self.record.entry()
    }
}

/// Counters of a subscription.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SubscriptionStats {
    /// Frames received from the tree.
    pub received: u64,
    /// Frames handed to the application.
    pub delivered: u64,
    /// Frames skipped (the sum of every frame's `skipped`).
    pub skipped: u64,
    /// Records that failed to parse or verify (dropped).
    pub invalid: u64,
    /// Encrypted frames this peer could not open (dropped): not a receiver, or the group
    /// key was not seen yet (a joiner reads from the next frame that wraps it).
    pub unreadable: u64,
    /// Catch-up requests sent.
    pub catch_ups: u64,
}

#[derive(Debug, Default)]
struct Counters {
    received: AtomicU64,
    delivered: AtomicU64,
    skipped: AtomicU64,
    invalid: AtomicU64,
    unreadable: AtomicU64,
    /// Frames parked until their group key is seen (counted as unreadable meanwhile).
    parked: AtomicU64,
    catch_ups: AtomicU64,
}

/// Where the peer's direct-message dispatcher sends catch-up replies, by topic, with the
/// stream's publisher: a reply from anyone else, or from a publisher no longer trusted, is
/// refused (the records would not be the owner's).
#[derive(Debug, Default)]
pub(crate) struct CatchUpRoutes {
    routes: Mutex<RouteTable>,
}

/// Stream log → where its catch-up replies go.
type RouteTable = HashMap<LogId, Route>;

#[derive(Debug)]
struct Route {
    publisher: starling_net::PeerId,
    writers: StreamWriters,
    tx: mpsc::Sender<Vec<Sequenced>>,
}

impl CatchUpRoutes {
    fn insert(&self, topic: LogId, route: Route) {
        self.lock().insert(topic, route);
    }

    fn remove(&self, topic: &LogId) {
        self.lock().remove(topic);
    }

    /// The subscription waiting for `topic`'s catch-up, if `origin` is its publisher and may
    /// write the stream.
    pub(crate) fn route(
        &self,
        topic: &LogId,
        origin: &starling_net::PeerId,
    ) -> Option<mpsc::Sender<Vec<Sequenced>>> {
        self.lock()
            .get(topic)
            .filter(|r| r.publisher == *origin && r.writers.allows_peer(origin))
            .map(|r| r.tx.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouteTable> {
        self.routes.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An open subscription. Dropping it leaves the stream's tree.
#[derive(Debug)]
pub struct Subscription {
    address: StreamAddress,
    frames: mpsc::Receiver<StreamFrame>,
    counters: Arc<Counters>,
    task: tokio::task::JoinHandle<()>,
    node: OverlayNode,
    routes: Arc<CatchUpRoutes>,
}

pub(crate) struct SubscriptionParts {
    pub(crate) address: StreamAddress,
    pub(crate) node: OverlayNode,
    pub(crate) routes: Arc<CatchUpRoutes>,
    pub(crate) log: Option<Log>,
    pub(crate) options: SubscribeOptions,
    /// The root of the stream's tree: its owner or a delegated device.
    pub(crate) publisher: starling_net::PeerId,
    /// Whose frames count.
    pub(crate) writers: StreamWriters,
    /// Opens encrypted frames sent to this peer.
    pub(crate) opener: Arc<Opener>,
}

impl Subscription {
    pub(crate) fn start(parts: SubscriptionParts) -> Subscription {
        let SubscriptionParts {
            address,
            node,
            routes,
            log,
            options,
            opener,
            publisher,
            writers,
        } = parts;
        let topic = address.log_id();
        let (catch_tx, catch_rx) = mpsc::channel(16);
        // The owner's own stream keeps the overlay's default rule (the root's key).
        let rule = (publisher != address.owner()).then(|| writers.rule());
        routes.insert(
            topic,
            Route {
                publisher,
                writers,
                tx: catch_tx,
            },
        );
        let deliveries = node.subscribe_with(topic.into(), publisher, options.owner_addr, rule);
        let (app_tx, frames) = mpsc::channel(options.buffer_frames.max(1));
        let counters = Arc::new(Counters::default());
        let task = Task {
            playout: Playout::new(PlayoutConfig {
                catch_up: options.catch_up,
                catch_up_timeout_us: options.catch_up_timeout.as_micros() as u64,
                max_pending: options.buffer_frames.max(1) * 4,
            }),
            node: node.clone(),
            publisher,
            topic,
            log,
            opener,
            parked: VecDeque::new(),
            app: app_tx,
            counters: counters.clone(),
            start: Instant::now(),
        };
        Subscription {
            address,
            frames,
            counters,
            task: tokio::spawn(task.run(deliveries, catch_rx)),
            node,
            routes,
        }
    }

    /// The stream's address.
    pub fn address(&self) -> &StreamAddress {
        &self.address
    }

    /// Waits until this peer has a parent in the stream's tree (frames flow from then on);
    /// false if that did not happen within `limit`.
    pub async fn wait_attached(&self, limit: Duration) -> bool {
        let topic = self.address.log_id();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if self.node.parent(topic.into()).await.is_some() {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The next frame; `None` once the peer is closed.
    pub async fn recv(&mut self) -> Option<StreamFrame> {
        self.frames.recv().await
    }

    /// The counters so far.
    pub fn stats(&self) -> SubscriptionStats {
        let c = &self.counters;
        SubscriptionStats {
            received: c.received.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            skipped: c.skipped.load(Ordering::Relaxed),
            invalid: c.invalid.load(Ordering::Relaxed),
            unreadable: c.unreadable.load(Ordering::Relaxed) + c.parked.load(Ordering::Relaxed),
            catch_ups: c.catch_ups.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.task.abort();
        let topic = self.address.log_id();
        self.node.unsubscribe(topic.into());
        self.routes.remove(&topic);
    }
}

struct Task {
    playout: Playout,
    node: OverlayNode,
    /// The root of the tree, who answers catch-ups.
    publisher: starling_net::PeerId,
    topic: LogId,
    log: Option<Log>,
    opener: Arc<Opener>,
    /// Encrypted frames whose group key this peer has not seen yet: a live frame can overtake
    /// the catch-up that carries the keyframe wrapping its key. Retried whenever a frame
    /// opens; at most [`MAX_PARKED`] frames and [`MAX_PARKED_BYTES`], the oldest given up
    /// first.
    parked: VecDeque<(u64, u64, Entry)>,
    app: mpsc::Sender<StreamFrame>,
    counters: Arc<Counters>,
    start: Instant,
}

/// Most frames, and bytes, a subscription keeps waiting for their group key.
const MAX_PARKED: usize = 256;
const MAX_PARKED_BYTES: usize = 16 << 20;

/// Whether a record failed only because its group key has not been seen here yet.
fn key_not_seen(record: &Result<Record, StreamError>) -> bool {
    matches!(
        record,
        Err(StreamError::Entry(EntryError::Crypto(
            CryptoError::UnknownKey(_)
        )))
    )
}

impl Task {
    fn now(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }

    async fn run(
        mut self,
        mut deliveries: mpsc::Receiver<Delivery>,
        mut catch_ups: mpsc::Receiver<Vec<Sequenced>>,
    ) {
        let mut out = Vec::new();
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                d = deliveries.recv() => {
                    let Some(d) = d else { return };
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                    let seq = d.seq;
                    let published_us = d.frame.wall_us();
                    // Only an encrypted frame may need keeping for later: a plain one moves
                    // into its record without a clone.
                    let kept = d.frame.is_encrypted().then(|| d.frame.clone());
                    let record = Record::from_entry(d.frame, &self.topic, Some(&self.opener));
                    if let (true, Some(frame)) = (key_not_seen(&record), kept) {
                        self.park(seq, published_us, frame);
                    } else if let Some(item) = self.item(seq, published_us, record) {
                        let now = self.now();
                        self.playout.live(item, now, &mut out);
                        self.unpark(&mut out);
                    }
                }
                Some(records) = catch_ups.recv() => {
                    let mut items = Vec::with_capacity(records.len());
                    for r in records {
                        let record = catch_up_record(&r, &self.topic, &self.opener);
                        if key_not_seen(&record) {
                            if let Ok(entry) = Entry::from_bytes(r.record.clone()) {
                                self.park(r.seq, r.published_us, entry);
                            }
                        } else if let Some(item) = self.item(r.seq, r.published_us, record) {
                            items.push(item);
                        }
                    }
                    self.playout.catch_up(items, &mut out);
                    self.unpark(&mut out);
                }
                _ = tick.tick() => {
                    let now = self.now();
                    self.playout.tick(now, &mut out);
                }
            }
            if !self.act(&mut out) {
                return;
            }
        }
    }

    /// Keeps a frame until its group key is seen (the oldest is given up past the bound).
    fn park(&mut self, seq: u64, published_us: u64, entry: Entry) {
        self.parked.push_back((seq, published_us, entry));
        let bytes =
            |p: &VecDeque<(u64, u64, Entry)>| p.iter().map(|(_, _, e)| e.size()).sum::<usize>();
        while self.parked.len() > MAX_PARKED || bytes(&self.parked) > MAX_PARKED_BYTES {
            self.parked.pop_front();
            self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
        }
        self.counters
            .parked
            .store(self.parked.len() as u64, Ordering::Relaxed);
    }

    /// Tries the parked frames again (a frame just opened: its key may be theirs).
    fn unpark(&mut self, out: &mut Vec<Output>) {
        if self.parked.is_empty() {
            return;
        }
        let now = self.now();
        for (seq, published_us, entry) in std::mem::take(&mut self.parked) {
            let record = Record::from_entry(entry.clone(), &self.topic, Some(&self.opener));
            if key_not_seen(&record) {
                self.parked.push_back((seq, published_us, entry));
            } else if let Some(item) = self.item(seq, published_us, record) {
                self.playout.live(item, now, out);
            }
        }
        self.counters
            .parked
            .store(self.parked.len() as u64, Ordering::Relaxed);
    }

    fn item(
        &self,
        seq: u64,
        published_us: u64,
        record: Result<Record, StreamError>,
    ) -> Option<Item> {
        match record {
            Ok(record) => Some(Item {
                seq,
                published_us,
                record,
            }),
            Err(StreamError::Entry(EntryError::Crypto(e))) => {
                tracing::debug!(seq, "encrypted frame not readable here: {e}");
                self.counters.unreadable.fetch_add(1, Ordering::Relaxed);
                None
            }
            Err(e) => {
                tracing::debug!(seq, "bad stream record: {e}");
                self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Carries out the playout's outputs; false once the application has gone.
    fn act(&mut self, out: &mut Vec<Output>) -> bool {
        let mut overflowed = false;
        for o in out.drain(..) {
            match o {
                Output::RequestCatchUp { from, to } => {
                    self.counters.catch_ups.fetch_add(1, Ordering::Relaxed);
                    self.node
                        .send(self.publisher, CatchUp::request(&self.topic, from, to));
                }
                Output::Play { .. } if overflowed => self.playout.discarded(),
                Output::Play {
                    item,
                    skipped,
                    prev,
                } => {
                    if let Some(log) = &mut self.log
                        && let Err(e) = persist(log, item.record.entry())
                    {
                        tracing::debug!(seq = item.seq, "entry not stored: {e}");
                        self.counters.invalid.fetch_add(1, Ordering::Relaxed);
                    }
                    let frame = StreamFrame {
                        seq: item.seq,
                        keyframe: item.record.meta.keyframe,
                        media_ts_us: item.record.meta.media_ts_us,
                        published_us: item.published_us,
                        skipped,
                        data: item.record.data.clone(),
                        record: item.record,
                    };
                    match self.app.try_send(frame) {
                        Ok(()) => {
                            self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                            self.counters.skipped.fetch_add(skipped, Ordering::Relaxed);
                        }
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            self.playout.overflow(prev, skipped);
                            overflowed = true;
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => return false,
                    }
                }
            }
        }
        true
    }
}

/// A catch-up entry, checked to belong to the stream and to carry the seq it is filed under.
fn catch_up_record(r: &Sequenced, topic: &LogId, opener: &Opener) -> Result<Record, StreamError> {
    let record = Record::parse(&r.record, topic, Some(opener))?;
    match record.entry().seq() {
        seq if seq == r.seq => Ok(record),
        actual => Err(StreamError::CatchUpSeqMismatch {
            expected: r.seq,
            actual,
        }),
    }
}

/// Stores a received entry in the local copy of the log (signature checked by the join).
fn persist(log: &mut Log, entry: &Entry) -> Result<(), StreamError> {
    let report = log.join(vec![entry.clone()])?;
    match report.rejected.into_iter().next() {
        Some((_, e)) => Err(e.into()),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opener() -> Opener {
        Opener::new(&Keypair::generate(KeyType::Ed25519))
    }
    use starling_net::{KeyType, Keypair};

    #[test]
    fn a_catch_up_entry_must_carry_the_seq_and_topic_it_is_filed_under() {
        let meta = super::super::record::RecordMeta {
            keyframe: true,
            media_ts_us: 0,
            keyframe_seq: 7,
        }
        .encode();
        let entry = starling_net::entry::EntrySigner::new(Keypair::generate(KeyType::Ed25519))
            .sign_one(&starling_net::entry::EntryFields {
                meta: &meta,
                ..starling_net::entry::EntryFields::new(
                    LogId([5; 32]),
                    7,
                    0,
                    Bytes::from_static(b"f"),
                )
            })
            .unwrap();
        let filed = |seq| Sequenced {
            seq,
            published_us: 0,
            record: entry.to_bytes(),
        };
        assert!(catch_up_record(&filed(7), &LogId([5; 32]), &opener()).is_ok());
        assert!(matches!(
            catch_up_record(&filed(8), &LogId([5; 32]), &opener()),
            Err(StreamError::CatchUpSeqMismatch {
                expected: 8,
                actual: 7
            })
        ));
        assert!(matches!(
            catch_up_record(&filed(7), &LogId([6; 32]), &opener()),
            Err(StreamError::WrongLog)
        ));
    }

    #[test]
    fn catch_up_replies_are_taken_only_from_the_owner() {
        let routes = CatchUpRoutes::default();
        let owner_key = Keypair::generate(KeyType::Ed25519);
        let owner = owner_key.peer_id();
        let stranger = Keypair::generate(KeyType::Ed25519).peer_id();
        let (tx, _rx) = mpsc::channel(1);
        let route = |publisher, tx| Route {
            publisher,
            writers: StreamWriters::new(*owner_key.public(), None),
            tx,
        };
        routes.insert(LogId([1; 32]), route(owner, tx.clone()));
        assert!(routes.route(&LogId([1; 32]), &owner).is_some());
        assert!(
            routes.route(&LogId([1; 32]), &stranger).is_none(),
            "forged catch-up refused"
        );
        assert!(routes.route(&LogId([2; 32]), &owner).is_none());
        routes.remove(&LogId([1; 32]));
        assert!(routes.route(&LogId([1; 32]), &owner).is_none());
        // A publisher other than the owner, with no graph trusting it: refused too.
        routes.insert(LogId([1; 32]), route(stranger, tx));
        assert!(routes.route(&LogId([1; 32]), &stranger).is_none());
    }
}
