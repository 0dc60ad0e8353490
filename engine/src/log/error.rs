use starling_net::entry::EntryError;
use starling_store::StoreError;

use super::EntryHash;

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
    /// Sealing a payload for its receivers failed.
    #[error("encryption: {0}")]
    Crypto(#[from] starling_net::crypto::CryptoError),
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
    /// An append of no entries, or of more than one batch holds.
    #[error("a batch append needs 1 to 256 entries")]
    EmptyBatch,
    /// A payload over the entry size limit was appended.
    #[error("payload of {0} bytes exceeds the entry limit")]
    PayloadTooLarge(usize),
}
