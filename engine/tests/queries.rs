//! Queries against a naive evaluation: random documents, random queries of every kind (string
//! exact/prefix/contains with and without case, integer and float comparisons, bool, is-null,
//! and/or/not, sorts by one or two fields both ways, limits), the store's answer — index scan
//! or full scan, as the planner chooses — equals the model's, order included.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::cmp::Ordering;
use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    DocId, Documents, DocumentsOptions, Filter, IndexSpec, Postcard, Query, Sort,
};
use starling_engine::program::ProgramDefinition;
use starling_net::{KeyType, Keypair};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
    likes: i64,
    score: Option<f64>,
    flag: bool,
}

fn value(p: &Post, field: &str) -> IndexValue {
    match field {
        "title" => IndexValue::Str(p.title.clone()),
        "likes" => IndexValue::Int(p.likes),
        "score" => p.score.map_or(IndexValue::Null, IndexValue::Float),
        "flag" => IndexValue::Bool(p.flag),
        _ => IndexValue::Null,
    }
}

fn open(dir: &std::path::Path) -> Documents<Post> {
    let store = common::store(dir);
    let program = ProgramDefinition::new("documents/v1", "q", Bytes::new())
        .unwrap()
        .address();
    let mut index = IndexSpec::new();
    for f in ["title", "likes", "score", "flag"] {
        index = index.field(f, move |p: &Post| value(p, f));
    }
    Documents::open(
        program,
        store,
        Keypair::generate(KeyType::Ed25519),
        Postcard,
        index,
        DocumentsOptions::default(),
    )
    .unwrap()
}

/// The model's order of two values of one type (a parallel implementation).
fn naive_cmp(a: &IndexValue, b: &IndexValue) -> Option<Ordering> {
    match (a, b) {
        (IndexValue::Str(x), IndexValue::Str(y)) => Some(x.cmp(y)),
        (IndexValue::Int(x), IndexValue::Int(y)) => Some(x.cmp(y)),
        (IndexValue::Float(x), IndexValue::Float(y)) => x.partial_cmp(y),
        (IndexValue::Bool(x), IndexValue::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

fn naive(f: &Filter, p: &Post) -> bool {
    let holds = |field: &str, v: &IndexValue, ok: fn(Ordering) -> bool| {
        naive_cmp(&value(p, field), v).is_some_and(ok)
    };
    let s = |field: &str| match value(p, field) {
        IndexValue::Str(s) => Some(s),
        _ => None,
    };
    match f {
        Filter::All => true,
        Filter::Eq(a, v) => holds(a, v, |o| o == Ordering::Equal),
        Filter::Ne(a, v) => holds(a, v, |o| o != Ordering::Equal),
        Filter::Lt(a, v) => holds(a, v, |o| o == Ordering::Less),
        Filter::Le(a, v) => holds(a, v, |o| o != Ordering::Greater),
        Filter::Gt(a, v) => holds(a, v, |o| o == Ordering::Greater),
        Filter::Ge(a, v) => holds(a, v, |o| o != Ordering::Less),
        Filter::Prefix {
            field,
            prefix,
            ignore_case,
        } => s(field).is_some_and(|t| {
            if *ignore_case {
                t.to_lowercase().starts_with(&prefix.to_lowercase())
            } else {
                t.starts_with(prefix.as_str())
            }
        }),
        Filter::Contains {
            field,
            needle,
            ignore_case,
        } => s(field).is_some_and(|t| {
            if *ignore_case {
                t.to_lowercase().contains(&needle.to_lowercase())
            } else {
                t.contains(needle.as_str())
            }
        }),
        Filter::IsNull(a) => value(p, a) == IndexValue::Null,
        Filter::And(fs) => fs.iter().all(|f| naive(f, p)),
        Filter::Or(fs) => fs.iter().any(|f| naive(f, p)),
        Filter::Not(f) => !naive(f, p),
        _ => unreachable!("every filter kind is covered"),
    }
}

fn naive_query(model: &BTreeMap<i64, Post>, q: &Query) -> Vec<i64> {
    let mut hits: Vec<(&i64, &Post)> = model.iter().filter(|(_, p)| naive(&q.filter, p)).collect();
    hits.sort_by(|(ia, a), (ib, b)| {
        for s in &q.sort {
            let (x, y) = (value(a, &s.field), value(b, &s.field));
            let o = match (x == IndexValue::Null, y == IndexValue::Null) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                _ => {
                    let o = naive_cmp(&x, &y).unwrap();
                    if s.descending { o.reverse() } else { o }
                }
            };
            if o != Ordering::Equal {
                return o;
            }
        }
        ia.cmp(ib)
    });
    let mut ids: Vec<i64> = hits.into_iter().map(|(id, _)| *id).collect();
    if let Some(l) = q.limit {
        ids.truncate(l);
    }
    ids
}

fn post() -> impl Strategy<Value = Post> {
    (
        "[aAbB]{0,3}",
        -3i64..4,
        proptest::option::of(prop_oneof![
            Just(-1.5f64),
            Just(0.0),
            Just(2.25),
            -10.0f64..10.0
        ]),
        any::<bool>(),
    )
        .prop_map(|(title, likes, score, flag)| Post {
            title,
            likes,
            score,
            flag,
        })
}

fn leaf() -> impl Strategy<Value = Filter> {
    let int = -3i64..4;
    let text = "[aAbB]{0,2}";
    prop_oneof![
        Just(Filter::All),
        text.prop_map(|t| Filter::Eq("title".into(), IndexValue::Str(t))),
        int.clone()
            .prop_map(|v| Filter::Eq("likes".into(), IndexValue::Int(v))),
        int.clone()
            .prop_map(|v| Filter::Ne("likes".into(), IndexValue::Int(v))),
        int.clone()
            .prop_map(|v| Filter::Lt("likes".into(), IndexValue::Int(v))),
        int.clone()
            .prop_map(|v| Filter::Le("likes".into(), IndexValue::Int(v))),
        int.clone()
            .prop_map(|v| Filter::Gt("likes".into(), IndexValue::Int(v))),
        int.prop_map(|v| Filter::Ge("likes".into(), IndexValue::Int(v))),
        prop_oneof![Just(-1.5f64), Just(0.0), Just(2.25), -10.0f64..10.0].prop_flat_map(
            |v| prop_oneof![
                Just(Filter::Lt("score".into(), IndexValue::Float(v))),
                Just(Filter::Ge("score".into(), IndexValue::Float(v))),
                Just(Filter::Eq("score".into(), IndexValue::Float(v))),
            ]
        ),
        any::<bool>().prop_map(|b| Filter::Eq("flag".into(), IndexValue::Bool(b))),
        ("[aAbB]{0,2}", any::<bool>()).prop_map(|(p, ic)| Filter::Prefix {
            field: "title".into(),
            prefix: p,
            ignore_case: ic
        }),
        ("[aAbB]{0,2}", any::<bool>()).prop_map(|(n, ic)| Filter::Contains {
            field: "title".into(),
            needle: n,
            ignore_case: ic
        }),
        Just(Filter::IsNull("score".into())),
        // A type mismatch never holds.
        Just(Filter::Eq("likes".into(), IndexValue::Str("1".into()))),
    ]
}

fn filter() -> impl Strategy<Value = Filter> {
    leaf().prop_recursive(2, 8, 3, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Filter::And),
            proptest::collection::vec(inner.clone(), 1..3).prop_map(Filter::Or),
            inner.prop_map(|f| Filter::Not(Box::new(f))),
        ]
    })
}

fn query() -> impl Strategy<Value = Query> {
    let sort = proptest::collection::vec(
        (
            prop_oneof![Just("title"), Just("likes"), Just("score"), Just("flag")],
            any::<bool>(),
        )
            .prop_map(|(f, d)| Sort {
                field: f.into(),
                descending: d,
            }),
        0..3,
    );
    (filter(), sort, proptest::option::of(0usize..8)).prop_map(|(filter, sort, limit)| Query {
        filter,
        sort,
        limit,
    })
}

/// Stores `posts` (ids 0, 1, …) and checks every query's answer against the naive model.
fn answers_as_the_naive_model(posts: Vec<Post>, queries: Vec<Query>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = open(dir.path());
    let mut model = BTreeMap::new();
    for (i, p) in posts.into_iter().enumerate() {
        docs.put(i as i64, &p).unwrap();
        model.insert(i as i64, p);
    }
    for q in queries {
        let got: Vec<i64> = docs
            .query(&q)
            .unwrap()
            .into_iter()
            .map(|(id, _)| match id {
                DocId::Int(i) => i,
                other => panic!("{other:?}"),
            })
            .collect();
        prop_assert_eq!(got, naive_query(&model, &q), "{:?}", q);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn every_query_kind_answers_as_the_naive_model(
        posts in proptest::collection::vec(post(), 0..25),
        queries in proptest::collection::vec(query(), 1..8),
    ) {
        answers_as_the_naive_model(posts, queries)?;
    }
}

/// A filter on one field, sorted by it, with a limit: the store reads that field's index in
/// the sort's order and stops at the limit (ties by id, missing values, other conjuncts).
fn sorted_scan() -> impl Strategy<Value = Query> {
    (
        leaf(),
        proptest::option::of(leaf()),
        any::<bool>(),
        0usize..6,
    )
        .prop_map(|(first, second, descending, limit)| {
            let field = match &first {
                Filter::Eq(f, _) | Filter::Lt(f, _) | Filter::Ge(f, _) | Filter::Ne(f, _) => {
                    f.clone()
                }
                Filter::Le(f, _) | Filter::Gt(f, _) => f.clone(),
                Filter::Prefix { field, .. } | Filter::Contains { field, .. } => field.clone(),
                Filter::IsNull(f) => f.clone(),
                _ => "likes".into(),
            };
            Query {
                filter: match second {
                    Some(s) => Filter::And(vec![first, s]),
                    None => first,
                },
                sort: vec![Sort { field, descending }],
                limit: Some(limit),
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sorted_scans_with_a_limit_answer_as_the_naive_model(
        posts in proptest::collection::vec(post(), 0..30),
        queries in proptest::collection::vec(sorted_scan(), 1..8),
    ) {
        answers_as_the_naive_model(posts, queries)?;
    }
}

/// Any filter with one sort on a named field and a limit (often past the matches): a filter
/// the planner cannot use is answered by reading the sort field's index in order — values,
/// then missing ones — checking the filter per document and stopping at the limit.
fn sorted_page() -> impl Strategy<Value = Query> {
    (
        prop_oneof![
            leaf(),
            (leaf(), leaf()).prop_map(|(a, b)| Filter::Or(vec![a, b]))
        ],
        prop_oneof![Just("title"), Just("likes"), Just("score"), Just("flag")],
        any::<bool>(),
        0usize..40,
    )
        .prop_map(|(filter, field, descending, limit)| Query {
            filter,
            sort: vec![Sort {
                field: field.into(),
                descending,
            }],
            limit: Some(limit),
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn sorted_pages_answer_as_the_naive_model(
        posts in proptest::collection::vec(post(), 0..30),
        queries in proptest::collection::vec(sorted_page(), 1..8),
    ) {
        answers_as_the_naive_model(posts, queries)?;
    }
}

#[test]
fn bounds_that_exclude_each_other_select_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = open(dir.path());
    docs.put(
        1,
        &Post {
            title: "a".into(),
            likes: 3,
            score: None,
            flag: false,
        },
    )
    .unwrap();
    let q = Query {
        filter: Filter::And(vec![
            Filter::Gt("likes".into(), IndexValue::Int(5)),
            Filter::Lt("likes".into(), IndexValue::Int(1)),
        ]),
        ..Query::default()
    };
    assert!(docs.query(&q).unwrap().is_empty());
    let q = Query {
        filter: Filter::And(vec![
            Filter::Ge("likes".into(), IndexValue::Int(3)),
            Filter::Le("likes".into(), IndexValue::Int(3)),
        ]),
        ..Query::default()
    };
    assert_eq!(docs.query(&q).unwrap().len(), 1);
}

#[test]
fn pages_hand_out_the_answer_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = open(dir.path());
    for i in 0..10 {
        docs.put(
            i,
            &Post {
                title: format!("t{i}"),
                likes: 10 - i,
                score: None,
                flag: false,
            },
        )
        .unwrap();
    }
    let q = Query {
        sort: vec![Sort {
            field: "likes".into(),
            descending: false,
        }],
        ..Query::default()
    };
    let mut pages = docs.pages(&q).unwrap();
    let ids = |v: Vec<(DocId, Post)>| v.into_iter().map(|(id, _)| id).collect::<Vec<_>>();
    assert_eq!(ids(pages.next(4)), [9, 8, 7, 6].map(DocId::Int));
    assert_eq!(ids(pages.next(4)), [5, 4, 3, 2].map(DocId::Int));
    assert_eq!(ids(pages.next(4)), [1, 0].map(DocId::Int));
    assert!(pages.next(4).is_empty());
}
