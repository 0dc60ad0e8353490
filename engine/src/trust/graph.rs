//! The trust graph's rules, sans-IO: statements in, verdicts out.
//!
//! A statement is signed by its issuer (the entry's writer) at a clock:
//! - `Delegate { subject, scopes, expires_us, may_delegate }`: the issuer vouches for the
//!   subject from that clock on, for the scopes named (none: every scope), until it expires;
//!   with `may_delegate` the subject may vouch for others in turn.
//! - `Revoke { subject }`: from that clock on, the issuer's delegations to the subject no
//!   longer count; the root's revocation removes the subject from every issuer's.
//!
//! A key is trusted at time `at` when a chain of delegations leads to it from the root, each
//! one in force at `at` (its issuer's latest statement about the subject up to `at` is a
//! delegation, not expired, not overridden by a root revocation), each issuer trusted at `at`
//! and allowed to delegate, and each delegation made while its issuer was trusted (a key
//! revoked at t cannot vouch for anyone at t' > t, whatever clock it claims later — it can
//! claim an earlier one, which is why revocation also cuts the chain at `at`). Chains are at
//! most [`MAX_DEPTH`] long; cycles are cut. Every peer holding the same statements answers
//! the same, so a write concurrent with its writer's revocation is decided by the clocks
//! alone, the same way everywhere.

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};
use starling_net::identity::PublicKey;

/// Longest chain of delegations followed from the root.
pub const MAX_DEPTH: usize = 16;

/// What an issuer signs about a subject.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Statement {
    /// The issuer vouches for `subject`.
    Delegate {
        /// The subject's key (libp2p protobuf encoding).
        subject: Vec<u8>,
        /// What the subject is trusted for (empty: everything).
        scopes: Vec<String>,
        /// Unix µs after which the delegation no longer counts.
        expires_us: Option<u64>,
        /// Whether the subject may delegate in turn.
        may_delegate: bool,
    },
    /// The issuer withdraws its delegations to `subject` (the root: every delegation to it).
    Revoke {
        /// The subject's key (libp2p protobuf encoding).
        subject: Vec<u8>,
    },
}

impl Statement {
    /// The key the statement is about.
    pub fn subject(&self) -> &[u8] {
        match self {
            Statement::Delegate { subject, .. } | Statement::Revoke { subject } => subject,
        }
    }
}

/// When a statement was made: its entry's clock (wall µs, logical) and hash, a total order
/// every peer shares.
pub type Stamp = (u64, u32, [u8; 32]);

/// The answer to "is this key trusted at this time?".
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Trusted: the chain of keys from the root's delegate down to the key.
    Trusted {
        /// The issuers after the root, in order, ending with the key itself.
        chain: Vec<PublicKey>,
    },
    /// Not trusted by what this peer holds, and it holds the graph.
    NotTrusted,
    /// Not trusted by what this peer holds yet, but it has not caught up with the graph's
    /// replicators: ask again.
    CatchingUp,
}

impl Verdict {
    /// Whether the key is trusted.
    pub fn is_trusted(&self) -> bool {
        matches!(self, Verdict::Trusted { .. })
    }
}

#[derive(Clone, Debug)]
struct Said {
    issuer: PublicKey,
    stamp: Stamp,
    statement: Statement,
}

/// Every statement about each subject, and the root.
#[derive(Clone, Debug)]
pub struct TrustGraph {
    root: PublicKey,
    /// Subject (protobuf key) → statements about it, in stamp order.
    about: HashMap<Vec<u8>, Vec<Said>>,
}

impl TrustGraph {
    /// An empty graph rooted at `root`.
    pub fn new(root: PublicKey) -> TrustGraph {
        TrustGraph {
            root,
            about: HashMap::new(),
        }
    }

    /// The root.
    pub fn root(&self) -> &PublicKey {
        &self.root
    }

    /// Adds a statement `issuer` signed at `stamp` (any order; duplicates are harmless).
    pub fn insert(&mut self, issuer: PublicKey, stamp: Stamp, statement: Statement) {
        let list = self.about.entry(statement.subject().to_vec()).or_default();
        let at = list.partition_point(|s| s.stamp < stamp);
        if list.get(at).is_some_and(|s| s.stamp == stamp) {
            return;
        }
        list.insert(
            at,
            Said {
                issuer,
                stamp,
                statement,
            },
        );
    }

    /// Whether this graph trusts at least what `old` did, at every time and for every scope:
    /// it holds all of `old`'s statements, and its others are delegations from issuers
    /// about subjects `old` held nothing from them on. A revocation, a delegation that
    /// replaces an earlier one (a narrower scope, an expiry), or a statement gone may narrow
    /// trust. Stores re-check their writers only when this is false.
    pub fn only_grows_from(&self, old: &TrustGraph) -> bool {
        if self.root != old.root || old.about.keys().any(|s| !self.about.contains_key(s)) {
            return false;
        }
        self.about.iter().all(|(subject, said)| {
            let before = old.about.get(subject).map_or(&[][..], Vec::as_slice);
            let kept = before
                .iter()
                .all(|b| said.binary_search_by(|s| s.stamp.cmp(&b.stamp)).is_ok());
            kept && said.iter().all(|s| {
                before.iter().any(|b| b.stamp == s.stamp)
                    || (matches!(s.statement, Statement::Delegate { .. })
                        && !before.iter().any(|b| b.issuer == s.issuer))
            })
        })
    }

    /// Statements held.
    pub fn len(&self) -> usize {
        self.about.values().map(Vec::len).sum()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.about.is_empty()
    }

    /// Whether `key` may issue statements at Unix µs `at`: the root, or a key trusted then
    /// through a chain whose last delegation lets it delegate.
    pub fn may_delegate(&self, key: &PublicKey, at: u64) -> bool {
        *key == self.root
            || self
                .chain(key, at, None, true, 0, &mut HashSet::new())
                .is_some()
    }

    /// Whether `key` is trusted at Unix µs `at` for `scope` (`None`: any use), by the
    /// statements held. `caught_up: false` turns a "no" into [`Verdict::CatchingUp`].
    pub fn verdict(
        &self,
        key: &PublicKey,
        at: u64,
        scope: Option<&str>,
        caught_up: bool,
    ) -> Verdict {
        if *key == self.root {
            return Verdict::Trusted { chain: Vec::new() };
        }
        let mut visiting = HashSet::new();
        match self.chain(key, at, scope, false, 0, &mut visiting) {
            Some(chain) => Verdict::Trusted { chain },
            None if caught_up => Verdict::NotTrusted,
            None => Verdict::CatchingUp,
        }
    }

    /// A chain from the root to `key` in force at `at` (as a delegator: the last delegation
    /// allows delegating), or none.
    fn chain(
        &self,
        key: &PublicKey,
        at: u64,
        scope: Option<&str>,
        delegator: bool,
        depth: usize,
        visiting: &mut HashSet<Vec<u8>>,
    ) -> Option<Vec<PublicKey>> {
        if *key == self.root {
            return Some(Vec::new());
        }
        let subject = key.encode_protobuf();
        if depth >= MAX_DEPTH || !visiting.insert(subject.clone()) {
            return None;
        }
        let found = self.chain_through(key, &subject, at, scope, delegator, depth, visiting);
        visiting.remove(&subject);
        found
    }

    #[allow(clippy::too_many_arguments)]
    fn chain_through(
        &self,
        key: &PublicKey,
        subject: &[u8],
        at: u64,
        scope: Option<&str>,
        delegator: bool,
        depth: usize,
        visiting: &mut HashSet<Vec<u8>>,
    ) -> Option<Vec<PublicKey>> {
        let said = self.about.get(subject)?;
        let upto: Vec<&Said> = said.iter().filter(|s| s.stamp.0 <= at).collect();
        // The root's latest revocation up to `at` cuts every delegation made before it.
        let root_cut = upto
            .iter()
            .rev()
            .find(|s| s.issuer == self.root && matches!(s.statement, Statement::Revoke { .. }))
            .map(|s| s.stamp);
        let mut issuers: Vec<&PublicKey> = Vec::new();
        for s in &upto {
            if !issuers.contains(&&s.issuer) {
                issuers.push(&s.issuer);
            }
        }
        for issuer in issuers {
            // This issuer's latest statement about the subject, up to `at`.
            let Some(latest) = upto.iter().rev().find(|s| s.issuer == *issuer) else {
                continue;
            };
            let Statement::Delegate {
                scopes,
                expires_us,
                may_delegate,
                ..
            } = &latest.statement
            else {
                continue;
            };
            if root_cut.is_some_and(|cut| latest.stamp < cut)
                || expires_us.is_some_and(|e| at >= e)
                || (delegator && !may_delegate)
                || scope.is_some_and(|sc| !scopes.is_empty() && !scopes.iter().any(|s| s == sc))
            {
                continue;
            }
            // The issuer is trusted as a delegator now, and was when it signed.
            let Some(mut chain) = self.chain(issuer, at, scope, true, depth + 1, visiting) else {
                continue;
            };
            if self
                .chain(issuer, latest.stamp.0, scope, true, depth + 1, visiting)
                .is_none()
            {
                continue;
            }
            chain.push(*key);
            return Some(chain);
        }
        None
    }
}

#[cfg(test)]
mod tests;
