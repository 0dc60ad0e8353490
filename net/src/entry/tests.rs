//! Entry tests: batches verify entry by entry, every tampering is a typed error.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;
use crate::identity::{KeyType, Keypair};

fn fields(seq: u64, payload: &[u8], next: &[EntryHash]) -> EntryFields<'static> {
    EntryFields {
        log_id: LogId([7; 32]),
        seq,
        wall_us: 1_700_000_000_000_000 + seq,
        logical: seq as u32,
        group: [3; 32],
        replicas: 2,
        meta: b"meta",
        next: Box::leak(next.to_vec().into_boxed_slice()),
        payload: Bytes::copy_from_slice(payload),
        raw_len: payload.len() as u32,
        flags: 0,
    }
}

/// A chain of `n` entries signed as one batch (each follows the one before).
fn chain(signer: &mut EntrySigner, n: usize) -> Vec<Entry> {
    let mut sealed = Vec::new();
    let mut prev: Vec<EntryHash> = Vec::new();
    for i in 0..n {
        let u = signer
            .seal(&fields(i as u64, &[i as u8; 40], &prev))
            .unwrap();
        prev = vec![u.hash()];
        sealed.push(u);
    }
    signer.sign(sealed).unwrap()
}

fn redecode(e: &Entry) -> Entry {
    Entry::from_bytes(e.to_bytes()).unwrap()
}

#[test]
fn fields_round_trip() {
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        let key = Keypair::generate(kt);
        let mut s = EntrySigner::new(key.clone());
        let e = s
            .sign_one(&fields(5, b"hello", &[EntryHash([1; 32])]))
            .unwrap();
        let d = redecode(&e);
        assert_eq!(d, e);
        assert_eq!(d.hash(), e.hash());
        assert_eq!(d.log_id(), LogId([7; 32]));
        assert_eq!(d.seq(), 5);
        assert_eq!(d.clock().wall_us, 1_700_000_000_000_005);
        assert_eq!(d.clock().logical, 5);
        assert_eq!(d.clock().writer, s.writer_id());
        assert_eq!(d.group(), [3; 32]);
        assert_eq!(d.replicas(), 2);
        assert_eq!(d.meta(), b"meta");
        assert_eq!(d.next().collect::<Vec<_>>(), vec![EntryHash([1; 32])]);
        assert_eq!(d.stored_payload().as_ref(), b"hello");
        assert_eq!(d.batch_position(), (0, 1));
        assert_eq!(d.signer(&mut Default::default()).unwrap(), *key.public());
        assert_eq!(d.hash(), EntryHash::of(d.signed_bytes()));
        assert_eq!(EntryVerifier::default().verify(&d).unwrap(), *key.public());
        // The wire form decodes to the same entry, header and payload slices of the frame.
        let [head, payload] = e.wire_parts();
        let frame: Bytes = [head, payload].concat().into();
        let prefix = frame.len() - 1 - e.size();
        let w = Entry::decode_frame(frame.clone(), prefix).unwrap();
        assert_eq!(w, e);
        assert_eq!(w.wire_len(), frame.len());
        // A stored entry (no frame prefix) frames itself the same way.
        assert_eq!(d.wire_parts()[0], e.wire_parts()[0]);
    }
}

#[test]
fn every_entry_of_a_batch_verifies_alone_with_one_signature_check_per_batch() {
    let mut s = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    for n in [1, 2, 3, 7, 64, 65, 256] {
        let batch = chain(&mut s, n);
        // Alone, from a fresh verifier each time (a subscriber that joined mid-batch).
        for e in &batch {
            assert!(
                EntryVerifier::default().verify(&redecode(e)).is_ok(),
                "n={n}"
            );
        }
        // Together: one root cached.
        let mut v = EntryVerifier::default();
        let results = v.verify_many(&batch);
        assert!(results.iter().all(Result::is_ok));
        assert_eq!(v.cached_roots(), 1);
        // Batch mates arriving later hit the cache.
        assert!(v.verify(&batch[n - 1]).is_ok());
        assert_eq!(v.cached_roots(), 1);
        // The chain links hold across the batch.
        for w in batch.windows(2) {
            assert_eq!(w[1].next().collect::<Vec<_>>(), vec![w[0].hash()]);
        }
    }
}

#[test]
fn mixed_writers_in_one_verification() {
    let mut a = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    let mut b = EntrySigner::new(Keypair::generate(KeyType::Secp256k1));
    let mut all = chain(&mut a, 5);
    all.extend(chain(&mut b, 4));
    all.extend(chain(&mut a, 1));
    let mut v = EntryVerifier::default();
    let r = v.verify_many(&all);
    assert!(r.iter().all(Result::is_ok), "{r:?}");
    assert_eq!(v.cached_roots(), 3);
    assert_eq!(r[5].as_ref().unwrap(), b.keypair().public());
}

#[test]
fn a_foreign_entry_cannot_ride_a_cached_root() {
    let mut s = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    let batch = chain(&mut s, 8);
    let mut v = EntryVerifier::default();
    assert!(v.verify_many(&batch).iter().all(Result::is_ok));
    // Another entry by the same key, given batch 0's proof and signature: the proof leads
    // elsewhere.
    let other = s
        .sign_one(&fields(99, b"other", &[EntryHash([5; 32])]))
        .unwrap();
    let mut forged = BytesMut::from(&batch[3].to_bytes()[..]);
    let o = other.to_bytes();
    let signed = other.signed_bytes().len();
    forged[..signed].copy_from_slice(&o[..signed]);
    forged.truncate(batch[3].header().len());
    forged.extend_from_slice(other.stored_payload());
    let forged = Entry::from_bytes(forged.freeze()).unwrap();
    assert!(matches!(
        v.verify(&forged),
        Err(EntryError::BadBatchProof | EntryError::Signature(_))
    ));
    // A batch mate whose signature bytes were replaced: refused though its root is cached.
    let mut sig_flip = BytesMut::from(&batch[2].to_bytes()[..]);
    let at = batch[2].header().len() - 1;
    sig_flip[at] ^= 1;
    let sig_flip = Entry::from_bytes(sig_flip.freeze()).unwrap();
    assert!(v.verify(&sig_flip).is_err());
}

#[test]
fn the_root_cache_is_bounded() {
    let mut s = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    let mut v = EntryVerifier::new(4);
    for i in 0..10 {
        let e = s.sign_one(&fields(i, b"x", &[])).unwrap();
        assert!(v.verify(&e).is_ok());
        assert!(v.cached_roots() <= 4);
    }
}

#[test]
fn bad_batches_and_layouts_are_typed_errors() {
    let mut s = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    assert!(matches!(s.sign(Vec::new()), Err(EntryError::BatchSize(0))));
    let too_many: Vec<_> = (0..257)
        .map(|i| s.seal(&fields(i, b"", &[])).unwrap())
        .collect();
    assert!(matches!(s.sign(too_many), Err(EntryError::BatchSize(257))));
    let mut f = fields(0, b"", &[]);
    let long = vec![0u8; 256];
    f.meta = Box::leak(long.into_boxed_slice());
    assert!(matches!(s.seal(&f), Err(EntryError::MetaTooLong(256))));
    let e = s.sign_one(&fields(0, b"abc", &[])).unwrap();
    let bytes = e.to_bytes();
    let signed = e.signed_bytes().len();
    // Batch index ≥ size.
    let mut b = BytesMut::from(&bytes[..]);
    b[signed + 3] = 1;
    assert!(matches!(
        Entry::from_bytes(b.freeze()),
        Err(EntryError::BadBatchPosition { index: 1, size: 1 })
    ));
    // Size 0.
    let mut b = BytesMut::from(&bytes[..]);
    b[signed + 1] = 0;
    assert!(matches!(
        Entry::from_bytes(b.freeze()),
        Err(EntryError::BadBatchPosition { size: 0, .. })
    ));
    // Size 2 but no proof bytes: the payload is read as the proof, the rest is short.
    let mut b = BytesMut::from(&bytes[..]);
    b[signed + 1] = 2;
    assert!(Entry::from_bytes(b.freeze()).is_err());
    // Unknown flags, too many next hashes, truncation, a trailing byte on a stored header.
    let mut b = BytesMut::from(&bytes[..]);
    b[1] = 0x80;
    assert!(matches!(
        Entry::from_bytes(b.freeze()),
        Err(EntryError::UnknownFlags(0x80))
    ));
    let header = e.header();
    for cut in [0, 1, 50, 88, header.len() - 1] {
        assert!(
            matches!(
                Entry::decode(header.slice(..cut), e.stored_payload().clone()),
                Err(EntryError::Truncated { .. })
            ),
            "cut {cut}"
        );
    }
    let mut long = BytesMut::from(&header[..]);
    long.extend_from_slice(&[0]);
    assert!(matches!(
        Entry::decode(long.freeze(), e.stored_payload().clone()),
        Err(EntryError::TrailingBytes(1))
    ));
    assert!(matches!(
        Entry::decode(header.clone(), Bytes::from_static(b"abd")),
        Err(EntryError::PayloadHashMismatch)
    ));
    assert!(matches!(
        Entry::decode(header.clone(), Bytes::from_static(b"ab")),
        Err(EntryError::PayloadLength { .. })
    ));
    assert!(matches!(
        Entry::decode_stored(EntryHash([0; 32]), header, e.stored_payload().clone()),
        Err(EntryError::HashMismatch { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// A random batch: every entry verifies alone and together; a bit flipped anywhere in any
    /// entry (header or payload) makes exactly that entry fail, with a typed error.
    #[test]
    fn a_flipped_bit_anywhere_is_caught(
        n in 1usize..80,
        which in any::<prop::sample::Index>(),
        bit in any::<prop::sample::Index>(),
        secp in any::<bool>(),
    ) {
        let kt = if secp { KeyType::Secp256k1 } else { KeyType::Ed25519 };
        let mut s = EntrySigner::new(Keypair::generate(kt));
        let batch = chain(&mut s, n);
        let i = which.index(n);
        let bytes = batch[i].to_bytes();
        let bit = bit.index(bytes.len() * 8);
        let mut b = BytesMut::from(&bytes[..]);
        b[bit / 8] ^= 1 << (bit % 8);
        let tampered = Entry::from_bytes(b.freeze());
        let mut v = EntryVerifier::default();
        match tampered {
            Err(_) => {} // refused at decode (layout, lengths or payload hash)
            Ok(t) => {
                let mut all = batch.clone();
                all[i] = t;
                let r = v.verify_many(&all);
                for (j, res) in r.iter().enumerate() {
                    if j == i {
                        prop_assert!(res.is_err(), "bit {} of entry {} not caught", bit, i);
                    } else {
                        prop_assert!(res.is_ok());
                    }
                }
            }
        }
        // And the untouched batch still verifies alone afterwards.
        prop_assert!(EntryVerifier::default().verify(&batch[i]).is_ok());
    }
}
