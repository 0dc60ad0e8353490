//! The owner's side of a live stream: each frame becomes a signed log entry — under load many
//! frames share one batch signature — kept in a bounded on-disk window, sent down the topic's
//! tree as the very entry (no second signature, no copy of the media), and kept in memory to
//! answer catch-up requests.
//!
//! Signing runs on the stream's own thread: `push` numbers the frame, reserves its place in the
//! node's publish queue and hands it over; the thread takes everything that queued up while it
//! signed the previous batch (up to `max_batch`, optionally waiting `max_wait` for more), signs
//! and stores it as one batch, and publishes the entries. A lone frame is signed alone, so at
//! low rates latency does not change. The on-disk window is a cache for late joiners: if the
//! store fails (a full disk), frames are still signed, sent and kept in memory, counted in
//! [`PublisherStats::unstored`], and the store is tried again every [`STORE_RETRY`].

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use starling_net::entry::{session, unix_time_us};
use starling_net::overlay::{OverlayNode, OwnedPublishPermit, PublishRefused};

use super::record::{MediaFrame, RecordMeta};
use super::{StreamAddress, StreamError};
use starling_net::crypto::SealBuf;

use crate::log::{Draft, Entry, Log, LogId, MAX_BATCH, Payload};

/// Settings of a published stream.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Frames kept (on disk and in memory) for late joiners. Default 300 (10 s at 30 fps).
    pub window_frames: usize,
    /// Largest media frame accepted. Default 4 MiB − 16 KiB: the transport's default frame
    /// limit (4 MiB) minus room for the entry header.
    pub max_frame_bytes: usize,
    /// Most frames under one signature (1: every frame signed alone; at most 256). Default 64:
    /// the proof grows by 32 bytes per doubling (6 hashes, 192 bytes at 64) while the
    /// signature's ~26 µs is shared by all (see ARCHITECTURE.md, "cost model").
    pub max_batch: usize,
    /// How long a batch may wait for more frames once one is queued. Default `None`: only
    /// frames that queued up while the previous batch was being signed join a batch.
    pub max_wait: Option<Duration>,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            window_frames: 300,
            max_frame_bytes: (4 << 20) - (16 << 10),
            max_batch: 64,
            max_wait: None,
        }
    }
}

/// Recent entries of one stream, shared with the peer's catch-up server.
#[derive(Debug, Default)]
pub(crate) struct Window {
    entries: VecDeque<Entry>,
}

impl Window {
    /// The entries in `from..=to` still held, ascending.
    pub(crate) fn range(&self, from: u64, to: u64) -> Vec<Entry> {
        // Seqs ascend but may have gaps (a batch whose signing failed spent its seqs).
        let start = self.entries.partition_point(|e| e.seq() < from);
        self.entries
            .iter()
            .skip(start)
            .take_while(|e| e.seq() <= to)
            .cloned()
            .collect()
    }
}

/// Windows of the streams a peer publishes, by topic.
pub(crate) type Windows = Arc<Mutex<HashMap<LogId, Arc<Mutex<Window>>>>>;

/// A frame handed to the signing thread, with its reserved place in the node's queue.
struct Pending {
    data: Payload,
    /// Encrypted streams: wrap the group key for every receiver in this frame.
    wrap_key: bool,
    meta: [u8; super::record::META_LEN],
    permit: OwnedPublishPermit,
}

/// What the signing thread reports back: frames done (signed or failed), the last failure.
#[derive(Debug, Default)]
struct Progress {
    done: u64,
    failure: Option<String>,
    stats: PublisherStats,
}

/// What a publisher has done so far.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PublisherStats {
    /// Frames signed and sent down the tree.
    pub published: u64,
    /// Of those, frames the store did not take (a full or failed disk): live delivery and
    /// catch-up from memory went on; only the on-disk window missed them.
    pub unstored: u64,
    /// Why the store refuses writes now (`None` while it takes them). The publisher tries the
    /// store again every [`STORE_RETRY`].
    pub store_error: Option<String>,
}

/// Encrypted streams wrap their group key at least every this many frames, so a subscriber
/// of a stream without keyframes reads within this many frames of joining.
pub const WRAP_EVERY: u32 = 32;

/// How often a publisher whose store failed tries it again.
pub const STORE_RETRY: Duration = Duration::from_secs(1);

type Shared = Arc<(Mutex<Progress>, Condvar)>;

/// A stream this peer owns. Dropping it stops serving catch-ups for it (after the frames
/// already pushed are signed and sent).
#[derive(Debug)]
pub struct Publisher {
    address: StreamAddress,
    topic: LogId,
    log: Arc<Mutex<Log>>,
    node: OverlayNode,
    windows: Windows,
    options: PublishOptions,
    next_seq: u64,
    last_keyframe: Option<u64>,
    /// Frames since one carried the wrapped group key (encrypted streams).
    since_wrapped: u32,
    queue: Option<std_mpsc::Sender<Pending>>,
    progress: Shared,
    pushed: u64,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pending").finish_non_exhaustive()
    }
}

impl Publisher {
    pub(crate) fn new(
        address: StreamAddress,
        log: Log,
        node: OverlayNode,
        windows: Windows,
        options: PublishOptions,
    ) -> Publisher {
        let topic = address.log_id();
        let window = Arc::new(Mutex::new(Window::default()));
        windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic, window.clone());
        // A restarted publisher continues its log's numbering: old frames never collide with
        // new ones of the same stream.
        let next_seq = log.next_seq();
        let log = Arc::new(Mutex::new(log));
        let (queue, rx) = std_mpsc::channel();
        let progress: Shared = Arc::default();
        let thread = {
            let (log, progress, options) = (log.clone(), progress.clone(), options.clone());
            std::thread::Builder::new()
                .name("starling-publisher".into())
                .spawn(move || sign_loop(rx, log, window, progress, options))
                .ok()
        };
        Publisher {
            address,
            topic,
            log,
            node,
            windows,
            options,
            next_seq,
            last_keyframe: None,
            since_wrapped: 0,
            queue: thread.is_some().then_some(queue),
            progress,
            pushed: 0,
            thread,
        }
    }

    /// Encrypts the frames pushed from now on for `receivers` (the owner's key must be one;
    /// `None`: plain again). A group key encrypts the frames; keyframes (and at least every
    /// [`WRAP_EVERY`]th frame) carry it wrapped for each receiver, so a subscriber that
    /// starts at a keyframe reads from there, and relays forward without reading. A new set
    /// starts a new key: a receiver left out cannot read any frame after the change.
    pub fn encrypt_to(&self, receivers: Option<starling_net::crypto::Receivers>) {
        self.log().encrypt_to(receivers);
    }

    /// The address subscribers open.
    pub fn address(&self) -> &StreamAddress {
        &self.address
    }

    /// The stream's log (the on-disk window). Frames pushed but not yet signed are not in it
    /// yet: [`Publisher::flush`] first.
    pub fn log(&self) -> MutexGuard<'_, Log> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next frame's sequence number (the log's next entry seq).
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// What the publisher has done so far (frames handed to the signing thread and not yet
    /// signed are not counted: [`Publisher::flush`] first).
    pub fn stats(&self) -> PublisherStats {
        let (lock, _) = &*self.progress;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats
            .clone()
    }

    /// Waits until every frame pushed so far has been signed, stored (if the store takes it)
    /// and handed to the node; an error if signing failed.
    pub fn flush(&self) -> Result<(), StreamError> {
        let (lock, cv) = &*self.progress;
        let mut p = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while p.done < self.pushed && self.thread.is_some() {
            p = cv.wait(p).unwrap_or_else(PoisonError::into_inner);
        }
        match p.failure.take() {
            Some(e) => Err(StreamError::Signing(e)),
            None => Ok(()),
        }
    }

    /// Numbers `frame` and hands it to the signing thread, which logs it and sends it down the
    /// tree; returns its sequence number. Never blocks on the network: a congested tree drops
    /// older frames, not this call. If the node itself is behind (its bounded publish queue is
    /// full) the frame is refused with [`StreamError::Congested`] before it is numbered, and
    /// the caller may drop or retry it; after the peer closed it is [`StreamError::Closed`]. A
    /// storage failure of an earlier frame is reported by the next push (or `flush`).
    pub fn push(&mut self, frame: MediaFrame) -> Result<u64, StreamError> {
        self.push_payload(frame.data.into(), frame.keyframe, frame.media_ts_us)
    }

    /// A buffer to write a frame of about `capacity` bytes into, with room in front for the
    /// stream's envelope when it is encrypted: [`Publisher::push_buf`] then seals the frame
    /// where it lies instead of copying it (the one encryption pass; a receiver change in
    /// between only costs the copy again).
    pub fn frame_buf(&self, capacity: usize) -> SealBuf {
        self.log().payload_buf(capacity)
    }

    /// [`Publisher::push`] of a frame written into a [`Publisher::frame_buf`].
    pub fn push_buf(
        &mut self,
        data: SealBuf,
        keyframe: bool,
        media_ts_us: u64,
    ) -> Result<u64, StreamError> {
        self.push_payload(Payload::Buf(data), keyframe, media_ts_us)
    }

    fn push_payload(
        &mut self,
        data: Payload,
        keyframe: bool,
        media_ts_us: u64,
    ) -> Result<u64, StreamError> {
        if data.len() > self.options.max_frame_bytes {
            return Err(StreamError::FrameTooLarge {
                len: data.len(),
                max: self.options.max_frame_bytes,
            });
        }
        if let Some(e) = self
            .progress
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .failure
            .take()
        {
            return Err(StreamError::Signing(e));
        }
        let permit = self.node.try_reserve_publish_owned().map_err(|e| match e {
            PublishRefused::Behind => StreamError::Congested,
            _ => StreamError::Closed,
        })?;
        let seq = self.next_seq;
        if keyframe {
            self.last_keyframe = Some(seq);
        }
        let meta = RecordMeta {
            keyframe,
            media_ts_us,
            // Before any keyframe, a frame's group starts at its session's first frame.
            keyframe_seq: self
                .last_keyframe
                .unwrap_or(session::first_seq(session::session_of(seq))),
        };
        let wrap_key = keyframe || self.since_wrapped + 1 >= WRAP_EVERY;
        self.since_wrapped = if wrap_key { 0 } else { self.since_wrapped + 1 };
        let queue = self.queue.as_ref().ok_or(StreamError::Closed)?;
        queue
            .send(Pending {
                data,
                wrap_key,
                meta: meta.encode(),
                permit,
            })
            .map_err(|_| StreamError::Closed)?;
        self.next_seq += 1;
        self.pushed += 1;
        Ok(seq)
    }
}

/// The signing thread: batch what queued up, sign and store it as one batch, publish.
fn sign_loop(
    rx: std_mpsc::Receiver<Pending>,
    log: Arc<Mutex<Log>>,
    window: Arc<Mutex<Window>>,
    progress: Shared,
    options: PublishOptions,
) {
    let max_batch = options.max_batch.clamp(1, MAX_BATCH);
    // Set while the store refuses writes: when to try it again.
    let mut retry_store_at: Option<Instant> = None;
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    while let Ok(first) = rx.recv() {
        batch.push(first);
        let deadline = options.max_wait.map(|w| Instant::now() + w);
        while batch.len() < max_batch {
            match rx.try_recv() {
                Ok(p) => batch.push(p),
                Err(std_mpsc::TryRecvError::Disconnected) => break,
                Err(std_mpsc::TryRecvError::Empty) => {
                    let Some(left) =
                        deadline.and_then(|d| d.checked_duration_since(Instant::now()))
                    else {
                        break;
                    };
                    match rx.recv_timeout(left) {
                        Ok(p) => batch.push(p),
                        Err(_) => break,
                    }
                }
            }
        }
        // The payloads move into the drafts (a frame buffer is sealed where it lies).
        let drafts: Vec<Draft<'_>> = batch
            .iter_mut()
            .map(|p| {
                let payload = std::mem::take(&mut p.data);
                let p: &Pending = p;
                Draft {
                    payload,
                    meta: &p.meta,
                    wrap_key: p.wrap_key,
                }
            })
            .collect();
        let now = unix_time_us();
        let mut stored = None;
        let result = {
            let mut log = log.lock().unwrap_or_else(PoisonError::into_inner);
            log.sign_batch_at(drafts, now).map(|signed| {
                // The window on disk is a cache for late joiners: a store that fails (a full
                // disk) must not stop the stream. Tried again every `STORE_RETRY`.
                if retry_store_at.is_none_or(|at| Instant::now() >= at) {
                    stored = Some(log.store_batch_at(&signed, now));
                }
                signed.into_entries()
            })
        };
        let n = batch.len() as u64;
        let store_error = match stored {
            Some(Ok(())) => {
                if retry_store_at.take().is_some() {
                    tracing::info!("the store takes the stream's frames again");
                }
                None
            }
            Some(Err(e)) => {
                if retry_store_at.is_none() {
                    tracing::warn!("stream frames not stored, the stream goes on: {e}");
                }
                retry_store_at = Some(Instant::now() + STORE_RETRY);
                Some(e.to_string())
            }
            None => None,
        };
        let failure = match result {
            Ok(entries) => {
                {
                    let mut w = window.lock().unwrap_or_else(PoisonError::into_inner);
                    w.entries.extend(entries.iter().cloned());
                    while w.entries.len() > options.window_frames {
                        w.entries.pop_front();
                    }
                }
                for (p, e) in batch.drain(..).zip(entries) {
                    p.permit.publish(e);
                }
                None
            }
            Err(e) => {
                tracing::warn!("stream frames not logged: {e}");
                batch.clear();
                Some(e.to_string())
            }
        };
        let (lock, cv) = &*progress;
        let mut p = lock.lock().unwrap_or_else(PoisonError::into_inner);
        p.done += n;
        if failure.is_some() {
            p.failure = failure;
        } else {
            p.stats.published += n;
            if retry_store_at.is_some() {
                p.stats.unstored += n;
            }
            if let Some(e) = store_error {
                p.stats.store_error = Some(e);
            } else if retry_store_at.is_none() {
                p.stats.store_error = None;
            }
        }
        cv.notify_all();
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.queue = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.windows
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.topic);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn window_range_returns_what_it_holds() {
        let key = starling_net::Keypair::generate(starling_net::KeyType::Ed25519);
        let mut signer = starling_net::entry::EntrySigner::new(key);
        let mut w = Window::default();
        for seq in 5..15 {
            w.entries.push_back(
                signer
                    .sign_one(&starling_net::entry::EntryFields::new(
                        LogId([0; 32]),
                        seq,
                        0,
                        Bytes::new(),
                    ))
                    .unwrap(),
            );
        }
        let seqs = |v: Vec<Entry>| v.iter().map(Entry::seq).collect::<Vec<_>>();
        assert_eq!(seqs(w.range(7, 9)), vec![7, 8, 9]);
        assert_eq!(seqs(w.range(0, 6)), vec![5, 6]);
        assert_eq!(seqs(w.range(13, 99)), vec![13, 14]);
        assert!(w.range(20, 30).is_empty());
        assert!(Window::default().range(0, 5).is_empty());
    }
}
