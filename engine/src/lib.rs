//! # starling-engine
//!
//! What an application programs against, built on `starling-net` and `starling-store`.
//!
//! - [`log`]: signed append-only logs — entries with hybrid logical clocks, `next` links and
//!   BLAKE3 hashes that print as CIDs; append, join, heads, iteration, trimming.

pub mod log;

pub use log::{Clock, Entry, EntryHash, Log, LogConfig, LogError, Retention};
