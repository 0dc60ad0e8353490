//! Signed append-only logs.
//!
//! An [`Entry`] is the envelope of `starling_net::entry` (format v2: log id, seq, [`Clock`],
//! group, `next` hashes, payload hash, one writer's batch signature), plus its payload as
//! `Bytes`. Its hash is BLAKE3 over the signed part and prints as a CIDv1. A [`Log`] appends
//! (alone or as one signed batch), joins entries
//! from other peers (verifying them first), tracks heads, iterates in clock or causal order and
//! trims by count, bytes or age, storing everything in a [`starling_store::Store`].

mod clock;
mod compress;
mod error;
#[allow(clippy::module_inception)]
mod log;

pub use clock::HybridClock;
pub use compress::Compression;
pub use error::LogError;
pub use log::{
    AccessCheck, Draft, JoinReport, Log, LogConfig, LogId, Order, Payload, Retention, SignedBatch,
};
pub use starling_net::entry::{
    Clock, Entry, EntryError, EntryHash, EntryVerifier, MAX_BATCH, MAX_NEXT, MAX_PAYLOAD_LEN,
};
