//! Signed append-only logs.
//!
//! An [`Entry`] is a fixed-layout header (log id, [`Clock`], `next` hashes, payload length and
//! BLAKE3 hash, codec flags) signed by one or more keys, plus its payload as `Bytes`. Its hash is
//! BLAKE3 over the whole encoded header and prints as a CIDv1. A [`Log`] appends, joins entries
//! from other peers (verifying them first), tracks heads, iterates in clock or causal order and
//! trims by count, bytes or age, storing everything in a [`starling_store::Store`].

mod clock;
mod compress;
mod entry;
mod error;
mod hash;
#[allow(clippy::module_inception)]
mod log;

pub use clock::{Clock, HybridClock};
pub use compress::Compression;
pub use entry::{Entry, MAX_NEXT, MAX_PAYLOAD_LEN, MAX_SIGNATURES, verify_entries};
pub use error::{EntryError, LogError};
pub use hash::EntryHash;
pub use log::{AccessCheck, Direction, JoinReport, Log, LogConfig, LogId, Retention};
