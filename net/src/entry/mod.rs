//! The signed envelope: one entry format from writer to every reader.
//!
//! An [`Entry`] is what a writer signs, what relays forward byte for byte, what subscribers,
//! catch-up and the store keep, and (later) what replication and sync move. Its hash is BLAKE3
//! over the signed part of the header ([`EntryHash`], printed as a CIDv1). Under load a writer
//! signs a *batch*: one signature over the Merkle root of up to [`MAX_BATCH`] entry hashes
//! ([`EntrySigner::sign`]); each entry carries its inclusion proof and the batch signature, so
//! it verifies on its own, and an [`EntryVerifier`] checks each root's signature once (bounded
//! [`RootCache`]). The layout is documented in `format.rs` and fixed by fixtures
//! (`net/tests/data/entries-v2.hex`). A seq carries its writer's session ([`session`]), so a
//! writer that lost its log never signs a seq twice.

mod clock;
mod error;
mod format;
mod hash;
pub mod merkle;
pub mod session;
mod sign;
#[cfg(test)]
mod tests;
mod verify;

pub use clock::{CLOCK_KEY_LEN, Clock, unix_time_us, writer_id};
pub use error::EntryError;
pub use format::{
    Entry, EntryFields, FLAG_ENCRYPTED, FLAG_LZ4, MAX_BATCH, MAX_META, MAX_NEXT, MAX_PAYLOAD_LEN,
    Unsigned, VERSION, next_hashes,
};
pub use hash::{EntryHash, LogId};
pub use sign::EntrySigner;
pub use verify::{DEFAULT_ROOT_CACHE, EntryVerifier, RootCache};
