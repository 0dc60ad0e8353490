//! Who may write a document store (`can_perform`).

use std::sync::Arc;

use starling_net::identity::PublicKey;

use super::codec::DocId;
use crate::trust::Verdict;

/// An operation an access rule is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A put (new document or new version).
    Put,
    /// A delete.
    Delete,
}

/// The application's own rule: may `key` do `op` on `id` in an entry of clock `at_us` (Unix
/// µs)?
pub type AccessHook = Arc<dyn Fn(&PublicKey, &DocId, Operation, u64) -> bool + Send + Sync>;

/// A trust graph's answer for a key at an entry's time (Unix µs): see [`crate::trust`].
pub type TrustHook = Arc<dyn Fn(&PublicKey, u64) -> Verdict + Send + Sync>;

/// What an access rule says about one change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Allowed.
    Allowed,
    /// Refused.
    Denied,
    /// Not known yet: the trust graph is still catching up (the entry is not stored; it comes
    /// again with the next reconciliation).
    CatchingUp,
}

/// Who may write (`can_perform`): checked for local changes before signing and for replicated
/// entries after their signature verifies, so a refused writer's entries are never stored.
#[derive(Clone, Default)]
pub enum AccessRule {
    /// Anyone.
    #[default]
    Anyone,
    /// Only these keys.
    Writers(Vec<PublicKey>),
    /// The application decides.
    Custom(AccessHook),
    /// Keys a trust graph trusts at the entry's clock (its root, and keys delegated from it):
    /// a revoked key's entries from the revocation's clock on are refused, its earlier ones
    /// stand.
    Trusted(TrustHook),
}

impl std::fmt::Debug for AccessRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessRule::Anyone => f.write_str("Anyone"),
            AccessRule::Writers(keys) => write!(f, "Writers({} keys)", keys.len()),
            AccessRule::Custom(_) => f.write_str("Custom"),
            AccessRule::Trusted(_) => f.write_str("Trusted"),
        }
    }
}

impl AccessRule {
    /// Whether `key` may do `op` on `id` in an entry of clock `at_us` (Unix µs).
    pub(crate) fn allows(&self, key: &PublicKey, id: &DocId, op: Operation, at_us: u64) -> Access {
        let yes = |b: bool| if b { Access::Allowed } else { Access::Denied };
        match self {
            AccessRule::Anyone => Access::Allowed,
            AccessRule::Writers(keys) => yes(keys.contains(key)),
            AccessRule::Custom(rule) => yes(rule(key, id, op, at_us)),
            AccessRule::Trusted(graph) => match graph(key, at_us) {
                Verdict::Trusted { .. } => Access::Allowed,
                Verdict::NotTrusted => Access::Denied,
                Verdict::CatchingUp => Access::CatchingUp,
            },
        }
    }
}
