//! Property tests: sign/verify round trips, bit flips, batch vs single verification, and
//! decoders fed arbitrary bytes.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use proptest::prelude::*;
use starling_net::identity::{
    KeyType, Keypair, PublicKey, Signature, VerifyItem, parse_peer_id, verify_batch,
};

fn key_type() -> impl Strategy<Value = KeyType> {
    prop_oneof![Just(KeyType::Ed25519), Just(KeyType::Secp256k1)]
}

fn keypair(kt: KeyType, seed: [u8; 32]) -> Option<Keypair> {
    // Out-of-range secp256k1 scalars are rejected; proptest just skips them.
    Keypair::from_secret_bytes(kt, &seed).ok()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sign_verify_round_trip(kt in key_type(), seed in any::<[u8; 32]>(), msg in prop::collection::vec(any::<u8>(), 0..512)) {
        let Some(key) = keypair(kt, seed) else { return Ok(()) };
        let sig = key.sign(&msg);
        prop_assert!(key.public().verify(&msg, &sig).is_ok());
        // Wire form and libp2p form both round-trip.
        let wire = Signature::from_bytes(kt, &sig.to_bytes()).unwrap();
        prop_assert_eq!(wire, sig);
        let lp = Signature::from_libp2p_bytes(kt, &sig.to_libp2p_bytes()).unwrap();
        prop_assert_eq!(lp, sig);
        // libp2p's own verifier accepts Starling's signature, and the reverse.
        prop_assert!(key.public().to_libp2p().verify(&msg, &sig.to_libp2p_bytes()));
        let theirs = key.to_libp2p().sign(&msg).unwrap();
        let theirs = Signature::from_libp2p_bytes(kt, &theirs).unwrap();
        prop_assert!(key.public().verify(&msg, &theirs).is_ok());
    }

    #[test]
    fn flipped_message_bit_fails(kt in key_type(), seed in any::<[u8; 32]>(), msg in prop::collection::vec(any::<u8>(), 1..256), bit in any::<prop::sample::Index>()) {
        let Some(key) = keypair(kt, seed) else { return Ok(()) };
        let sig = key.sign(&msg);
        let mut bad = msg.clone();
        let b = bit.index(bad.len() * 8);
        bad[b / 8] ^= 1 << (b % 8);
        prop_assert!(key.public().verify(&bad, &sig).is_err());
    }

    #[test]
    fn flipped_signature_bit_fails(kt in key_type(), seed in any::<[u8; 32]>(), msg in prop::collection::vec(any::<u8>(), 0..256), bit in 0usize..512) {
        let Some(key) = keypair(kt, seed) else { return Ok(()) };
        let mut bytes = key.sign(&msg).to_bytes();
        bytes[bit / 8] ^= 1 << (bit % 8);
        // Either the flipped bytes are not a signature at all, or they do not verify.
        if let Ok(sig) = Signature::from_bytes(kt, &bytes) {
            prop_assert!(key.public().verify(&msg, &sig).is_err());
        }
    }

    #[test]
    fn batch_agrees_with_single(n in 1usize..24, bad in prop::option::of(any::<prop::sample::Index>()), mixed in any::<bool>()) {
        let keys: Vec<Keypair> = (0..n)
            .map(|i| Keypair::generate(if mixed && i % 3 == 0 { KeyType::Secp256k1 } else { KeyType::Ed25519 }))
            .collect();
        let msgs: Vec<Vec<u8>> = (0..n).map(|i| format!("frame {i}").into_bytes()).collect();
        let mut sigs: Vec<Signature> = keys.iter().zip(&msgs).map(|(k, m)| k.sign(m)).collect();
        let bad_index = bad.map(|b| b.index(n));
        if let Some(i) = bad_index {
            // A valid signature, but over another message.
            sigs[i] = keys[i].sign(b"something else");
        }
        let items: Vec<VerifyItem<'_>> = keys.iter().zip(&msgs).zip(&sigs)
            .map(|((k, m), s)| VerifyItem { key: k.public(), message: m, signature: s })
            .collect();
        let singles_ok = items.iter().all(|it| it.key.verify(it.message, it.signature).is_ok());
        let batch = verify_batch(&items);
        prop_assert_eq!(batch.is_ok(), singles_ok);
        if let Some(i) = bad_index {
            match batch {
                Err(starling_net::IdentityError::BatchFailed { index }) => prop_assert_eq!(index, i),
                other => prop_assert!(false, "expected BatchFailed, got {:?}", other),
            }
        }
    }

    /// Decoders never panic on arbitrary input.
    #[test]
    fn decoders_survive_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..128), text in ".{0,80}") {
        let _ = PublicKey::decode_protobuf(&bytes);
        let _ = Keypair::from_protobuf(&bytes);
        let _ = Signature::from_bytes(KeyType::Ed25519, &bytes);
        let _ = Signature::from_bytes(KeyType::Secp256k1, &bytes);
        let _ = Signature::from_libp2p_bytes(KeyType::Secp256k1, &bytes);
        let _ = PublicKey::from_raw_bytes(KeyType::Ed25519, &bytes);
        let _ = PublicKey::from_raw_bytes(KeyType::Secp256k1, &bytes);
        let _ = parse_peer_id(&text);
        let _ = starling_net::PeerId::from_bytes(&bytes).map(|p| PublicKey::from_peer_id(&p));
    }
}
