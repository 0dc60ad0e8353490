//! Who may write a document store (`can_perform`).

use std::sync::Arc;

use starling_net::identity::PublicKey;

use super::codec::DocId;

/// An operation an access rule is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    /// A put (new document or new version).
    Put,
    /// A delete.
    Delete,
}

/// The application's own rule: may `key` do `op` on `id`?
pub type AccessHook = Arc<dyn Fn(&PublicKey, &DocId, Operation) -> bool + Send + Sync>;

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
}

impl std::fmt::Debug for AccessRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AccessRule::Anyone => f.write_str("Anyone"),
            AccessRule::Writers(keys) => write!(f, "Writers({} keys)", keys.len()),
            AccessRule::Custom(_) => f.write_str("Custom"),
        }
    }
}

impl AccessRule {
    pub(super) fn allows(&self, key: &PublicKey, id: &DocId, op: Operation) -> bool {
        match self {
            AccessRule::Anyone => true,
            AccessRule::Writers(keys) => keys.contains(key),
            AccessRule::Custom(rule) => rule(key, id, op),
        }
    }
}
