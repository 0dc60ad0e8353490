//! Taking entries other peers made (replication, remote answers): verified before anything
//! changes, staged into one store batch, the current version chosen the same way on every
//! peer.

use std::collections::HashMap;

use starling_net::crypto::CryptoError;
use starling_net::entry::{Entry, EntryHash, unix_time_us};
use starling_net::identity::PublicKey;

use super::{
    Access, Applied, Current, DocId, DocumentChange, DocumentError, Documents, OP_DELETE, OP_PUT,
    Operation, Values,
};
use crate::documents::codec::Codec;

/// Replicated entries being staged into one store batch.
struct Applying {
    batch: starling_store::WriteBatch,
    /// Documents this batch changed: their version now and its indexed values.
    latest: HashMap<DocId, (Current, Option<Values>)>,
    /// Entries staged (a second copy in one message is a duplicate).
    staged: std::collections::HashSet<EntryHash>,
    live_delta: i64,
    report: DocumentChange,
}

impl<T, C: Codec<T>> Documents<T, C> {
    /// Takes an entry another writer made (replication): verified — log, signature, meta,
    /// group, clock drift, payload — before anything changes. Every version is kept; the
    /// current one is the greatest by (clock, writer, hash), so peers that saw the same entries
    /// in any order agree on every document and index row.
    pub fn apply(&mut self, entry: Entry) -> Result<Applied, DocumentError> {
        self.apply_at(entry, unix_time_us())
    }

    /// [`Documents::apply`] at Unix time `now_us`.
    pub fn apply_at(&mut self, entry: Entry, now_us: u64) -> Result<Applied, DocumentError> {
        let mut out = self.apply_many_at(vec![entry], now_us);
        out.pop().unwrap_or(Err(DocumentError::WrongLog))
    }

    /// [`Documents::apply`] for many entries (one result each, in order): signatures checked
    /// together (one check per batch root), then each entry applied as its own change.
    pub fn apply_many_at(
        &mut self,
        entries: Vec<Entry>,
        now_us: u64,
    ) -> Vec<Result<Applied, DocumentError>> {
        let log = self.log_id();
        let ours: Vec<&Entry> = entries.iter().filter(|e| e.log_id() == log).collect();
        let mut signers = self.verifier.verify_many(ours).into_iter();
        let mut out = Vec::with_capacity(entries.len());
        // Every entry that passes is staged into one store batch (all or none stored).
        let mut applying = Applying {
            batch: self.store.batch(),
            latest: HashMap::new(),
            staged: std::collections::HashSet::new(),
            live_delta: 0,
            report: DocumentChange::default(),
        };
        for entry in entries {
            if entry.log_id() != log {
                out.push(Err(DocumentError::WrongLog));
                continue;
            }
            let applied = match signers.next() {
                Some(Ok(writer)) => self.apply_into(&mut applying, entry, &writer, now_us),
                Some(Err(e)) => Err(e.into()),
                None => Err(DocumentError::WrongLog),
            };
            out.push(applied);
        }
        if applying.staged.is_empty() {
            return out;
        }
        if let Err(e) = applying.batch.commit() {
            let why = e.to_string();
            for r in &mut out {
                if matches!(r, Ok(Applied::Current | Applied::Older)) {
                    *r = Err(DocumentError::BatchFailed(why.clone()));
                }
            }
            return out;
        }
        self.generation += 1;
        self.count_changed(applying.live_delta);
        if !(applying.report.added.is_empty() && applying.report.removed.is_empty()) {
            let _ = self.changes.send(applying.report);
        }
        out
    }

    /// Checks an entry whose signature `writer` made and stages it into `applying`.
    fn apply_into(
        &mut self,
        applying: &mut Applying,
        entry: Entry,
        writer: &PublicKey,
        now_us: u64,
    ) -> Result<Applied, DocumentError> {
        let (&op, id_key) = entry.meta().split_first().ok_or(DocumentError::BadMeta)?;
        let (id, rest) = DocId::decode_key(id_key).map_err(|_| DocumentError::BadMeta)?;
        let operation = match op {
            OP_PUT => Operation::Put,
            OP_DELETE => Operation::Delete,
            _ => return Err(DocumentError::BadMeta),
        };
        if !rest.is_empty() {
            return Err(DocumentError::BadMeta);
        }
        match self
            .options
            .access
            .allows(writer, &id, operation, entry.clock().wall_us)
        {
            Access::Allowed => {}
            Access::Denied => return Err(DocumentError::Denied { id, op: operation }),
            Access::CatchingUp => return Err(DocumentError::TrustCatchingUp),
        }
        if entry.group() != id.group() {
            return Err(DocumentError::WrongGroup);
        }
        self.clock.check(entry.clock(), now_us)?;
        let values = match op {
            // Encrypted and not readable here: indexed by the values it publishes, if any.
            OP_PUT => Some(self.entry_values(&entry)?),
            _ => None,
        };
        let hash = entry.hash();
        if applying.staged.contains(&hash) || self.store.contains(&hash.0)? {
            return Ok(Applied::Duplicate);
        }
        self.clock.observe(entry.clock(), now_us)?;
        // The current version: as this batch leaves it, else as stored.
        let (current, current_values) = match applying.latest.get(&id) {
            Some((c, v)) => (Some(*c), Some(v.clone())),
            None => (self.current(&id)?, None),
        };
        let clock = entry.clock().to_key();
        let newer = current.is_none_or(|c| (clock, hash) > (c.clock, c.head));
        let old_values = match current {
            Some(c) if c.live && newer => match current_values {
                Some(v) => v,
                None => Some(self.indexed_values(&c.head)?),
            },
            _ => None,
        };
        self.stage(
            &mut applying.batch,
            &id,
            &entry,
            op,
            old_values.as_deref(),
            values.as_deref(),
            newer,
        );
        applying.staged.insert(hash);
        if !newer {
            return Ok(Applied::Older);
        }
        let was = i64::from(current.is_some_and(|c| c.live));
        applying.live_delta += i64::from(op == OP_PUT) - was;
        let version = Current {
            head: hash,
            clock,
            live: op == OP_PUT,
        };
        applying.report.note(id.clone(), hash, op);
        applying.latest.insert(id, (version, values));
        Ok(Applied::Current)
    }

    /// Checks an entry another peer says is a document's current version (a remote answer):
    /// this program's, signed, allowed by the access rule, a put; the document it holds.
    pub(crate) fn check_answer(&mut self, entry: &Entry) -> Result<(DocId, T), DocumentError> {
        if entry.log_id() != self.log_id() {
            return Err(DocumentError::WrongLog);
        }
        let writer = self.verifier.verify(entry)?;
        let (&op, id_key) = entry.meta().split_first().ok_or(DocumentError::BadMeta)?;
        let (id, rest) = DocId::decode_key(id_key).map_err(|_| DocumentError::BadMeta)?;
        if op != OP_PUT || !rest.is_empty() || entry.group() != id.group() {
            return Err(DocumentError::BadMeta);
        }
        if self
            .options
            .access
            .allows(&writer, &id, Operation::Put, entry.clock().wall_us)
            != Access::Allowed
        {
            return Err(DocumentError::Denied {
                id,
                op: Operation::Put,
            });
        }
        let doc = self.read(entry)?.ok_or_else(|| DocumentError::Unreadable {
            hash: entry.hash(),
            why: CryptoError::NotAReceiver,
        })?;
        Ok((id, doc))
    }
}
