//! The document store (issue 14, in progress).
//!
//! - [`keys`]: index keys — field values encoded so that byte order is value order, which lets
//!   the store's ordered scans answer equality, range, prefix and sort queries.
//! - [`codec`]: the [`Codec`] seam (serde + postcard by default) and [`DocId`]s with their keys
//!   and group ids.
//!
//! Next: `Documents<T>` (put/get/delete with one write batch per change), the index projection,
//! queries and their planner, change events, replication.

pub mod codec;
pub mod keys;

pub use codec::{Codec, CodecError, DocId, Postcard};
