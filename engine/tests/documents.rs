//! Documents on real fjall storage: put/get/delete/count, index rows kept exactly in step with
//! the documents (checked against a naive model over random operations), immutability, signed
//! chained versions, and a refused change that changes nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;

use bytes::Bytes;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    DocId, DocumentError, Documents, DocumentsOptions, IndexSpec, Postcard,
};
use starling_engine::program::ProgramDefinition;
use starling_net::{KeyType, Keypair};
use starling_store::{Durability, Store, StoreConfig};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
    likes: i64,
}

fn store(dir: &std::path::Path) -> Store {
    Store::open(
        dir,
        StoreConfig {
            durability: Durability::Buffered,
            ..StoreConfig::default()
        },
    )
    .unwrap()
}

fn posts(store: Store, options: DocumentsOptions) -> Documents<Post> {
    let program = ProgramDefinition::new("documents/v1", "posts", Bytes::new())
        .unwrap()
        .address();
    let index = IndexSpec::new()
        .field("title", |p: &Post| IndexValue::Str(p.title.clone()))
        .field("likes", |p: &Post| IndexValue::Int(p.likes));
    Documents::open(
        program,
        store,
        Keypair::from_secret_bytes(KeyType::Ed25519, &[5; 32]).unwrap(),
        Postcard,
        index,
        options,
    )
    .unwrap()
}

fn post(title: &str, likes: i64) -> Post {
    Post {
        title: title.into(),
        likes,
    }
}

#[test]
fn put_get_delete_count_and_index_rows_follow() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = posts(store(dir.path()), DocumentsOptions::default());
    docs.put("a", &post("hello", 1)).unwrap();
    docs.put("b", &post("hello", 2)).unwrap();
    docs.put(7, &post("other", 2)).unwrap();
    assert_eq!(docs.get("a").unwrap(), Some(post("hello", 1)));
    assert_eq!(docs.count().unwrap(), 3);
    let hello = IndexValue::Str("hello".into());
    assert_eq!(
        docs.ids_where("title", &hello).unwrap(),
        [DocId::from("a"), DocId::from("b")]
    );
    assert_eq!(
        docs.ids_where("likes", &IndexValue::Int(2)).unwrap(),
        [DocId::from(7), DocId::from("b")],
        "ties in id order: integers before strings"
    );
    // A new version moves its index rows.
    docs.put("a", &post("changed", 1)).unwrap();
    assert_eq!(docs.ids_where("title", &hello).unwrap(), [DocId::from("b")]);
    assert!(docs.delete("b").unwrap());
    assert!(!docs.delete("b").unwrap(), "already gone");
    assert!(docs.ids_where("title", &hello).unwrap().is_empty());
    assert_eq!(docs.get("b").unwrap(), None);
    assert_eq!(docs.count().unwrap(), 2);
    // All of it is on disk.
    drop(docs);
    let docs = posts(store(dir.path()), DocumentsOptions::default());
    assert_eq!(docs.get("a").unwrap(), Some(post("changed", 1)));
    assert_eq!(docs.count().unwrap(), 2);
}

#[test]
fn an_immutable_store_keeps_the_first_version() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = posts(store(dir.path()), DocumentsOptions { immutable: true });
    docs.put("a", &post("first", 1)).unwrap();
    assert!(matches!(
        docs.put("a", &post("second", 2)),
        Err(DocumentError::Immutable(_))
    ));
    assert_eq!(docs.get("a").unwrap(), Some(post("first", 1)));
}

#[test]
fn an_id_too_long_for_an_entry_is_a_typed_error_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = posts(store(dir.path()), DocumentsOptions::default());
    let long = "x".repeat(300);
    assert!(matches!(
        docs.put(long.as_str(), &post("t", 1)),
        Err(DocumentError::IdTooLong(_))
    ));
    assert_eq!(docs.count().unwrap(), 0);
    assert!(
        docs.ids_where("likes", &IndexValue::Int(1))
            .unwrap()
            .is_empty()
    );
}

#[derive(Clone, Debug)]
enum Op {
    Put(u8, u8, i64),
    Delete(u8),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u8..6, 0u8..3, -2i64..3).prop_map(|(id, t, l)| Op::Put(id, t, l)),
        (0u8..6).prop_map(Op::Delete),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// After any sequence of puts and deletes, every document, the count and every index
    /// lookup equal a naive map's.
    #[test]
    fn documents_and_indexes_match_a_naive_model(ops in proptest::collection::vec(op(), 1..40)) {
        let dir = tempfile::tempdir().unwrap();
        let mut docs = posts(store(dir.path()), DocumentsOptions::default());
        let mut model: BTreeMap<i64, Post> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Put(id, t, likes) => {
                    let p = post(&format!("t{t}"), likes);
                    docs.put(i64::from(id), &p).unwrap();
                    model.insert(i64::from(id), p);
                }
                Op::Delete(id) => {
                    let was = docs.delete(i64::from(id)).unwrap();
                    prop_assert_eq!(was, model.remove(&i64::from(id)).is_some());
                }
            }
        }
        prop_assert_eq!(docs.count().unwrap(), model.len() as u64);
        for id in 0..6i64 {
            prop_assert_eq!(docs.get(id).unwrap(), model.get(&id).cloned());
        }
        for t in 0..3 {
            let title = format!("t{t}");
            let want: Vec<DocId> = model
                .iter()
                .filter(|(_, p)| p.title == title)
                .map(|(id, _)| DocId::Int(*id))
                .collect();
            prop_assert_eq!(docs.ids_where("title", &IndexValue::Str(title)).unwrap(), want);
        }
        for likes in -2..3 {
            let want: Vec<DocId> = model
                .iter()
                .filter(|(_, p)| p.likes == likes)
                .map(|(id, _)| DocId::Int(*id))
                .collect();
            prop_assert_eq!(docs.ids_where("likes", &IndexValue::Int(likes)).unwrap(), want);
        }
    }
}

/// Each version is a signed entry of the program's log: grouped by its document, following the
/// version before it.
#[test]
fn each_version_is_a_signed_entry_chained_to_the_one_before() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut docs = posts(s.clone(), DocumentsOptions::default());
    let first = docs.put("a", &post("one", 1)).unwrap();
    let second = docs.put("a", &post("two", 2)).unwrap();
    let (header, payload) = s.entry(&second.0).unwrap().expect("stored");
    let e = starling_net::entry::Entry::decode_stored(second, header, payload).unwrap();
    e.verify().expect("signed");
    assert_eq!(e.group(), DocId::from("a").group());
    assert_eq!(e.next().collect::<Vec<_>>(), vec![first]);
    assert_eq!(e.log_id(), docs.log_id());
}

/// Listeners hear every committed change, in order: puts as added, deletes as removed; a
/// refused change says nothing.
#[test]
fn changes_are_reported_after_they_commit() {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = posts(store(dir.path()), DocumentsOptions { immutable: true });
    let mut changes = docs.changes();
    let a = docs.put("a", &post("one", 1)).unwrap();
    assert!(docs.put("a", &post("two", 2)).is_err());
    assert!(docs.delete("a").unwrap());
    let first = changes.try_recv().unwrap();
    assert_eq!(first.added, vec![(DocId::from("a"), a)]);
    assert!(first.removed.is_empty());
    let second = changes.try_recv().unwrap();
    assert!(second.added.is_empty());
    assert_eq!(second.removed.len(), 1);
    assert!(changes.try_recv().is_err(), "the refused put said nothing");
}
