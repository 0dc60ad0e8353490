//! What travels on a stream's tree: one signed log entry per frame, and the catch-up messages.
//!
//! The entry *is* the record: the overlay carries it, relays forward its bytes, subscribers
//! read it and may store it in their own log, catch-up replies carry it. The stream's fields are
//! the entry's signed meta, the media is its payload, as the application gave it (no copy):
//!
//! ```text
//! meta    = flags u8 (bit 0: keyframe) | media_ts_us u64 BE | keyframe_seq u64 BE
//! payload = media bytes
//! ```
//!
//! `keyframe_seq` is the sequence number of the latest keyframe at or before this frame, which
//! is where a late joiner starts; the frame's sequence number is the entry's `seq`.
//!
//! Catch-up messages go as direct messages between peers:
//!
//! ```text
//! request = version u8 (1) | kind u8 (1) | topic [32] | from u64 | to u64       (inclusive)
//! reply   = version u8 (2) | kind u8 (2) | topic [32] | count u16 |
//!           count × (seq u64 | published_us u64 | len u32 | entry header ‖ payload)
//! ```

use bytes::{Buf, BufMut, Bytes, BytesMut};
use starling_net::crypto::Opener;

use super::StreamError;
use crate::log::{Entry, LogId};
use crate::router::Protocol;

/// Bytes of a stream entry's meta.
pub(crate) const META_LEN: usize = 17;
const FLAG_KEYFRAME: u8 = 1;
const CATCHUP_V1: u8 = 1;
const KIND_REQUEST: u8 = 1;
const KIND_REPLY: u8 = 2;
/// Most frames one catch-up request may ask for (a GOP of 10 s at 60 fps fits).
pub const MAX_CATCHUP_FRAMES: u64 = 600;

/// A frame as the publisher gives it.
#[derive(Clone, Debug)]
pub struct MediaFrame {
    /// The encoded media.
    pub data: Bytes,
    /// Decodable on its own: late joiners and skipping subscribers start here.
    pub keyframe: bool,
    /// The media clock (presentation time), µs; carried as given.
    pub media_ts_us: u64,
}

impl MediaFrame {
    /// A frame that stands alone (every frame of a stream of independent messages).
    pub fn key(data: Bytes, media_ts_us: u64) -> MediaFrame {
        MediaFrame {
            data,
            keyframe: true,
            media_ts_us,
        }
    }

    /// Frame `seq` of a synthetic stream (demos and load tests): `frame_bytes` bytes starting
    /// with `seq`, a keyframe every `keyframe_every` frames, media time from `fps`.
    pub fn synthetic(seq: u64, frame_bytes: usize, fps: f64, keyframe_every: u64) -> MediaFrame {
        let mut data = BytesMut::with_capacity(frame_bytes.max(8));
        data.put_u64(seq);
        data.resize(frame_bytes.max(8), (seq % 251) as u8);
        MediaFrame {
            data: data.freeze(),
            keyframe: seq.is_multiple_of(keyframe_every.max(1)),
            media_ts_us: (seq as f64 * 1e6 / fps.max(1e-3)) as u64,
        }
    }

    /// A frame that depends on the frames before it, back to the last keyframe.
    pub fn delta(data: Bytes, media_ts_us: u64) -> MediaFrame {
        MediaFrame {
            data,
            keyframe: false,
            media_ts_us,
        }
    }
}

/// A record's stream fields, read without copying.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Decodable on its own.
    pub keyframe: bool,
    /// The media clock, µs.
    pub media_ts_us: u64,
    /// Sequence number of the latest keyframe at or before this frame.
    pub keyframe_seq: u64,
}

impl RecordMeta {
    /// The entry meta bytes.
    pub(crate) fn encode(&self) -> [u8; META_LEN] {
        let mut m = [0u8; META_LEN];
        m[0] = if self.keyframe { FLAG_KEYFRAME } else { 0 };
        m[1..9].copy_from_slice(&self.media_ts_us.to_be_bytes());
        m[9..].copy_from_slice(&self.keyframe_seq.to_be_bytes());
        m
    }

    fn decode(mut m: &[u8]) -> Result<RecordMeta, StreamError> {
        if m.len() != META_LEN {
            return Err(StreamError::Truncated {
                need: META_LEN,
                have: m.len(),
            });
        }
        let flags = m.get_u8();
        Ok(RecordMeta {
            keyframe: flags & FLAG_KEYFRAME != 0,
            media_ts_us: m.get_u64(),
            keyframe_seq: m.get_u64(),
        })
    }
}

/// A stream entry with its fields read (the media is the entry's payload, not a copy).
#[derive(Clone, Debug)]
pub struct Record {
    /// The stream fields.
    pub meta: RecordMeta,
    /// The media bytes.
    pub data: Bytes,
    entry: Entry,
}

impl Record {
    /// Reads the stream fields of `entry`, checked to belong to `log`; an encrypted frame is
    /// opened with `opener` (no opener, or not a receiver: [`StreamError::Entry`] with
    /// `EntryError::Encrypted` or `EntryError::Crypto`).
    pub fn from_entry(
        entry: Entry,
        log: &LogId,
        opener: Option<&Opener>,
    ) -> Result<Record, StreamError> {
        if entry.log_id() != *log {
            return Err(StreamError::WrongLog);
        }
        let meta = RecordMeta::decode(entry.meta())?;
        let data = match opener {
            Some(o) => entry.open_payload(o)?,
            None => entry.payload()?,
        };
        Ok(Record { meta, data, entry })
    }

    /// Decodes entry bytes (`header ‖ payload`, as catch-up carries them).
    pub fn parse(
        bytes: &Bytes,
        log: &LogId,
        opener: Option<&Opener>,
    ) -> Result<Record, StreamError> {
        Record::from_entry(Entry::from_bytes(bytes.clone())?, log, opener)
    }

    /// The signed log entry.
    pub fn entry(&self) -> &Entry {
        &self.entry
    }
}

/// An entry's bytes with its place in the stream, as catch-up carries them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sequenced {
    /// Sequence number in the topic.
    pub seq: u64,
    /// When the publisher sent it, µs since the epoch.
    pub published_us: u64,
    /// The entry, `header ‖ payload`.
    pub record: Bytes,
}

/// A decoded catch-up message.
#[derive(Debug, PartialEq, Eq)]
pub enum CatchUp {
    /// "Send me `from..=to`."
    Request {
        /// The stream's topic.
        topic: LogId,
        /// First wanted.
        from: u64,
        /// Last wanted.
        to: u64,
    },
    /// Records from the publisher's window (those it still has).
    Reply {
        /// The stream's topic.
        topic: LogId,
        /// Ascending by `seq`.
        records: Vec<Sequenced>,
    },
}

/// A catch-up message's buffer with its protocol tag, version, kind and topic written.
fn head(kind: u8, topic: &LogId, body: usize) -> BytesMut {
    let mut out = Protocol::STREAM_CATCH_UP.message(34 + body);
    put_head(&mut out, kind, topic);
    out
}

fn put_head(out: &mut BytesMut, kind: u8, topic: &LogId) {
    out.put_u8(CATCHUP_V1);
    out.put_u8(kind);
    out.put_slice(topic.as_bytes());
}

impl CatchUp {
    /// Encodes a request (as a direct message: protocol tag first).
    pub fn request(topic: &LogId, from: u64, to: u64) -> Bytes {
        let mut out = head(KIND_REQUEST, topic, 16);
        out.put_u64(from);
        out.put_u64(to);
        out.freeze()
    }

    /// Encodes replies, each at most about `max_bytes` (a record larger than that goes alone),
    /// as direct messages (protocol tag first).
    pub fn replies(topic: &LogId, records: &[Sequenced], max_bytes: usize) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut rest = records;
        while !rest.is_empty() {
            let mut size = 36;
            let mut n = 0;
            while n < rest.len() && n < usize::from(u16::MAX) {
                let add = 20 + rest[n].record.len();
                if n > 0 && size + add > max_bytes {
                    break;
                }
                size += add;
                n += 1;
            }
            let mut buf = head(KIND_REPLY, topic, size - 34);
            buf.put_u16(n as u16);
            for r in &rest[..n] {
                buf.put_u64(r.seq);
                buf.put_u64(r.published_us);
                buf.put_u32(r.record.len() as u32);
                buf.put_slice(&r.record);
            }
            out.push(buf.freeze());
            rest = &rest[n..];
        }
        out
    }

    /// Decodes a message's body (past the protocol tag the router took off); record bytes are
    /// slices of `msg`.
    pub fn decode(msg: &Bytes) -> Result<CatchUp, StreamError> {
        let mut b = msg.clone();
        let need = |b: &Bytes, n: usize| {
            if b.remaining() < n {
                Err(StreamError::Truncated {
                    need: n,
                    have: b.remaining(),
                })
            } else {
                Ok(())
            }
        };
        need(&b, 34)?;
        let version = b.get_u8();
        if version != CATCHUP_V1 {
            return Err(StreamError::UnsupportedVersion(version));
        }
        let kind = b.get_u8();
        let mut topic = LogId::default();
        b.copy_to_slice(&mut topic.0);
        match kind {
            KIND_REQUEST => {
                need(&b, 16)?;
                let (from, to) = (b.get_u64(), b.get_u64());
                if to < from || to - from >= MAX_CATCHUP_FRAMES {
                    return Err(StreamError::CatchUpTooLarge(to.saturating_sub(from)));
                }
                Ok(CatchUp::Request { topic, from, to })
            }
            KIND_REPLY => {
                need(&b, 2)?;
                let count = usize::from(b.get_u16());
                // Each record takes at least 20 bytes: check before reserving.
                need(&b, count * 20)?;
                let mut records = Vec::with_capacity(count);
                for _ in 0..count {
                    need(&b, 20)?;
                    let seq = b.get_u64();
                    let published_us = b.get_u64();
                    let len = b.get_u32() as usize;
                    need(&b, len)?;
                    records.push(Sequenced {
                        seq,
                        published_us,
                        record: b.split_to(len),
                    });
                }
                Ok(CatchUp::Reply { topic, records })
            }
            other => Err(StreamError::UnknownKind(other)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A message past its protocol tag (what the router hands the program), checked.
    fn body(msg: &Bytes) -> Bytes {
        assert_eq!(msg[..2], Protocol::STREAM_CATCH_UP.0.to_be_bytes());
        msg.slice(2..)
    }

    #[test]
    fn record_parse_checks_the_entry_and_its_meta() {
        assert!(matches!(
            Record::parse(&Bytes::from_static(&[1, 0]), &LogId([0; 32]), None),
            Err(StreamError::Entry(_))
        ));
        let meta = RecordMeta {
            keyframe: true,
            media_ts_us: 5,
            keyframe_seq: 3,
        };
        assert_eq!(RecordMeta::decode(&meta.encode()).unwrap(), meta);
        assert!(matches!(
            RecordMeta::decode(&meta.encode()[..16]),
            Err(StreamError::Truncated { .. })
        ));
    }

    #[test]
    fn catch_up_round_trips_and_splits() {
        let topic = LogId([9u8; 32]);
        assert_eq!(
            CatchUp::decode(&body(&CatchUp::request(&topic, 10, 20))).unwrap(),
            CatchUp::Request {
                topic,
                from: 10,
                to: 20
            }
        );
        let records: Vec<Sequenced> = (0..10)
            .map(|i| Sequenced {
                seq: i,
                published_us: i * 7,
                record: Bytes::from(vec![i as u8; 1000]),
            })
            .collect();
        let msgs = CatchUp::replies(&topic, &records, 3000);
        assert!(msgs.len() > 3);
        let mut back = Vec::new();
        for m in &msgs {
            assert!(m.len() <= 3000 + 1100);
            match CatchUp::decode(&body(m)).unwrap() {
                CatchUp::Reply { topic: t, records } => {
                    assert_eq!(t, topic);
                    back.extend(records);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(back, records);
    }

    #[test]
    fn bad_catch_up_messages_are_typed_errors() {
        let topic = LogId([1u8; 32]);
        let mut req = body(&CatchUp::request(&topic, 5, 4)).to_vec();
        assert!(matches!(
            CatchUp::decode(&Bytes::from(req.clone())),
            Err(StreamError::CatchUpTooLarge(_))
        ));
        req[0] = 9;
        assert!(matches!(
            CatchUp::decode(&Bytes::from(req.clone())),
            Err(StreamError::UnsupportedVersion(9))
        ));
        req[0] = 1;
        req[1] = 7;
        assert!(matches!(
            CatchUp::decode(&Bytes::from(req)),
            Err(StreamError::UnknownKind(7))
        ));
        // A reply claiming 65535 records in a few bytes.
        let mut reply = vec![1, 2];
        reply.extend_from_slice(topic.as_bytes());
        reply.extend_from_slice(&[0xff, 0xff, 0, 0]);
        assert!(matches!(
            CatchUp::decode(&Bytes::from(reply)),
            Err(StreamError::Truncated { .. })
        ));
        let too_many = CatchUp::request(&topic, 0, MAX_CATCHUP_FRAMES);
        assert!(matches!(
            CatchUp::decode(&body(&too_many)),
            Err(StreamError::CatchUpTooLarge(_))
        ));
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let b = Bytes::from(bytes);
            let _ = CatchUp::decode(&b);
            let _ = Record::parse(&b, &LogId([0; 32]), None);
        }

        #[test]
        fn truncated_replies_are_errors(cut in 0usize..200) {
            let topic = LogId([3u8; 32]);
            let records = vec![Sequenced { seq: 1, published_us: 2, record: Bytes::from(vec![5u8; 150]) }];
            let msg = body(&CatchUp::replies(&topic, &records, 1 << 20).remove(0));
            let cut = cut.min(msg.len() - 1);
            prop_assert!(CatchUp::decode(&msg.slice(..cut)).is_err());
        }
    }
}
