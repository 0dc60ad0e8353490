//! Bad input, one typed error each; key files on disk.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn err<T: std::fmt::Debug>(r: Result<T, IdentityError>) -> IdentityError {
    r.expect_err("expected an error")
}

#[test]
fn bad_base58_is_typed() {
    assert!(matches!(
        err(parse_peer_id("12D3KooW0OIl0OIl")),
        IdentityError::InvalidBase58(_)
    ));
}

#[test]
fn wrong_multihash_code_is_typed() {
    // sha2-512 (0x13) multihash: not a PeerId.
    let mut bytes = vec![0x13, 0x40];
    bytes.extend([7u8; 64]);
    assert!(matches!(
        err(peer_id_from_bytes(&bytes)),
        IdentityError::UnsupportedMultihash(0x13)
    ));
    // The same inside a CIDv1.
    let mut cid = vec![0x01, 0x72];
    cid.extend(&bytes);
    let text = multibase::encode(multibase::Base::Base32Lower, cid);
    assert!(matches!(
        err(parse_peer_id(&text)),
        IdentityError::UnsupportedMultihash(0x13)
    ));
    // Truncated multihash.
    assert!(matches!(
        err(peer_id_from_bytes(&[0x00, 0x24, 0x08])),
        IdentityError::MalformedPeerId(_)
    ));
}

#[test]
fn cid_with_wrong_codec_or_version_is_typed() {
    let key = Keypair::generate(KeyType::Ed25519);
    let mut dag_pb = vec![0x01, 0x70];
    dag_pb.extend(key.peer_id().to_bytes());
    let text = multibase::encode(multibase::Base::Base32Lower, dag_pb);
    assert!(matches!(
        err(parse_peer_id(&text)),
        IdentityError::InvalidCid(_)
    ));
    assert!(matches!(
        err(parse_peer_id("bnot-base32!")),
        IdentityError::InvalidCid(_)
    ));
    assert!(matches!(
        err(parse_peer_id("")),
        IdentityError::InvalidCid(_)
    ));
}

#[test]
fn sha256_peer_id_has_no_inline_key() {
    let mut bytes = vec![0x12, 0x20];
    bytes.extend([1u8; 32]);
    let id = peer_id_from_bytes(&bytes).unwrap();
    assert!(matches!(
        err(PublicKey::from_peer_id(&id)),
        IdentityError::PeerIdWithoutKey(_)
    ));
}

#[test]
fn unknown_key_types_are_named() {
    // RSA (0), ECDSA (3) and an unassigned number.
    for n in [0u8, 3, 9] {
        let bytes = [0x08, n, 0x12, 0x02, 0xaa, 0xbb];
        assert!(matches!(
            err(PublicKey::decode_protobuf(&bytes)),
            IdentityError::UnsupportedKeyType(t) if t == u64::from(n)
        ));
        assert!(matches!(
            err(Keypair::from_protobuf(&bytes)),
            IdentityError::UnsupportedKeyType(_)
        ));
    }
    assert!(matches!(
        err(PublicKey::decode_protobuf(&[0x12, 0x00])),
        IdentityError::MalformedKey(_)
    ));
    // Right type, truncated data.
    let good = Keypair::generate(KeyType::Ed25519)
        .public()
        .encode_protobuf();
    assert!(matches!(
        err(PublicKey::decode_protobuf(&good[..good.len() - 3])),
        IdentityError::MalformedKey(_)
    ));
}

#[test]
fn wrong_lengths_are_typed() {
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        assert!(matches!(
            err(Keypair::from_secret_bytes(kt, &[1u8; 31])),
            IdentityError::InvalidLength {
                expected: 32,
                actual: 31,
                ..
            }
        ));
        assert!(matches!(
            err(Signature::from_bytes(kt, &[1u8; 63])),
            IdentityError::InvalidLength {
                expected: 64,
                actual: 63,
                ..
            }
        ));
        assert!(matches!(
            err(PublicKey::from_raw_bytes(kt, &[2u8; 65])),
            IdentityError::InvalidLength { actual: 65, .. }
        ));
    }
}

#[test]
fn invalid_curve_points_are_typed() {
    // secp256k1: x = 2^256 - 1 is above the field prime.
    let mut point = [0xffu8; 33];
    point[0] = 0x02;
    assert!(matches!(
        err(PublicKey::from_raw_bytes(KeyType::Secp256k1, &point)),
        IdentityError::InvalidPublicKey(KeyType::Secp256k1)
    ));
    // Bad SEC1 tag.
    point[0] = 0x07;
    assert!(matches!(
        err(PublicKey::from_raw_bytes(KeyType::Secp256k1, &point)),
        IdentityError::InvalidPublicKey(_)
    ));
    // Ed25519: about half of all y coordinates have no x on the curve.
    let off_curve = (0u8..=255)
        .map(|b| {
            let mut y = [0u8; 32];
            y[0] = b;
            PublicKey::from_raw_bytes(KeyType::Ed25519, &y)
        })
        .find(|r| r.is_err())
        .expect("some y is off the curve");
    assert!(matches!(
        off_curve,
        Err(IdentityError::InvalidPublicKey(KeyType::Ed25519))
    ));
}

#[test]
fn secp256k1_secret_out_of_range_is_typed() {
    for bytes in [[0u8; 32], [0xffu8; 32]] {
        assert!(matches!(
            err(Keypair::from_secret_bytes(KeyType::Secp256k1, &bytes)),
            IdentityError::InvalidSecretKey(KeyType::Secp256k1)
        ));
    }
}

#[test]
fn malformed_and_mismatched_signatures_are_typed() {
    // r = 0 is never a valid ECDSA signature.
    let mut zero_r = [0u8; 64];
    zero_r[63] = 1;
    assert!(matches!(
        err(Signature::from_bytes(KeyType::Secp256k1, &zero_r)),
        IdentityError::MalformedSignature(KeyType::Secp256k1)
    ));
    assert!(matches!(
        err(Signature::from_libp2p_bytes(
            KeyType::Secp256k1,
            &[0x30, 0x01]
        )),
        IdentityError::MalformedSignature(_)
    ));
    let ed = Keypair::generate(KeyType::Ed25519);
    let k1 = Keypair::generate(KeyType::Secp256k1);
    assert!(matches!(
        err(ed.public().verify(b"m", &k1.sign(b"m"))),
        IdentityError::KeyTypeMismatch { .. }
    ));
    assert!(matches!(
        err(ed.public().verify(b"m", &ed.sign(b"n"))),
        IdentityError::BadSignature
    ));
}

#[test]
fn libp2p_key_conversion_both_ways() {
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        let ours = Keypair::generate(kt);
        let theirs = ours.to_libp2p();
        assert_eq!(theirs.public().to_peer_id(), ours.peer_id());
        let back = Keypair::from_libp2p(&theirs).unwrap();
        assert_eq!(back.secret_bytes(), ours.secret_bytes());
        assert_eq!(
            PublicKey::from_libp2p(&theirs.public()).unwrap(),
            *ours.public()
        );
        assert_eq!(ours.public().to_libp2p(), theirs.public());
        // Protobuf private key encoding round-trips through libp2p.
        let decoded =
            libp2p_identity::Keypair::from_protobuf_encoding(&ours.to_protobuf()).unwrap();
        assert_eq!(decoded.public().to_peer_id(), ours.peer_id());
    }
}

#[test]
fn key_file_round_trip_with_owner_only_mode() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("node.key");
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        let key = Keypair::generate(kt);
        save_key_file(&path, &key).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(load_key_file(&path).unwrap().peer_id(), key.peer_id());
    }
    // No temp files left behind.
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
}

#[test]
fn bad_key_files_are_typed() {
    let dir = tempfile::tempdir().unwrap();
    let key = Keypair::generate(KeyType::Ed25519);
    let path = dir.path().join("k");
    save_key_file(&path, &key).unwrap();

    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = err(load_key_file(&path));
    assert!(matches!(
        e,
        IdentityError::KeyFileTooOpen { mode: 0o644, .. }
    ));
    assert!(e.to_string().contains("chmod 600"), "{e}");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();

    let full = key.to_protobuf();
    let write = |bytes: &[u8]| {
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    };
    write(&full[..full.len() - 5]);
    assert!(matches!(
        err(load_key_file(&path)),
        IdentityError::KeyFileMalformed { .. }
    ));
    write(b"");
    assert!(matches!(
        err(load_key_file(&path)),
        IdentityError::KeyFileMalformed { .. }
    ));
    write(b"-----BEGIN OPENSSH PRIVATE KEY-----\n");
    assert!(matches!(
        err(load_key_file(&path)),
        IdentityError::KeyFileMalformed { .. }
    ));
    write(&vec![0u8; 10_000]);
    assert!(matches!(
        err(load_key_file(&path)),
        IdentityError::KeyFileMalformed { .. }
    ));
    assert!(matches!(
        err(load_key_file(&dir.path().join("missing"))),
        IdentityError::KeyFileIo { .. }
    ));
}

mod network_keys {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Any bytes a peer sends as a public key either fail to parse with a typed error or
        /// give a key whose PeerId (and libp2p form) is computed without panicking: the
        /// conversions' `expect`s are unreachable for keys that parsed.
        #[test]
        fn any_public_key_that_parses_has_a_peer_id(
            ed in prop::collection::vec(any::<u8>(), 32),
            secp in prop::collection::vec(any::<u8>(), 33),
            prefix in prop::sample::select(vec![2u8, 3]),
        ) {
            // The hand-written encodings are libp2p's, byte for byte.
            if let Ok(k) = PublicKey::from_raw_bytes(KeyType::Ed25519, &ed) {
                prop_assert_eq!(k.encode_protobuf(), k.to_libp2p().encode_protobuf());
                prop_assert_eq!(k.peer_id(), k.to_libp2p().to_peer_id());
            }
            let mut secp = secp;
            secp[0] = prefix;
            if let Ok(k) = PublicKey::from_raw_bytes(KeyType::Secp256k1, &secp) {
                prop_assert_eq!(k.encode_protobuf(), k.to_libp2p().encode_protobuf());
                prop_assert_eq!(k.peer_id(), k.to_libp2p().to_peer_id());
            }
        }
    }
}
