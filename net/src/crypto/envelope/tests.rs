use proptest::prelude::*;

use super::*;

const SUITES: [Suite; 2] = [Suite::XChaCha20Poly1305, Suite::Aes256Gcm];

fn keys(n: usize, kt: KeyType) -> Vec<Keypair> {
    (0..n).map(|_| Keypair::generate(kt)).collect()
}

fn set(writer: &Keypair, others: &[Keypair]) -> Receivers {
    Receivers::new(writer.public(), others.iter().map(|k| *k.public())).unwrap()
}

#[test]
fn every_receiver_opens_and_others_cannot() {
    for (wk, ok) in [
        (KeyType::Ed25519, KeyType::Ed25519),
        (KeyType::Secp256k1, KeyType::Secp256k1),
        (KeyType::Ed25519, KeyType::Secp256k1),
    ] {
        let writer = Keypair::generate(wk);
        let mut others = keys(3, ok);
        others.extend(keys(2, KeyType::Ed25519));
        let receivers = set(&writer, &others);
        assert_eq!(receivers.len(), 6);
        assert!(receivers.contains(writer.public()));
        let env = seal(&receivers, b"the payload").unwrap();
        for k in std::iter::once(&writer).chain(&others) {
            assert_eq!(Opener::new(k).open(&env).unwrap(), b"the payload");
        }
        let outsider = Keypair::generate(ok);
        let o = Opener::new(&outsider);
        assert!(!o.can_open(&Envelope::parse(&env).unwrap()));
        assert_eq!(o.open(&env).unwrap_err(), CryptoError::NotAReceiver);
        let listed: Vec<PublicKey> = Envelope::parse(&env)
            .unwrap()
            .receivers()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(listed, receivers.keys());
        let parsed = Envelope::parse(&env).unwrap();
        assert!(receivers.keys().iter().all(|k| parsed.lists(k)));
        assert!(!parsed.lists(outsider.public()));
    }
}

#[test]
fn receivers_of_one_envelope_cannot_read_another() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let a = Keypair::generate(KeyType::Ed25519);
    let b = Keypair::generate(KeyType::Ed25519);
    let for_a = seal(&set(&writer, std::slice::from_ref(&a)), b"for a").unwrap();
    let for_b = seal(&set(&writer, std::slice::from_ref(&b)), b"for b").unwrap();
    let oa = Opener::new(&a);
    assert_eq!(oa.open(&for_a).unwrap(), b"for a");
    assert_eq!(oa.open(&for_b).unwrap_err(), CryptoError::NotAReceiver);
    assert_eq!(
        Opener::new(&b).open(&for_a).unwrap_err(),
        CryptoError::NotAReceiver
    );
}

#[test]
fn every_flipped_bit_is_refused_without_panicking() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let other = Keypair::generate(KeyType::Secp256k1);
    for suite in SUITES {
        let env = Sealer::with_suite(suite, 10)
            .seal(
                &set(&writer, std::slice::from_ref(&other)),
                b"sixteen bytes!!!",
            )
            .unwrap();
        assert_eq!(Envelope::parse(&env).unwrap().suite(), suite);
        for i in 0..env.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = env.to_vec();
                bad[i] ^= bit;
                // A fresh opener each time: no key learnt from the untampered envelope.
                let r = Opener::new(&writer).open(&bad);
                assert!(r.is_err(), "{suite:?} byte {i} bit {bit:#x} opened: {r:?}");
            }
        }
    }
}

#[test]
fn a_tampered_ciphertext_or_a_wrong_key_is_a_typed_error() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let receivers = set(&writer, &[]);
    let env = seal(&receivers, &[7u8; 100]).unwrap();
    let mut bad = env.to_vec();
    let last = bad.len() - 30;
    bad[last] ^= 1;
    assert_eq!(
        Opener::new(&writer).open(&bad).unwrap_err(),
        CryptoError::Tampered
    );
    // A keyed envelope under another key with this key's id forged in.
    let key = ContentKey::generate();
    let o = Opener::new(&writer);
    o.learn(key.clone());
    for suite in SUITES {
        let mut forged = seal_keyed(&ContentKey::generate(), suite, b"x")
            .unwrap()
            .to_vec();
        forged[3..3 + KEY_ID_LEN].copy_from_slice(&key.id());
        assert_eq!(o.open(&forged).unwrap_err(), CryptoError::Tampered);
    }
}

#[test]
fn every_truncation_is_a_typed_error() {
    let writer = Keypair::generate(KeyType::Secp256k1);
    let env = seal(&set(&writer, &keys(2, KeyType::Ed25519)), b"abc").unwrap();
    for n in 0..env.len() {
        let r = Opener::new(&writer).open(&env[..n]);
        assert!(r.is_err(), "{n} bytes opened");
    }
    assert!(matches!(
        Envelope::parse(&env[..10]).unwrap_err(),
        CryptoError::Truncated { need: 19, have: 10 }
    ));
}

#[test]
fn keyed_envelopes_need_the_key_learnt_first() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let reader = Keypair::generate(KeyType::Ed25519);
    let receivers = set(&writer, std::slice::from_ref(&reader));
    let key = ContentKey::generate();
    let header = wrapped_header(&key, &receivers, Suite::XChaCha20Poly1305).unwrap();
    let keyed = seal_keyed(&key, Suite::XChaCha20Poly1305, b"frame 2").unwrap();
    let o = Opener::new(&reader);
    assert!(matches!(
        o.open(&keyed).unwrap_err(),
        CryptoError::UnknownKey(_)
    ));
    let wrapped = seal_under(&header, &key, b"frame 1").unwrap();
    assert_eq!(o.open(&wrapped).unwrap(), b"frame 1");
    assert_eq!(o.open(&keyed).unwrap(), b"frame 2");
    assert!(!Envelope::parse(&keyed).unwrap().is_wrapped());
    assert_eq!(Envelope::parse(&keyed).unwrap().plaintext_len(), 7);
}

#[test]
fn a_sealer_reuses_its_key_per_set_and_rotates() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let a = Keypair::generate(KeyType::Ed25519);
    let one = set(&writer, std::slice::from_ref(&a));
    let two = set(&writer, &[]);
    let mut s = Sealer::new(3);
    let id = |b: &Bytes| Envelope::parse(b).unwrap().key_id();
    let e1 = s.seal(&one, b"1").unwrap();
    let e2 = s.seal(&one, b"2").unwrap();
    assert_eq!(id(&e1), id(&e2));
    assert_ne!(e1[e1.len() - 41..], e2[e2.len() - 41..], "fresh nonces");
    let e3 = s.seal(&two, b"3").unwrap();
    assert_ne!(id(&e2), id(&e3));
    let e4 = s.seal(&two, b"4").unwrap();
    let e5 = s.seal(&two, b"5").unwrap();
    let e6 = s.seal(&two, b"6").unwrap();
    assert_eq!(id(&e4), id(&e5));
    assert_ne!(id(&e5), id(&e6), "after max_uses");
    s.rotate();
    assert_ne!(id(&e6), id(&s.seal(&two, b"7").unwrap()));
    let o = Opener::new(&a);
    assert_eq!(o.open(&e2).unwrap(), b"2");
    assert_eq!(o.open(&e3).unwrap_err(), CryptoError::NotAReceiver);
}

#[test]
fn receiver_sets_are_canonical_and_bounded() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let a = Keypair::generate(KeyType::Ed25519);
    let dup = Receivers::new(
        writer.public(),
        [*a.public(), *a.public(), *writer.public()],
    )
    .unwrap();
    assert_eq!(dup.len(), 2);
    assert_eq!(dup, set(&writer, std::slice::from_ref(&a)));
    let many: Vec<PublicKey> = keys(MAX_RECEIVERS, KeyType::Ed25519)
        .iter()
        .map(|k| *k.public())
        .collect();
    assert_eq!(
        Receivers::new(writer.public(), many).unwrap_err(),
        CryptoError::ReceiverCount(MAX_RECEIVERS + 1)
    );
    // Two receivers listed out of order.
    let env = seal(&dup, b"x").unwrap().to_vec();
    let list_at = 3 + KEY_ID_LEN + 1 + 32 + 2;
    let entry = 1 + 32 + WRAPPED_LEN;
    let mut swapped = env.clone();
    swapped[list_at..list_at + entry].copy_from_slice(&env[list_at + entry..list_at + 2 * entry]);
    swapped[list_at + entry..list_at + 2 * entry].copy_from_slice(&env[list_at..list_at + entry]);
    assert_eq!(
        Envelope::parse(&swapped).unwrap_err(),
        CryptoError::NotCanonical
    );
}

#[test]
fn bad_headers_name_what_is_wrong() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let env = seal(&set(&writer, &[]), b"x").unwrap().to_vec();
    let with = |i: usize, v: u8| {
        let mut b = env.clone();
        b[i] = v;
        Envelope::parse(&b).unwrap_err()
    };
    assert_eq!(with(0, 9), CryptoError::UnsupportedVersion(9));
    assert_eq!(with(1, 7), CryptoError::UnknownKind(7));
    assert_eq!(with(2, 9), CryptoError::UnknownSuite(9));
    assert_eq!(with(19, 0), CryptoError::BadEphemerals(0));
    assert_eq!(with(53, 0), CryptoError::ReceiverCount(0));
    assert_eq!(with(54, 9), CryptoError::UnknownKeyType(9));
}

proptest! {
    #[test]
    fn sealed_payloads_open_to_themselves(
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
        aes in any::<bool>(),
    ) {
        let writer = Keypair::generate(KeyType::Ed25519);
        let suite = if aes { Suite::Aes256Gcm } else { Suite::XChaCha20Poly1305 };
        let env = Sealer::with_suite(suite, 1).seal(&set(&writer, &[]), &payload).unwrap();
        prop_assert_eq!(Envelope::parse(&env).unwrap().plaintext_len(), payload.len());
        prop_assert_eq!(Opener::new(&writer).open(&env).unwrap(), payload);
    }

    /// Whatever the room and however much is written past the capacity, a sealed buffer
    /// opens to its payload, byte for byte what sealing a copy gives in length.
    #[test]
    fn sealed_buffers_open_to_themselves(
        payload in proptest::collection::vec(any::<u8>(), 0..4096),
        room in 0usize..400,
        capacity in 0usize..4096,
        aes in any::<bool>(),
    ) {
        let writer = Keypair::generate(KeyType::Ed25519);
        let suite = if aes { Suite::Aes256Gcm } else { Suite::XChaCha20Poly1305 };
        let to = set(&writer, &[]);
        let mut buf = SealBuf::with_room(room, capacity);
        buf.extend_from_slice(&payload);
        let mut sealer = Sealer::with_suite(suite, 1);
        let env = sealer.seal_buf(&to, buf, true).unwrap();
        let copied = sealer.seal(&to, &payload).unwrap();
        prop_assert_eq!(env.len(), copied.len());
        prop_assert_eq!(Opener::new(&writer).open(&env).unwrap(), payload);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let writer = Keypair::generate(KeyType::Ed25519);
        let o = Opener::new(&writer);
        if let Ok(env) = Envelope::parse(&bytes) {
            let _ = env.receivers().count();
            let _ = o.can_open(&env);
        }
        prop_assert!(o.open(&bytes).is_err());
    }
}

#[test]
fn seal_as_wraps_the_first_use_of_a_key_and_when_asked() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let reader = Keypair::generate(KeyType::Secp256k1);
    let set = set(&writer, std::slice::from_ref(&reader));
    let mut s = Sealer::new(100);
    let wrapped = |b: &Bytes| Envelope::parse(b).unwrap().is_wrapped();
    let first = s.seal_as(&set, b"1", false).unwrap();
    let second = s.seal_as(&set, b"2", false).unwrap();
    let third = s.seal_as(&set, b"3", true).unwrap();
    assert!(wrapped(&first) && !wrapped(&second) && wrapped(&third));
    let late = Opener::new(&reader);
    assert!(matches!(
        late.open(&second),
        Err(CryptoError::UnknownKey(_))
    ));
    assert_eq!(late.open(&third).unwrap(), b"3");
    assert_eq!(late.open(&second).unwrap(), b"2");
}

/// A public section travels in clear beside the sealed content: anyone parses it, receivers
/// open the content, and a changed byte of it (or of its length) fails the receiver's open;
/// every truncation is a typed error; empty or oversized sections are refused.
#[test]
fn a_public_section_is_read_by_anyone_and_bound_to_the_content() {
    let writer = Keypair::generate(KeyType::Ed25519);
    let reader = Keypair::generate(KeyType::Secp256k1);
    let receivers = set(&writer, std::slice::from_ref(&reader));
    for suite in SUITES {
        let mut sealer = Sealer::with_suite(suite, 10);
        for wrap in [true, false] {
            let env = sealer
                .seal_with_public(&receivers, b"secret body", wrap, b"title=hello")
                .unwrap();
            let parsed = Envelope::parse(&env).unwrap();
            assert_eq!(parsed.public(), b"title=hello");
            assert_eq!(parsed.plaintext_len(), 11);
            let opener = Opener::new(&reader);
            if !wrap {
                // A keyed one needs the key from the sealer's first (wrapped) envelope.
                let first = Sealer::with_suite(suite, 10)
                    .seal_with_public(&receivers, b"x", true, b"p")
                    .unwrap();
                assert!(opener.open(&first).is_ok());
                assert!(matches!(opener.open(&env), Err(CryptoError::UnknownKey(_))));
                continue;
            }
            assert_eq!(opener.open(&env).unwrap(), b"secret body");
            let outsider = Opener::new(&Keypair::generate(KeyType::Ed25519));
            assert_eq!(outsider.open(&env).unwrap_err(), CryptoError::NotAReceiver);
            let at = env.windows(11).position(|w| w == b"title=hello").unwrap();
            for i in at - 4..at + 11 {
                let mut bad = env.to_vec();
                bad[i] ^= 1;
                assert!(
                    Opener::new(&reader).open(&bad).is_err(),
                    "{suite:?}: public byte {i} changed and still opened"
                );
            }
            for n in 0..env.len() {
                assert!(Opener::new(&reader).open(&env[..n]).is_err(), "{n} bytes");
            }
        }
    }
    // No section: no flag, nothing public.
    let plain = seal(&receivers, b"body").unwrap();
    assert!(Envelope::parse(&plain).unwrap().public().is_empty());
    let header = wrapped_header(&ContentKey::generate(), &receivers, Suite::Aes256Gcm).unwrap();
    assert_eq!(
        with_public(&header, b"").unwrap_err(),
        CryptoError::PublicTooLarge(0)
    );
    assert_eq!(
        with_public(&header, &vec![0; MAX_PUBLIC + 1]).unwrap_err(),
        CryptoError::PublicTooLarge(MAX_PUBLIC + 1)
    );
    let once = with_public(&header, b"p").unwrap();
    assert!(
        matches!(with_public(&once, b"q"), Err(CryptoError::UnknownKind(_))),
        "a header has at most one public section"
    );
    assert!(matches!(
        with_public(&header[..5], b"p"),
        Err(CryptoError::UnknownKind(_))
    ));
    // A section whose length field says 0, or more than the limit: typed, before any use.
    let env = Sealer::default()
        .seal_with_public(&receivers, b"b", true, b"p")
        .unwrap();
    let at = env.len() - 1 /* p */ - 1 /* b */ - TAG_LEN - Suite::preferred().nonce_len() - 4;
    for len in [0u32, MAX_PUBLIC as u32 + 1] {
        let mut bad = env.to_vec();
        bad[at..at + 4].copy_from_slice(&len.to_be_bytes());
        assert_eq!(
            Envelope::parse(&bad).unwrap_err(),
            CryptoError::PublicTooLarge(len as usize)
        );
    }
}

/// A payload written behind its room is sealed where it lies (the ciphertext is where the
/// payload was: no copy), opens to the payload, and the room is exactly the widest header
/// and nonce; a room too small, or a payload past its capacity, still seals (by copying).
#[test]
fn a_seal_buf_is_sealed_in_place() {
    for (wk, ok) in [
        (KeyType::Ed25519, KeyType::Ed25519),
        (KeyType::Secp256k1, KeyType::Secp256k1),
        (KeyType::Ed25519, KeyType::Secp256k1),
    ] {
        let writer = Keypair::generate(wk);
        let others = keys(2, ok);
        let receivers = set(&writer, &others);
        for suite in SUITES {
            let key = ContentKey::generate();
            let wrapped = wrapped_header(&key, &receivers, suite).unwrap();
            assert_eq!(receivers.envelope_room(), wrapped.len() + 24);
            let mut sealer = Sealer::with_suite(suite, 16);
            let payload: Vec<u8> = (0..5000u32).map(|i| i as u8).collect();
            // (A keyed envelope opens for a reader that opened the wrapped one before it.)
            let openers: Vec<Opener> = std::iter::once(&writer)
                .chain(&others)
                .map(Opener::new)
                .collect();
            for wrap in [true, false] {
                let mut buf = SealBuf::with_room(receivers.envelope_room(), payload.len());
                buf.extend_from_slice(&payload);
                let at = buf.payload().as_ptr();
                let env = sealer.seal_buf(&receivers, buf, wrap).unwrap();
                let body = env.len() - payload.len() - TAG_LEN;
                assert_eq!(env[body..].as_ptr(), at, "sealed where it lay");
                assert_eq!(Envelope::parse(&env).unwrap().is_wrapped(), wrap);
                for o in &openers {
                    assert_eq!(o.open(&env).unwrap(), payload);
                }
            }
            let mut small = SealBuf::with_room(10, 4);
            small.extend_from_slice(&payload);
            assert_eq!(small.payload(), &payload[..]);
            let env = sealer.seal_buf(&receivers, small, true).unwrap();
            assert_eq!(Opener::new(&writer).open(&env).unwrap(), payload);
        }
    }
    let mut plain = SealBuf::with_room(100, 3);
    plain.extend_from_slice(b"abc");
    plain.payload_mut()[0] = b'x';
    assert_eq!((plain.len(), plain.is_empty()), (3, false));
    assert_eq!(&plain.into_payload()[..], b"xbc");
}
