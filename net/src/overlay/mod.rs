//! Direct-sub: the overlay that carries topics and direct messages between peers.
//!
//! [`Overlay`] is a sans-IO state machine (like quinn-proto or iroh-gossip's proto): events in
//! through [`Overlay::handle`] with the time passed in, [`Action`]s out. It knows nothing of
//! tokio, QUIC or the system clock, and takes randomness as a seed, so the same inputs give the
//! same outputs — which is what lets the simulator run thousands of overlays deterministically.
//!
//! - Data plane: one tree per topic rooted at its publisher. A node admits children up to its
//!   fan-out and upload capacity and redirects further joiners to its children, each with its
//!   estimated delay from the root; the joiner probes them and descends towards the one that
//!   would deliver to it soonest (latency-aware placement). Frames carry sequence numbers and the root's signature and are relayed as they
//!   are. A node whose parent disappears, goes silent or congests re-attaches (with hysteresis)
//!   and repairs the gap from its new parent's bounded cache.
//! - Routing plane: direct messages to a peer travel along the cheapest learned route (learned
//!   from the reverse path of earlier messages, expiring), flood when no route is known, are
//!   deduplicated by id and bounded by a hop limit; each is verified before it is relayed.

mod config;
pub mod control;
mod core;
#[cfg(feature = "quic")]
mod driver;
mod event;
mod link;
mod message;
mod routing;
mod shared;
mod tree;
mod util;

pub use config::OverlayConfig;
pub use core::Overlay;
#[cfg(feature = "quic")]
pub use driver::{
    APP_INBOX, AppLink, Delivery, DirectMessage, FrameVerifier, Inboxes, MAX_KNOWN_ADDRESSES,
    MAX_PINNED_LINKS, OverlayNode, OwnedPublishPermit, PublishRefused, WriterRule,
};
pub use event::{Action, Command, Event, OverlayStats};
pub use link::LinkMetrics;
pub use message::{Candidate, Lane as MessageLane, Message, Payload, Topic, Verifier};
pub use util::{SplitMix64, TokenBucket};

#[cfg(test)]
mod tests;
