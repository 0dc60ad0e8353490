//! # starling-engine
//!
//! What an application programs against, built on `starling-net` and `starling-store`.
//!
//! - [`Peer`]: the one handle an application holds — endpoint, overlay, store, streams,
//!   programs.
//! - [`stream`]: live streams — publish frames into a signed log, subscribe by address.
//! - [`documents`]: document stores — opened by address, queried by fields, replicated
//!   between peers (replicators reconcile; observers read remotely); JSON stores.
//! - [`program`]: program definitions and the addresses they hash to.
//! - [`router`]: direct messages by protocol tag, one inbox per program.
//! - [`reconcile`]: range-based set reconciliation over a log's entries (sans-IO).
//! - [`shard`]: sharded replication's placement core (ring, placement, membership, duties).
//! - [`trust`]: trust graphs — a root delegates to keys, revokes from a clock on; document
//!   stores accept the keys a graph trusts.
//! - [`log`]: signed append-only logs — entries with hybrid logical clocks, `next` links and
//!   BLAKE3 hashes that print as CIDs; append, join, heads, iteration, trimming.
//!
//! A live stream between two peers on loopback:
//!
//! ```
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use starling_engine::{MediaFrame, Peer, PeerConfig, PublishOptions, SubscribeOptions};
//! use starling_net::{KeyType, Keypair};
//!
//! let owner = Peer::start(Keypair::generate(KeyType::Ed25519), PeerConfig::default()).await?;
//! let mut cam = owner.publish_stream("cam", PublishOptions::default())?;
//! println!("open {}", cam.address()); // live/12D3KooW…/cam
//!
//! let viewer = Peer::start(
//!     Keypair::generate(KeyType::Ed25519),
//!     PeerConfig { bootstrap: vec![owner.local_addr()], ..PeerConfig::default() },
//! )
//! .await?;
//! let mut sub = viewer.subscribe(cam.address(), SubscribeOptions::default())?;
//! assert!(sub.wait_attached(Duration::from_secs(5)).await);
//!
//! cam.push(MediaFrame::key(bytes::Bytes::from_static(b"frame 0"), 0))?;
//! let frame = sub.recv().await.expect("a frame");
//! // A seq carries the publisher's session (`starling_net::entry::session`): this is its first frame.
//! assert_eq!(starling_net::entry::session::index_of(frame.seq), 0);
//! assert_eq!((frame.keyframe, &frame.data[..]), (true, &b"frame 0"[..]));
//! viewer.close().await;
//! owner.close().await;
//! # Ok(())
//! # }
//! ```

pub mod documents;
pub mod log;
mod peer;
pub mod program;
pub mod reconcile;
pub mod router;
pub mod shard;
pub mod stream;
pub mod trust;

pub use log::{Clock, Entry, EntryHash, Log, LogConfig, LogError, Retention};
pub use peer::{LiveStream, Peer, PeerConfig};
pub use router::{Protocol, Routed};
pub use stream::{
    Bitrate, MediaFrame, PeerError, PublishOptions, Publisher, PublisherStats, StreamAddress,
    StreamError, StreamFrame, SubscribeOptions, Subscription, SubscriptionStats,
};
