//! What a sharded store's replicator holds, by ring point: a row per entry (program ‖ point ‖
//! hash, written in the entry's own batch), so the entries of a span of the ring are one range
//! scan — reconciliation per span, digests for a newcomer's readiness, confirmations and
//! pruning — and nothing per entry lives only in memory.
//!
//! Reconciliation items for a span are `point ‖ 36 zero bytes ‖ hash` ([`point_item`]): the
//! protocol's 76-byte items ordered by ring point, still ending in the entry hash, so
//! [`crate::reconcile`] serves both item kinds unchanged.

use starling_net::entry::{CLOCK_KEY_LEN, Entry, EntryHash};
use starling_store::Table;

use super::codec::{Codec, DocId};
use super::collection::{Candidate, DocumentError, Documents, Reader};
use super::query::Query;
use crate::reconcile::{self, ITEM_LEN, Item};
use crate::shard::{Point, Span, point_of};

/// The reconciliation item of an entry at `point`.
pub fn point_item(point: Point, hash: &EntryHash) -> Item {
    let mut item = [0u8; ITEM_LEN];
    item[..8].copy_from_slice(&point.to_be_bytes());
    item[CLOCK_KEY_LEN..].copy_from_slice(&hash.0);
    item
}

/// The entry hash an item (of either kind) ends with.
pub fn item_hash(item: &Item) -> EntryHash {
    let mut h = [0u8; 32];
    h.copy_from_slice(&item[CLOCK_KEY_LEN..]);
    EntryHash(h)
}

/// The ring point of the item that starts with `key` (a reconciliation bound: a prefix).
pub fn point_of_key(key: &[u8]) -> Point {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// A span's digest: the count and fingerprint (salt 0) of the entries held in it.
pub fn digest(items: &[Item]) -> (u64, [u8; reconcile::FINGERPRINT_LEN]) {
    (items.len() as u64, reconcile::fingerprint(0, items))
}

impl<T, C: Codec<T>> Documents<T, C> {
    /// The key of an entry's point row.
    pub(super) fn point_key(&self, entry: &Entry) -> Vec<u8> {
        self.point_row(point_of(&entry.group()), &entry.hash())
    }

    fn point_row(&self, point: Point, hash: &EntryHash) -> Vec<u8> {
        let mut k = Vec::with_capacity(32 + 8 + 32);
        k.extend_from_slice(&self.program().0);
        k.extend_from_slice(&point.to_be_bytes());
        k.extend_from_slice(&hash.0);
        k
    }

    /// The point rows in `span`, as reconciliation items in ring order, read as they are
    /// needed.
    fn held_rows(&self, span: Span) -> impl Iterator<Item = Result<Item, DocumentError>> + '_ {
        let program = self.program().0;
        let from = [&program[..], &span.start.to_be_bytes()].concat();
        let to = match span.end {
            Some(e) => [&program[..], &e.to_be_bytes()].concat(),
            None => {
                let mut t = program.to_vec();
                t.extend_from_slice(&[0xFF; 9]);
                t
            }
        };
        let rows = self
            .store()
            .rows_between(Table::Points, &from, Some(&to), false);
        rows.map(move |row| {
            let (k, _) = row?;
            let rest = &k[program.len()..];
            if rest.len() != 40 {
                return Err(DocumentError::Corrupt(
                    "point row of the wrong length".into(),
                ));
            }
            let mut item = [0u8; ITEM_LEN];
            item[..8].copy_from_slice(&rest[..8]);
            item[CLOCK_KEY_LEN..].copy_from_slice(&rest[8..]);
            Ok(item)
        })
    }

    /// The entries held in `span`, as reconciliation items in ring order — at most `limit`
    /// (an error past it: a caller splits the span instead of holding an unbounded list).
    pub fn held_items(&self, span: Span, limit: usize) -> Result<Vec<Item>, DocumentError> {
        let mut out = Vec::new();
        for item in self.held_rows(span) {
            if out.len() >= limit {
                return Err(DocumentError::TooManyHeld { limit });
            }
            out.push(item?);
        }
        Ok(out)
    }

    /// The first `n` entries held in `span`.
    pub fn held_first(&self, span: Span, n: usize) -> Result<Vec<Item>, DocumentError> {
        self.held_rows(span).take(n).collect()
    }

    /// The digest of what is held in `span` ([`digest`]), summed as the rows stream by: any
    /// number of entries in bounded memory.
    pub fn held_digest(
        &self,
        span: Span,
    ) -> Result<(u64, [u8; reconcile::FINGERPRINT_LEN]), DocumentError> {
        let mut sum = reconcile::FingerprintSum::default();
        for item in self.held_rows(span) {
            sum.add(&item?);
        }
        Ok((sum.count(), sum.finish(0)))
    }

    /// `span` cut into parts of at most about `max` held entries each (cut between points, so
    /// a document's versions stay together): what one reconciliation exchange reads.
    pub fn held_chunks(&self, span: Span, max: usize) -> Result<Vec<Span>, DocumentError> {
        let max = max.max(1);
        let mut out = Vec::new();
        let mut start = span.start;
        let mut in_part = 0usize;
        let mut last: Option<Point> = None;
        for item in self.held_rows(span) {
            let p = point_of_key(&item?);
            if in_part >= max && last.is_some_and(|l| p > l) {
                out.push(Span {
                    start,
                    end: Some(p),
                });
                start = p;
                in_part = 0;
            }
            in_part += 1;
            last = Some(p);
        }
        out.push(Span {
            start,
            end: span.end,
        });
        Ok(out)
    }

    /// Which of `hashes` are stored here.
    pub fn holds(&self, hashes: &[EntryHash]) -> Result<Vec<bool>, DocumentError> {
        hashes
            .iter()
            .map(|h| Ok(self.store().contains(&h.0)?))
            .collect()
    }

    /// Deletes stored entries of this program (held elsewhere, as their holders confirmed)
    /// with every row derived from them, in one batch; a document whose current version goes
    /// is no longer held here (not deleted: no change is reported). Returns how many went.
    pub fn prune(&mut self, hashes: &[EntryHash]) -> Result<usize, DocumentError> {
        let mut batch = self.store().batch();
        let mut removed = 0;
        let mut live_delta = 0i64;
        let log = self.log_id().0;
        for hash in hashes {
            let Some(entry) = self.entry(hash)? else {
                continue;
            };
            let Some((_, id_key)) = entry.meta().split_first() else {
                continue;
            };
            let (id, _) = DocId::decode_key(id_key).map_err(|_| DocumentError::BadMeta)?;
            let next: Vec<[u8; 32]> = entry.next().map(|h| h.0).collect();
            batch.remove_entry(&log, &entry.clock().to_key(), &hash.0, &next)?;
            batch.delete(Table::Points, &self.point_key(&entry));
            if let Some(current) = self.current_version(&id)?
                && current.0 == *hash
            {
                if current.1 {
                    for k in self.index_rows(&id, hash)? {
                        batch.delete(Table::Index, &k);
                    }
                    live_delta -= 1;
                }
                batch.delete(Table::Documents, &self.document_row(&id));
            }
            removed += 1;
        }
        batch.commit()?;
        self.committed(live_delta);
        Ok(removed)
    }

    /// [`Documents::query`]'s documents (with their current entries) whose ring points lie in
    /// `spans` — what one shard answers for its part of a search; sort and limit apply to
    /// that part.
    pub(crate) fn query_in(
        &self,
        query: &Query,
        spans: &[Span],
        reader: Reader<'_>,
    ) -> Result<Vec<(DocId, EntryHash, Candidate<T>)>, DocumentError> {
        if spans.is_empty() || spans == [Span::ALL] {
            return self.query_for(query, &|_| true, reader);
        }
        let inside = |id: &DocId| {
            let p = point_of(&id.group());
            spans.iter().any(|s| s.contains(p))
        };
        self.query_for(query, &inside, reader)
    }
}
