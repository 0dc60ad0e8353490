//! PeerId text forms: base58btc (legacy, what libp2p prints) and CIDv1 (accepted on input).

use std::str::FromStr;

use libp2p_identity::ParseError;

use super::{IdentityError, PeerId};

/// Multicodec of a libp2p public key inside a CID.
const LIBP2P_KEY_CODEC: u64 = 0x72;

/// Parses a PeerId as the libp2p spec says: text starting with `1` or `Q` is a base58btc
/// multihash; anything else is a multibase-encoded CIDv1 with the `libp2p-key` codec.
pub fn parse_peer_id(text: &str) -> Result<PeerId, IdentityError> {
    if text.starts_with('1') || text.starts_with('Q') {
        return PeerId::from_str(text).map_err(map_parse_error);
    }
    let (_, bytes) =
        multibase::decode(text).map_err(|e| IdentityError::InvalidCid(e.to_string()))?;
    let (version, rest) = unsigned_varint::decode::u64(&bytes)
        .map_err(|e| IdentityError::InvalidCid(format!("version: {e}")))?;
    if version != 1 {
        return Err(IdentityError::InvalidCid(format!(
            "version {version}, expected 1"
        )));
    }
    let (codec, multihash) = unsigned_varint::decode::u64(rest)
        .map_err(|e| IdentityError::InvalidCid(format!("codec: {e}")))?;
    if codec != LIBP2P_KEY_CODEC {
        return Err(IdentityError::InvalidCid(format!(
            "codec 0x{codec:x}, expected libp2p-key (0x72)"
        )));
    }
    peer_id_from_bytes(multihash)
}

/// Parses the binary multihash form of a PeerId (as it travels on the wire).
pub fn peer_id_from_bytes(bytes: &[u8]) -> Result<PeerId, IdentityError> {
    PeerId::from_bytes(bytes).map_err(map_parse_error)
}

/// The CIDv1 text form (base32, `libp2p-key` codec) of a PeerId.
pub fn peer_id_to_cid(peer_id: &PeerId) -> String {
    let mut bytes = vec![0x01, LIBP2P_KEY_CODEC as u8];
    bytes.extend_from_slice(&peer_id.to_bytes());
    multibase::encode(multibase::Base::Base32Lower, bytes)
}

fn map_parse_error(e: ParseError) -> IdentityError {
    match e {
        ParseError::B58(e) => IdentityError::InvalidBase58(e.to_string()),
        ParseError::UnsupportedCode(code) => IdentityError::UnsupportedMultihash(code),
        other => IdentityError::MalformedPeerId(other.to_string()),
    }
}
