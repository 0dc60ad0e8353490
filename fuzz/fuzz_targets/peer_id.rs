//! PeerId text/bytes and protobuf key decoders must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_net::identity::{
    KeyType, Keypair, PublicKey, Signature, parse_peer_id, peer_id_from_bytes,
};

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = parse_peer_id(text);
    }
    if let Ok(id) = peer_id_from_bytes(data) {
        let _ = PublicKey::from_peer_id(&id);
    }
    let _ = PublicKey::decode_protobuf(data);
    let _ = Keypair::from_protobuf(data);
    let _ = Signature::from_libp2p_bytes(KeyType::Secp256k1, data);
});
