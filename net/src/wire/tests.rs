//! Codec tests: round trips, zero-copy, and each kind of bad input.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::identity::{KeyType, Keypair};

fn data_frame(key: &Keypair, seq: u64, payload: &[u8]) -> DataFrame {
    let mut arena = BytesMut::new();
    DataFrame::sign(
        key,
        DataFrameFields {
            topic: [9; TOPIC_LEN],
            seq,
            timestamp_us: 1_700_000_000_000_000 + seq,
            payload: Bytes::copy_from_slice(payload),
        },
        &mut arena,
    )
}

fn wire_bytes(f: &DataFrame) -> Bytes {
    encode_frame(&Frame::Data(f.clone()))
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
fn data_frame_round_trips_and_verifies() {
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        let key = Keypair::generate(kt);
        let f = data_frame(&key, 42, b"hello frame");
        let got = decode_all(vec![wire_bytes(&f)], 1 << 20).unwrap();
        let Frame::Data(d) = &got[0] else {
            panic!("not data")
        };
        assert_eq!(d.seq(), 42);
        assert_eq!(d.topic(), [9; TOPIC_LEN]);
        assert_eq!(d.payload().as_ref(), b"hello frame");
        let mut keys = KeyCache::default();
        assert_eq!(d.verify(&mut keys).unwrap(), *key.public());
        assert_eq!(d.origin(&mut keys).unwrap(), key.peer_id());
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
        let Frame::Data(d) = f else { panic!() };
        assert!(
            range.contains(&(d.payload().as_ptr() as usize)),
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
    let kind_at = bad.len() - 1 - (83 + 32 + 64);
    bad[kind_at + 1] = 2;
    assert!(matches!(
        Frame::decode(bad.clone().freeze()),
        Err(WireError::UnsupportedVersion {
            kind: "data",
            version: 2
        })
    ));
    bad[kind_at + 1] = 1;
    bad[kind_at + 2] = 7;
    assert!(matches!(
        Frame::decode(bad.freeze()),
        Err(WireError::UnknownKeyType(7))
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
    // A data frame whose body is shorter than its fixed head.
    assert!(matches!(
        Frame::decode(Bytes::from_static(&[3, 0x03, 1, 1])),
        Err(WireError::BadBodyLength { kind: "data", .. })
    ));
}

#[test]
fn tampering_is_detected() {
    let key = Keypair::generate(KeyType::Ed25519);
    let whole = wire_bytes(&data_frame(&key, 1, b"payload bytes"));
    let mut keys = KeyCache::default();
    // Flip a payload byte: hash mismatch.
    let mut p = BytesMut::from(&whole[..]);
    let last = p.len() - 1;
    p[last] ^= 1;
    let Frame::Data(d) = Frame::decode(p.freeze()).unwrap() else {
        panic!()
    };
    assert!(matches!(
        d.verify(&mut keys),
        Err(WireError::PayloadHashMismatch)
    ));
    // Flip the sequence number: signature fails.
    let mut h = BytesMut::from(&whole[..]);
    h[2 + 40] ^= 1;
    let Frame::Data(d) = Frame::decode(h.freeze()).unwrap() else {
        panic!()
    };
    assert!(matches!(d.verify(&mut keys), Err(WireError::Signature(_))));
}

#[test]
fn batch_verification_names_the_bad_frame() {
    let key = Keypair::generate(KeyType::Ed25519);
    let mut frames: Vec<DataFrame> = (0..10).map(|i| data_frame(&key, i, b"abc")).collect();
    let mut keys = KeyCache::default();
    verify_data_frames(&frames, &mut keys).unwrap();
    let mut h = BytesMut::from(&wire_bytes(&frames[6])[..]);
    h[2 + 40] ^= 1;
    let Frame::Data(bad) = Frame::decode(h.freeze()).unwrap() else {
        panic!()
    };
    frames[6] = bad;
    let (index, _) = verify_data_frames(&frames, &mut keys).unwrap_err();
    assert_eq!(index, 6);
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
        let mut keys = KeyCache::default();
        for (i, f) in frames.iter().enumerate() {
            let Frame::Data(d) = f else { panic!() };
            prop_assert_eq!(d.seq(), i as u64);
            prop_assert_eq!(d.payload().len(), sizes[i]);
            prop_assert!(d.verify(&mut keys).is_ok());
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
