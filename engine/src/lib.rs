//! # starling-engine
//!
//! What an application programs against, built on `starling-net` and `starling-store`.
//!
//! - [`Peer`]: the one handle an application holds — endpoint, overlay, store, streams.
//! - [`stream`]: live streams — publish frames into a signed log, subscribe by address.
//! - [`log`]: signed append-only logs — entries with hybrid logical clocks, `next` links and
//!   BLAKE3 hashes that print as CIDs; append, join, heads, iteration, trimming.

pub mod log;
mod peer;
pub mod stream;

pub use log::{Clock, Entry, EntryHash, Log, LogConfig, LogError, Retention};
pub use peer::{LiveStream, Peer, PeerConfig};
pub use stream::{
    Bitrate, MediaFrame, PeerError, PublishOptions, Publisher, StreamAddress, StreamError,
    StreamFrame, SubscribeOptions, Subscription, SubscriptionStats,
};
