//! Documents on real fjall storage: put/get/delete/count, index rows kept exactly in step with
//! the documents (checked against a naive model over random operations), immutability, signed
//! chained versions, and a refused change that changes nothing.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;

use bytes::Bytes;
use common::store;
use proptest::prelude::*;
use serde::{Deserialize, Serialize};
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    Applied, DocId, DocumentError, Documents, DocumentsOptions, IndexSpec, Postcard,
};
use starling_engine::program::ProgramDefinition;
use starling_net::entry::Entry;
use starling_net::{KeyType, Keypair};
use starling_store::Store;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
    likes: i64,
}

fn posts(store: Store, options: DocumentsOptions) -> Documents<Post> {
    posts_by(store, options, 5)
}

fn posts_by(store: Store, options: DocumentsOptions, writer: u8) -> Documents<Post> {
    let program = ProgramDefinition::new("documents/v1", "posts", Bytes::new())
        .unwrap()
        .address();
    let index = IndexSpec::new()
        .field("title", |p: &Post| IndexValue::Str(p.title.clone()))
        .field("likes", |p: &Post| IndexValue::Int(p.likes));
    Documents::open(
        program,
        store,
        Keypair::from_secret_bytes(KeyType::Ed25519, &[writer; 32]).unwrap(),
        Postcard,
        index,
        options,
    )
    .unwrap()
}

fn immutable() -> DocumentsOptions {
    DocumentsOptions {
        immutable: true,
        ..DocumentsOptions::default()
    }
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
    let mut docs = posts(store(dir.path()), immutable());
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
    let e = Entry::decode_stored(second, header, payload).unwrap();
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
    let mut docs = posts(store(dir.path()), immutable());
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

fn stored(store: &Store, hashes: &[starling_net::entry::EntryHash]) -> Vec<Entry> {
    hashes
        .iter()
        .map(|h| {
            let (header, payload) = store.entry(&h.0).unwrap().unwrap();
            Entry::decode_stored(*h, header, payload).unwrap()
        })
        .collect()
}

/// Runs `ops` on `docs`.
fn run(docs: &mut Documents<Post>, ops: &[Op]) {
    for op in ops {
        match op {
            Op::Put(id, t, likes) => {
                docs.put(i64::from(*id), &post(&format!("t{t}"), *likes))
                    .unwrap();
            }
            Op::Delete(id) => {
                docs.delete(i64::from(*id)).unwrap();
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Two writers change the same documents concurrently, then exchange their entries in
    /// different orders (one by one, and all in one batch): both end with the same documents, count and index answers — each
    /// document the version greatest by (clock, writer, hash) of all they saw.
    #[test]
    fn concurrent_writers_converge_whatever_the_order(
        ops_a in proptest::collection::vec(op(), 1..20),
        ops_b in proptest::collection::vec(op(), 1..20),
        rotate in 0usize..20,
    ) {
        let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (sa, sb) = (store(da.path()), store(db.path()));
        let mut a = posts_by(sa.clone(), DocumentsOptions::default(), 1);
        let mut b = posts_by(sb.clone(), DocumentsOptions::default(), 2);
        run(&mut a, &ops_a);
        run(&mut b, &ops_b);
        // Every entry each made (puts and deletes): all of its program log's entries.
        let mine = |s: &Store, d: &Documents<Post>| -> Vec<Entry> {
            let hashes: Vec<_> = s
                .clock_rows(&d.log_id().0, None, false)
                .map(|r| starling_net::entry::EntryHash(r.unwrap().hash))
                .collect();
            stored(s, &hashes)
        };
        let (from_a, mut from_b) = (mine(&sa, &a), mine(&sb, &b));
        // B's entries reach A newest first; A's reach B rotated.
        for e in from_b.iter().rev() {
            a.apply(e.clone()).unwrap();
        }
        // ... and to B all at once (one store batch, several versions of one document in it,
        // and one entry twice).
        let mut to_b = from_a.clone();
        let n = to_b.len();
        to_b.rotate_left(rotate % n.max(1));
        if let Some(first) = to_b.first().cloned() {
            to_b.push(first);
        }
        let results = b.apply_many_at(to_b, starling_net::entry::unix_time_us());
        prop_assert!(results.iter().all(|r| r.is_ok()), "{:?}", results);
        if n > 0 {
            prop_assert!(matches!(results.last(), Some(Ok(Applied::Duplicate))));
        }
        // A second delivery changes nothing.
        if let Some(again) = from_b.pop() {
            prop_assert_eq!(a.apply(again).unwrap(), Applied::Duplicate);
        }
        prop_assert_eq!(a.count().unwrap(), b.count().unwrap());
        for id in 0..6i64 {
            prop_assert_eq!(a.get(id).unwrap(), b.get(id).unwrap(), "id {}", id);
        }
        for t in 0..3 {
            let title = IndexValue::Str(format!("t{t}"));
            prop_assert_eq!(a.ids_where("title", &title).unwrap(), b.ids_where("title", &title).unwrap());
        }
        // And each is the greatest version of all.
        let all: Vec<Entry> = mine(&sa, &a);
        for id in 0..6i64 {
            let key = {
                let mut k = Vec::new();
                DocId::Int(id).encode_key(&mut k);
                k
            };
            let winner = all
                .iter()
                .filter(|e| e.meta()[1..] == key[..])
                .max_by_key(|e| (e.clock().to_key(), e.hash()));
            let want = winner.and_then(|e| {
                (e.meta()[0] == 1).then(|| postcard::from_bytes::<Post>(&e.payload().unwrap()).unwrap())
            });
            prop_assert_eq!(a.get(id).unwrap(), want, "id {}", id);
        }
    }
}

/// A replicated entry is verified before anything changes: another program's, a forged
/// signature, a meta that is no operation, a group not its document's — typed errors.
#[test]
fn bad_replicated_entries_are_typed_errors_and_change_nothing() {
    use starling_net::entry::{EntryFields, EntrySigner};
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut a = posts_by(store(da.path()), DocumentsOptions::default(), 1);
    let sb = store(db.path());
    let mut b = posts_by(sb.clone(), DocumentsOptions::default(), 2);
    let h = b.put("x", &post("t", 1)).unwrap();
    let good = stored(&sb, &[h]).remove(0);
    // Another log.
    let mut signer = EntrySigner::new(Keypair::generate(KeyType::Ed25519));
    let other = signer
        .sign_one(&EntryFields::new(
            starling_net::entry::LogId([9; 32]),
            0,
            0,
            Bytes::new(),
        ))
        .unwrap();
    assert!(matches!(a.apply(other), Err(DocumentError::WrongLog)));
    // Right log, meta no operation, group wrong.
    let log = a.log_id();
    let sign = |signer: &mut EntrySigner, meta: &[u8], group: [u8; 32]| {
        signer
            .sign_one(&EntryFields {
                meta,
                group,
                ..EntryFields::new(log, 0, starling_net::entry::unix_time_us(), Bytes::new())
            })
            .unwrap()
    };
    let mut id_key = vec![2u8];
    DocId::from("x").encode_key(&mut id_key);
    assert!(matches!(
        a.apply(sign(&mut signer, &[9, 1], DocId::from("x").group())),
        Err(DocumentError::BadMeta)
    ));
    assert!(matches!(
        a.apply(sign(&mut signer, &id_key, [0; 32])),
        Err(DocumentError::WrongGroup)
    ));
    // A flipped byte in the signed header: refused by its signature (or hash).
    let mut bytes = good.to_bytes().to_vec();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    if let Ok(forged) = Entry::from_bytes(Bytes::from(bytes)) {
        assert!(a.apply(forged).is_err());
    }
    // A clock more than 60 s ahead of ours (here: our clock 2 minutes behind).
    let behind = starling_net::entry::unix_time_us() - 120_000_000;
    assert!(matches!(
        a.apply_at(good.clone(), behind),
        Err(DocumentError::Clock(_))
    ));
    // A payload that is not a document of this type.
    let mut put_meta = vec![1u8];
    DocId::from("x").encode_key(&mut put_meta);
    let not_a_post = signer
        .sign_one(&EntryFields {
            meta: &put_meta,
            group: DocId::from("x").group(),
            ..EntryFields::new(
                log,
                1,
                starling_net::entry::unix_time_us(),
                Bytes::from_static(&[0xff; 3]),
            )
        })
        .unwrap();
    assert!(matches!(a.apply(not_a_post), Err(DocumentError::Codec(_))));
    assert_eq!(a.count().unwrap(), 0, "nothing changed");
    assert_eq!(a.apply(good).unwrap(), Applied::Current);
    assert_eq!(a.get("x").unwrap(), Some(post("t", 1)));
}

/// `can_perform`: a store only some keys may write refuses others' local changes before they
/// are signed, and their replicated entries after the signature checks — nothing stored.
#[test]
fn the_access_rule_refuses_other_writers_locally_and_when_replicated() {
    use starling_engine::documents::{AccessRule, Operation};
    let owner = Keypair::from_secret_bytes(KeyType::Ed25519, &[1; 32]).unwrap();
    let only_owner = DocumentsOptions {
        access: AccessRule::Writers(vec![*owner.public()]),
        ..DocumentsOptions::default()
    };
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut mine = posts_by(store(da.path()), only_owner.clone(), 1);
    let sb = store(db.path());
    // The stranger's own store lets anyone write; the owner's does not take its entries.
    let mut stranger = posts_by(sb.clone(), DocumentsOptions::default(), 2);
    let h = stranger.put("a", &post("spam", 1)).unwrap();
    let spam = stored(&sb, &[h]).remove(0);
    assert!(matches!(
        mine.apply(spam),
        Err(DocumentError::Denied {
            op: Operation::Put,
            ..
        })
    ));
    assert_eq!(mine.count().unwrap(), 0);
    mine.put("a", &post("mine", 1)).unwrap();
    // A store where the stranger is not a writer refuses it locally too.
    let dc = tempfile::tempdir().unwrap();
    let mut refused = posts_by(store(dc.path()), only_owner, 2);
    assert!(matches!(
        refused.put("a", &post("x", 1)),
        Err(DocumentError::Denied { .. })
    ));
    assert!(matches!(
        refused.delete("a"),
        Err(DocumentError::Denied { .. })
    ));
    // A hook decides per document and operation.
    let hook = DocumentsOptions {
        access: AccessRule::Custom(std::sync::Arc::new(|_, id, op, _| {
            op == Operation::Put && *id != DocId::from("locked")
        })),
        ..DocumentsOptions::default()
    };
    let dd = tempfile::tempdir().unwrap();
    let mut hooked = posts_by(store(dd.path()), hook, 3);
    hooked.put("open", &post("ok", 1)).unwrap();
    assert!(hooked.put("locked", &post("no", 1)).is_err());
    assert!(hooked.delete("open").is_err());
}

/// The index is derived: opened with another field list it is rebuilt from the log, and rows
/// lost or stale (a format row missing) are rebuilt exactly on the next open.
#[test]
fn the_index_is_rebuilt_from_the_log() {
    use starling_store::Table;
    let dir = tempfile::tempdir().unwrap();
    let s = store(dir.path());
    let mut docs = posts(s.clone(), DocumentsOptions::default());
    for i in 0..20i64 {
        docs.put(i, &post(&format!("t{}", i % 3), i % 5)).unwrap();
    }
    docs.put(3, &post("changed", 9)).unwrap();
    docs.delete(4).unwrap();
    let answers = |d: &Documents<Post>| {
        (
            d.count().unwrap(),
            d.ids_where("title", &IndexValue::Str("t1".into())).unwrap(),
            d.ids_where("likes", &IndexValue::Int(9)).unwrap(),
        )
    };
    let before = answers(&docs);
    let program = ProgramDefinition::new("documents/v1", "posts", Bytes::new())
        .unwrap()
        .address();
    drop(docs);
    // Lose every derived row.
    let mut wipe = s.batch();
    for table in [Table::Documents, Table::Index] {
        for row in s.rows(table, &program.0, false) {
            wipe.delete(table, &row.unwrap().0);
        }
    }
    wipe.commit().unwrap();
    let docs = posts(s.clone(), DocumentsOptions::default());
    assert_eq!(answers(&docs), before, "rebuilt from the log");
    assert_eq!(docs.get(3).unwrap(), Some(post("changed", 9)));
    assert_eq!(docs.get(4).unwrap(), None);
    drop(docs);
    // Another field list: rebuilt for it.
    let by_likes_only = Documents::<Post>::open(
        program,
        s.clone(),
        Keypair::from_secret_bytes(KeyType::Ed25519, &[5; 32]).unwrap(),
        Postcard,
        IndexSpec::new().field("likes", |p: &Post| IndexValue::Int(p.likes)),
        DocumentsOptions::default(),
    )
    .unwrap();
    assert_eq!(
        by_likes_only
            .ids_where("likes", &IndexValue::Int(9))
            .unwrap(),
        [DocId::Int(3)]
    );
    let rows = s.rows(Table::Index, &program.0, false).count();
    assert_eq!(rows, 19, "one row per live document and field, none stale");
}

/// A sharded store's point rows: every version of every document by ring point, split by span
/// exactly; pruning a span's entries removes their documents, index rows and point rows in one
/// go (count and queries follow) and leaves the rest; rebuilding from the log gives the same
/// rows; turning points on for a store rebuilds them.
#[test]
fn a_sharded_store_holds_entries_by_point_and_prunes_them_whole() {
    use starling_engine::documents::Filter;
    use starling_engine::documents::Query;
    use starling_engine::documents::held::item_hash;
    use starling_engine::shard::{Span, point_of};
    let dir = tempfile::tempdir().unwrap();
    let sharded = DocumentsOptions {
        replicas: Some(2),
        ..DocumentsOptions::default()
    };
    let mut docs = posts(store(dir.path()), sharded.clone());
    for i in 0..200 {
        docs.put(format!("p{i}"), &post("t", i)).unwrap();
    }
    for i in 0..50 {
        docs.put(format!("p{i}"), &post("again", i)).unwrap();
    }
    let all = docs.held_items(Span::ALL, 10_000).unwrap();
    assert_eq!(all.len(), 250, "every version");
    assert!(matches!(
        docs.held_items(Span::ALL, 100),
        Err(DocumentError::TooManyHeld { limit: 100 })
    ));
    let half = 1u64 << 63;
    let (lo, hi) = (
        Span {
            start: 0,
            end: Some(half),
        },
        Span {
            start: half,
            end: None,
        },
    );
    let (low, high) = (
        docs.held_items(lo, 10_000).unwrap(),
        docs.held_items(hi, 10_000).unwrap(),
    );
    assert_eq!(low.len() + high.len(), 250);
    // Parts of at most 40 entries that add up to the span; digests summed as rows stream by.
    let parts = docs.held_chunks(Span::ALL, 40).unwrap();
    assert!(parts.len() >= 6, "{}", parts.len());
    let mut joined = Vec::new();
    for p in &parts {
        let items = docs.held_items(*p, 10_000).unwrap();
        assert!(!items.is_empty() && items.len() <= 41, "{}", items.len());
        joined.extend(items);
    }
    assert_eq!(joined, all);
    assert_eq!(
        docs.held_digest(lo).unwrap(),
        starling_engine::documents::held::digest(&low)
    );
    assert_eq!(docs.held_first(Span::ALL, 3).unwrap(), all[..3]);
    let hashes: Vec<_> = low.iter().map(item_hash).collect();
    assert!(docs.holds(&hashes).unwrap().iter().all(|h| *h));
    let in_low = |i: i64| lo.contains(point_of(&DocId::from(format!("p{i}").as_str()).group()));
    let low_docs = (0..200).filter(|i| in_low(*i)).count() as u64;
    assert!(low_docs > 50 && low_docs < 150, "{low_docs}");

    assert_eq!(docs.prune(&hashes).unwrap(), low.len());
    assert!(docs.holds(&hashes).unwrap().iter().all(|h| !*h));
    assert_eq!(docs.count().unwrap(), 200 - low_docs);
    assert!(docs.held_items(lo, 10_000).unwrap().is_empty());
    assert_eq!(docs.held_items(hi, 10_000).unwrap(), high);
    for i in 0..200 {
        assert_eq!(
            docs.get(format!("p{i}")).unwrap().is_some(),
            !in_low(i),
            "p{i}"
        );
    }
    let liked = Query {
        filter: Filter::Ge("likes".into(), IndexValue::Int(0)),
        ..Query::default()
    };
    assert_eq!(docs.query(&liked).unwrap().len() as u64, 200 - low_docs);
    assert_eq!(docs.rebuild_index().unwrap(), 200 - low_docs);
    assert_eq!(docs.held_items(Span::ALL, 10_000).unwrap(), high);
    drop(docs);

    // A store without point rows gets them when it opens sharded.
    let dir = tempfile::tempdir().unwrap();
    let mut plain = posts(store(dir.path()), DocumentsOptions::default());
    plain.put("x", &post("x", 1)).unwrap();
    assert!(plain.held_items(Span::ALL, 10).unwrap().is_empty());
    drop(plain);
    let again = posts(store(dir.path()), sharded);
    assert_eq!(again.held_items(Span::ALL, 10).unwrap().len(), 1);
}
