//! Sharded replication (issue 15, in progress): the sans-IO placement core.
//!
//! - [`ring`]: replicators' ranges on a 64-bit ring, a group's point, the distinct holders of
//!   an entry's replicas, how much of the ring is covered.

pub mod ring;

pub use ring::{Point, Range, Ring, point_of, replica_points};
