//! Answering queries from the local store: the planner's index scan, a sorted page read in
//! index order, or a read of every document; then filter, sort and limit.

use starling_net::entry::EntryHash;
use starling_store::Table;

use super::{Current, DocId, DocumentError, Documents, index_row_head, prefix_end};
use crate::documents::codec::Codec;
use crate::documents::keys::{self, IndexValue};
use crate::documents::query::{Query, matches, plan, sort_order};

impl<T, C: Codec<T>> Documents<T, C> {
    /// The documents `query` selects, in its order (see [`crate::documents::query`]). Uses one index scan
    /// when the planner finds one, else reads every document; every candidate is checked
    /// against the whole filter.
    pub fn query(&self, query: &Query) -> Result<Vec<(DocId, T)>, DocumentError> {
        Ok(self
            .query_heads(query)?
            .into_iter()
            .map(|(id, _, doc)| (id, doc))
            .collect())
    }

    /// [`Documents::query`] with each document's current entry hash.
    pub(crate) fn query_heads(
        &self,
        query: &Query,
    ) -> Result<Vec<(DocId, EntryHash, T)>, DocumentError> {
        self.query_heads_where(query, &|_| true)
    }

    /// [`Documents::query_heads`] over the documents `keep` accepts only (checked before a
    /// document is read, and before the limit counts it).
    pub(crate) fn query_heads_where(
        &self,
        query: &Query,
        keep: &dyn Fn(&DocId) -> bool,
    ) -> Result<Vec<(DocId, EntryHash, T)>, DocumentError> {
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
                        keep,
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
                    found.push((id, head, self.load_indexed(&head, raw)?));
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
                    keep,
                )?;
                if out.len() < limit {
                    let end = prefix_end(&prefix);
                    out.extend(self.ordered_scan(
                        query,
                        &prefix,
                        &nulls,
                        end.as_deref(),
                        (false, limit - out.len()),
                        keep,
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
                        // Encrypted documents this key cannot read are not answers here.
                        if keep(&id)
                            && let Some(doc) = self.read_version(&c.head)?
                        {
                            found.push((id, c.head, doc));
                        }
                    }
                }
            }
        }
        Ok(self.select(query, found))
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
        keep: &dyn Fn(&DocId) -> bool,
    ) -> Result<Vec<(DocId, EntryHash, T)>, DocumentError> {
        let mut out = Vec::new();
        let mut group: Vec<(DocId, EntryHash, bool)> = Vec::new();
        let mut group_value: Option<Vec<u8>> = None;
        let take = |ids: &mut Vec<(DocId, EntryHash, bool)>,
                    out: &mut Vec<(DocId, EntryHash, T)>| {
            if descending {
                ids.reverse();
            }
            for (id, head, raw) in ids.drain(..) {
                if out.len() >= limit {
                    break;
                }
                let doc = self.load_indexed(&head, raw)?;
                if matches(&query.filter, &|f: &str| self.index.values_of(&doc, f)) {
                    out.push((id, head, doc));
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
        mut found: Vec<(DocId, EntryHash, T)>,
    ) -> Vec<(DocId, EntryHash, T)> {
        found.retain(|(_, _, doc)| matches(&query.filter, &|f: &str| self.index.values_of(doc, f)));
        let mut keyed: Vec<(Vec<IndexValue>, (DocId, EntryHash, T))> = found
            .into_iter()
            .map(|(id, head, doc)| {
                let values = query
                    .sort
                    .iter()
                    .map(|s| {
                        let first = self.index.values_of(&doc, &s.field).into_iter().next();
                        first.unwrap_or(IndexValue::Null)
                    })
                    .collect();
                (values, (id, head, doc))
            })
            .collect();
        keyed.sort_by(|(va, (ia, _, _)), (vb, (ib, _, _))| {
            sort_order(&query.sort, va, vb).then_with(|| ia.cmp(ib))
        });
        let mut out: Vec<(DocId, EntryHash, T)> = keyed.into_iter().map(|(_, d)| d).collect();
        if let Some(limit) = query.limit {
            out.truncate(limit);
        }
        out
    }
}
