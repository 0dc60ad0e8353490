//! The document store (issue 14, in progress).
//!
//! - [`keys`]: index keys — field values encoded so that byte order is value order, which lets
//!   the store's ordered scans answer equality, range, prefix and sort queries.
//! - [`codec`]: the [`Codec`] seam (serde + postcard by default) and [`DocId`]s with their keys
//!   and group ids.
//!
//! - [`IndexSpec`] (which fields are indexed) and [`AccessRule`] (who may write).
//! - [`Documents`]: a program's documents on this peer — put/get/delete/count, each change one
//!   signed entry committed with its document row and index rows in one store batch.
//!
//! - [`query`]: filters, sort and limit, and the planner that picks an index scan.
//!
//! Next: concurrent-write resolution for replicated entries, change
//! events, rebuilding indexes from the log, replication.

mod access;
pub mod codec;
mod collection;
mod definition;
mod index;
pub mod json;
pub mod keys;
pub mod query;
pub mod replica;

pub use access::{AccessHook, AccessRule, Operation};
pub use codec::{Codec, CodecError, DocId, Postcard};
pub use collection::{
    Applied, CHANGE_BUFFER, DocumentChange, DocumentError, Documents, DocumentsOptions, Pages,
};
pub use definition::{DOCUMENTS_KIND, DocumentsParams, Writers};
pub use index::IndexSpec;
pub use query::{Filter, Query, Sort};
pub use replica::{Replica, ReplicaOptions, ReplicaStats, Role};
