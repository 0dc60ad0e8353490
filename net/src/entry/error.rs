use crate::identity::IdentityError;

use super::EntryHash;

/// An entry that does not decode or verify. Every variant is a property of the bytes received
/// (or read back), never a panic.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The header ends before its layout does.
    #[error("entry header truncated: needs {need} bytes, has {have}")]
    Truncated {
        /// Bytes the layout needs so far.
        need: usize,
        /// Bytes present.
        have: usize,
    },
    /// Bytes after the signature block (a stored header is exactly its layout).
    #[error("{0} unexpected bytes after the entry header")]
    TrailingBytes(usize),
    /// Version 1 headers (one signature per entry, hash over the signatures) are no longer
    /// read: the format changed under them and nothing was deployed with it.
    #[error("entry format v1 is retired (this build reads v2)")]
    RetiredVersion,
    /// A header version this build does not know.
    #[error("unsupported entry version {0}")]
    UnsupportedVersion(u8),
    /// Codec flags this build does not know.
    #[error("unknown entry flags 0x{0:02x}")]
    UnknownFlags(u8),
    /// More `next` hashes than allowed.
    #[error("{0} next hashes exceed the limit of 64")]
    TooManyNext(usize),
    /// More program meta bytes than allowed.
    #[error("{0} meta bytes exceed the limit of 255")]
    MetaTooLong(usize),
    /// A batch of no entries, or of more than allowed.
    #[error("a batch of {0} entries (1 to 256 allowed)")]
    BatchSize(usize),
    /// The signer's key type byte is unknown.
    #[error("unknown key type {0} in entry")]
    UnknownKeyType(u8),
    /// The payload's length differs from the header's.
    #[error("payload is {actual} bytes but the header says {expected}")]
    PayloadLength {
        /// From the header.
        expected: u32,
        /// Present.
        actual: usize,
    },
    /// The (decompressed) payload would exceed the limit.
    #[error("payload of {0} bytes exceeds the limit")]
    PayloadTooLarge(u64),
    /// The payload does not hash to the header's payload hash.
    #[error("payload does not match its BLAKE3 hash")]
    PayloadHashMismatch,
    /// A stored header does not hash to the key it was stored under.
    #[error("stored entry {expected} hashes to {actual}: corrupt")]
    HashMismatch {
        /// The key.
        expected: EntryHash,
        /// What the bytes hash to.
        actual: EntryHash,
    },
    /// A batch position outside its batch (index ≥ size, size 0 or over the limit).
    #[error("batch position {index} of {size} is invalid")]
    BadBatchPosition {
        /// The entry's index in its batch.
        index: u16,
        /// The batch size.
        size: u16,
    },
    /// The inclusion proof does not lead to the root that was signed, or a cached root was
    /// claimed with another signature or signer.
    #[error("batch proof or signature does not verify")]
    BadBatchProof,
    /// The payload is encrypted: only a receiver can read it ([`super::Entry::open_payload`]).
    #[error("the payload is encrypted")]
    Encrypted,
    /// Opening an encrypted payload failed (not a receiver, tampered, malformed envelope).
    #[error("encrypted payload: {0}")]
    Crypto(#[from] crate::crypto::CryptoError),
    /// A bad key or signature.
    #[error("entry signature: {0}")]
    Signature(#[from] IdentityError),
    /// LZ4 data that does not decompress to the declared length.
    #[error("payload does not decompress: {0}")]
    Decompress(String),
    /// Text that is not an entry CID.
    #[error("not an entry CID: {0}")]
    BadCid(String),
}
