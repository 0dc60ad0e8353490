//! libp2p's reference vectors (`shared/vectors/peer-ids.tsv`), reproduced byte for byte.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;

use starling_net::identity::{KeyType, Keypair, PublicKey, parse_peer_id, peer_id_to_cid};

/// The shared vectors when this checkout sits beside `shared/`, else the copy kept in the repo
/// (the two must then be identical).
fn vectors() -> String {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let local = std::fs::read_to_string(manifest.join("tests/data/peer-ids.tsv")).unwrap();
    let shared = manifest.join("../../shared/vectors/peer-ids.tsv");
    if let Ok(text) = std::fs::read_to_string(shared) {
        assert_eq!(
            text, local,
            "tests/data/peer-ids.tsv is out of date with shared/vectors"
        );
    }
    local
}

#[test]
fn every_vector_row_matches_libp2p() {
    let text = vectors();
    let mut rows = 0;
    for line in text.lines().skip(1).filter(|l| !l.trim().is_empty()) {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "bad row {line}");
        let key_type: KeyType = cols[0].parse().unwrap();
        let secret = hex::decode(cols[1]).unwrap();
        let key = Keypair::from_secret_bytes(key_type, &secret).unwrap();

        let protobuf = key.public().encode_protobuf();
        assert_eq!(
            hex::encode(&protobuf),
            cols[2],
            "protobuf public key of {line}"
        );
        assert_eq!(key.peer_id().to_base58(), cols[3], "base58 of {line}");
        assert_eq!(
            hex::encode(key.peer_id().to_bytes()),
            cols[4],
            "bytes of {line}"
        );

        // Back the other way: text → PeerId, protobuf → key, PeerId → inlined key, CID form.
        let parsed = parse_peer_id(cols[3]).unwrap();
        assert_eq!(parsed, key.peer_id());
        assert_eq!(
            PublicKey::decode_protobuf(&protobuf).unwrap(),
            *key.public()
        );
        assert_eq!(PublicKey::from_peer_id(&parsed).unwrap(), *key.public());
        assert_eq!(parse_peer_id(&peer_id_to_cid(&parsed)).unwrap(), parsed);
        rows += 1;
    }
    assert_eq!(rows, 8, "expected all 8 vector rows");
}
