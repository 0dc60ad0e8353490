//! # starling-store
//!
//! Durable storage on fjall (an LSM tree): entries by hash, payloads, log heads, clock order and
//! reverse links, with crash-safe reopen. Depends on nothing else in Starling.
