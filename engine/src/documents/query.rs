//! Queries over a store's indexed fields: filters, sort, limit, and the planner that picks an
//! index scan for them.
//!
//! Semantics: a comparison holds only between values of one type (an int field never equals a
//! string, and `Ne` holds only for a present value of the same type that differs); a missing
//! field is [`IndexValue::Null`]. String matches may ignore case (Unicode lowercase). Sorting is
//! by each sort field in turn, missing values last in either direction, ties by id ascending.
//!
//! The planner uses the index when the filter (or one conjunct of a top-level `And`) is an
//! equality, a range or a case-sensitive prefix on an indexed field: the scan then reads only
//! that field's matching rows, and every candidate is still checked against the whole filter.
//! Anything else scans every document.

use std::cmp::Ordering;

use super::keys::{self, IndexValue};

/// A condition on a document's indexed fields.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Filter {
    /// Every document.
    All,
    /// `field == value`.
    Eq(String, IndexValue),
    /// `field != value` (present, same type).
    Ne(String, IndexValue),
    /// `field < value`.
    Lt(String, IndexValue),
    /// `field <= value`.
    Le(String, IndexValue),
    /// `field > value`.
    Gt(String, IndexValue),
    /// `field >= value`.
    Ge(String, IndexValue),
    /// A string field starting with `prefix`.
    Prefix {
        /// The field.
        field: String,
        /// The prefix.
        prefix: String,
        /// Compare lowercased.
        ignore_case: bool,
    },
    /// A string field containing `needle`.
    Contains {
        /// The field.
        field: String,
        /// What it contains.
        needle: String,
        /// Compare lowercased.
        ignore_case: bool,
    },
    /// The field is missing (or null).
    IsNull(String),
    /// Every one holds.
    And(Vec<Filter>),
    /// At least one holds.
    Or(Vec<Filter>),
    /// It does not hold.
    Not(Box<Filter>),
}

/// One sort key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sort {
    /// The field.
    pub field: String,
    /// Largest first.
    pub descending: bool,
}

/// A query: which documents, in what order, how many.
#[derive(Clone, Debug, PartialEq)]
pub struct Query {
    /// Which documents.
    pub filter: Filter,
    /// In what order (then by id ascending).
    pub sort: Vec<Sort>,
    /// At most this many.
    pub limit: Option<usize>,
}

impl Default for Query {
    fn default() -> Self {
        Query {
            filter: Filter::All,
            sort: Vec::new(),
            limit: None,
        }
    }
}

/// The type-aware order of two values of one type (`None` across types). Floats: NaN is
/// above every number and equals itself (the index order).
pub fn compare(a: &IndexValue, b: &IndexValue) -> Option<Ordering> {
    use IndexValue::*;
    match (a, b) {
        (Bool(x), Bool(y)) => Some(x.cmp(y)),
        (Int(x), Int(y)) => Some(x.cmp(y)),
        (Float(x), Float(y)) => Some(match (x.is_nan(), y.is_nan()) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            _ => x.partial_cmp(y).unwrap_or(Ordering::Equal),
        }),
        (Str(x), Str(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Bytes(x), Bytes(y)) => Some(x.cmp(y)),
        (Null, Null) => Some(Ordering::Equal),
        _ => None,
    }
}

/// Whether a document whose field values `values_of` gives matches `filter`. A field may have
/// several values (an array's elements): a comparison or text match holds when it holds for
/// any of them, is-null when none is present.
pub fn matches(filter: &Filter, values_of: &dyn Fn(&str) -> Vec<IndexValue>) -> bool {
    let any = |field: &str, test: &dyn Fn(&IndexValue) -> bool| values_of(field).iter().any(test);
    let cmp = |field: &str, v: &IndexValue, ok: fn(Ordering) -> bool| {
        any(field, &|have| {
            !matches!(have, IndexValue::Null) && compare(have, v).is_some_and(ok)
        })
    };
    let fold = |s: &str, ignore_case: bool| {
        if ignore_case {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let text = |field: &str, ignore_case: bool, test: &dyn Fn(&str) -> bool| {
        any(field, &|have| match have {
            IndexValue::Str(s) => test(&fold(s, ignore_case)),
            _ => false,
        })
    };
    match filter {
        Filter::All => true,
        Filter::Eq(f, v) => cmp(f, v, Ordering::is_eq),
        Filter::Ne(f, v) => cmp(f, v, Ordering::is_ne),
        Filter::Lt(f, v) => cmp(f, v, Ordering::is_lt),
        Filter::Le(f, v) => cmp(f, v, Ordering::is_le),
        Filter::Gt(f, v) => cmp(f, v, Ordering::is_gt),
        Filter::Ge(f, v) => cmp(f, v, Ordering::is_ge),
        Filter::Prefix {
            field,
            prefix,
            ignore_case,
        } => {
            let p = fold(prefix, *ignore_case);
            text(field, *ignore_case, &|s| s.starts_with(&p))
        }
        Filter::Contains {
            field,
            needle,
            ignore_case,
        } => {
            let n = fold(needle, *ignore_case);
            text(field, *ignore_case, &|s| s.contains(&n))
        }
        Filter::IsNull(f) => values_of(f).iter().all(|v| matches!(v, IndexValue::Null)),
        Filter::And(fs) => fs.iter().all(|f| matches(f, values_of)),
        Filter::Or(fs) => fs.iter().any(|f| matches(f, values_of)),
        Filter::Not(f) => !matches(f, values_of),
    }
}

/// How two documents order under `sort` (their values per sort field, in order), missing
/// values last either way; equal means "then by id".
pub fn sort_order(sort: &[Sort], a: &[IndexValue], b: &[IndexValue]) -> Ordering {
    for (s, (x, y)) in sort.iter().zip(a.iter().zip(b)) {
        let o = match (matches!(x, IndexValue::Null), matches!(y, IndexValue::Null)) {
            (true, true) => Ordering::Equal,
            (true, false) => Ordering::Greater,
            (false, true) => Ordering::Less,
            // Different types: by type, as the index orders them.
            _ => compare(x, y).unwrap_or_else(|| keys::type_tag(x).cmp(&keys::type_tag(y))),
        };
        let o = if s.descending && !matches!(x, IndexValue::Null) && !matches!(y, IndexValue::Null)
        {
            o.reverse()
        } else {
            o
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

/// Which rows of one field's index hold the candidates: keys (after the field's prefix) from
/// `from` (inclusive) to `to` (exclusive; `None`: the field's end).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexScan {
    /// The field.
    pub field: String,
    /// First key (inclusive).
    pub from: Vec<u8>,
    /// Past the last key.
    pub to: Option<Vec<u8>>,
}

/// The index scan for `filter`, if one of its parts allows one (`indexed` says which fields
/// have an index; `nulls_indexed` whether missing values have rows too).
pub fn plan(
    filter: &Filter,
    indexed: &dyn Fn(&str) -> bool,
    nulls_indexed: bool,
) -> Option<IndexScan> {
    match filter {
        // The conjuncts' scans of one field narrow each other (`a >= 1 and a < 5`): the
        // first field with a scan, its ranges intersected.
        Filter::And(fs) => {
            let scans: Vec<IndexScan> = fs
                .iter()
                .filter_map(|f| plan(f, indexed, nulls_indexed))
                .collect();
            let first = scans.first()?.clone();
            let field = first.field.clone();
            Some(
                scans
                    .into_iter()
                    .filter(|s| s.field == field)
                    .fold(first, |acc, s| IndexScan {
                        field: acc.field,
                        from: acc.from.max(s.from),
                        to: match (acc.to, s.to) {
                            (Some(a), Some(b)) => Some(a.min(b)),
                            (a, b) => a.or(b),
                        },
                    }),
            )
        }
        Filter::IsNull(_) if !nulls_indexed => None,
        _ => scan_for(filter).filter(|s| indexed(&s.field)),
    }
}

fn key(v: &IndexValue) -> Vec<u8> {
    let mut k = Vec::new();
    keys::encode(v, &mut k);
    k
}

/// After every (value, id) row of `v`: an id's key starts with a tag below 0xFF.
fn past(v: &IndexValue) -> Vec<u8> {
    let mut k = key(v);
    k.push(0xFF);
    k
}

fn scan_for(filter: &Filter) -> Option<IndexScan> {
    let scan = |field: &String, from: Vec<u8>, to: Vec<u8>| {
        Some(IndexScan {
            field: field.clone(),
            from,
            to: Some(to),
        })
    };
    let type_start = |v: &IndexValue| vec![keys::type_tag(v)];
    let type_end = |v: &IndexValue| vec![keys::type_tag(v).saturating_add(1)];
    match filter {
        // (A null is "missing": comparisons never hold for it.)
        Filter::Eq(_, IndexValue::Null)
        | Filter::Lt(_, IndexValue::Null)
        | Filter::Le(_, IndexValue::Null)
        | Filter::Gt(_, IndexValue::Null)
        | Filter::Ge(_, IndexValue::Null) => None,
        Filter::Eq(f, v) => scan(f, key(v), past(v)),
        Filter::Lt(f, v) => scan(f, type_start(v), key(v)),
        Filter::Le(f, v) => scan(f, type_start(v), past(v)),
        Filter::Gt(f, v) => scan(f, past(v), type_end(v)),
        Filter::Ge(f, v) => scan(f, key(v), type_end(v)),
        Filter::Prefix {
            field,
            prefix,
            ignore_case: false,
        } => {
            let from = keys::string_prefix(prefix);
            let mut to = from.clone();
            // Past every key starting with `from`: the next prefix of the same length.
            while let Some(last) = to.pop() {
                if last < 0xFF {
                    to.push(last + 1);
                    return scan(field, from, to);
                }
            }
            Some(IndexScan {
                field: field.clone(),
                from,
                to: None,
            })
        }
        Filter::IsNull(f) => scan(f, vec![0xFF], vec![0xFF, 0xFF]),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_planner_takes_an_indexable_conjunct_and_leaves_the_rest() {
        let indexed = |f: &str| f == "title";
        let eq = Filter::Eq("title".into(), IndexValue::Str("a".into()));
        assert!(plan(&eq, &indexed, true).is_some());
        let not_indexed = Filter::Eq("likes".into(), IndexValue::Int(1));
        assert!(plan(&not_indexed, &indexed, true).is_none());
        let both = Filter::And(vec![not_indexed.clone(), eq.clone()]);
        assert_eq!(plan(&both, &indexed, true), plan(&eq, &indexed, true));
        assert!(plan(&Filter::Or(vec![eq.clone()]), &indexed, true).is_none());
        let ci = Filter::Prefix {
            field: "title".into(),
            prefix: "A".into(),
            ignore_case: true,
        };
        assert!(
            plan(&ci, &indexed, true).is_none(),
            "case-insensitive: a scan"
        );
    }

    #[test]
    fn missing_values_sort_last_both_ways() {
        let asc = [Sort {
            field: "x".into(),
            descending: false,
        }];
        let desc = [Sort {
            field: "x".into(),
            descending: true,
        }];
        let (one, null) = ([IndexValue::Int(1)], [IndexValue::Null]);
        assert_eq!(sort_order(&asc, &one, &null), Ordering::Less);
        assert_eq!(sort_order(&desc, &one, &null), Ordering::Less);
        assert_eq!(
            sort_order(&desc, &[IndexValue::Int(1)], &[IndexValue::Int(2)]),
            Ordering::Greater
        );
    }
}
