//! Codec tests: round trips, zero-copy, and each kind of bad input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::entry::{Entry, EntryError, EntryFields, EntrySigner, EntryVerifier, LogId};
use crate::identity::{KeyType, Keypair};

fn data_frame(key: &Keypair, seq: u64, payload: &[u8]) -> Entry {
    let mut signer = EntrySigner::new(key.clone());
    signer
        .sign_one(&EntryFields::new(
            LogId([9; TOPIC_LEN]),
            seq,
            1_700_000_000_000_000 + seq,
            Bytes::copy_from_slice(payload),
        ))
        .unwrap()
}

fn wire_bytes(f: &Entry) -> Bytes {
    encode_frame(&Frame::Entry(f.clone()))
}

fn decode_all(chunks: Vec<Bytes>, max: usize) -> Result<Vec<Frame>, WireError> {
    let mut d = FrameDecoder::new(max);
    let mut out = Vec::new();
    for c in chunks {
        d.push(c);
        while let Some(f) = d.next_frame()? {
            out.push(Frame::decode(f)?);
        }
    }
    d.finish()?;
    Ok(out)
}

#[test]
fn control_frames_round_trip() {
    for frame in [
        Frame::Ping(7),
        Frame::Pong(u64::MAX),
        Frame::StreamHeader(StreamHeader { lane: Lane::Low }),
    ] {
        let got = decode_all(vec![encode_frame(&frame)], 1024).unwrap();
        assert_eq!(format!("{got:?}"), format!("{:?}", [frame]));
    }
}

#[test]
fn app_frames_round_trip_from_two_parts_without_copying_the_body() {
    for body in [Bytes::new(), Bytes::from(vec![5u8; 300])] {
        let parts = app_parts(&body);
        assert_eq!(parts[1].as_ptr(), body.as_ptr(), "the body is not copied");
        let whole = [&parts[0][..], &parts[1][..]].concat();
        assert_eq!(encode_frame(&Frame::App(body.clone()))[..], whole[..]);
        let got = decode_all(vec![Bytes::from(whole)], 1024).unwrap();
        let [Frame::App(got)] = &got[..] else {
            panic!("not one app frame: {got:?}")
        };
        assert_eq!(got, &body);
    }
}

#[test]
fn data_frame_round_trips_and_verifies() {
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        let key = Keypair::generate(kt);
        let f = data_frame(&key, 42, b"hello frame");
        let got = decode_all(vec![wire_bytes(&f)], 1 << 20).unwrap();
        let Frame::Entry(d) = &got[0] else {
            panic!("not data")
        };
        assert_eq!(d.seq(), 42);
        assert_eq!(d.log_id(), LogId([9; TOPIC_LEN]));
        assert_eq!(d.stored_payload().as_ref(), b"hello frame");
        assert_eq!(d, &f);
        let mut v = EntryVerifier::default();
        assert_eq!(v.verify(d).unwrap(), *key.public());
    }
}

#[test]
fn payload_in_one_chunk_is_not_copied() {
    let key = Keypair::generate(KeyType::Ed25519);
    let a = wire_bytes(&data_frame(&key, 1, &[1u8; 5000]));
    let b = wire_bytes(&data_frame(&key, 2, &[2u8; 300]));
    let mut chunk = BytesMut::new();
    chunk.extend_from_slice(&a);
    chunk.extend_from_slice(&b);
    let chunk = chunk.freeze();
    let range = chunk.as_ptr() as usize..chunk.as_ptr() as usize + chunk.len();
    let frames = decode_all(vec![chunk.clone()], 1 << 20).unwrap();
    assert_eq!(frames.len(), 2);
    for f in frames {
        let Frame::Entry(d) = f else { panic!() };
        assert!(
            range.contains(&(d.stored_payload().as_ptr() as usize)),
            "payload was copied"
        );
    }
}

#[test]
fn oversized_length_is_refused_before_allocating() {
    // A prefix announcing 4 GiB, then nothing: refused from the prefix alone.
    let mut d = FrameDecoder::new(1024);
    d.push(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 0x0f]));
    assert!(matches!(
        d.next_frame(),
        Err(WireError::Oversized { max: 1024, .. })
    ));
    // Same with the prefix split across chunks.
    let mut d = FrameDecoder::new(1024);
    d.push(Bytes::from_static(&[0x81]));
    assert!(d.next_frame().unwrap().is_none());
    d.push(Bytes::from_static(&[0x10]));
    assert!(matches!(d.next_frame(), Err(WireError::Oversized { .. })));
    assert!(d.buffered() < 16);
}

#[test]
fn malformed_prefixes_are_typed() {
    let mut d = FrameDecoder::new(1 << 30);
    d.push(Bytes::from_static(&[0x80, 0x80, 0x80, 0x80, 0x80, 0x01]));
    assert!(matches!(d.next_frame(), Err(WireError::MalformedLength)));
    // Non-minimal: 1 encoded in two bytes.
    let mut d = FrameDecoder::new(1024);
    d.push(Bytes::from_static(&[0x81, 0x00, 0x01]));
    assert!(matches!(d.next_frame(), Err(WireError::MalformedLength)));
    let mut d = FrameDecoder::new(1024);
    d.push(Bytes::from_static(&[0x00]));
    assert!(matches!(d.next_frame(), Err(WireError::Empty)));
}

#[test]
fn unknown_kind_and_version_are_typed() {
    assert!(matches!(
        Frame::decode(Bytes::from_static(&[2, 0x7f, 1])),
        Err(WireError::UnknownKind(0x7f))
    ));
    assert!(matches!(
        Frame::decode(Bytes::from_static(&[10, 0x01, 9, 0, 0, 0, 0, 0, 0, 0, 1])),
        Err(WireError::UnsupportedVersion {
            kind: "ping",
            version: 9
        })
    ));
    let mut bad =
        BytesMut::from(&wire_bytes(&data_frame(&Keypair::generate(KeyType::Ed25519), 1, b"x"))[..]);
    // Prefix (2 bytes: the frame is over 127 bytes), kind, then the entry's version byte.
    bad[3] = 9;
    assert!(matches!(
        Frame::decode(bad.clone().freeze()),
        Err(WireError::Entry(EntryError::UnsupportedVersion(9)))
    ));
    bad[3] = 1;
    assert!(matches!(
        Frame::decode(bad.clone().freeze()),
        Err(WireError::Entry(EntryError::RetiredVersion))
    ));
    bad[3] = 2;
    bad[3 + 87] = 7;
    assert!(matches!(
        Frame::decode(bad.freeze()),
        Err(WireError::Entry(EntryError::UnknownKeyType(7)))
    ));
    let mut header =
        BytesMut::from(&encode_frame(&Frame::StreamHeader(StreamHeader { lane: Lane::High }))[..]);
    let last = header.len() - 1;
    header[last] = b'9';
    assert!(matches!(
        Frame::decode(header.freeze()),
        Err(WireError::UnsupportedProtocol(_))
    ));
}

#[test]
fn truncated_frames_are_typed() {
    let whole = wire_bytes(&data_frame(
        &Keypair::generate(KeyType::Ed25519),
        1,
        &[5u8; 100],
    ));
    let err = decode_all(vec![whole.slice(..whole.len() - 1)], 1 << 20).unwrap_err();
    assert!(matches!(err, WireError::Truncated));
    // An entry frame whose body is shorter than its fixed header.
    assert!(matches!(
        Frame::decode(Bytes::from_static(&[3, 0x03, 2, 0])),
        Err(WireError::Entry(EntryError::Truncated { .. }))
    ));
}

#[test]
fn tampering_is_detected() {
    let key = Keypair::generate(KeyType::Ed25519);
    let whole = wire_bytes(&data_frame(&key, 1, b"payload bytes"));
    // Flip a payload byte: hash mismatch at decode.
    let mut p = BytesMut::from(&whole[..]);
    let last = p.len() - 1;
    p[last] ^= 1;
    assert!(matches!(
        Frame::decode(p.freeze()),
        Err(WireError::Entry(EntryError::PayloadHashMismatch))
    ));
    // Flip the sequence number: the signature fails.
    let mut h = BytesMut::from(&whole[..]);
    h[3 + 40] ^= 1;
    let Frame::Entry(d) = Frame::decode(h.freeze()).unwrap() else {
        panic!()
    };
    assert!(matches!(
        EntryVerifier::default().verify(&d),
        Err(EntryError::Signature(_))
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any chunking of a valid stream yields the same frames.
    #[test]
    fn any_chunking_decodes_the_same(sizes in prop::collection::vec(0usize..3000, 1..6), cuts in prop::collection::vec(1usize..700, 1..40)) {
        let key = Keypair::generate(KeyType::Ed25519);
        let mut stream = BytesMut::new();
        for (i, s) in sizes.iter().enumerate() {
            stream.extend_from_slice(&wire_bytes(&data_frame(&key, i as u64, &vec![i as u8; *s])));
        }
        let stream = stream.freeze();
        let mut chunks = Vec::new();
        let mut at = 0;
        for c in cuts.iter().cycle() {
            if at >= stream.len() { break; }
            let end = (at + c).min(stream.len());
            chunks.push(stream.slice(at..end));
            at = end;
        }
        let frames = decode_all(chunks, 1 << 20).unwrap();
        prop_assert_eq!(frames.len(), sizes.len());
        let mut v = EntryVerifier::default();
        for (i, f) in frames.iter().enumerate() {
            let Frame::Entry(d) = f else { panic!() };
            prop_assert_eq!(d.seq(), i as u64);
            prop_assert_eq!(d.stored_payload().len(), sizes[i]);
            prop_assert!(v.verify(d).is_ok());
        }
    }

    /// Arbitrary bytes in arbitrary chunks never panic and never buffer past the limit.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..4096), cut in 1usize..512) {
        let max = 1024;
        let mut d = FrameDecoder::new(max);
        for chunk in data.chunks(cut) {
            d.push(Bytes::copy_from_slice(chunk));
            loop {
                match d.next_frame() {
                    Ok(Some(f)) => { let _ = Frame::decode(f); }
                    Ok(None) => break,
                    Err(_) => return Ok(()),
                }
            }
            prop_assert!(d.buffered() <= max + 5 + cut);
        }
        let _ = d.finish();
    }
}
