//! Trust graphs: a root identity delegates to other keys (with scopes, an expiry, and whether
//! they may delegate further), revokes from a clock on, and access rules ask the graph.
//!
//! - [`graph`]: the rules, sans-IO — statements in, [`Verdict`]s out (every peer holding the
//!   same statements answers the same).
//! - [`program`]: [`Trust`], a graph as a program: its definition names the root and hashes
//!   to the address every peer opens it by; its statements are entries of an immutable
//!   document store, replicated like any (`Peer::open_trust`). A document store whose
//!   definition says `Writers::Trusted(address)` accepts the keys this graph trusts.

pub mod graph;
pub mod program;

pub use graph::{MAX_DEPTH, Stamp, Statement, TrustGraph, Verdict};
pub use program::{Delegation, TRUST_KIND, Trust, TrustParams};
