//! # starling-store
//!
//! Durable storage on fjall (an LSM tree) for signed logs. It stores bytes under the keys a log
//! needs and knows nothing of how entries are encoded or signed (that is `starling-engine`'s):
//!
//! - [`Store`]: one fjall database per node directory, with keyspaces for entry headers,
//!   payloads (key-value separated, uncompressed), heads, clock order and reverse `next` links
//!   (per log).
//! - [`WriteBatch`]: one logical change — entries and the [`Table`] rows derived from them
//!   (documents, index entries) — written atomically.
//! - [`Durability`]: per-write sync (default), periodic sync, or OS-buffered.
//! - [`StoreError`]: typed errors.

mod batch;
mod config;
mod error;
mod store;

pub use batch::{Table, WriteBatch};
pub use config::{Durability, StoreConfig};
pub use error::StoreError;
pub use store::{CLOCK_KEY_LEN, ClockKey, ClockRow, HASH_LEN, Hash, NewEntry, Store};
