//! The overlay's control messages on the wire (frame kind 0x04), and peers as (PeerId, address)
//! so that a redirected joiner can dial the candidates it is given.
//!
//! Body v1: `version=1, type, fields…`; a peer is `len u8, PeerId bytes, family u8 (4|6),
//! ip, port u16`; a redirect candidate is a peer and its delay from the root (µs, u64). At most
//! 32 peers per message. Topic frames are not encoded here: they travel
//! as signed data frames (kind 0x03) and are relayed as the same `Bytes`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::entry::Entry;
use crate::identity::{PeerId, peer_id_from_bytes};
use crate::overlay::{Candidate, Message};
use crate::wire::{Frame, WireError};

const VERSION: u8 = 1;
const MAX_PEERS: usize = 32;

/// Where peers can be reached, learned from connections and from messages.
pub(super) type AddressBook = HashMap<PeerId, SocketAddr>;

fn bad(what: &'static str) -> WireError {
    WireError::BadBodyLength {
        kind: what,
        expected: 0,
        actual: 0,
    }
}

fn put_peer(out: &mut BytesMut, peer: &PeerId, book: &AddressBook) {
    let bytes = peer.to_bytes();
    out.put_u8(bytes.len() as u8);
    out.put_slice(&bytes);
    match book.get(peer) {
        Some(SocketAddr::V4(a)) => {
            out.put_u8(4);
            out.put_slice(&a.ip().octets());
            out.put_u16(a.port());
        }
        Some(SocketAddr::V6(a)) => {
            out.put_u8(6);
            out.put_slice(&a.ip().octets());
            out.put_u16(a.port());
        }
        None => out.put_u8(0),
    }
}

fn get_peer(buf: &mut Bytes, book: &mut AddressBook) -> Result<PeerId, WireError> {
    let need = |buf: &Bytes, n: usize| {
        if buf.remaining() < n {
            Err(bad("overlay peer"))
        } else {
            Ok(())
        }
    };
    need(buf, 1)?;
    let len = usize::from(buf.get_u8());
    if len > 64 {
        return Err(bad("overlay peer"));
    }
    need(buf, len + 1)?;
    let peer = peer_id_from_bytes(&buf.split_to(len))?;
    let addr = match buf.get_u8() {
        0 => None,
        4 => {
            need(buf, 6)?;
            let mut ip = [0u8; 4];
            buf.copy_to_slice(&mut ip);
            Some(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::from(ip)),
                buf.get_u16(),
            ))
        }
        6 => {
            need(buf, 18)?;
            let mut ip = [0u8; 16];
            buf.copy_to_slice(&mut ip);
            Some(SocketAddr::new(
                IpAddr::V6(Ipv6Addr::from(ip)),
                buf.get_u16(),
            ))
        }
        _ => return Err(bad("overlay peer address")),
    };
    if let Some(addr) = addr {
        book.entry(peer).or_insert(addr);
    }
    Ok(peer)
}

fn get_peers(buf: &mut Bytes, book: &mut AddressBook) -> Result<Vec<PeerId>, WireError> {
    if !buf.has_remaining() {
        return Err(bad("overlay peers"));
    }
    let n = usize::from(buf.get_u8());
    if n > MAX_PEERS {
        return Err(bad("overlay peers"));
    }
    (0..n).map(|_| get_peer(buf, book)).collect()
}

fn get_candidates(
    buf: &mut Bytes,
    book: &mut AddressBook,
) -> Result<Vec<Candidate<PeerId>>, WireError> {
    if !buf.has_remaining() {
        return Err(bad("overlay candidates"));
    }
    let n = usize::from(buf.get_u8());
    if n > MAX_PEERS {
        return Err(bad("overlay candidates"));
    }
    (0..n)
        .map(|_| {
            Ok(Candidate {
                peer: get_peer(buf, book)?,
                delay_us: get_u64(buf)?,
            })
        })
        .collect()
}

fn put_peers(out: &mut BytesMut, peers: &[PeerId], book: &AddressBook) {
    let n = peers.len().min(MAX_PEERS);
    out.put_u8(n as u8);
    for p in &peers[..n] {
        put_peer(out, p, book);
    }
}

fn get_topic(buf: &mut Bytes) -> Result<[u8; 32], WireError> {
    if buf.remaining() < 32 {
        return Err(bad("overlay topic"));
    }
    let mut t = [0u8; 32];
    buf.copy_to_slice(&mut t);
    Ok(t)
}

fn get_u64(buf: &mut Bytes) -> Result<u64, WireError> {
    if buf.remaining() < 8 {
        return Err(bad("overlay field"));
    }
    Ok(buf.get_u64())
}

/// A decoded overlay frame: a core message, or one of the driver's own address lookups.
#[derive(Debug)]
// An entry travels by value (its fields parsed once); boxing it would allocate per frame.
#[allow(clippy::large_enum_variant)]
pub(super) enum Decoded {
    /// For the core.
    Core(Message<PeerId, Entry>),
    /// "Where can I reach this peer?" (sent to neighbours when dialing a peer of unknown address).
    Locate(PeerId),
    /// The answer; its address went into the book while decoding.
    Located(PeerId),
}

/// Encodes a driver lookup: `Locate` asks for `peer`'s address, `Located` carries it.
pub(super) fn encode_lookup(answer: bool, peer: &PeerId, book: &AddressBook) -> Frame {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(VERSION);
    out.put_u8(if answer { 10 } else { 9 });
    put_peer(&mut out, peer, book);
    Frame::Overlay(out.freeze())
}

/// Encodes a message as the frame that carries it.
pub(super) fn encode(msg: &Message<PeerId, Entry>, book: &AddressBook) -> Frame {
    let mut out = BytesMut::with_capacity(64);
    out.put_u8(VERSION);
    match msg {
        Message::Frame { payload, .. } => return Frame::Entry(payload.clone()),
        Message::Join {
            topic,
            root,
            rtt_us,
        } => {
            out.put_u8(1);
            out.put_slice(topic);
            put_peer(&mut out, root, book);
            out.put_u64(*rtt_us);
        }
        Message::Accept {
            topic,
            path,
            next_seq,
            rate,
            delay_us,
            adoption,
        } => {
            out.put_u8(if *adoption { 13 } else { 2 });
            out.put_slice(topic);
            out.put_u64(*next_seq);
            out.put_u64(*rate);
            out.put_u64(*delay_us);
            put_peers(&mut out, path, book);
        }
        Message::Redirect { topic, candidates } => {
            out.put_u8(3);
            out.put_slice(topic);
            let n = candidates.len().min(MAX_PEERS);
            out.put_u8(n as u8);
            for c in &candidates[..n] {
                put_peer(&mut out, &c.peer, book);
                out.put_u64(c.delay_us);
            }
        }
        Message::Leave { topic } => {
            out.put_u8(4);
            out.put_slice(topic);
        }
        Message::Repair { topic, from, to } => {
            out.put_u8(5);
            out.put_slice(topic);
            out.put_u64(*from);
            out.put_u64(*to);
        }
        Message::Report {
            topic,
            descendants,
            root_rtt_us,
        } => {
            out.put_u8(11);
            out.put_slice(topic);
            out.put_u32(*descendants);
            out.put_u64(*root_rtt_us);
        }
        Message::Handover { topic, to } => {
            out.put_u8(12);
            out.put_slice(topic);
            put_peer(&mut out, to, book);
        }
        Message::Probe { sent_at } => {
            out.put_u8(6);
            out.put_u64(*sent_at);
        }
        Message::ProbeAck { sent_at } => {
            out.put_u8(7);
            out.put_u64(*sent_at);
        }
        Message::Direct {
            origin,
            dest,
            id,
            hops_left,
            cost,
            payload,
        } => {
            out.put_u8(8);
            put_peer(&mut out, origin, book);
            put_peer(&mut out, dest, book);
            out.put_u64(*id);
            out.put_u8(*hops_left);
            out.put_u64(*cost);
            for part in payload.wire_parts() {
                out.put_slice(&part[..]);
            }
        }
    }
    Frame::Overlay(out.freeze())
}

/// Decodes a received frame into an overlay message (learning addresses on the way).
pub(super) fn decode(frame: Frame, book: &mut AddressBook) -> Result<Decoded, WireError> {
    let mut b = match frame {
        Frame::Entry(d) => {
            return Ok(Decoded::Core(Message::Frame {
                topic: d.log_id(),
                seq: d.seq(),
                payload: d,
            }));
        }
        Frame::Overlay(b) => b,
        _ => return Err(WireError::Unexpected("non-overlay frame")),
    };
    if b.remaining() < 2 {
        return Err(bad("overlay"));
    }
    let version = b.get_u8();
    if version != VERSION {
        return Err(WireError::UnsupportedVersion {
            kind: "overlay",
            version,
        });
    }
    let kind = b.get_u8();
    let msg = match kind {
        1 => Message::Join {
            topic: get_topic(&mut b)?,
            root: get_peer(&mut b, book)?,
            rtt_us: get_u64(&mut b)?,
        },
        2 | 13 => {
            let topic = get_topic(&mut b)?;
            let next_seq = get_u64(&mut b)?;
            let rate = get_u64(&mut b)?;
            let delay_us = get_u64(&mut b)?;
            Message::Accept {
                topic,
                next_seq,
                rate,
                delay_us,
                path: get_peers(&mut b, book)?,
                adoption: kind == 13,
            }
        }
        3 => Message::Redirect {
            topic: get_topic(&mut b)?,
            candidates: get_candidates(&mut b, book)?,
        },
        4 => Message::Leave {
            topic: get_topic(&mut b)?,
        },
        5 => Message::Repair {
            topic: get_topic(&mut b)?,
            from: get_u64(&mut b)?,
            to: get_u64(&mut b)?,
        },
        6 => Message::Probe {
            sent_at: get_u64(&mut b)?,
        },
        7 => Message::ProbeAck {
            sent_at: get_u64(&mut b)?,
        },
        8 => {
            let origin = get_peer(&mut b, book)?;
            let dest = get_peer(&mut b, book)?;
            let id = get_u64(&mut b)?;
            if b.remaining() < 9 {
                return Err(bad("overlay direct"));
            }
            let hops_left = b.get_u8();
            let cost = b.get_u64();
            let Frame::Entry(payload) = Frame::decode(b)? else {
                return Err(WireError::Unexpected(
                    "direct payload that is not a data frame",
                ));
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
        11 => {
            let topic = get_topic(&mut b)?;
            if b.remaining() < 12 {
                return Err(bad("overlay report"));
            }
            Message::Report {
                topic,
                descendants: b.get_u32(),
                root_rtt_us: b.get_u64(),
            }
        }
        12 => Message::Handover {
            topic: get_topic(&mut b)?,
            to: get_peer(&mut b, book)?,
        },
        9 => return Ok(Decoded::Locate(get_peer(&mut b, book)?)),
        10 => return Ok(Decoded::Located(get_peer(&mut b, book)?)),
        other => return Err(WireError::UnknownKind(other)),
    };
    Ok(Decoded::Core(msg))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::identity::{KeyType, Keypair};

    fn peer() -> PeerId {
        Keypair::generate(KeyType::Ed25519).peer_id()
    }

    fn round_trip(msg: Message<PeerId, Entry>, book: &AddressBook) {
        let Frame::Overlay(bytes) = encode(&msg, book) else {
            panic!("control messages travel as overlay frames")
        };
        let mut learned = AddressBook::new();
        match decode(Frame::Overlay(bytes), &mut learned) {
            // (Entry has no PartialEq; control messages carry none, so Debug compares all.)
            Ok(Decoded::Core(back)) => assert_eq!(format!("{back:?}"), format!("{msg:?}")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn every_control_message_round_trips_and_carries_addresses() {
        let (a, b, c) = (peer(), peer(), peer());
        let mut book = AddressBook::new();
        let addr: SocketAddr = "127.0.0.1:4001".parse().unwrap_or_else(|_| unreachable!());
        book.insert(b, addr);
        let topic = [3u8; 32];
        for msg in [
            Message::Join {
                topic,
                root: a,
                rtt_us: 31_000,
            },
            Message::Accept {
                topic,
                path: vec![a, b],
                next_seq: 7,
                rate: 250_000,
                delay_us: 12_345,
                adoption: false,
            },
            Message::Accept {
                topic,
                path: vec![a],
                next_seq: 8,
                rate: 1,
                delay_us: 2,
                adoption: true,
            },
            Message::Redirect {
                topic,
                candidates: vec![
                    Candidate {
                        peer: b,
                        delay_us: 40_000,
                    },
                    Candidate {
                        peer: c,
                        delay_us: u64::MAX,
                    },
                ],
            },
            Message::Leave { topic },
            Message::Repair {
                topic,
                from: 1,
                to: 9,
            },
            Message::Report {
                topic,
                descendants: 4_000_000,
                root_rtt_us: 41_000,
            },
            Message::Handover { topic, to: c },
            Message::Probe { sent_at: 5 },
            Message::ProbeAck { sent_at: 5 },
        ] {
            round_trip(msg, &book);
        }
        // The candidate's address went into the receiver's book, so it can dial it.
        let redirect = Message::Redirect {
            topic,
            candidates: vec![Candidate {
                peer: b,
                delay_us: 1,
            }],
        };
        let mut learned = AddressBook::new();
        assert!(decode(encode(&redirect, &book), &mut learned).is_ok());
        assert_eq!(learned.get(&b), Some(&addr));
    }

    #[test]
    fn truncated_reports_handovers_and_redirects_are_typed_errors() {
        let topic = [1u8; 32];
        let book = AddressBook::new();
        for msg in [
            Message::Report {
                topic,
                descendants: 3,
                root_rtt_us: 9,
            },
            Message::Handover { topic, to: peer() },
            Message::Redirect {
                topic,
                candidates: vec![Candidate {
                    peer: peer(),
                    delay_us: 9,
                }],
            },
        ] {
            let Frame::Overlay(bytes) = encode(&msg, &book) else {
                unreachable!()
            };
            for cut in 0..bytes.len() {
                let r = decode(Frame::Overlay(bytes.slice(..cut)), &mut AddressBook::new());
                assert!(r.is_err(), "{msg:?} cut at {cut} decoded");
            }
        }
    }

    #[test]
    fn a_candidate_count_past_the_limit_is_refused_before_reading_on() {
        let mut body = BytesMut::new();
        body.put_u8(VERSION);
        body.put_u8(3);
        body.put_slice(&[0u8; 32]);
        body.put_u8(255);
        let r = decode(Frame::Overlay(body.freeze()), &mut AddressBook::new());
        assert!(matches!(r, Err(WireError::BadBodyLength { .. })), "{r:?}");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]
        #[test]
        fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut book = AddressBook::new();
            let _ = decode(Frame::Overlay(Bytes::from(body)), &mut book);
            prop_assert!(book.len() <= MAX_PEERS + 2);
        }

        #[test]
        fn arbitrary_control_bodies_never_panic(kind in 1u8..14, rest in proptest::collection::vec(any::<u8>(), 0..200)) {
            let mut body = vec![VERSION, kind];
            body.extend(rest);
            let _ = decode(Frame::Overlay(Bytes::from(body)), &mut AddressBook::new());
        }
    }
}
