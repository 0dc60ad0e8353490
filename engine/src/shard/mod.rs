//! Sharded replication (issue 15, in progress): the sans-IO core that the replica driver and
//! the replication simulator (`starling-loadtest repl-sim`) both run.
//!
//! - [`ring`]: replicators' ranges on a 64-bit ring, a group's point, the distinct holders of
//!   an entry's replicas, how much of the ring is covered.
//! - [`placement`]: the ring cut into segments of points with the same holders (lookups by
//!   binary search; a peer's duties as spans).
//! - [`membership`]: the replicators one peer knows (announced ranges, ready or not, last
//!   heard), and the settled and target placements made from them.
//! - [`duties`](mod@duties): what one replicator does where — hold, keep, prune — with whom it reconciles,
//!   when a newcomer is ready, what may be pruned once confirmed.

pub mod duties;
pub mod membership;
pub mod placement;
pub mod ring;

pub use duties::{Duty, Readiness, Role, duties, handoff, keeping_duties, partners, prunable};
pub use membership::{Announcement, MAX_RANGES_PER_PEER, Membership, MembershipError, Views};
pub use placement::{Placement, Span};
pub use ring::{Point, Range, Ring, point_of, replica_points};
