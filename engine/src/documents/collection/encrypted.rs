//! Encrypted documents (`put_encrypted`): sealing for receivers, reading what this key opens,
//! counting what it cannot; and re-checking stored entries when the access rule's answer
//! changes (a trust graph learnt of a revocation).

use starling_net::crypto::{Envelope, Receivers};
use starling_net::entry::{Entry, EntryHash, unix_time_us};
use starling_net::identity::PublicKey;
use starling_store::Table;

use super::{Access, Current, DocId, DocumentError, Documents, OP_DELETE, Operation, Values};
use crate::documents::codec::Codec;
use crate::documents::index::IndexVisibility;
use crate::documents::keys::decode_published;

impl<T, C: Codec<T>> Documents<T, C> {
    /// Puts `doc` under `id` encrypted to `receivers` and this store's own key: only they
    /// can read it. Everyone else stores, replicates and serves the entry; what they see is
    /// its id, group, clock, links, writer, size, the receivers' keys and its index values,
    /// published so that they index it and answer queries on it
    /// ([`Documents::put_encrypted_with`] seals those too).
    pub fn put_encrypted(
        &mut self,
        id: impl Into<DocId>,
        doc: &T,
        receivers: &[PublicKey],
    ) -> Result<EntryHash, DocumentError> {
        self.put_encrypted_with(id, doc, receivers, IndexVisibility::Public)
    }

    /// [`Documents::put_encrypted`] with the index values public or sealed.
    pub fn put_encrypted_with(
        &mut self,
        id: impl Into<DocId>,
        doc: &T,
        receivers: &[PublicKey],
        index: IndexVisibility,
    ) -> Result<EntryHash, DocumentError> {
        let to = self.receivers(receivers)?;
        let entries = self.put_entries(
            std::iter::once((id.into(), doc)),
            unix_time_us(),
            Some((&to, index)),
        )?;
        Ok(entries[0].hash())
    }
    /// This store's key and `others` as one receiver set.
    pub(crate) fn receivers(&self, others: &[PublicKey]) -> Result<Receivers, DocumentError> {
        Receivers::new(self.signer.keypair().public(), others.iter().copied())
            .map_err(DocumentError::Crypto)
    }
    /// The document in a put entry, or `None` when it is encrypted and does not open with
    /// this key, or opens to bytes that are not the document the entry signs (another
    /// length, or what the codec does not read): peers that can and peers that cannot read
    /// it must keep the same entries, so a signed entry is never refused for its content.
    pub(super) fn read(&self, entry: &Entry) -> Result<Option<T>, DocumentError> {
        if !entry.is_encrypted() {
            return Ok(Some(self.codec.decode(&entry.payload()?)?));
        }
        Ok(entry
            .open_payload(&self.opener)
            .ok()
            .and_then(|plain| self.codec.decode(&plain).ok()))
    }
    /// The index values of a stored version ([`Documents::entry_values`]).
    pub(super) fn indexed_values(&self, head: &EntryHash) -> Result<Values, DocumentError> {
        self.entry_values(&self.stored(head)?)
    }
    /// The index values of a put entry: the document's when this key reads it, else those
    /// its writer published with it.
    pub(super) fn entry_values(&self, entry: &Entry) -> Result<Values, DocumentError> {
        Ok(match self.read(entry)? {
            Some(doc) => self.index.values(&doc),
            None => self.published_values(entry),
        })
    }
    /// The index values published in an encrypted entry's envelope, as this store indexes
    /// them: none when they were sealed, or do not parse (the entry is kept all the same,
    /// as with an envelope that does not open).
    pub(super) fn published_values(&self, entry: &Entry) -> Values {
        let published = Envelope::parse(entry.stored_payload())
            .ok()
            .map(|e| e.public())
            .and_then(|bytes| decode_published(bytes).ok());
        published
            .map(|pairs| self.index.published(pairs))
            .unwrap_or_default()
    }
    /// Whether an encrypted entry lists `key` among its receivers (no decryption).
    pub(super) fn encrypted_to(entry: &Entry, key: &PublicKey) -> bool {
        Envelope::parse(entry.stored_payload()).is_ok_and(|e| e.lists(key))
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
