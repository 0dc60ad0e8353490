//! Frame kinds and their fixed layouts.

use bytes::{BufMut, Bytes, BytesMut};

use super::WireError;
use crate::entry::Entry;

/// The protocol a Starling stream header names; a change of wire format changes the version.
pub const PROTOCOL_NAME: &str = "/starling/wire/1";

/// Kind byte of each frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// First frame of every stream: protocol name and lane.
    StreamHeader = 0x00,
    /// Round-trip probe.
    Ping = 0x01,
    /// Answer to a probe.
    Pong = 0x02,
    /// A signed entry (`entry::Entry`: header, then payload).
    Entry = 0x03,
    /// An overlay control message (its body is versioned and laid out by the overlay driver).
    Overlay = 0x04,
    /// A message between two programs on connected peers (its body starts with the program's
    /// protocol tag); the connection authenticates its sender, so it carries no signature.
    App = 0x05,
}

/// The streams of a link, each a long-lived unidirectional QUIC stream with its own priority, so
/// that bulk data never delays control traffic (no head-of-line blocking between lanes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Lane {
    /// Pings, subscriptions, routing: small and urgent.
    Control = 0,
    /// Live data (current frames).
    High = 1,
    /// Bulk data (catch-up, repair).
    Low = 2,
}

impl Lane {
    /// All lanes, highest priority first.
    pub const ALL: [Lane; 3] = [Lane::Control, Lane::High, Lane::Low];

    /// quinn stream priority (higher is sent first).
    pub fn priority(self) -> i32 {
        match self {
            Lane::Control => 2,
            Lane::High => 1,
            Lane::Low => 0,
        }
    }

    fn from_byte(b: u8) -> Result<Lane, WireError> {
        match b {
            0 => Ok(Lane::Control),
            1 => Ok(Lane::High),
            2 => Ok(Lane::Low),
            other => Err(WireError::UnknownLane(other)),
        }
    }
}

/// The header that opens every stream Starling opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamHeader {
    /// Which lane the stream carries.
    pub lane: Lane,
}

/// A decoded frame.
#[derive(Clone, Debug)]
pub enum Frame {
    /// Opens a stream.
    StreamHeader(StreamHeader),
    /// Probe with a nonce.
    Ping(u64),
    /// Answer with the probe's nonce.
    Pong(u64),
    /// A signed entry.
    Entry(Entry),
    /// Overlay control message body (after the kind byte).
    Overlay(Bytes),
    /// A program's message body (after the kind byte).
    App(Bytes),
}

const STREAM_HEADER_V1: u8 = 1;
const PING_V1: u8 = 1;

/// Number of bytes of the LEB128 encoding of `n`.
pub fn varint_len(n: u64) -> usize {
    (64 - (n | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends `n` as LEB128 (what every Starling length prefix is).
pub fn put_varint(out: &mut BytesMut, mut n: u64) {
    while n >= 0x80 {
        out.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    out.put_u8(n as u8);
}

/// Decodes a length prefix: `Ok(None)` when `buf` ends inside it, else `(value, prefix_len)`.
pub(super) fn decode_varint(buf: &[u8]) -> Result<Option<(u64, usize)>, WireError> {
    let mut value = 0u64;
    for (i, &b) in buf.iter().enumerate().take(5) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // Reject non-minimal encodings (a trailing zero group) so every frame has one form.
            if i > 0 && b == 0 {
                return Err(WireError::MalformedLength);
            }
            return Ok(Some((value, i + 1)));
        }
    }
    if buf.len() >= 5 {
        Err(WireError::MalformedLength)
    } else {
        Ok(None)
    }
}

/// Encodes a small control frame (header, ping, pong) as one `Bytes`.
pub fn encode_frame(frame: &Frame) -> Bytes {
    let mut out = BytesMut::new();
    let mut body = |kind: FrameKind, fill: &dyn Fn(&mut BytesMut)| {
        let mut b = BytesMut::with_capacity(32);
        b.put_u8(kind as u8);
        fill(&mut b);
        put_varint(&mut out, b.len() as u64);
        out.extend_from_slice(&b);
    };
    match frame {
        Frame::StreamHeader(h) => body(FrameKind::StreamHeader, &|b| {
            b.put_u8(STREAM_HEADER_V1);
            b.put_u8(h.lane as u8);
            b.extend_from_slice(PROTOCOL_NAME.as_bytes());
        }),
        Frame::Ping(n) => body(FrameKind::Ping, &|b| {
            b.put_u8(PING_V1);
            b.put_u64(*n);
        }),
        Frame::Pong(n) => body(FrameKind::Pong, &|b| {
            b.put_u8(PING_V1);
            b.put_u64(*n);
        }),
        Frame::Overlay(b) => body(FrameKind::Overlay, &|out| out.extend_from_slice(b)),
        Frame::App(b) => {
            let [prefix, body] = app_parts(b);
            let mut all = BytesMut::with_capacity(prefix.len() + body.len());
            all.extend_from_slice(&prefix);
            all.extend_from_slice(&body);
            return all.freeze();
        }
        Frame::Entry(e) => {
            let mut all = BytesMut::new();
            for part in e.wire_parts() {
                all.extend_from_slice(&part);
            }
            return all.freeze();
        }
    }
    out.freeze()
}

/// An app frame as two parts, the length prefix and kind byte, then the body itself: sent
/// without copying the body.
pub fn app_parts(body: &Bytes) -> [Bytes; 2] {
    let mut prefix = BytesMut::with_capacity(6);
    put_varint(&mut prefix, 1 + body.len() as u64);
    prefix.put_u8(FrameKind::App as u8);
    [prefix.freeze(), body.clone()]
}

impl Frame {
    /// Decodes one whole frame as [`FrameDecoder`](super::FrameDecoder) returns it (length
    /// prefix included). Data payloads are slices of `frame`, not copies.
    pub fn decode(frame: Bytes) -> Result<Frame, WireError> {
        let (len, n) = decode_varint(&frame)?.ok_or(WireError::Truncated)?;
        if frame.len() as u64 != n as u64 + len {
            return Err(WireError::Truncated);
        }
        let Some(&kind) = frame.get(n) else {
            return Err(WireError::Empty);
        };
        let body = &frame[n + 1..];
        match kind {
            k if k == FrameKind::StreamHeader as u8 => {
                let [version, lane, name @ ..] = body else {
                    return Err(WireError::BadBodyLength {
                        kind: "stream header",
                        expected: 2,
                        actual: body.len(),
                    });
                };
                if *version != STREAM_HEADER_V1 {
                    return Err(WireError::UnsupportedVersion {
                        kind: "stream header",
                        version: *version,
                    });
                }
                if name != PROTOCOL_NAME.as_bytes() {
                    return Err(WireError::UnsupportedProtocol(
                        String::from_utf8_lossy(name).into_owned(),
                    ));
                }
                Ok(Frame::StreamHeader(StreamHeader {
                    lane: Lane::from_byte(*lane)?,
                }))
            }
            k if k == FrameKind::Ping as u8 || k == FrameKind::Pong as u8 => {
                let name = if k == FrameKind::Ping as u8 {
                    "ping"
                } else {
                    "pong"
                };
                let [version, nonce @ ..] = body else {
                    return Err(WireError::BadBodyLength {
                        kind: name,
                        expected: 9,
                        actual: 0,
                    });
                };
                if *version != PING_V1 {
                    return Err(WireError::UnsupportedVersion {
                        kind: name,
                        version: *version,
                    });
                }
                let nonce: [u8; 8] = nonce.try_into().map_err(|_| WireError::BadBodyLength {
                    kind: name,
                    expected: 9,
                    actual: body.len(),
                })?;
                let nonce = u64::from_be_bytes(nonce);
                Ok(if k == FrameKind::Ping as u8 {
                    Frame::Ping(nonce)
                } else {
                    Frame::Pong(nonce)
                })
            }
            k if k == FrameKind::Entry as u8 => Ok(Frame::Entry(Entry::decode_frame(frame, n)?)),
            k if k == FrameKind::Overlay as u8 => Ok(Frame::Overlay(frame.slice(n + 1..))),
            k if k == FrameKind::App as u8 => Ok(Frame::App(frame.slice(n + 1..))),
            other => Err(WireError::UnknownKind(other)),
        }
    }
}
