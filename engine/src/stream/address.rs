//! Stream addresses: `live/<owner PeerId>/<name>`.
//!
//! An address is derived from the stream's definition (the program, `live/v1`, and its name) and
//! the owner's key, so it is stable across restarts and hosts and needs no registry. The PeerId
//! inlines the owner's public key (libp2p identity multihash), so a subscriber holding only the
//! address knows whose signatures to accept. The topic and log id are BLAKE3 over the owner's key
//! and the definition ([`Log::derive_id`]).

use std::fmt;
use std::str::FromStr;

use starling_net::identity::parse_peer_id;
use starling_net::overlay::Topic;
use starling_net::{PeerId, PublicKey};

use super::StreamError;
use crate::log::{Log, LogId};
use crate::program::ProgramDefinition;

/// The text every live-stream address starts with.
pub const ADDRESS_PREFIX: &str = "live/";
/// Longest stream name, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// A stream's stable address.
#[derive(Clone, Debug)]
pub struct StreamAddress {
    owner: PeerId,
    owner_key: PublicKey,
    name: String,
}

impl PartialEq for StreamAddress {
    fn eq(&self, other: &Self) -> bool {
        self.owner == other.owner && self.name == other.name
    }
}

impl Eq for StreamAddress {}

fn check_name(text: &str, name: &str) -> Result<(), StreamError> {
    let bad = |reason| StreamError::BadAddress {
        text: text.to_string(),
        reason,
    };
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(bad("a name has 1 to 64 characters"));
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err(bad("a name uses only A-Z a-z 0-9 - _ ."));
    }
    Ok(())
}

/// The program kind of a live stream.
pub const STREAM_KIND: &str = "live/v1";

impl StreamAddress {
    /// The stream as a program: kind [`STREAM_KIND`], its name, the owner's key (libp2p
    /// protobuf) as parameters. Its program address names the stream as `live/<PeerId>/<name>`
    /// does (which stays as the readable alias).
    pub fn definition(&self) -> ProgramDefinition {
        ProgramDefinition::new(
            STREAM_KIND,
            &self.name,
            bytes::Bytes::from(self.owner_key.encode_protobuf()),
        )
        .expect("a checked name and a key fit a definition")
    }

    /// The stream a definition describes.
    pub fn from_definition(definition: &ProgramDefinition) -> Result<StreamAddress, StreamError> {
        let bad = |reason| StreamError::BadAddress {
            text: definition.address().to_string(),
            reason,
        };
        if definition.kind() != STREAM_KIND {
            return Err(bad("not a live stream's program"));
        }
        let owner = PublicKey::decode_protobuf(definition.params())
            .map_err(|_| bad("the owner's key does not decode"))?;
        StreamAddress::new(&owner, definition.name())
    }

    /// The address of stream `name` owned by `owner`.
    pub fn new(owner: &PublicKey, name: &str) -> Result<StreamAddress, StreamError> {
        check_name(name, name)?;
        Ok(StreamAddress {
            owner: owner.peer_id(),
            owner_key: *owner,
            name: name.to_string(),
        })
    }

    /// Parses `live/<PeerId>/<name>`.
    pub fn parse(text: &str) -> Result<StreamAddress, StreamError> {
        let bad = |reason| StreamError::BadAddress {
            text: text.to_string(),
            reason,
        };
        let rest = text
            .trim()
            .strip_prefix(ADDRESS_PREFIX)
            .ok_or_else(|| bad("an address starts with live/"))?;
        let (peer, name) = rest
            .split_once('/')
            .ok_or_else(|| bad("expected live/<PeerId>/<name>"))?;
        check_name(text, name)?;
        let owner = parse_peer_id(peer).map_err(|_| bad("not a PeerId"))?;
        let owner_key = PublicKey::from_peer_id(&owner)
            .map_err(|_| bad("the PeerId does not inline its public key"))?;
        Ok(StreamAddress {
            owner,
            owner_key,
            name: name.to_string(),
        })
    }

    /// The owner's PeerId (the root of the stream's tree).
    pub fn owner(&self) -> PeerId {
        self.owner
    }

    /// The owner's public key: only its signatures are accepted for this stream.
    pub fn owner_key(&self) -> &PublicKey {
        &self.owner_key
    }

    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The id of the stream's log.
    pub fn log_id(&self) -> LogId {
        Log::derive_id(&self.owner_key, &format!("live/v1/{}", self.name))
    }

    /// The overlay topic the stream travels on: its log's id.
    pub fn topic(&self) -> Topic {
        self.log_id().into()
    }
}

impl fmt::Display for StreamAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ADDRESS_PREFIX}{}/{}", self.owner, self.name)
    }
}

impl FromStr for StreamAddress {
    type Err = StreamError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        StreamAddress::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use starling_net::{KeyType, Keypair};

    #[test]
    fn round_trips_through_text() {
        for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
            let key = Keypair::generate(kt);
            let a = StreamAddress::new(key.public(), "cam-1.main_hd").unwrap();
            let text = a.to_string();
            assert!(text.starts_with("live/"));
            let b: StreamAddress = text.parse().unwrap();
            assert_eq!(a, b);
            assert_eq!(a.log_id(), b.log_id());
            assert_eq!(b.owner(), key.peer_id());
        }
    }

    #[test]
    fn derived_from_owner_and_name() {
        let k1 = Keypair::generate(KeyType::Ed25519);
        let k2 = Keypair::generate(KeyType::Ed25519);
        let a = StreamAddress::new(k1.public(), "s").unwrap();
        assert_eq!(
            a.log_id(),
            StreamAddress::new(k1.public(), "s").unwrap().log_id()
        );
        assert_ne!(
            a.log_id(),
            StreamAddress::new(k2.public(), "s").unwrap().log_id()
        );
        assert_ne!(
            a.log_id(),
            StreamAddress::new(k1.public(), "t").unwrap().log_id()
        );
    }

    #[test]
    fn bad_addresses_are_typed_errors() {
        let key = Keypair::generate(KeyType::Ed25519);
        let good = StreamAddress::new(key.public(), "x").unwrap().to_string();
        let peer = key.peer_id().to_string();
        for text in [
            "",
            "x",
            "live/",
            "live/nope/x",
            &format!("live/{peer}"),
            &format!("live/{peer}/"),
            &format!("live/{peer}/a b"),
            &format!("live/{peer}/{}", "a".repeat(65)),
            &format!("dead/{peer}/x"),
            &good.replace("live/", "live/Qm"),
        ] {
            assert!(
                matches!(
                    StreamAddress::parse(text),
                    Err(StreamError::BadAddress { .. })
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn a_stream_is_a_program_whose_definition_gives_its_address_back() {
        let owner = Keypair::generate(KeyType::Ed25519);
        let address = StreamAddress::new(owner.public(), "cam").unwrap();
        let def = address.definition();
        assert_eq!(def.kind(), STREAM_KIND);
        assert_eq!(StreamAddress::from_definition(&def).unwrap(), address);
        assert_eq!(def.address(), address.definition().address(), "stable");
        let other = ProgramDefinition::new("documents/v1", "cam", bytes::Bytes::new()).unwrap();
        assert!(StreamAddress::from_definition(&other).is_err());
        let junk =
            ProgramDefinition::new(STREAM_KIND, "cam", bytes::Bytes::from_static(b"x")).unwrap();
        assert!(StreamAddress::from_definition(&junk).is_err());
    }
}
