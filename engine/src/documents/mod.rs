//! The document store (issue 14, in progress).
//!
//! - [`keys`]: index keys — field values encoded so that byte order is value order, which lets
//!   the store's ordered scans answer equality, range, prefix and sort queries.
//!
//! Next: `Documents<T>` (put/get/delete with one write batch per change), the index projection,
//! queries and their planner, change events, replication.

pub mod keys;
