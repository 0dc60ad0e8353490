//! Entry hashes: BLAKE3, printed as CIDv1 (codec raw, multihash blake3 0x1e).

use std::fmt;
use std::str::FromStr;

use super::EntryError;

/// An entry's id: BLAKE3 of the signed part of its header (everything but the signature
/// block), so an entry keeps its id however it was signed, and a batch can link entries before
/// signing them. Also the entry's leaf in its batch's Merkle tree.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryHash(pub [u8; 32]);

/// CIDv1 prefix: version 1, codec raw (0x55), multihash blake3 (0x1e) of 32 bytes.
const CID_PREFIX: [u8; 4] = [0x01, 0x55, 0x1e, 0x20];

impl EntryHash {
    /// Hashes the signed bytes of a header.
    pub fn of(header: &[u8]) -> EntryHash {
        EntryHash(*blake3::hash(header).as_bytes())
    }

    /// The CIDv1 bytes.
    pub fn to_cid_bytes(&self) -> [u8; 36] {
        let mut b = [0u8; 36];
        b[..4].copy_from_slice(&CID_PREFIX);
        b[4..].copy_from_slice(&self.0);
        b
    }
}

impl fmt::Display for EntryHash {
    /// Base32 CIDv1 (`bafkr4i…`), a valid IPFS content id.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&multibase::encode(
            multibase::Base::Base32Lower,
            self.to_cid_bytes(),
        ))
    }
}

impl fmt::Debug for EntryHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.to_string();
        write!(f, "EntryHash({}…)", &s[..s.len().min(16)])
    }
}

impl FromStr for EntryHash {
    type Err = EntryError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (_, bytes) = multibase::decode(s).map_err(|e| EntryError::BadCid(e.to_string()))?;
        let rest = bytes
            .strip_prefix(&CID_PREFIX[..])
            .ok_or_else(|| EntryError::BadCid("not a CIDv1 raw/blake3-256".into()))?;
        let hash: [u8; 32] = rest
            .try_into()
            .map_err(|_| EntryError::BadCid("digest is not 32 bytes".into()))?;
        Ok(EntryHash(hash))
    }
}

/// Which log an entry belongs to: 32 bytes derived from the log's definition and its owner
/// (a stream's is BLAKE3 over the owner's key and the stream's name), the same on every peer.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct LogId(pub [u8; 32]);

impl LogId {
    /// The id's bytes, as the store keys them.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for LogId {
    /// Lower-case hex.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl fmt::Debug for LogId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LogId(")?;
        self.0[..6].iter().try_for_each(|b| write!(f, "{b:02x}"))?;
        write!(f, "…)")
    }
}
