//! Committing changes: signing them (one signature per batch) and staging each entry with
//! its document row and index rows into one store batch.

use std::collections::HashMap;

use bytes::Bytes;
use starling_net::entry::{Clock, Entry, EntryFields, EntryHash, MAX_BATCH, MAX_META};
use starling_store::{NewEntry, Table};

use super::{
    Change, Current, DocId, DocumentChange, DocumentError, Documents, OP_PUT, Values,
    index_row_value,
};
use crate::documents::codec::Codec;
use crate::documents::keys::IndexValue;

impl<T, C: Codec<T>> Documents<T, C> {
    /// Signs the changes (one signature per [`MAX_BATCH`]) and commits them in one store
    /// batch; a later change of one id follows an earlier one.
    pub(super) fn write(
        &mut self,
        changes: Vec<Change>,
        now_us: u64,
    ) -> Result<Vec<Entry>, DocumentError> {
        // Each id's version before this write, and as this write leaves it.
        let mut before: HashMap<DocId, Option<Current>> = HashMap::new();
        let mut after: HashMap<DocId, (Current, Option<Values>)> = HashMap::new();
        let mut sealed = Vec::with_capacity(changes.len());
        for Change {
            id,
            op,
            payload,
            raw_len,
            flags,
            values,
        } in &changes
        {
            let mut meta = vec![*op];
            id.encode_key(&mut meta);
            if meta.len() > MAX_META {
                return Err(DocumentError::IdTooLong(meta.len() - 1));
            }
            let current = match after.get(id) {
                Some((c, _)) => Some(*c),
                None => {
                    let c = self.current(id)?;
                    before.insert(id.clone(), c);
                    c
                }
            };
            if *op == OP_PUT && self.options.immutable && current.is_some_and(|c| c.live) {
                return Err(DocumentError::Immutable(id.clone()));
            }
            let next: Vec<EntryHash> = current.map(|c| c.head).into_iter().collect();
            let clock: Clock = self.clock.tick(now_us);
            let seq = self.next_seq;
            self.next_seq = seq.saturating_add(1);
            let unsigned = self.signer.seal(&EntryFields {
                logical: clock.logical,
                group: id.group(),
                meta: &meta,
                next: &next,
                raw_len: *raw_len,
                flags: *flags,
                ..EntryFields::new(self.log_id(), seq, clock.wall_us, payload.clone())
            })?;
            let version = Current {
                head: unsigned.hash(),
                clock: clock.to_key(),
                live: *op == OP_PUT,
            };
            after.insert(id.clone(), (version, values.clone()));
            sealed.push(unsigned);
        }
        let mut entries = Vec::with_capacity(sealed.len());
        let mut sealed = sealed.into_iter().peekable();
        while sealed.peek().is_some() {
            let chunk: Vec<_> = sealed.by_ref().take(MAX_BATCH).collect();
            entries.extend(self.signer.sign(chunk)?);
        }
        // Old index rows: of the version before this write (each id's first change), or of
        // the version an earlier change of this write made.
        let mut batch = self.store.batch();
        let mut live: HashMap<DocId, Option<Values>> = HashMap::new();
        let mut report = DocumentChange::default();
        for (Change { id, op, values, .. }, entry) in changes.into_iter().zip(&entries) {
            let old_values = match live.remove(&id) {
                Some(v) => v,
                None => match before.get(&id).copied().flatten() {
                    Some(c) if c.live => Some(self.indexed_values(&c.head)?),
                    _ => None,
                },
            };
            self.stage(
                &mut batch,
                &id,
                entry,
                op,
                old_values.as_deref(),
                values.as_deref(),
                true,
            );
            live.insert(id.clone(), values);
            report.note(id, entry.hash(), op);
        }
        batch.commit()?;
        self.generation += 1;
        let was: i64 = before
            .values()
            .map(|c| i64::from(c.is_some_and(|c| c.live)))
            .sum();
        let is: i64 = after.values().map(|(c, _)| i64::from(c.live)).sum();
        self.count_changed(is - was);
        // (No listener is not an error.)
        let _ = self.changes.send(report);
        Ok(entries)
    }

    /// Adds `entry` to `batch`, and when it `becomes_current` its document row and index rows
    /// in place of the old version's (`old_values`).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn stage(
        &self,
        batch: &mut starling_store::WriteBatch,
        id: &DocId,
        entry: &Entry,
        op: u8,
        old_values: Option<&[(String, IndexValue)]>,
        values: Option<&[(String, IndexValue)]>,
        becomes_current: bool,
    ) {
        let next_raw: Vec<[u8; 32]> = entry.next().map(|h| h.0).collect();
        let clock = entry.clock().to_key();
        batch.entries(
            &self.log_id().0,
            &[NewEntry {
                hash: entry.hash().0,
                header: entry.header(),
                payload: entry.stored_payload().clone(),
                clock,
                next: &next_raw,
                // The document row holds the document's head, not the log's heads.
                is_head: false,
            }],
            &[],
        );
        if self.options.replicas.is_some() {
            batch.put(Table::Points, &self.point_key(entry), Bytes::new());
        }
        if !becomes_current {
            return;
        }
        if let Some(old) = old_values {
            for k in self.index_keys(id, old) {
                batch.delete(Table::Index, &k);
            }
        }
        if let Some(new) = values {
            // The row names the version it indexes: a scan reads the document without first
            // reading its document row.
            let head = index_row_value(entry);
            for k in self.index_keys(id, new) {
                batch.put(Table::Index, &k, head.clone());
            }
        }
        let row = Current {
            head: entry.hash(),
            clock,
            live: op == OP_PUT,
        };
        batch.put(Table::Documents, &self.doc_key(id), row.encode());
    }
}
