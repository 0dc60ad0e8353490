//! The owner's side of a live stream: each frame becomes a signed log entry (kept in a bounded
//! on-disk window) and a record on the topic's tree; recent records also stay in memory to
//! answer catch-up requests.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use starling_net::overlay::{OverlayNode, PublishRefused, Topic};
use starling_net::wire::unix_time_us;

use super::record::{MediaFrame, Sequenced, encode_record, entry_payload};
use super::{StreamAddress, StreamError};
use crate::log::Log;

/// Settings of a published stream.
#[derive(Clone, Debug)]
pub struct PublishOptions {
    /// Frames kept (on disk and in memory) for late joiners. Default 300 (10 s at 30 fps).
    pub window_frames: usize,
    /// Largest media frame accepted. Default 4 MiB − 16 KiB: the transport's default frame
    /// limit (4 MiB) minus room for the entry header, record and data-frame heads.
    pub max_frame_bytes: usize,
}

impl Default for PublishOptions {
    fn default() -> Self {
        PublishOptions {
            window_frames: 300,
            max_frame_bytes: (4 << 20) - (16 << 10),
        }
    }
}

/// Recent records of one stream, shared with the peer's catch-up server.
#[derive(Debug, Default)]
pub(crate) struct Window {
    records: VecDeque<Sequenced>,
}

impl Window {
    /// The records in `from..=to` still held, ascending.
    pub(crate) fn range(&self, from: u64, to: u64) -> Vec<Sequenced> {
        let Some(first) = self.records.front().map(|r| r.seq) else {
            return Vec::new();
        };
        let start = from.saturating_sub(first) as usize;
        self.records
            .iter()
            .skip(start)
            .take_while(|r| r.seq <= to)
            .filter(|r| r.seq >= from)
            .cloned()
            .collect()
    }
}

/// Windows of the streams a peer publishes, by topic.
pub(crate) type Windows = Arc<Mutex<HashMap<Topic, Arc<Mutex<Window>>>>>;

/// A stream this peer owns. Dropping it stops serving catch-ups for it.
#[derive(Debug)]
pub struct Publisher {
    address: StreamAddress,
    topic: Topic,
    log: Log,
    node: OverlayNode,
    window: Arc<Mutex<Window>>,
    windows: Windows,
    options: PublishOptions,
    next_seq: u64,
    last_keyframe: Option<u64>,
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
        Publisher {
            address,
            topic,
            log,
            node,
            window,
            windows,
            options,
            next_seq: 0,
            last_keyframe: None,
        }
    }

    /// The address subscribers open.
    pub fn address(&self) -> &StreamAddress {
        &self.address
    }

    /// The stream's log (the on-disk window).
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Frames pushed so far in this session; the next frame's sequence number.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Signs `frame` into the log and sends it down the tree; returns its sequence number.
    /// Never blocks on the network: a congested tree drops older frames, not this call. If the
    /// node itself is behind (its bounded publish queue is full) the frame is refused with
    /// [`StreamError::Congested`] before it is logged, and the caller may drop or retry it; after
    /// the peer closed it is [`StreamError::Closed`].
    pub fn push(&mut self, frame: MediaFrame) -> Result<u64, StreamError> {
        if frame.data.len() > self.options.max_frame_bytes {
            return Err(StreamError::FrameTooLarge {
                len: frame.data.len(),
                max: self.options.max_frame_bytes,
            });
        }
        let permit = self.node.try_reserve_publish().map_err(|e| match e {
            PublishRefused::Behind => StreamError::Congested,
            _ => StreamError::Closed,
        })?;
        let seq = self.next_seq;
        if frame.keyframe {
            self.last_keyframe = Some(seq);
        }
        // Before any keyframe, a frame's group starts at the first frame.
        let keyframe_seq = self.last_keyframe.unwrap_or(0);
        let entry = self.log.append(entry_payload(&frame, keyframe_seq))?;
        let record = encode_record(&entry);
        {
            let mut window = self.window.lock().unwrap_or_else(PoisonError::into_inner);
            window.records.push_back(Sequenced {
                seq,
                published_us: unix_time_us(),
                record: record.clone(),
            });
            while window.records.len() > self.options.window_frames {
                window.records.pop_front();
            }
        }
        // The overlay numbers a topic's frames from 0 in publish order, as this counter does
        // (the permit guarantees this frame takes the next number).
        permit.publish(self.topic, record);
        self.next_seq += 1;
        Ok(seq)
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
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
        let mut w = Window::default();
        for seq in 5..15 {
            w.records.push_back(Sequenced {
                seq,
                published_us: 0,
                record: Bytes::new(),
            });
        }
        let seqs = |v: Vec<Sequenced>| v.iter().map(|r| r.seq).collect::<Vec<_>>();
        assert_eq!(seqs(w.range(7, 9)), vec![7, 8, 9]);
        assert_eq!(seqs(w.range(0, 6)), vec![5, 6]);
        assert_eq!(seqs(w.range(13, 99)), vec![13, 14]);
        assert!(w.range(20, 30).is_empty());
        assert!(Window::default().range(0, 5).is_empty());
    }
}
