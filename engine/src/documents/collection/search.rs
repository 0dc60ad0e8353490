//! Answering queries from the local store: the planner's index scan, a sorted page read in
//! index order, or a read of every document; then filter, sort and limit. A query is answered
//! for a [`Reader`]: this peer, or a peer that asked, whose answer holds the encrypted
//! documents its key opens (matched here by their published values when this key does not).

use starling_net::entry::EntryHash;
use starling_net::identity::PublicKey;
use starling_store::Table;

use super::{Current, DocId, DocumentError, Documents, Values, index_row_head, prefix_end};
use crate::documents::codec::Codec;
use crate::documents::index::IndexSpec;
use crate::documents::keys::{self, IndexValue};
use crate::documents::query::{Query, matches, plan, sort_order};

/// Whom a query is answered for: which encrypted documents are candidates.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Reader<'a> {
    /// This peer: the documents its key reads.
    Me,
    /// A peer that asked: plain documents and those encrypted to its key (whether or not
    /// this key reads them), so an answer never shows it a match it could not open.
    Peer(&'a PublicKey),
}

/// A query candidate: a document read here, or an encrypted one this key does not read,
/// known by the values its writer published (none when sealed).
#[derive(Debug)]
pub(crate) enum Candidate<T> {
    Doc(T),
    Published(Values),
}

impl<T> Candidate<T> {
    /// The candidate's values of `field`.
    fn values_of(&self, index: &IndexSpec<T>, field: &str) -> Vec<IndexValue> {
        match self {
            Candidate::Doc(doc) => index.values_of(doc, field),
            Candidate::Published(values) => values
                .iter()
                .filter(|(n, _)| n == field)
                .map(|(_, v)| v.clone())
                .collect(),
        }
    }
}

/// Candidates found for one query: id, current entry, document or published values.
type Found<T> = Vec<(DocId, EntryHash, Candidate<T>)>;

impl<T, C: Codec<T>> Documents<T, C> {
    /// The documents `query` selects, in its order (see [`crate::documents::query`]). Uses one index scan
    /// when the planner finds one, else reads every document; every candidate is checked
    /// against the whole filter.
    pub fn query(&self, query: &Query) -> Result<Vec<(DocId, T)>, DocumentError> {
        Ok(self
            .query_for(query, &|_| true, Reader::Me)?
            .into_iter()
            .filter_map(|(id, _, c)| match c {
                Candidate::Doc(doc) => Some((id, doc)),
                Candidate::Published(_) => None,
            })
            .collect())
    }

    /// `query`'s answer for `reader` over the documents `keep` accepts only (checked before a
    /// document is read, and before the limit counts it), with each one's current entry.
    pub(crate) fn query_for(
        &self,
        query: &Query,
        keep: &dyn Fn(&DocId) -> bool,
        reader: Reader<'_>,
    ) -> Result<Found<T>, DocumentError> {
        let indexed = |f: &str| self.index.is_indexed(f);
        let mut found = Vec::new();
        match plan(&query.filter, &indexed, self.index.nulls_indexed()) {
            Some(scan) => {
                let prefix = self.index_prefix(&scan.field);
                let from = [&prefix[..], &scan.from].concat();
                let to = match &scan.to {
                    Some(t) => Some([&prefix[..], t].concat()),
                    None => prefix_end(&prefix),
                };
                if to.as_ref().is_some_and(|t| *t <= from) {
                    // Bounds that exclude each other (`a > 5 and a < 1`).
                    return Ok(Vec::new());
                }
                // Sorted by the scanned (single-valued) field with a limit: read the index in
                // the sort's order and stop at the limit.
                if let (Some(limit), [sort]) = (query.limit, &query.sort[..])
                    && sort.field == scan.field
                    && self.index.is_single_valued(&sort.field)
                {
                    return self.ordered_scan(
                        query,
                        &prefix,
                        &from,
                        to.as_deref(),
                        (sort.descending, limit),
                        (keep, reader),
                    );
                }
                // A document with several values in the range (an array) has several rows.
                let mut seen = std::collections::HashSet::new();
                for row in self
                    .store
                    .rows_between(Table::Index, &from, to.as_deref(), false)
                {
                    let (k, v) = row?;
                    let (_, rest) = keys::decode(&k[prefix.len()..])?;
                    let (id, _) = DocId::decode_key(rest)?;
                    if !keep(&id) || !seen.insert(id.clone()) {
                        continue;
                    }
                    let (head, raw) = index_row_head(&v)?;
                    if let Some(c) = self.candidate(&head, raw, reader)? {
                        found.push((id, head, c));
                    }
                }
            }
            None if self.sorted_page(query).is_some() => {
                // A page sorted by a named field: its index read in order, filter checked per
                // document, stopping at the limit (values first, then missing ones).
                let (field, descending, limit) = self.sorted_page(query).unwrap_or_default();
                let prefix = self.index_prefix(&field);
                let nulls = [&prefix[..], &[0xFF]].concat();
                let mut out = self.ordered_scan(
                    query,
                    &prefix,
                    &prefix,
                    Some(&nulls),
                    (descending, limit),
                    (keep, reader),
                )?;
                if out.len() < limit {
                    let end = prefix_end(&prefix);
                    out.extend(self.ordered_scan(
                        query,
                        &prefix,
                        &nulls,
                        end.as_deref(),
                        (false, limit - out.len()),
                        (keep, reader),
                    )?);
                }
                return Ok(out);
            }
            None => {
                for row in self.doc_rows() {
                    let (k, v) = row?;
                    let c = Current::decode(&v)?;
                    if c.live {
                        let (id, _) = DocId::decode_key(&k[self.program.0.len()..])?;
                        if keep(&id)
                            && let Some(doc) = self.candidate(&c.head, false, reader)?
                        {
                            found.push((id, c.head, doc));
                        }
                    }
                }
            }
        }
        Ok(self.select_by(query, found, |c, f| c.values_of(&self.index, f)))
    }

    /// The version `head` as a candidate for `reader` (`raw`: its payload is the codec's
    /// bytes as they are, one read); `None` when it is encrypted and not `reader`'s to read.
    fn candidate(
        &self,
        head: &EntryHash,
        raw: bool,
        reader: Reader<'_>,
    ) -> Result<Option<Candidate<T>>, DocumentError> {
        if raw {
            return Ok(Some(Candidate::Doc(self.load_indexed(head, true)?)));
        }
        let entry = self.stored(head)?;
        if let Reader::Peer(key) = reader
            && entry.is_encrypted()
            && !Self::encrypted_to(&entry, key)
        {
            return Ok(None);
        }
        Ok(match (self.read(&entry)?, reader) {
            (Some(doc), _) => Some(Candidate::Doc(doc)),
            (None, Reader::Peer(_)) => Some(Candidate::Published(self.published_values(&entry))),
            (None, Reader::Me) => None,
        })
    }

    /// A query that is one page sorted by a named (single-valued) field: the field, the
    /// direction, the limit.
    fn sorted_page(&self, query: &Query) -> Option<(String, bool, usize)> {
        match (query.limit, &query.sort[..]) {
            (Some(limit), [sort]) if self.index.is_single_valued(&sort.field) => {
                Some((sort.field.clone(), sort.descending, limit))
            }
            _ => None,
        }
    }

    /// The first `limit` documents matching `query` among the index rows `from..to` of one
    /// field, read in value order (reversed when `descending`; ties by id ascending either
    /// way, so rows of one value are read as a group and turned around).
    fn ordered_scan(
        &self,
        query: &Query,
        prefix: &[u8],
        from: &[u8],
        to: Option<&[u8]>,
        (descending, limit): (bool, usize),
        (keep, reader): (&dyn Fn(&DocId) -> bool, Reader<'_>),
    ) -> Result<Found<T>, DocumentError> {
        let mut out = Vec::new();
        let mut group: Vec<(DocId, EntryHash, bool)> = Vec::new();
        let mut group_value: Option<Vec<u8>> = None;
        let take = |ids: &mut Vec<(DocId, EntryHash, bool)>, out: &mut Found<T>| {
            if descending {
                ids.reverse();
            }
            for (id, head, raw) in ids.drain(..) {
                if out.len() >= limit {
                    break;
                }
                let Some(c) = self.candidate(&head, raw, reader)? else {
                    continue;
                };
                if matches(&query.filter, &|f: &str| c.values_of(&self.index, f)) {
                    out.push((id, head, c));
                }
            }
            Ok::<(), DocumentError>(())
        };
        for row in self.store.rows_between(Table::Index, from, to, descending) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = row?;
            let (_, rest) = keys::decode(&k[prefix.len()..])?;
            let value_key = &k[prefix.len()..k.len() - rest.len()];
            let (id, _) = DocId::decode_key(rest)?;
            if !keep(&id) {
                continue;
            }
            if group_value.as_deref() != Some(value_key) {
                take(&mut group, &mut out)?;
                group_value = Some(value_key.to_vec());
            }
            let (head, raw) = index_row_head(&v)?;
            group.push((id, head, raw));
        }
        take(&mut group, &mut out)?;
        Ok(out)
    }

    /// The documents of `found` that match `query`, in its order, at most its limit (also
    /// how a remote answer is checked and merged).
    pub(crate) fn select(
        &self,
        query: &Query,
        found: Vec<(DocId, EntryHash, T)>,
    ) -> Vec<(DocId, EntryHash, T)> {
        self.select_by(query, found, |doc, f| self.index.values_of(doc, f))
    }

    /// [`Documents::select`] over anything whose values `values_of` reads.
    fn select_by<X>(
        &self,
        query: &Query,
        mut found: Vec<(DocId, EntryHash, X)>,
        values_of: impl Fn(&X, &str) -> Vec<IndexValue>,
    ) -> Vec<(DocId, EntryHash, X)> {
        found.retain(|(_, _, doc)| matches(&query.filter, &|f: &str| values_of(doc, f)));
        let mut keyed: Vec<(Vec<IndexValue>, (DocId, EntryHash, X))> = found
            .into_iter()
            .map(|(id, head, doc)| {
                let values = query
                    .sort
                    .iter()
                    .map(|s| {
                        let first = values_of(&doc, &s.field).into_iter().next();
                        first.unwrap_or(IndexValue::Null)
                    })
                    .collect();
                (values, (id, head, doc))
            })
            .collect();
        keyed.sort_by(|(va, (ia, _, _)), (vb, (ib, _, _))| {
            sort_order(&query.sort, va, vb).then_with(|| ia.cmp(ib))
        });
        let mut out: Vec<_> = keyed.into_iter().map(|(_, d)| d).collect();
        if let Some(limit) = query.limit {
            out.truncate(limit);
        }
        out
    }
}
