//! # starling-engine
//!
//! What an application programs against: signed logs, programs (live streams, documents) and
//! the `Peer` handle. Built on `starling-net` and `starling-store`.
