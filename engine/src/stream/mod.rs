//! Live streams: the program that turns a log into a frame stream.
//!
//! The owner pushes [`MediaFrame`]s to a [`Publisher`]; each becomes a signed log entry and a
//! record on the stream's overlay tree. Subscribers open the stream's [`StreamAddress`] and get
//! a [`Subscription`]: verified frames in order, starting at the latest keyframe, skipping to the
//! next keyframe (and saying how many frames that cost) when they fall behind.
//!
//! - [`address`]: `live/<owner>/<name>`, the log id and topic derived from it.
//! - [`record`]: the record and catch-up wire formats.
//! - `playout`: the subscriber's ordering and skipping rules (sans-IO).
//! - [`publisher`] / [`subscription`]: the two ends.
//! - `catch_up`: the publisher's catch-up server (rate-limited per requester and node-wide).
//! - [`delegation`]: whose frames count when an owner's delegated device publishes.

pub mod address;
mod bitrate;
pub(crate) mod catch_up;
pub mod delegation;
mod error;
mod playout;
pub mod publisher;
pub mod record;
pub mod subscription;

pub use address::StreamAddress;
pub use bitrate::Bitrate;
pub use error::{PeerError, StreamError};
pub use publisher::{PublishOptions, Publisher, PublisherStats, STORE_RETRY};
pub use record::{MediaFrame, RecordMeta};
pub use subscription::{StreamFrame, SubscribeOptions, Subscription, SubscriptionStats};
