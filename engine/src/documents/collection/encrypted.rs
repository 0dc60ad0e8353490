//! Encrypted documents (`put_encrypted`): sealing for receivers, reading what this key opens,
//! counting what it cannot; and re-checking stored entries when the access rule's answer
//! changes (a trust graph learnt of a revocation).

use starling_net::crypto::Receivers;
use starling_net::entry::{Entry, EntryError, EntryHash, unix_time_us};
use starling_net::identity::PublicKey;
use starling_store::Table;

use super::{Access, Current, DocId, DocumentError, Documents, OP_DELETE, Operation, Values};
use crate::documents::codec::Codec;

impl<T, C: Codec<T>> Documents<T, C> {
    /// Puts `doc` under `id` encrypted to `receivers` and this store's own key: only they
    /// can read it or index it. Everyone else stores, replicates and serves the entry; what
    /// they see is its id, group, clock, links, writer, size and the receivers' keys.
    pub fn put_encrypted(
        &mut self,
        id: impl Into<DocId>,
        doc: &T,
        receivers: &[PublicKey],
    ) -> Result<EntryHash, DocumentError> {
        let to = self.receivers(receivers)?;
        let entries =
            self.put_entries(std::iter::once((id.into(), doc)), unix_time_us(), Some(&to))?;
        Ok(entries[0].hash())
    }
    /// This store's key and `others` as one receiver set.
    pub(crate) fn receivers(&self, others: &[PublicKey]) -> Result<Receivers, DocumentError> {
        Receivers::new(self.signer.keypair().public(), others.iter().copied())
            .map_err(DocumentError::Crypto)
    }
    /// The document in a put entry, or `None` when it is encrypted and does not open with
    /// this key, or opens to bytes the codec does not read: peers that can and peers that
    /// cannot read it must keep the same entries, so a signed entry is never refused for it.
    pub(super) fn read(&self, entry: &Entry) -> Result<Option<T>, DocumentError> {
        if !entry.is_encrypted() {
            return Ok(Some(self.codec.decode(&entry.payload()?)?));
        }
        match entry.open_payload(&self.opener) {
            Ok(plain) => Ok(self.codec.decode(&plain).ok()),
            Err(EntryError::Crypto(_)) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }
    /// [`Documents::read`] of a stored version.
    pub(super) fn read_version(&self, head: &EntryHash) -> Result<Option<T>, DocumentError> {
        self.read(&self.stored(head)?)
    }
    /// The index values of a stored version (none when it is not readable here).
    pub(super) fn indexed_values(&self, head: &EntryHash) -> Result<Values, DocumentError> {
        Ok(self
            .read_version(head)?
            .map(|doc| self.index.values(&doc))
            .unwrap_or_default())
    }
    /// Live documents this key cannot read (encrypted to others). Reads every document row
    /// and the header of each encrypted one: no decryption.
    pub fn unreadable(&self) -> Result<u64, DocumentError> {
        let mut n = 0;
        for row in self.doc_rows() {
            let (_, v) = row?;
            let c = Current::decode(&v)?;
            if !c.live {
                continue;
            }
            let entry = self.stored(&c.head)?;
            if entry.is_encrypted() && self.read(&entry)?.is_none() {
                n += 1;
            }
        }
        Ok(n)
    }
    /// Checks every stored entry against the access rule again (a trust graph learnt of a
    /// revocation): entries it now refuses are removed and the document and index rows
    /// rebuilt from what remains. Returns how many were removed.
    pub fn recheck_access(&mut self) -> Result<usize, DocumentError> {
        let mut refused = Vec::new();
        for row in self.store.clock_rows(&self.log_id().0, None, false) {
            let row = row?;
            let entry = self.stored(&EntryHash(row.hash))?;
            let (kt, raw) = entry.signer_key();
            let writer = PublicKey::from_raw_bytes(kt, raw)
                .map_err(|e| DocumentError::Corrupt(format!("stored writer key: {e}")))?;
            let Some((&op, id_key)) = entry.meta().split_first() else {
                continue;
            };
            let Ok((id, _)) = DocId::decode_key(id_key) else {
                continue;
            };
            let op = if op == OP_DELETE {
                Operation::Delete
            } else {
                Operation::Put
            };
            let at = entry.clock().wall_us;
            if self.options.access.allows(&writer, &id, op, at) == Access::Denied {
                refused.push(entry);
            }
        }
        if refused.is_empty() {
            return Ok(0);
        }
        let mut batch = self.store.batch();
        for e in &refused {
            let next: Vec<[u8; 32]> = e.next().map(|h| h.0).collect();
            batch.remove_entry(&self.log_id().0, &e.clock().to_key(), &e.hash().0, &next)?;
            if self.options.replicas.is_some() {
                batch.delete(Table::Points, &self.point_key(e));
            }
        }
        batch.commit()?;
        self.rebuild_index()?;
        self.generation += 1;
        Ok(refused.len())
    }
}
