//! The overlay's messages on the wire, for a node whose peers are PeerIds and whose payloads
//! are entries: a decoder of remote input, so it lives beside the messages and is fuzzed on
//! its own (`fuzz/fuzz_targets/control_decoder.rs`).
//!
//! Topic frames are not encoded here: a [`Message::Frame`] travels as its entry's own frame
//! (kind 0x03), relayed as the same `Bytes`. Every other message is an overlay frame (kind
//! 0x04) with the body `version=1, kind, fields…` ([`ControlKind`]); integers are big-endian.
//! A peer is `len u8, PeerId bytes, family u8 (0 = no address | 4 | 6), ip, port u16`, so a
//! redirected joiner can dial the candidates it is given; a redirect candidate is a peer and
//! its delay from the root (µs, u64); a list is `count u8` (at most [`MAX_PEERS`]) then its
//! items. A body must end where its layout ends.
//!
//! Decoding changes no state: addresses named in a message are handed back to the caller
//! (who decides what to believe), not written into an address book.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::message::{Candidate, Message, Topic};
use crate::entry::Entry;
use crate::identity::{IdentityError, PeerId, peer_id_from_bytes};
use crate::wire::{Frame, WireError};

/// The control body version this build speaks.
pub const CONTROL_VERSION: u8 = 1;
/// Most peers (path members, candidates) one message may name.
pub const MAX_PEERS: usize = 32;
/// Longest PeerId accepted (identity multihashes of Ed25519 and secp256k1 keys are 38 and 39).
const MAX_PEER_ID_LEN: usize = 64;

/// The kind byte of a control body.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ControlKind {
    /// [`Message::Join`].
    Join = 1,
    /// [`Message::Accept`] answering a join or updating a path.
    Accept = 2,
    /// [`Message::Redirect`].
    Redirect = 3,
    /// [`Message::Leave`].
    Leave = 4,
    /// [`Message::Repair`].
    Repair = 5,
    /// [`Message::Probe`].
    Probe = 6,
    /// [`Message::ProbeAck`].
    ProbeAck = 7,
    /// [`Message::Direct`]: routing fields, then the entry's own frame.
    Direct = 8,
    /// "Where can I reach this peer?" (the driver's own, asked of neighbours).
    Locate = 9,
    /// The answer to [`ControlKind::Locate`], carrying the address.
    Located = 10,
    /// [`Message::Report`].
    Report = 11,
    /// [`Message::Handover`].
    Handover = 12,
    /// [`Message::Accept`] sent unasked by a grandparent (`adoption`: a swap).
    Adoption = 13,
}

impl ControlKind {
    /// Every kind, in kind-byte order.
    pub const ALL: [ControlKind; 13] = {
        use ControlKind::*;
        [
            Join, Accept, Redirect, Leave, Repair, Probe, ProbeAck, Direct, Locate, Located,
            Report, Handover, Adoption,
        ]
    };

    /// The kind a byte names, if any.
    pub fn from_byte(b: u8) -> Option<ControlKind> {
        ControlKind::ALL.into_iter().find(|k| *k as u8 == b)
    }
}

/// A malformed control message: what was wrong, and where. Nothing is learned from it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ControlError {
    /// A frame of a kind that carries no overlay message (a ping, a stream header).
    #[error("a {0} frame carries no overlay message")]
    NotOverlay(&'static str),
    /// A body too short to hold its version and kind.
    #[error("overlay body of {0} bytes has no version and kind")]
    NoKind(usize),
    /// A body version this build does not speak.
    #[error("overlay body version {0} (this build speaks {CONTROL_VERSION})")]
    UnsupportedVersion(u8),
    /// A kind byte no [`ControlKind`] has.
    #[error("unknown overlay message kind {0}")]
    UnknownKind(u8),
    /// The body ends inside a field.
    #[error("{kind:?} message ends inside its {field}: {needed} bytes needed, {remaining} left")]
    Truncated {
        /// The message kind.
        kind: ControlKind,
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the body.
        remaining: usize,
    },
    /// A list longer than [`MAX_PEERS`], refused before any item is read.
    #[error("{kind:?} message lists {count} {field}, at most {MAX_PEERS} allowed")]
    TooMany {
        /// The message kind.
        kind: ControlKind,
        /// The list.
        field: &'static str,
        /// The count that arrived.
        count: usize,
    },
    /// A PeerId length past any key type's.
    #[error("{kind:?} message names a PeerId of {len} bytes (at most {MAX_PEER_ID_LEN})")]
    PeerIdTooLong {
        /// The message kind.
        kind: ControlKind,
        /// The length byte that arrived.
        len: usize,
    },
    /// PeerId bytes that are not a valid multihash.
    #[error("{kind:?} message names an invalid PeerId: {source}")]
    BadPeerId {
        /// The message kind.
        kind: ControlKind,
        /// Why.
        #[source]
        source: IdentityError,
    },
    /// An address family byte other than 0 (none), 4 or 6.
    #[error("{kind:?} message has address family {family} (expected 0, 4 or 6)")]
    AddressFamily {
        /// The message kind.
        kind: ControlKind,
        /// The byte that arrived.
        family: u8,
    },
    /// A direct message whose payload is not a well-formed entry frame.
    #[error("direct message payload: {0}")]
    DirectPayload(#[source] WireError),
    /// A direct message whose payload is a frame of another kind.
    #[error("direct message payload is a {0} frame, not an entry")]
    DirectNotEntry(&'static str),
    /// Bytes after the last field of a fixed layout.
    #[error("{kind:?} message has {extra} bytes past its end")]
    TrailingBytes {
        /// The message kind.
        kind: ControlKind,
        /// Bytes left over.
        extra: usize,
    },
}

/// A decoded overlay frame: a core message, or one of the driver's own address lookups.
#[derive(Debug)]
// An entry travels by value (its fields parsed once); boxing it would allocate per frame.
#[allow(clippy::large_enum_variant)]
pub enum Control {
    /// For the core.
    Message(Message<PeerId, Entry>),
    /// "Where can I reach this peer?"
    Locate(PeerId),
    /// The answer (its address is among the decoded addresses).
    Located(PeerId),
}

fn frame_name(frame: &Frame) -> &'static str {
    match frame {
        Frame::StreamHeader(_) => "stream header",
        Frame::Ping(_) => "ping",
        Frame::Pong(_) => "pong",
        Frame::Entry(_) => "entry",
        Frame::Overlay(_) => "overlay",
        Frame::App(_) => "app",
    }
}

/// Decodes a received frame. Addresses the message names are appended to `addresses` (a
/// buffer the caller reuses), in order; nothing else is changed, and nothing on an error.
pub fn decode(
    frame: Frame,
    addresses: &mut Vec<(PeerId, SocketAddr)>,
) -> Result<Control, ControlError> {
    let body = match frame {
        Frame::Entry(entry) => {
            return Ok(Control::Message(Message::Frame {
                topic: entry.log_id().into(),
                seq: entry.seq(),
                payload: entry,
            }));
        }
        Frame::Overlay(body) => body,
        other => return Err(ControlError::NotOverlay(frame_name(&other))),
    };
    let [version, kind, ..] = body[..] else {
        return Err(ControlError::NoKind(body.len()));
    };
    if version != CONTROL_VERSION {
        return Err(ControlError::UnsupportedVersion(version));
    }
    let kind = ControlKind::from_byte(kind).ok_or(ControlError::UnknownKind(kind))?;
    let before = addresses.len();
    let mut r = Reader {
        buf: body.slice(2..),
        kind,
        addresses,
    };
    let decoded = r.body();
    if decoded.is_err() {
        r.addresses.truncate(before);
    }
    decoded
}

/// Reads the fields of one body, naming the kind and field in every error.
struct Reader<'a> {
    buf: Bytes,
    kind: ControlKind,
    addresses: &'a mut Vec<(PeerId, SocketAddr)>,
}

impl Reader<'_> {
    fn need(&self, field: &'static str, needed: usize) -> Result<(), ControlError> {
        if self.buf.remaining() < needed {
            return Err(ControlError::Truncated {
                kind: self.kind,
                field,
                needed,
                remaining: self.buf.remaining(),
            });
        }
        Ok(())
    }

    fn u8(&mut self, field: &'static str) -> Result<u8, ControlError> {
        self.need(field, 1)?;
        Ok(self.buf.get_u8())
    }

    fn u32(&mut self, field: &'static str) -> Result<u32, ControlError> {
        self.need(field, 4)?;
        Ok(self.buf.get_u32())
    }

    fn u64(&mut self, field: &'static str) -> Result<u64, ControlError> {
        self.need(field, 8)?;
        Ok(self.buf.get_u64())
    }

    fn topic(&mut self) -> Result<Topic, ControlError> {
        self.need("topic", 32)?;
        let mut t = [0u8; 32];
        self.buf.copy_to_slice(&mut t);
        Ok(Topic(t))
    }

    fn peer(&mut self, field: &'static str) -> Result<PeerId, ControlError> {
        let len = usize::from(self.u8(field)?);
        if len > MAX_PEER_ID_LEN {
            return Err(ControlError::PeerIdTooLong {
                kind: self.kind,
                len,
            });
        }
        self.need(field, len + 1)?;
        let peer =
            peer_id_from_bytes(&self.buf[..len]).map_err(|source| ControlError::BadPeerId {
                kind: self.kind,
                source,
            })?;
        self.buf.advance(len);
        let ip = match self.buf.get_u8() {
            0 => return Ok(peer),
            4 => {
                self.need("IPv4 address", 6)?;
                let mut ip = [0u8; 4];
                self.buf.copy_to_slice(&mut ip);
                IpAddr::V4(Ipv4Addr::from(ip))
            }
            6 => {
                self.need("IPv6 address", 18)?;
                let mut ip = [0u8; 16];
                self.buf.copy_to_slice(&mut ip);
                IpAddr::V6(Ipv6Addr::from(ip))
            }
            family => {
                return Err(ControlError::AddressFamily {
                    kind: self.kind,
                    family,
                });
            }
        };
        let port = self.buf.get_u16();
        self.addresses.push((peer, SocketAddr::new(ip, port)));
        Ok(peer)
    }

    fn count(&mut self, field: &'static str) -> Result<usize, ControlError> {
        let count = usize::from(self.u8(field)?);
        if count > MAX_PEERS {
            return Err(ControlError::TooMany {
                kind: self.kind,
                field,
                count,
            });
        }
        Ok(count)
    }

    fn finish(&self) -> Result<(), ControlError> {
        match self.buf.remaining() {
            0 => Ok(()),
            extra => Err(ControlError::TrailingBytes {
                kind: self.kind,
                extra,
            }),
        }
    }

    fn body(&mut self) -> Result<Control, ControlError> {
        use ControlKind as K;
        let message = match self.kind {
            K::Join => Message::Join {
                topic: self.topic()?,
                root: self.peer("root")?,
                rtt_us: self.u64("rtt")?,
            },
            K::Accept | K::Adoption => {
                let topic = self.topic()?;
                let next_seq = self.u64("next seq")?;
                let rate = self.u64("rate")?;
                let delay_us = self.u64("delay")?;
                let n = self.count("path")?;
                let path = (0..n)
                    .map(|_| self.peer("path"))
                    .collect::<Result<_, _>>()?;
                Message::Accept {
                    topic,
                    path,
                    next_seq,
                    rate,
                    delay_us,
                    adoption: self.kind == K::Adoption,
                }
            }
            K::Redirect => {
                let topic = self.topic()?;
                let n = self.count("candidates")?;
                let candidates = (0..n)
                    .map(|_| {
                        Ok(Candidate {
                            peer: self.peer("candidate")?,
                            delay_us: self.u64("candidate delay")?,
                        })
                    })
                    .collect::<Result<_, _>>()?;
                let next_seq = self.u64("next seq")?;
                Message::Redirect {
                    topic,
                    candidates,
                    next_seq,
                }
            }
            K::Leave => Message::Leave {
                topic: self.topic()?,
            },
            K::Repair => Message::Repair {
                topic: self.topic()?,
                from: self.u64("first seq")?,
                to: self.u64("last seq")?,
            },
            K::Probe => Message::Probe {
                nonce: self.u64("nonce")?,
            },
            K::ProbeAck => Message::ProbeAck {
                nonce: self.u64("nonce")?,
            },
            K::Direct => {
                let origin = self.peer("origin")?;
                let dest = self.peer("destination")?;
                let id = self.u64("id")?;
                let hops_left = self.u8("hops left")?;
                let cost = self.u64("cost")?;
                // The rest is the entry's own frame (length prefix included), sliced, not copied.
                let rest = self.buf.split_off(0);
                let payload = match Frame::decode(rest).map_err(ControlError::DirectPayload)? {
                    Frame::Entry(entry) => entry,
                    other => return Err(ControlError::DirectNotEntry(frame_name(&other))),
                };
                Message::Direct {
                    origin,
                    dest,
                    id,
                    hops_left,
                    cost,
                    payload,
                }
            }
            K::Report => Message::Report {
                topic: self.topic()?,
                descendants: self.u32("descendants")?,
                root_rtt_us: self.u64("root rtt")?,
            },
            K::Handover => Message::Handover {
                topic: self.topic()?,
                to: self.peer("successor")?,
            },
            K::Locate => {
                let peer = self.peer("peer")?;
                self.finish()?;
                return Ok(Control::Locate(peer));
            }
            K::Located => {
                let peer = self.peer("peer")?;
                self.finish()?;
                return Ok(Control::Located(peer));
            }
        };
        self.finish()?;
        Ok(Control::Message(message))
    }
}

/// Writes bodies; `address_of` says which address (if any) to attach to each peer named.
struct Writer<F> {
    out: BytesMut,
    address_of: F,
}

impl<F: Fn(&PeerId) -> Option<SocketAddr>> Writer<F> {
    fn new(kind: ControlKind, address_of: F) -> Self {
        let mut out = BytesMut::with_capacity(64);
        out.put_u8(CONTROL_VERSION);
        out.put_u8(kind as u8);
        Writer { out, address_of }
    }

    fn peer(&mut self, peer: &PeerId) {
        let bytes = peer.to_bytes();
        // PeerIds of supported keys are 38–39 bytes; the length always fits.
        self.out.put_u8(bytes.len() as u8);
        self.out.put_slice(&bytes);
        match (self.address_of)(peer) {
            Some(SocketAddr::V4(a)) => {
                self.out.put_u8(4);
                self.out.put_slice(&a.ip().octets());
                self.out.put_u16(a.port());
            }
            Some(SocketAddr::V6(a)) => {
                self.out.put_u8(6);
                self.out.put_slice(&a.ip().octets());
                self.out.put_u16(a.port());
            }
            None => self.out.put_u8(0),
        }
    }

    fn frame(self) -> Frame {
        Frame::Overlay(self.out.freeze())
    }
}

/// Encodes a lookup: [`ControlKind::Locate`] asks for `peer`'s address,
/// [`ControlKind::Located`] carries it.
pub fn encode_lookup(
    answer: bool,
    peer: &PeerId,
    address_of: impl Fn(&PeerId) -> Option<SocketAddr>,
) -> Frame {
    let kind = if answer {
        ControlKind::Located
    } else {
        ControlKind::Locate
    };
    let mut w = Writer::new(kind, address_of);
    w.peer(peer);
    w.frame()
}

/// Encodes a message as the frame that carries it. Lists past [`MAX_PEERS`] are cut there.
pub fn encode(
    msg: &Message<PeerId, Entry>,
    address_of: impl Fn(&PeerId) -> Option<SocketAddr>,
) -> Frame {
    use ControlKind as K;
    let w = match msg {
        Message::Frame { payload, .. } => return Frame::Entry(payload.clone()),
        Message::Join {
            topic,
            root,
            rtt_us,
        } => {
            let mut w = Writer::new(K::Join, address_of);
            w.out.put_slice(topic.as_bytes());
            w.peer(root);
            w.out.put_u64(*rtt_us);
            w
        }
        Message::Accept {
            topic,
            path,
            next_seq,
            rate,
            delay_us,
            adoption,
        } => {
            let kind = if *adoption { K::Adoption } else { K::Accept };
            let mut w = Writer::new(kind, address_of);
            w.out.put_slice(topic.as_bytes());
            w.out.put_u64(*next_seq);
            w.out.put_u64(*rate);
            w.out.put_u64(*delay_us);
            let path = &path[..path.len().min(MAX_PEERS)];
            w.out.put_u8(path.len() as u8);
            for p in path {
                w.peer(p);
            }
            w
        }
        Message::Redirect {
            topic,
            candidates,
            next_seq,
        } => {
            let mut w = Writer::new(K::Redirect, address_of);
            w.out.put_slice(topic.as_bytes());
            let candidates = &candidates[..candidates.len().min(MAX_PEERS)];
            w.out.put_u8(candidates.len() as u8);
            for c in candidates {
                w.peer(&c.peer);
                w.out.put_u64(c.delay_us);
            }
            w.out.put_u64(*next_seq);
            w
        }
        Message::Leave { topic } => {
            let mut w = Writer::new(K::Leave, address_of);
            w.out.put_slice(topic.as_bytes());
            w
        }
        Message::Repair { topic, from, to } => {
            let mut w = Writer::new(K::Repair, address_of);
            w.out.put_slice(topic.as_bytes());
            w.out.put_u64(*from);
            w.out.put_u64(*to);
            w
        }
        Message::Report {
            topic,
            descendants,
            root_rtt_us,
        } => {
            let mut w = Writer::new(K::Report, address_of);
            w.out.put_slice(topic.as_bytes());
            w.out.put_u32(*descendants);
            w.out.put_u64(*root_rtt_us);
            w
        }
        Message::Handover { topic, to } => {
            let mut w = Writer::new(K::Handover, address_of);
            w.out.put_slice(topic.as_bytes());
            w.peer(to);
            w
        }
        Message::Probe { nonce } => {
            let mut w = Writer::new(K::Probe, address_of);
            w.out.put_u64(*nonce);
            w
        }
        Message::ProbeAck { nonce } => {
            let mut w = Writer::new(K::ProbeAck, address_of);
            w.out.put_u64(*nonce);
            w
        }
        Message::Direct {
            origin,
            dest,
            id,
            hops_left,
            cost,
            payload,
        } => {
            let mut w = Writer::new(K::Direct, address_of);
            w.peer(origin);
            w.peer(dest);
            w.out.put_u64(*id);
            w.out.put_u8(*hops_left);
            w.out.put_u64(*cost);
            for part in payload.wire_parts() {
                w.out.put_slice(&part[..]);
            }
            w
        }
    };
    w.frame()
}

#[cfg(test)]
mod tests;
