//! Checking entries: an inclusion proof per entry, one signature per batch per peer.

use std::collections::{HashMap, VecDeque};

use super::format::batch_message;
use super::{Entry, EntryError, merkle};
use crate::identity::{IdentityError, KeyCache, PublicKey, Signature, VerifyItem, verify_batch};

/// Batch roots remembered by default: at 64 entries a batch that is ~260k entries, and a lone
/// entry's root is its own hash, so a relay's queue of lone frames fits many times over.
pub const DEFAULT_ROOT_CACHE: usize = 4096;

/// What a verified root was signed with: a batch mate must carry the same size, signer and
/// signature bytes, so that every entry stays verifiable on its own by a peer without the cache.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Signed {
    size: u16,
    key: [u8; 33],
    signature: [u8; 64],
}

impl Signed {
    fn of(entry: &Entry) -> Signed {
        let (_, raw) = entry.signer_key();
        let mut key = [0u8; 33];
        key[..raw.len()].copy_from_slice(raw);
        let mut signature = [0u8; 64];
        signature.copy_from_slice(entry.signature_bytes());
        Signed {
            size: entry.batch_position().1,
            key,
            signature,
        }
    }
}

/// Verified batch roots, bounded, oldest forgotten first. Only roots whose signature verified
/// are inserted, so a peer can at worst make this node verify again, never accept a forgery.
#[derive(Debug)]
pub struct RootCache {
    map: HashMap<merkle::Node, Signed>,
    order: VecDeque<merkle::Node>,
    capacity: usize,
}

impl std::fmt::Debug for Signed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signed(size {})", self.size)
    }
}

impl RootCache {
    /// A cache of at most `capacity` roots (≈ 140 bytes each).
    pub fn new(capacity: usize) -> RootCache {
        RootCache {
            // Grown on demand: a node of a swarm that sees one stream holds a few roots, and a
            // preallocated 4,096-root table cost ~1 MiB per peer.
            map: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    fn contains(&self, root: &merkle::Node, signed: &Signed) -> bool {
        self.map.get(root) == Some(signed)
    }

    fn insert(&mut self, root: merkle::Node, signed: Signed) {
        if self.map.insert(root, signed).is_none() {
            self.order.push_back(root);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.map.remove(&old);
                }
            }
        }
    }

    /// Roots held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl Default for RootCache {
    fn default() -> Self {
        RootCache::new(DEFAULT_ROOT_CACHE)
    }
}

/// Checks entries' signatures: each entry's proof leads to its batch root, and each root's
/// signature is checked once (cached), many roots at once in one Ed25519 batch equation.
#[derive(Debug, Default)]
pub struct EntryVerifier {
    keys: KeyCache,
    roots: RootCache,
}

impl EntryVerifier {
    /// A verifier remembering at most `roots` verified batch roots.
    pub fn new(roots: usize) -> EntryVerifier {
        EntryVerifier {
            keys: KeyCache::default(),
            roots: RootCache::new(roots),
        }
    }

    /// The decoded-key cache (shared with callers that need signer keys).
    pub fn keys(&mut self) -> &mut KeyCache {
        &mut self.keys
    }

    /// Roots remembered.
    pub fn cached_roots(&self) -> usize {
        self.roots.len()
    }

    /// Verifies one entry; returns its signer.
    pub fn verify(&mut self, entry: &Entry) -> Result<PublicKey, EntryError> {
        let mut out = self.verify_many([entry]);
        out.pop().unwrap_or(Err(EntryError::BadBatchProof))
    }

    /// Verifies many entries (one result each, in order): proofs first, then one signature
    /// check per root not yet cached, all of them in one batch equation (one by one only when
    /// the batch fails, so bad input costs linear work).
    pub fn verify_many<'a>(
        &mut self,
        entries: impl IntoIterator<Item = &'a Entry>,
    ) -> Vec<Result<PublicKey, EntryError>> {
        let entries = entries.into_iter();
        let mut results: Vec<Result<PublicKey, EntryError>> =
            Vec::with_capacity(entries.size_hint().0);
        // Roots to check: (root, signed, key, signature), and which entries wait on each.
        let mut pending: Vec<(merkle::Node, Signed, PublicKey, Signature)> = Vec::new();
        let mut waiting: Vec<Option<usize>> = Vec::with_capacity(results.capacity());
        for e in entries {
            let checked = (|| {
                let key = e.signer(&mut self.keys)?;
                let root = e.batch_root()?;
                Ok::<_, EntryError>((key, root))
            })();
            let (key, root) = match checked {
                Ok(x) => x,
                Err(err) => {
                    results.push(Err(err));
                    waiting.push(None);
                    continue;
                }
            };
            let signed = Signed::of(e);
            if self.roots.contains(&root, &signed) {
                results.push(Ok(key));
                waiting.push(None);
                continue;
            }
            let slot = match pending
                .iter()
                .position(|(r, s, ..)| *r == root && *s == signed)
            {
                Some(i) => i,
                None => match e.signature() {
                    Ok(sig) => {
                        pending.push((root, signed, key, sig));
                        pending.len() - 1
                    }
                    Err(err) => {
                        results.push(Err(err));
                        waiting.push(None);
                        continue;
                    }
                },
            };
            results.push(Ok(key));
            waiting.push(Some(slot));
        }
        if pending.is_empty() {
            return results;
        }
        let messages: Vec<[u8; 51]> = pending
            .iter()
            .map(|(root, signed, ..)| batch_message(signed.size, root))
            .collect();
        let items: Vec<VerifyItem<'_>> = pending
            .iter()
            .zip(&messages)
            .map(|((_, _, key, signature), message)| VerifyItem {
                key,
                message,
                signature,
            })
            .collect();
        let good: Vec<bool> = match verify_batch(&items) {
            Ok(()) => vec![true; items.len()],
            Err(_) => items
                .iter()
                .map(|i| i.key.verify(i.message, i.signature).is_ok())
                .collect(),
        };
        drop(items);
        for (slot, (root, signed, ..)) in pending.iter().enumerate() {
            if good[slot] {
                self.roots.insert(*root, *signed);
            }
        }
        for (result, slot) in results.iter_mut().zip(waiting) {
            if let Some(slot) = slot
                && !good[slot]
            {
                *result = Err(EntryError::Signature(IdentityError::BadSignature));
            }
        }
        results
    }
}

impl Entry {
    /// Verifies this entry alone (a fresh verifier; use an [`EntryVerifier`] to share the cost
    /// of a batch); returns its signer.
    pub fn verify(&self) -> Result<PublicKey, EntryError> {
        EntryVerifier::new(1).verify(self)
    }
}
