//! A link to one peer: lanes out (one writer task per lane), readers in, bounded both ways.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn::{ReadError, VarInt};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, broadcast, mpsc, oneshot};

use super::limits::ConnectionSlot;
use super::windows::{Bounds, WindowLease};
use super::{ConnectionEvent, SendError, TransportConfig, TransportError};
use crate::identity::PeerId;
use crate::wire::{Frame, FrameDecoder, Lane, StreamHeader, WireError, encode_frame};

/// Who opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// The remote dialed us.
    Inbound,
    /// We dialed the remote.
    Outbound,
}

/// Counters of one link, readable at any time.
#[derive(Debug, Default)]
pub struct LinkCounters {
    /// Frames handed to quinn.
    pub frames_sent: AtomicU64,
    /// Bytes handed to quinn (length prefixes included).
    pub bytes_sent: AtomicU64,
    /// Frames received and decoded.
    pub frames_received: AtomicU64,
    /// Bytes of those frames.
    pub bytes_received: AtomicU64,
    /// Streams closed for a protocol violation.
    pub protocol_errors: AtomicU64,
}

/// A frame received on a lane. Holding it holds its share of the link's incoming byte budget;
/// drop it (or take the frame with [`Received::into_frame`]) to let the readers go on.
#[derive(Debug)]
pub struct Received {
    /// The lane it came on.
    pub lane: Lane,
    /// The frame.
    pub frame: Frame,
    _credit: OwnedSemaphorePermit,
    _shared_credit: OwnedSemaphorePermit,
}

impl Received {
    /// The frame, releasing its incoming credit.
    pub fn into_frame(self) -> Frame {
        self.frame
    }

    /// The frame and its incoming credit, held for as long as the [`Credit`] lives: a reader
    /// that keeps frames for later holds its link (and the endpoint's budget) back until it has
    /// dealt with them.
    pub fn into_parts(self) -> (Frame, Credit) {
        (
            self.frame,
            Credit {
                _link: self._credit,
                _endpoint: self._shared_credit,
            },
        )
    }
}

/// A received frame's place in its link's and its endpoint's receive budgets, given back on
/// drop.
#[derive(Debug)]
pub struct Credit {
    _link: OwnedSemaphorePermit,
    _endpoint: OwnedSemaphorePermit,
}

#[derive(Debug)]
struct Outgoing {
    parts: [Bytes; 2],
    len: usize,
}

impl Outgoing {
    fn new(frame: &Frame) -> Outgoing {
        let parts = match frame {
            Frame::Entry(d) => d.wire_parts(),
            Frame::App(body) => crate::wire::app_parts(body),
            other => [encode_frame(other), Bytes::new()],
        };
        let len = parts[0].len() + parts[1].len();
        Outgoing { parts, len }
    }
}

type Inbox = mpsc::UnboundedReceiver<Result<Received, WireError>>;

/// An authenticated connection to one peer. Cheap to clone; all clones share the link.
#[derive(Clone, Debug)]
pub struct Connection {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    quinn: quinn::Connection,
    peer: PeerId,
    direction: Direction,
    config: Arc<TransportConfig>,
    lanes: [mpsc::UnboundedSender<Outgoing>; 3],
    /// Outgoing bytes not yet written to quinn; permits are returned by the lane writers.
    out_credit: Arc<Semaphore>,
    inbox: tokio::sync::Mutex<Inbox>,
    pings: Mutex<HashMap<u64, oneshot::Sender<()>>>,
    counters: LinkCounters,
    /// This link's receive window and its place in the budget (given back when the link goes).
    window: WindowLease,
    /// An inbound link's place under the endpoint's connection limits, given back when the
    /// connection closes (handles to a closed link may live on).
    slot: Mutex<Option<ConnectionSlot>>,
}

impl Drop for Shared {
    /// The last handle is gone: close the connection rather than leave it to the idle timeout
    /// (background tasks hold only weak references).
    fn drop(&mut self) {
        self.quinn.close(VarInt::from_u32(0), b"connection dropped");
    }
}

impl Connection {
    pub(super) fn start(
        quinn: quinn::Connection,
        peer: PeerId,
        direction: Direction,
        config: Arc<TransportConfig>,
        events: broadcast::Sender<ConnectionEvent>,
        slot: Option<ConnectionSlot>,
    ) -> Connection {
        let out_credit = Arc::new(Semaphore::new(config.max_in_flight_bytes));
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        let mut lane_rx = Vec::with_capacity(3);
        let lanes = Lane::ALL.map(|_| {
            let (tx, rx) = mpsc::unbounded_channel();
            lane_rx.push(rx);
            tx
        });
        let window = config.incoming_budget.windows().register(
            &quinn,
            Bounds {
                min: config.min_receive_window,
                max: config.receive_window,
            },
        );
        let shared = Arc::new(Shared {
            slot: Mutex::new(slot),
            window,
            quinn,
            peer,
            direction,
            config,
            lanes,
            out_credit,
            inbox: tokio::sync::Mutex::new(in_rx),
            pings: Mutex::new(HashMap::new()),
            counters: LinkCounters::default(),
        });
        for (lane, rx) in Lane::ALL.into_iter().zip(lane_rx) {
            tokio::spawn(lane_writer(Arc::downgrade(&shared), lane, rx));
        }
        let in_credit = Arc::new(Semaphore::new(shared.config.max_incoming_bytes));
        tokio::spawn(accept_streams(
            Arc::downgrade(&shared),
            shared.quinn.clone(),
            in_tx,
            in_credit,
        ));
        tokio::spawn(watch_close(shared.clone(), events));
        Connection { shared }
    }

    /// The remote's authenticated PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.shared.peer
    }

    /// Who dialed.
    pub fn direction(&self) -> Direction {
        self.shared.direction
    }

    /// The remote's socket address.
    pub fn remote_addr(&self) -> SocketAddr {
        self.shared.quinn.remote_address()
    }

    /// quinn's smoothed round-trip time estimate.
    pub fn rtt(&self) -> Duration {
        self.shared.quinn.rtt()
    }

    /// This link's counters.
    pub fn counters(&self) -> &LinkCounters {
        &self.shared.counters
    }

    /// Bytes queued on this link and not yet handed to quinn.
    pub fn queued_bytes(&self) -> usize {
        self.shared.config.max_in_flight_bytes - self.shared.out_credit.available_permits()
    }

    /// quinn's statistics (congestion window, lost packets, …).
    pub fn quinn_stats(&self) -> quinn::ConnectionStats {
        self.shared.quinn.stats()
    }

    /// The quinn connection underneath, for tests that must misbehave on purpose; writing on
    /// it bypasses framing and limits.
    pub fn dangerous_quinn_connection(&self) -> &quinn::Connection {
        &self.shared.quinn
    }

    fn admit(&self, frame: &Frame) -> Result<Outgoing, SendError> {
        let out = Outgoing::new(frame);
        let max = self
            .shared
            .config
            .max_in_flight_bytes
            .min(self.shared.config.max_frame_len + 5);
        if out.len > max {
            return Err(SendError::TooLarge { len: out.len, max });
        }
        Ok(out)
    }

    fn enqueue(&self, lane: Lane, out: Outgoing) -> Result<(), SendError> {
        self.shared.lanes[lane as usize]
            .send(out)
            .map_err(|_| SendError::Closed)
    }

    /// Queues a frame, waiting while the link's in-flight budget is used up.
    pub async fn send(&self, lane: Lane, frame: &Frame) -> Result<(), SendError> {
        let out = self.admit(frame)?;
        self.shared
            .out_credit
            .acquire_many(out.len as u32)
            .await
            .map_err(|_| SendError::Closed)?
            .forget();
        self.enqueue(lane, out)
    }

    /// Queues a frame now or reports [`SendError::Full`]: the caller decides what to drop.
    pub fn try_send(&self, lane: Lane, frame: &Frame) -> Result<(), SendError> {
        let out = self.admit(frame)?;
        match self.shared.out_credit.try_acquire_many(out.len as u32) {
            Ok(permit) => permit.forget(),
            Err(tokio::sync::TryAcquireError::NoPermits) => return Err(SendError::Full),
            Err(tokio::sync::TryAcquireError::Closed) => return Err(SendError::Closed),
        }
        self.enqueue(lane, out)
    }

    /// The next received frame (or stream error); `None` once the connection is gone.
    pub async fn recv(&self) -> Option<Result<Received, WireError>> {
        self.shared.inbox.lock().await.recv().await
    }

    /// Waits for at least one frame, then takes up to `limit` (for batch verification).
    pub async fn recv_many(
        &self,
        buf: &mut Vec<Result<Received, WireError>>,
        limit: usize,
    ) -> usize {
        self.shared.inbox.lock().await.recv_many(buf, limit).await
    }

    /// Measures one application-level round trip on the control lane.
    pub async fn ping(&self) -> Result<Duration, TransportError> {
        self.ping_on(Lane::Control).await
    }

    /// A ping sent on `lane`: its pong comes back only after the remote has read everything
    /// queued on that lane before it, so it doubles as a delivery barrier.
    pub async fn ping_on(&self, lane: Lane) -> Result<Duration, TransportError> {
        let nonce = rand::random::<u64>();
        let (tx, rx) = oneshot::channel();
        lock(&self.shared.pings).insert(nonce, tx);
        let start = Instant::now();
        self.send(lane, &Frame::Ping(nonce))
            .await
            .map_err(|_| TransportError::Closed)?;
        match tokio::time::timeout(PING_TIMEOUT, rx).await {
            Ok(Ok(())) => Ok(start.elapsed()),
            Ok(Err(_)) => Err(TransportError::Closed),
            Err(_) => {
                lock(&self.shared.pings).remove(&nonce);
                Err(TransportError::PingTimeout)
            }
        }
    }

    /// Closes the connection gracefully with a reason the peer sees.
    pub fn close(&self, reason: &str) {
        self.shared
            .quinn
            .close(VarInt::from_u32(0), reason.as_bytes());
    }

    /// Waits until the connection is closed and returns why.
    pub async fn closed(&self) -> quinn::ConnectionError {
        self.shared.quinn.closed().await
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding this lock cannot leave the map inconsistent; keep going.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// How long a ping waits for its pong.
const PING_TIMEOUT: Duration = Duration::from_secs(30);

/// Most frames coalesced into one quinn write.
const WRITE_BATCH: usize = 64;
/// Runs of parts up to this size are copied into one contiguous chunk; larger parts
/// (payloads) go to quinn as they are. quinn keeps every chunk of unacknowledged stream data
/// and walks them per packet: with 1 KiB frames (two parts each: the framed entry head and the
/// payload) that walk was the top of the profile (~16 % of CPU in `write_stream_frames`), and
/// copying a small part costs less than tracking it. Each run gets an allocation of exactly its
/// size (a fixed 64 KiB block per lane cost ~1 MiB per peer in a 200-peer swarm).
const COALESCE_BELOW: usize = 2048;

/// Moves `parts` into `chunks`, joining each run of two or more small parts into one chunk.
fn coalesce(parts: &mut Vec<Bytes>, chunks: &mut Vec<Bytes>) {
    let mut run_start = chunks.len();
    let mut run_bytes = 0;
    for part in parts.drain(..) {
        if part.is_empty() {
            continue;
        }
        if part.len() <= COALESCE_BELOW {
            run_bytes += part.len();
            chunks.push(part);
            continue;
        }
        join_run(chunks, run_start, run_bytes);
        chunks.push(part);
        run_start = chunks.len();
        run_bytes = 0;
    }
    join_run(chunks, run_start, run_bytes);
}

/// Replaces `chunks[from..]` (small parts, `bytes` in all) by one chunk, if there are several.
fn join_run(chunks: &mut Vec<Bytes>, from: usize, bytes: usize) {
    if chunks.len() - from < 2 {
        return;
    }
    let mut joined = BytesMut::with_capacity(bytes);
    for part in chunks.drain(from..) {
        joined.extend_from_slice(&part);
    }
    chunks.push(joined.freeze());
}

/// Owns one lane's stream: opens it with its header, then writes queued frames in batches with
/// quinn's chunk writes (no copy) and returns their bytes to the link's budget.
async fn lane_writer(
    shared: std::sync::Weak<Shared>,
    lane: Lane,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
) {
    let mut chunks: Vec<Bytes> = Vec::with_capacity(2 * WRITE_BATCH + 1);
    let mut parts: Vec<Bytes> = Vec::with_capacity(2 * WRITE_BATCH);
    let Some(first) = rx.recv().await else { return };
    let Some((quinn, credit)) = shared
        .upgrade()
        .map(|s| (s.quinn.clone(), s.out_credit.clone()))
    else {
        return;
    };
    let Ok(mut stream) = quinn.open_uni().await else {
        return;
    };
    let _ = stream.set_priority(lane.priority());
    chunks.push(encode_frame(&Frame::StreamHeader(StreamHeader { lane })));
    let mut next = Some(first);
    loop {
        let out = match next.take() {
            Some(out) => out,
            None => match rx.recv().await {
                Some(out) => out,
                None => break,
            },
        };
        let (mut frames, mut bytes) = (1u64, out.len);
        parts.extend(out.parts);
        while frames < WRITE_BATCH as u64 {
            let Ok(more) = rx.try_recv() else { break };
            frames += 1;
            bytes += more.len;
            parts.extend(more.parts);
        }
        coalesce(&mut parts, &mut chunks);
        let result = stream.write_all_chunks(&mut chunks).await;
        chunks.clear();
        credit.add_permits(bytes);
        if result.is_err() {
            return;
        }
        if let Some(s) = shared.upgrade() {
            s.counters.frames_sent.fetch_add(frames, Ordering::Relaxed);
            s.counters
                .bytes_sent
                .fetch_add(bytes as u64, Ordering::Relaxed);
        }
    }
    let _ = stream.finish();
}

async fn accept_streams(
    shared: std::sync::Weak<Shared>,
    quinn: quinn::Connection,
    inbox: mpsc::UnboundedSender<Result<Received, WireError>>,
    credit: Arc<Semaphore>,
) {
    while let Ok(stream) = quinn.accept_uni().await {
        tokio::spawn(read_stream(
            shared.clone(),
            stream,
            inbox.clone(),
            credit.clone(),
        ));
    }
}

async fn read_stream(
    shared: std::sync::Weak<Shared>,
    mut stream: quinn::RecvStream,
    inbox: mpsc::UnboundedSender<Result<Received, WireError>>,
    credit: Arc<Semaphore>,
) {
    let Err(error) = read_frames(&shared, &mut stream, &inbox, &credit).await else {
        return;
    };
    let _ = stream.stop(VarInt::from_u32(error.code()));
    let Some(shared) = shared.upgrade() else {
        return;
    };
    let errors = shared
        .counters
        .protocol_errors
        .fetch_add(1, Ordering::Relaxed)
        + 1;
    tracing::warn!(peer = %shared.peer, %error, "closing stream after protocol error");
    let _ = inbox.send(Err(error));
    if errors >= u64::from(shared.config.max_protocol_errors) {
        shared
            .quinn
            .close(VarInt::from_u32(0x10), b"too many protocol errors");
    }
}

/// Reads one stream to its end: the header first, then frames. Pings are answered here; pongs
/// complete waiting pings; everything else goes to the inbox once it has incoming credit.
async fn read_frames(
    shared: &std::sync::Weak<Shared>,
    stream: &mut quinn::RecvStream,
    inbox: &mpsc::UnboundedSender<Result<Received, WireError>>,
    credit: &Arc<Semaphore>,
) -> Result<(), WireError> {
    let Some(max_frame_len) = shared.upgrade().map(|s| s.config.max_frame_len) else {
        return Ok(());
    };
    // A frame takes credit for its size, capped at the whole budget (so one larger than a budget
    // waits for all of it instead of forever); the caps are fixed, not what happens to be free
    // when the stream opens, so the bounds hold for streams opened at any time.
    let Some((max_credit, max_shared, budget)) = shared.upgrade().map(|s| {
        let b = &s.config.incoming_budget;
        (
            s.config.max_incoming_bytes.max(1),
            b.total(),
            b.semaphore().clone(),
        )
    }) else {
        return Ok(());
    };
    let mut decoder = FrameDecoder::new(max_frame_len);
    let mut lane = None;
    loop {
        match stream.read_chunk(usize::MAX, true).await {
            Ok(Some(chunk)) => decoder.push(chunk.bytes),
            Ok(None) => return decoder.finish(),
            Err(ReadError::Reset(code)) => return Err(WireError::Reset(code.into_inner())),
            // The connection is gone: the close watcher reports it, not each stream.
            Err(ReadError::ConnectionLost(_)) | Err(ReadError::ClosedStream) => return Ok(()),
            Err(e) => return Err(WireError::Read(e.to_string())),
        }
        while let Some(raw) = decoder.next_frame()? {
            let len = raw.len();
            let frame = Frame::decode(raw)?;
            let Some(this_lane) = lane else {
                match frame {
                    Frame::StreamHeader(h) => {
                        lane = Some(h.lane);
                        continue;
                    }
                    _ => return Err(WireError::MissingHeader),
                }
            };
            let Some(s) = shared.upgrade() else {
                return Ok(());
            };
            match frame {
                Frame::StreamHeader(_) => {
                    return Err(WireError::Unexpected("second stream header"));
                }
                Frame::Ping(n) => {
                    // An unanswered ping on a full link is a lost probe, not a reason to block.
                    let _ = Connection { shared: s }.try_send(Lane::Control, &Frame::Pong(n));
                }
                Frame::Pong(n) => {
                    if let Some(tx) = lock(&s.pings).remove(&n) {
                        let _ = tx.send(());
                    }
                }
                frame => {
                    s.counters.frames_received.fetch_add(1, Ordering::Relaxed);
                    s.counters
                        .bytes_received
                        .fetch_add(len as u64, Ordering::Relaxed);
                    s.window.on_received(len as u64);
                    drop(s);
                    let want = (len.min(max_credit)) as u32;
                    let Ok(permit) = credit.clone().acquire_many_owned(want).await else {
                        return Ok(());
                    };
                    let shared_want = (len.min(max_shared)) as u32;
                    let Ok(shared_permit) = budget.clone().acquire_many_owned(shared_want).await
                    else {
                        return Ok(());
                    };
                    let received = Received {
                        lane: this_lane,
                        frame,
                        _credit: permit,
                        _shared_credit: shared_permit,
                    };
                    if inbox.send(Ok(received)).is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

async fn watch_close(shared: Arc<Shared>, events: broadcast::Sender<ConnectionEvent>) {
    let quinn = shared.quinn.clone();
    let peer = shared.peer;
    let weak = Arc::downgrade(&shared);
    drop(shared);
    let reason = quinn.closed().await;
    if let Some(s) = weak.upgrade() {
        s.out_credit.close();
        lock(&s.pings).clear();
        lock(&s.slot).take();
    }
    tracing::debug!(%peer, %reason, "disconnected");
    let _ = events.send(ConnectionEvent::Disconnected {
        peer,
        reason: reason.to_string(),
    });
}

#[cfg(test)]
mod coalescing_tests {
    use super::*;

    #[test]
    fn runs_of_small_parts_are_joined_large_and_lone_ones_pass_through_in_order() {
        let big = Bytes::from(vec![9u8; COALESCE_BELOW + 1]);
        let lone = Bytes::from_static(b"lone");
        let mut parts = vec![
            Bytes::from_static(b"ab"),
            Bytes::new(),
            Bytes::from_static(b"cd"),
            big.clone(),
            lone.clone(),
            big.clone(),
        ];
        let mut chunks = vec![Bytes::from_static(b"header")];
        coalesce(&mut parts, &mut chunks);
        assert!(parts.is_empty());
        assert_eq!(chunks.len(), 5);
        assert_eq!(&chunks[0][..], b"header");
        assert_eq!(&chunks[1][..], b"abcd");
        assert_eq!(
            chunks[2].as_ptr(),
            big.as_ptr(),
            "a large part is not copied"
        );
        assert_eq!(
            chunks[3].as_ptr(),
            lone.as_ptr(),
            "a lone small part is not copied"
        );
        assert_eq!(chunks[4].as_ptr(), big.as_ptr());
    }
}
