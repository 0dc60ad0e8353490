//! [`Trust`]: a trust graph as a program.
//!
//! The definition (kind [`TRUST_KIND`], a name, [`TrustParams`] naming the root key) hashes to
//! the graph's address. Statements are documents of an immutable store under that address,
//! each id `<issuer PeerId>/<random>` (a writer can only add statements under its own name;
//! none is ever replaced), so the graph keeps its whole history: a revocation is a new
//! statement, and verdicts at past times stay answerable.
//!
//! Only the root and the keys the graph lets delegate (at a statement's clock) write
//! statements: those of free identities are refused before they are stored, so nobody else
//! can fill every follower's store (or crowd out the statements that count).
//!
//! Verdicts are answered from a cached [`TrustGraph`], rebuilt from the store whenever it
//! changes (a task follows the store's changes), so an access check never waits on the
//! graph's store. A peer counts as caught up once a reconciliation with a replicator of the
//! graph settled with nothing left to fetch (or it holds the root key): before that, a key it
//! cannot trust yet is [`Verdict::CatchingUp`], not "no".

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use rand::RngCore;
use serde::{Deserialize, Serialize};
use starling_net::identity::PublicKey;
use tokio::sync::watch;

use super::graph::{Statement, TrustGraph, Verdict};
use crate::documents::{AccessHook, DocId, DocumentError, Documents, Replica, TrustHook};
use crate::log::EntryHash;
use crate::program::{ProgramAddress, ProgramDefinition, ProgramError};

/// The kind of a trust graph's definition.
pub const TRUST_KIND: &str = "trust/v1";

/// Statements a graph counts (the oldest first); past it the rest are ignored and logged.
const MAX_STATEMENTS: usize = 65_536;

/// A trust graph's parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrustParams {
    /// The root key (libp2p protobuf encoding).
    pub root: Vec<u8>,
}

impl TrustParams {
    /// The parameters of a graph rooted at `root`.
    pub fn new(root: &PublicKey) -> TrustParams {
        TrustParams {
            root: root.encode_protobuf(),
        }
    }

    /// The definition of graph `name`.
    pub fn definition(&self, name: &str) -> Result<ProgramDefinition, ProgramError> {
        ProgramDefinition::with_params(TRUST_KIND, name, self)
    }

    /// The parameters of a graph's definition.
    pub fn of(definition: &ProgramDefinition) -> Result<TrustParams, ProgramError> {
        definition.params_as(TRUST_KIND)
    }

    /// The root key.
    pub fn root(&self) -> Result<PublicKey, ProgramError> {
        PublicKey::decode_protobuf(&self.root)
            .map_err(|e| ProgramError::BadParams(format!("root key: {e}")))
    }
}

/// What a delegation grants besides trust itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Delegation {
    /// What the key is trusted for (empty: everything).
    pub scopes: Vec<String>,
    /// Unix µs from which it no longer counts (`None`: until revoked).
    pub expires_us: Option<u64>,
    /// Whether the key may delegate in turn.
    pub may_delegate: bool,
}

/// A trust graph open on this peer (cheap to clone).
#[derive(Clone)]
pub struct Trust {
    address: ProgramAddress,
    root: PublicKey,
    me: PublicKey,
    replica: Replica<Statement>,
    graph: SharedGraph,
    updates: watch::Sender<u64>,
    /// Bumped when a change may have narrowed trust ([`TrustGraph::only_grows_from`]), or
    /// turned "catching up" answers into final ones.
    narrowed: watch::Sender<u64>,
    /// Whether the graph was caught up at the last refresh.
    refreshed_caught_up: Arc<std::sync::atomic::AtomicBool>,
    /// Entries the statement store had taken from others when the cached graph was built:
    /// while it has taken more, the graph lags the store and is not caught up.
    refreshed_applied: Arc<std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for Trust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Trust")
            .field("address", &self.address)
            .field("root", &self.root.peer_id())
            .finish_non_exhaustive()
    }
}

/// Statement ids: `<issuer PeerId>/<16 random hex digits>`.
fn statement_id(issuer: &PublicKey) -> DocId {
    let mut nonce = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut nonce);
    let nonce: String = nonce.iter().map(|b| format!("{b:02x}")).collect();
    DocId::Str(format!("{}/{nonce}", issuer.peer_id()))
}

/// Whether `id` is a statement id of `writer`'s (the trust store's access rule).
pub(crate) fn is_own_statement(writer: &PublicKey, id: &DocId) -> bool {
    match id {
        DocId::Str(s) => s
            .split_once('/')
            .is_some_and(|(issuer, _)| issuer == writer.peer_id().to_string()),
        _ => false,
    }
}

impl Trust {
    /// Starts following `replica` (the graph's statement store, opened by the peer).
    pub(crate) fn start(
        address: ProgramAddress,
        root: PublicKey,
        me: PublicKey,
        replica: Replica<Statement>,
        graph: SharedGraph,
    ) -> Result<Trust, DocumentError> {
        let trust = Trust {
            address,
            root,
            me,
            graph,
            updates: watch::channel(0).0,
            narrowed: watch::channel(0).0,
            refreshed_caught_up: Arc::default(),
            refreshed_applied: Arc::default(),
            replica,
        };
        trust.refresh()?;
        let follower = trust.clone();
        let mut changes = trust.replica.changes();
        tokio::spawn(async move {
            // Verdicts change when statements arrive, and when this peer catches up (a "not
            // yet" becomes a "no"): either way dependents re-check. The task lives as long as
            // the statement store (which the peer keeps while it runs).
            let mut caught_up = follower.caught_up();
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            loop {
                tokio::select! {
                    change = changes.recv() => match change {
                        Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                        Err(_) => return,
                    },
                    _ = tick.tick() => {
                        // Stale: statements counted after the last refresh began.
                        if !follower.stale() && (caught_up || !follower.caught_up()) {
                            continue;
                        }
                    }
                }
                caught_up = follower.caught_up();
                if let Err(e) = follower.refresh() {
                    tracing::warn!("trust graph {}: {e}", follower.address);
                }
            }
        });
        Ok(trust)
    }

    /// The graph's address.
    pub fn address(&self) -> ProgramAddress {
        self.address
    }

    /// The root key.
    pub fn root(&self) -> &PublicKey {
        &self.root
    }

    /// The statement store.
    pub fn replica(&self) -> &Replica<Statement> {
        &self.replica
    }

    /// Signs a delegation to `subject` as this peer's key (which must be the root or
    /// delegated with `may_delegate` for it to count).
    pub fn delegate(&self, subject: &PublicKey, d: Delegation) -> Result<EntryHash, DocumentError> {
        self.say(Statement::Delegate {
            subject: subject.encode_protobuf(),
            scopes: d.scopes,
            expires_us: d.expires_us,
            may_delegate: d.may_delegate,
        })
    }

    /// Signs a revocation of `subject`, in force from now on: this peer's own delegations to
    /// it (the root's: every delegation to it).
    pub fn revoke(&self, subject: &PublicKey) -> Result<EntryHash, DocumentError> {
        self.say(Statement::Revoke {
            subject: subject.encode_protobuf(),
        })
    }

    fn say(&self, statement: Statement) -> Result<EntryHash, DocumentError> {
        let hash = self.replica.put(statement_id(&self.me), &statement)?;
        self.refresh()?;
        Ok(hash)
    }

    /// Whether `key` is trusted at Unix µs `at` (any scope).
    pub fn is_trusted(&self, key: &PublicKey, at: u64) -> Verdict {
        self.check(key, at, None)
    }

    /// Whether `key` is trusted at `at` for `scope`.
    pub fn check(&self, key: &PublicKey, at: u64, scope: Option<&str>) -> Verdict {
        self.graph().verdict(key, at, scope, self.caught_up())
    }

    /// The graph as this peer holds it now.
    pub fn graph(&self) -> Arc<TrustGraph> {
        self.graph.current()
    }

    /// Whether this peer holds the graph: it is the root, or a reconciliation with a
    /// replicator of the graph settled with nothing left to fetch here (the side that finds
    /// the sets equal says so: silence proves nothing) and the cached graph holds every
    /// statement stored. An exchange heard but not settled is not enough: the statements it
    /// found missing may still be on their way.
    pub fn caught_up(&self) -> bool {
        if self.me == self.root {
            return true;
        }
        let stats = self.replica.stats();
        if stats.applied != self.refreshed_applied.load(Ordering::Relaxed) {
            // Statements stored but not in the cached graph yet (its refresh is on its way).
            return false;
        }
        stats.reconcile_settled > 0
    }

    /// Waits until [`Trust::caught_up`], up to `timeout`.
    pub async fn wait_caught_up(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.caught_up() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }

    /// Bumped each time the graph changes.
    pub fn updates(&self) -> watch::Receiver<u64> {
        self.updates.subscribe()
    }

    /// Bumped each time a change may have narrowed trust — a revocation, a replaced
    /// delegation, a statement gone — or the graph caught up (a re-check while it was
    /// catching up kept what it could not judge yet); not when it only added delegations.
    /// Document stores re-check their writers then.
    pub fn narrowed(&self) -> watch::Receiver<u64> {
        self.narrowed.subscribe()
    }

    /// The access rule's question, answered from the cached graph (never waits on a store):
    /// any delegation counts, whatever its scopes.
    pub fn hook(&self) -> TrustHook {
        let this = self.clone();
        Arc::new(move |key, at| this.graph().verdict(key, at, None, this.caught_up()))
    }

    /// [`Trust::hook`] for one program: a delegation with scopes counts only if one of them
    /// is `scope` (stores and streams ask with their name; a delegation without scopes
    /// counts for all).
    pub fn hook_for(&self, scope: &str) -> TrustHook {
        let (this, scope) = (self.clone(), scope.to_owned());
        Arc::new(move |key, at| {
            this.graph()
                .verdict(key, at, Some(&scope), this.caught_up())
        })
    }

    /// Whether the statement store took entries from others since the cached graph was built.
    fn stale(&self) -> bool {
        self.replica.stats().applied != self.refreshed_applied.load(Ordering::Relaxed)
    }

    /// Rebuilds the cached graph from the store.
    fn refresh(&self) -> Result<(), DocumentError> {
        // Counted before the build: the graph holds at least these (an entry counted later
        // makes the graph stale until the next refresh, never the other way round).
        let applied = self.replica.stats().applied;
        let graph = self.replica.with_documents(|docs| build(self.root, docs))?;
        let grows = graph.only_grows_from(&self.graph());
        self.graph.set(graph);
        self.refreshed_applied.store(applied, Ordering::Relaxed);
        let caught_up = self.caught_up();
        let was = self.refreshed_caught_up.swap(caught_up, Ordering::Relaxed);
        let grows = grows && was == caught_up;
        self.updates.send_modify(|n| *n += 1);
        if !grows {
            self.narrowed.send_modify(|n| *n += 1);
        }
        Ok(())
    }
}

/// The graph as last built from the store, shared by the [`Trust`] handle and the statement
/// store's access rule (which exists before the handle: the store opens first).
#[derive(Clone)]
pub(crate) struct SharedGraph(Arc<RwLock<Arc<TrustGraph>>>);

impl SharedGraph {
    /// An empty graph rooted at `root`.
    pub(crate) fn new(root: PublicKey) -> SharedGraph {
        SharedGraph(Arc::new(RwLock::new(Arc::new(TrustGraph::new(root)))))
    }

    fn current(&self) -> Arc<TrustGraph> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, graph: TrustGraph) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(graph);
    }

    /// The statement store's access rule: a key writes only under its own name, and only the
    /// root or a key the graph lets delegate at the statement's clock writes at all. A
    /// statement refused because its issuer's own delegation has not arrived yet comes again
    /// with the next reconciliation.
    pub(crate) fn statement_rule(&self) -> AccessHook {
        let this = self.clone();
        Arc::new(move |writer, id, _, at| {
            is_own_statement(writer, id) && this.current().may_delegate(writer, at)
        })
    }
}

/// The graph of every statement stored (at most [`MAX_STATEMENTS`], oldest first).
fn build(root: PublicKey, docs: &mut Documents<Statement>) -> Result<TrustGraph, DocumentError> {
    let mut graph = TrustGraph::new(root);
    let items = docs.items()?;
    if items.len() > MAX_STATEMENTS {
        tracing::warn!(
            held = items.len(),
            "trust graph: only the oldest {MAX_STATEMENTS} statements count"
        );
    }
    for item in items.iter().take(MAX_STATEMENTS) {
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&item[starling_net::entry::CLOCK_KEY_LEN..]);
        let Some(entry) = docs.entry(&EntryHash(hash))? else {
            continue;
        };
        let (kt, raw) = entry.signer_key();
        let Ok(issuer) = PublicKey::from_raw_bytes(kt, raw) else {
            continue;
        };
        let Ok(payload) = entry.payload() else {
            continue;
        };
        let Ok(statement) = postcard::from_bytes::<Statement>(&payload) else {
            continue;
        };
        let clock = entry.clock();
        graph.insert(issuer, (clock.wall_us, clock.logical, hash), statement);
    }
    Ok(graph)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::documents::Operation;
    use starling_net::identity::{KeyType, Keypair};

    /// Only the root and keys allowed to delegate (at the statement's clock) write
    /// statements, each under its own name.
    #[test]
    fn only_the_root_and_delegators_write_statements() {
        let key = || *Keypair::generate(KeyType::Ed25519).public();
        let (root, delegator, plain, stranger) = (key(), key(), key(), key());
        let mut graph = TrustGraph::new(root);
        for (n, (subject, may_delegate)) in [(delegator, true), (plain, false)].iter().enumerate() {
            let statement = Statement::Delegate {
                subject: subject.encode_protobuf(),
                scopes: Vec::new(),
                expires_us: None,
                may_delegate: *may_delegate,
            };
            graph.insert(root, (100, 0, [n as u8; 32]), statement);
        }
        let shared = SharedGraph::new(root);
        shared.set(graph);
        let rule = shared.statement_rule();
        let writes =
            |writer: &PublicKey, at| rule(writer, &statement_id(writer), Operation::Put, at);
        assert!(writes(&root, 1));
        assert!(writes(&delegator, 200));
        assert!(!writes(&delegator, 50), "before its delegation");
        assert!(!writes(&plain, 200), "trusted, but not to delegate");
        assert!(!writes(&stranger, 200), "a free identity");
        assert!(
            !rule(&delegator, &statement_id(&root), Operation::Put, 200),
            "under another's name"
        );
    }
}
