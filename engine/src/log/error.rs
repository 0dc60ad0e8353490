use starling_net::IdentityError;
use starling_store::StoreError;

use super::EntryHash;

/// An entry that does not decode or verify.
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
    /// Bytes after the last signature.
    #[error("{0} unexpected bytes after the entry header")]
    TrailingBytes(usize),
    /// A header version this build does not read.
    #[error("unsupported entry version {0}")]
    UnsupportedVersion(u8),
    /// Codec flags this build does not know.
    #[error("unknown entry flags 0x{0:02x}")]
    UnknownFlags(u8),
    /// More `next` hashes than allowed.
    #[error("{0} next hashes exceed the limit")]
    TooManyNext(usize),
    /// No signature, or more than allowed.
    #[error("entry has {0} signatures (1 to 8 allowed)")]
    SignatureCount(usize),
    /// A signature's key type byte is unknown.
    #[error("unknown key type {0} in entry signature")]
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
    /// The clock's writer is not the first signer.
    #[error("clock writer is not the first signer")]
    WriterMismatch,
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

/// Errors of log operations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// An entry failed to decode or verify.
    #[error(transparent)]
    Entry(#[from] EntryError),
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// An entry of another log was offered to this one.
    #[error("entry belongs to another log")]
    WrongLog,
    /// The log's access check refused the entry.
    #[error("entry {0} refused by the log's access check")]
    AccessDenied(EntryHash),
    /// A remote clock too far in the future.
    #[error("clock is {ahead_us} µs ahead of now (limit {max_us} µs)")]
    ClockTooFarAhead {
        /// How far ahead.
        ahead_us: u64,
        /// The configured bound.
        max_us: u64,
    },
    /// A payload over the entry size limit was appended.
    #[error("payload of {0} bytes exceeds the entry limit")]
    PayloadTooLarge(usize),
}
