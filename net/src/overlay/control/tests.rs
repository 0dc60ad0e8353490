use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::entry::{EntryFields, EntrySigner, LogId};
use crate::identity::{KeyType, Keypair};

fn peer() -> PeerId {
    Keypair::generate(KeyType::Ed25519).peer_id()
}

fn entry(seq: u64) -> Entry {
    let mut signer = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    signer
        .sign_one(&EntryFields::new(
            LogId([0; 32]),
            seq,
            1,
            Bytes::from_static(b"hello"),
        ))
        .unwrap()
}

type Book = HashMap<PeerId, SocketAddr>;

fn body(msg: &Message<PeerId, Entry>, book: &Book) -> Bytes {
    match encode(msg, |p| book.get(p).copied()) {
        Frame::Overlay(bytes) => bytes,
        other => panic!("control messages travel as overlay frames, not {other:?}"),
    }
}

fn decode_body(bytes: Bytes) -> (Result<Control, ControlError>, Vec<(PeerId, SocketAddr)>) {
    let mut learned = Vec::new();
    let r = decode(Frame::Overlay(bytes), &mut learned);
    (r, learned)
}

fn round_trip(msg: Message<PeerId, Entry>, book: &Book) {
    match decode_body(body(&msg, book)).0 {
        // (Entry has no PartialEq; Debug shows every field.)
        Ok(Control::Message(back)) => assert_eq!(format!("{back:?}"), format!("{msg:?}")),
        other => panic!("{other:?}"),
    }
}

fn samples(a: PeerId, b: PeerId, c: PeerId) -> Vec<Message<PeerId, Entry>> {
    let topic = Topic([3u8; 32]);
    vec![
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
            next_seq: 0,
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
        Message::Probe { nonce: 5 },
        Message::ProbeAck { nonce: 5 },
        Message::Direct {
            origin: a,
            dest: c,
            id: 77,
            hops_left: 6,
            cost: 123,
            payload: entry(77),
        },
    ]
}

#[test]
fn every_control_message_round_trips_and_hands_back_the_addresses_it_names() {
    let (a, b, c) = (peer(), peer(), peer());
    let mut book = Book::new();
    let v4: SocketAddr = "127.0.0.1:4001".parse().unwrap();
    let v6: SocketAddr = "[::1]:4002".parse().unwrap();
    book.insert(b, v4);
    book.insert(c, v6);
    for msg in samples(a, b, c) {
        round_trip(msg, &book);
    }
    let redirect = Message::Redirect {
        topic: Topic([0; 32]),
        candidates: vec![
            Candidate {
                peer: b,
                delay_us: 1,
            },
            Candidate {
                peer: a,
                delay_us: 2,
            },
            Candidate {
                peer: c,
                delay_us: 3,
            },
        ],
        next_seq: 0,
    };
    let (r, learned) = decode_body(body(&redirect, &book));
    assert!(r.is_ok());
    assert_eq!(learned, vec![(b, v4), (c, v6)]);
}

#[test]
fn lookups_round_trip() {
    let p = peer();
    let addr: SocketAddr = "127.0.0.1:9".parse().unwrap();
    let mut learned = Vec::new();
    let asked = decode(encode_lookup(false, &p, |_| None), &mut learned);
    assert!(matches!(asked, Ok(Control::Locate(q)) if q == p));
    assert!(learned.is_empty());
    let answer = decode(encode_lookup(true, &p, |_| Some(addr)), &mut learned);
    assert!(matches!(answer, Ok(Control::Located(q)) if q == p));
    assert_eq!(learned, vec![(p, addr)]);
}

#[test]
fn entry_frames_are_topic_frames() {
    let e = entry(5);
    let mut learned = Vec::new();
    match decode(Frame::Entry(e.clone()), &mut learned) {
        Ok(Control::Message(Message::Frame {
            topic,
            seq,
            payload,
        })) => {
            assert_eq!((topic, seq), (Topic::from(e.log_id()), 5));
            assert_eq!(payload.hash(), e.hash());
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn every_truncation_is_a_typed_error_that_names_the_field_and_learns_nothing() {
    let (a, b, c) = (peer(), peer(), peer());
    let mut book = Book::new();
    book.insert(b, "127.0.0.1:4001".parse().unwrap());
    for msg in samples(a, b, c) {
        let bytes = body(&msg, &book);
        for cut in 0..bytes.len() {
            let (r, learned) = decode_body(bytes.slice(..cut));
            match r {
                Err(ControlError::NoKind(n)) => assert_eq!(n, cut),
                Err(ControlError::Truncated { field, .. }) => assert!(!field.is_empty()),
                // The direct message's tail is the entry's own frame.
                Err(ControlError::DirectPayload(_)) => {
                    assert!(matches!(msg, Message::Direct { .. }))
                }
                other => panic!("{msg:?} cut at {cut}: {other:?}"),
            }
            assert!(
                learned.is_empty(),
                "{msg:?} cut at {cut} learned {learned:?}"
            );
        }
    }
}

#[test]
fn malformed_bodies_say_what_was_wrong() {
    let with = |kind: u8, rest: &[u8]| {
        let mut b = vec![CONTROL_VERSION, kind];
        b.extend_from_slice(rest);
        decode_body(Bytes::from(b)).0
    };
    let r = decode_body(Bytes::from_static(&[2, 1])).0;
    assert!(
        matches!(r, Err(ControlError::UnsupportedVersion(2))),
        "{r:?}"
    );
    let r = with(200, &[]);
    assert!(matches!(r, Err(ControlError::UnknownKind(200))), "{r:?}");
    // A candidate count past the limit is refused before any candidate is read.
    let mut redirect = vec![0u8; 32];
    redirect.push(255);
    let r = with(ControlKind::Redirect as u8, &redirect);
    assert!(
        matches!(
            r,
            Err(ControlError::TooMany {
                kind: ControlKind::Redirect,
                count: 255,
                ..
            })
        ),
        "{r:?}"
    );
    let r = with(ControlKind::Locate as u8, &[200]);
    assert!(
        matches!(r, Err(ControlError::PeerIdTooLong { len: 200, .. })),
        "{r:?}"
    );
    let r = with(ControlKind::Locate as u8, &[3, 9, 9, 9, 0]);
    assert!(matches!(r, Err(ControlError::BadPeerId { .. })), "{r:?}");
    let p = peer().to_bytes();
    let mut located = vec![p.len() as u8];
    located.extend_from_slice(&p);
    located.push(5);
    let r = with(ControlKind::Located as u8, &located);
    assert!(
        matches!(r, Err(ControlError::AddressFamily { family: 5, .. })),
        "{r:?}"
    );
    let r = with(ControlKind::Probe as u8, &[0, 0, 0, 0, 0, 0, 0, 1, 0xff]);
    assert!(
        matches!(
            r,
            Err(ControlError::TrailingBytes {
                kind: ControlKind::Probe,
                extra: 1
            })
        ),
        "{r:?}"
    );
    let mut learned = Vec::new();
    let r = decode(Frame::Ping(1), &mut learned);
    assert!(matches!(r, Err(ControlError::NotOverlay("ping"))), "{r:?}");
    // The message says what was wrong (it used to read "0 bytes, expected 0" for everything).
    let r = with(ControlKind::Report as u8, &[0; 33]);
    let text = r.map(|_| ()).unwrap_err().to_string();
    assert!(
        text.contains("Report") && text.contains("descendants"),
        "{text}"
    );
}

#[test]
fn a_direct_message_must_carry_an_entry_frame() {
    let (a, b) = (peer(), peer());
    let mut bytes = BytesMut::from(
        &body(
            &Message::Direct {
                origin: a,
                dest: b,
                id: 1,
                hops_left: 1,
                cost: 0,
                payload: entry(1),
            },
            &Book::new(),
        )[..],
    );
    let tail = 2 + 2 * (1 + a.to_bytes().len() + 1) + 8 + 1 + 8;
    bytes.truncate(tail);
    bytes.extend_from_slice(&crate::wire::encode_frame(&Frame::Ping(3)));
    let r = decode_body(bytes.freeze()).0;
    assert!(
        matches!(r, Err(ControlError::DirectNotEntry("ping"))),
        "{r:?}"
    );
}

#[test]
fn every_kind_byte_round_trips() {
    for b in 0..=255u8 {
        if let Some(k) = ControlKind::from_byte(b) {
            assert_eq!(k as u8, b);
        }
    }
    assert_eq!((1..=13).filter_map(ControlKind::from_byte).count(), 13);
    assert!(
        ControlKind::ALL
            .windows(2)
            .all(|w| (w[0] as u8) + 1 == w[1] as u8)
    );
}

fn arb_message(pool: Vec<PeerId>) -> impl Strategy<Value = Message<PeerId, Entry>> {
    let p = {
        let pool = pool.clone();
        move || proptest::sample::select(pool.clone())
    };
    let topic = || any::<[u8; 32]>().prop_map(Topic);
    prop_oneof![
        (topic(), p(), any::<u64>()).prop_map(|(topic, root, rtt_us)| Message::Join {
            topic,
            root,
            rtt_us
        }),
        (
            topic(),
            proptest::collection::vec(p(), 0..=MAX_PEERS),
            any::<(u64, u64, u64, bool)>()
        )
            .prop_map(|(topic, path, (next_seq, rate, delay_us, adoption))| {
                Message::Accept {
                    topic,
                    path,
                    next_seq,
                    rate,
                    delay_us,
                    adoption,
                }
            }),
        (
            topic(),
            proptest::collection::vec((p(), any::<u64>()), 0..=MAX_PEERS)
        )
            .prop_map(|(topic, c)| Message::Redirect {
                topic,
                candidates: c
                    .into_iter()
                    .map(|(peer, delay_us)| Candidate { peer, delay_us })
                    .collect(),
                next_seq: 0
            }),
        topic().prop_map(|topic| Message::Leave { topic }),
        (topic(), any::<u64>(), any::<u64>()).prop_map(|(topic, from, to)| Message::Repair {
            topic,
            from,
            to
        }),
        (topic(), any::<u32>(), any::<u64>()).prop_map(|(topic, descendants, root_rtt_us)| {
            Message::Report {
                topic,
                descendants,
                root_rtt_us,
            }
        }),
        (topic(), p()).prop_map(|(topic, to)| Message::Handover { topic, to }),
        any::<u64>().prop_map(|nonce| Message::Probe { nonce }),
        any::<u64>().prop_map(|nonce| Message::ProbeAck { nonce }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn arbitrary_messages_round_trip(
        msg in arb_message((0..6).map(|_| peer()).collect()),
        addressed in any::<u8>(),
    ) {
        // Some peers get addresses (v4 or v6), others none.
        let book = |p: &PeerId| {
            let h = p.to_bytes().iter().fold(addressed, |h, b| h.wrapping_mul(31).wrapping_add(*b));
            match h % 3 {
                0 => None,
                1 => Some(SocketAddr::from(([127, 0, 0, h], 4000 + u16::from(h)))),
                _ => Some(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], u16::from(h)))),
            }
        };
        let Frame::Overlay(bytes) = encode(&msg, book) else { unreachable!() };
        let (r, learned) = decode_body(bytes);
        match r {
            Ok(Control::Message(back)) => prop_assert_eq!(format!("{back:?}"), format!("{msg:?}")),
            other => prop_assert!(false, "{:?}", other),
        }
        for (p, addr) in learned {
            prop_assert_eq!(book(&p), Some(addr));
        }
    }

    #[test]
    fn arbitrary_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let (r, learned) = decode_body(Bytes::from(body));
        prop_assert!(learned.len() <= MAX_PEERS + 2);
        if r.is_err() {
            prop_assert!(learned.is_empty());
        }
    }

    #[test]
    fn arbitrary_control_bodies_never_panic(kind in 1u8..14, rest in proptest::collection::vec(any::<u8>(), 0..200)) {
        let mut body = vec![CONTROL_VERSION, kind];
        body.extend(rest);
        let _ = decode_body(Bytes::from(body));
    }
}
