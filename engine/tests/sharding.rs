//! A sharded document store between peers over real QUIC on 127.0.0.1: writes land on the
//! keepers of each document's ring point (two of four replicators), searches across shards
//! equal a full copy's answer (sort and limit exact), a crashed replicator's documents return
//! to two live holders, a newcomer fetches its share before it counts and the old holders
//! prune only what it confirmed holding.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common::peer;
use serde::{Deserialize, Serialize};
use starling_engine::Peer;
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    DocId, DocumentsOptions, Filter, IndexSpec, Postcard, Query, Replica, ReplicaOptions, Role,
    Sort,
};
use starling_engine::program::{ProgramAddress, ProgramDefinition};
use starling_engine::shard::Range;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
    likes: i64,
}

fn post(i: i64) -> Post {
    Post {
        title: format!("post {i}"),
        likes: i % 37,
    }
}

fn program() -> ProgramAddress {
    ProgramDefinition::new("documents/v1", "sharded posts", Bytes::new())
        .unwrap()
        .address()
}

fn index() -> IndexSpec<Post> {
    IndexSpec::new()
        .field("title", |p: &Post| IndexValue::Str(p.title.clone()))
        .field("likes", |p: &Post| IndexValue::Int(p.likes))
}

const MIN: u8 = 2;

fn open(peer: &Peer, role: Role, ranges: Option<Vec<Range>>) -> Replica<Post> {
    peer.open_documents(
        program(),
        Postcard,
        index(),
        DocumentsOptions {
            replicas: Some(MIN),
            ..DocumentsOptions::default()
        },
        ReplicaOptions {
            role,
            reconcile_every: Duration::from_millis(500),
            ranges,
            ..ReplicaOptions::default()
        },
    )
    .unwrap()
}

/// The `i`th of `n` even ranges.
fn even(i: u64, n: u64) -> Vec<Range> {
    let w = u64::MAX / n;
    vec![Range {
        offset: i * w,
        width: w,
    }]
}

/// Waits until `cond` holds (checked every 100 ms), up to `secs`.
async fn until(what: &str, secs: u64, mut cond: impl FnMut() -> bool) {
    for _ in 0..secs * 10 {
        if cond() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

/// How many of `replicas` hold each of the `ids` (live document here).
fn holders(replicas: &[&Replica<Post>], ids: &[String]) -> BTreeMap<String, usize> {
    ids.iter()
        .map(|id| {
            let n = replicas
                .iter()
                .filter(|r| r.get(id.as_str()).unwrap().is_some())
                .count();
            (id.clone(), n)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sharded_store_keeps_two_copies_through_a_crash_and_a_join() {
    let wait = Duration::from_secs(20);
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    let c = peer(&[&a]).await;
    let d = peer(&[&a]).await;
    let w = peer(&[&a]).await;
    let (ra, rb, rc, rd) = (
        open(&a, Role::Replicator, Some(even(0, 4))),
        open(&b, Role::Replicator, Some(even(1, 4))),
        open(&c, Role::Replicator, Some(even(2, 4))),
        open(&d, Role::Replicator, Some(even(3, 4))),
    );
    let writer = open(&w, Role::Observer, None);
    for r in [&ra, &rb, &rc, &rd] {
        assert!(
            r.wait_ready(wait).await,
            "a fresh store has nothing to fetch"
        );
    }
    assert!(writer.wait_for_replicators(4, wait).await);
    until("the writer to know every range", 20, || {
        writer
            .shard_status()
            .is_some_and(|s| s.members >= 4 && s.coverage > 0.999)
    })
    .await;

    let n = 400i64;
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let mut hashes = Vec::new();
    for chunk in (0..n).collect::<Vec<_>>().chunks(100) {
        let docs: Vec<(DocId, Post)> = chunk
            .iter()
            .map(|&i| (DocId::from(format!("p{i}").as_str()), post(i)))
            .collect();
        hashes.extend(
            writer
                .put_many(docs.iter().map(|(id, p)| (id.clone(), p)))
                .unwrap(),
        );
    }
    assert!(
        writer
            .wait_for_replicas(&hashes, usize::from(MIN), wait)
            .await,
        "every write acknowledged by its two keepers"
    );
    let all = [&ra, &rb, &rc, &rd];
    let held = holders(&all, &ids);
    assert!(held.values().all(|&h| h >= 2), "two copies each: {held:?}");
    // A write made while the writer still took a replicator for not ready went to its
    // keepers in both placements: the extra copy is pruned once confirmed.
    until("exactly two copies each", 30, || {
        holders(&all, &ids).values().all(|&h| h == 2)
    })
    .await;
    for r in all {
        let count = r.count().unwrap();
        assert!((120..=280).contains(&count), "about half each: {count}");
    }

    // A search across shards equals the full answer (filter, sort, limit exact).
    let reference: Vec<(i64, String)> = {
        let mut v: Vec<(i64, String)> = (0..n)
            .filter(|i| i % 37 >= 30)
            .map(|i| (i % 37, format!("p{i}")))
            .collect();
        v.sort_by(|x, y| y.0.cmp(&x.0).then(x.1.cmp(&y.1)));
        v.truncate(25);
        v
    };
    let query = Query {
        filter: Filter::Ge("likes".into(), IndexValue::Int(30)),
        sort: vec![Sort {
            field: "likes".into(),
            descending: true,
        }],
        limit: Some(25),
    };
    let found = writer.search(&query, wait).await.unwrap();
    assert!(found.unanswered.is_empty());
    let got: Vec<(i64, String)> = found
        .documents
        .iter()
        .map(|(id, p)| match id {
            DocId::Str(s) => (p.likes, s.clone()),
            other => panic!("unexpected id {other:?}"),
        })
        .collect();
    assert_eq!(got, reference);
    assert_eq!(writer.get_remote("p7", wait).await.unwrap(), Some(post(7)));

    // D crashes: its documents return to two live holders among A, B, C.
    d.close().await;
    drop(rd);
    let live = [&ra, &rb, &rc];
    until(
        "two live copies of every document after the crash",
        40,
        || holders(&live, &ids).values().all(|&h| h >= 2),
    )
    .await;
    // A search while D is gone: every part answered by a live holder, nothing missing.
    let found = writer.search(&query, wait).await.unwrap();
    assert!(found.unanswered.is_empty(), "{:?}", found.unanswered);
    assert_eq!(found.documents.len(), 25);

    // E joins (choosing its own range): it fetches its share before it counts, and the old
    // holders prune what E confirmed holding, back to two copies in all.
    let e = peer(&[&a]).await;
    let re = open(&e, Role::Replicator, None);
    assert!(re.wait_ready(Duration::from_secs(40)).await, "E ready");
    let ranges = re.shard_status().unwrap().ranges;
    assert_eq!(ranges.len(), 1);
    let five = [&ra, &rb, &rc, &re];
    until("back to exactly two copies after E joined", 40, || {
        holders(&five, &ids).values().all(|&h| h == 2)
    })
    .await;
    assert!(re.count().unwrap() > 0);
    let pruned: u64 = [&ra, &rb, &rc].iter().map(|r| r.stats().pruned).sum();
    assert!(pruned > 0, "old holders pruned what E holds now");
    let found = writer.search(&query, wait).await.unwrap();
    assert_eq!(found.documents.len(), 25);
    for p in [&a, &b, &c, &e, &w] {
        p.close().await;
    }
}

/// A replicator leaving on purpose hands its documents off before it goes: the others fetch
/// from it while it still counts as a holder, it deletes each document only once the new
/// holders confirmed it, it ends holding nothing, and searches never miss a document meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_leaving_replicator_hands_off_before_it_goes() {
    let wait = Duration::from_secs(20);
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    let c = peer(&[&a]).await;
    let w = peer(&[&a]).await;
    let (ra, rb, rc) = (
        open(&a, Role::Replicator, Some(even(0, 3))),
        open(&b, Role::Replicator, Some(even(1, 3))),
        open(&c, Role::Replicator, Some(even(2, 3))),
    );
    let writer = open(&w, Role::Observer, None);
    for r in [&ra, &rb, &rc] {
        assert!(r.wait_ready(wait).await);
    }
    until("the writer to know every range", 20, || {
        writer
            .shard_status()
            .is_some_and(|s| s.members >= 3 && s.coverage > 0.999)
    })
    .await;
    let n = 150i64;
    let ids: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
    let docs: Vec<(DocId, Post)> = (0..n)
        .map(|i| (DocId::from(format!("p{i}").as_str()), post(i)))
        .collect();
    let hashes = writer
        .put_many(docs.iter().map(|(id, p)| (id.clone(), p)))
        .unwrap();
    assert!(writer.wait_for_replicas(&hashes, 2, wait).await);
    // Two acknowledgements came first; the third keeper's copy may still be on its way.
    until("C to hold its share", 20, || rc.count().unwrap() > 0).await;

    let everything = Query {
        filter: Filter::All,
        ..Query::default()
    };
    let leaving = {
        let rc = rc.clone();
        tokio::spawn(async move { rc.leave(Duration::from_secs(40)).await })
    };
    // Searches while C hands off find every document.
    for _ in 0..5 {
        let found = writer.search(&everything, wait).await.unwrap();
        assert!(found.unanswered.is_empty(), "{:?}", found.unanswered);
        assert_eq!(found.documents.len(), n as usize);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(leaving.await.unwrap().unwrap(), "C handed everything off");
    assert_eq!(rc.count().unwrap(), 0);
    assert!(rc.stats().pruned > 0);
    let held = holders(&[&ra, &rb], &ids);
    assert!(held.values().all(|&h| h == 2), "{held:?}");
    let found = writer.search(&everything, wait).await.unwrap();
    assert_eq!(found.documents.len(), n as usize);
    for p in [&a, &b, &c, &w] {
        p.close().await;
    }
}

/// Encrypted documents in a sharded store: the keepers cannot read them, yet answer each
/// shard's part of a search from the published index values, for the asker's key — a reader
/// gets the documents encrypted to it (and the plain ones), never the writer's private ones,
/// and a limit counts only what it opens; the writer, a receiver of all, gets them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shards_answer_searches_on_encrypted_documents_for_the_asker() {
    let wait = Duration::from_secs(20);
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    let c = peer(&[&a]).await;
    let w = peer(&[&a]).await;
    let o = peer(&[&a]).await;
    let replicas = [
        open(&a, Role::Replicator, Some(even(0, 3))),
        open(&b, Role::Replicator, Some(even(1, 3))),
        open(&c, Role::Replicator, Some(even(2, 3))),
    ];
    let (writer, reader) = (
        open(&w, Role::Observer, None),
        open(&o, Role::Observer, None),
    );
    for r in &replicas {
        assert!(r.wait_ready(wait).await);
    }
    for who in [&writer, &reader] {
        until("every range known", 20, || {
            who.shard_status()
                .is_some_and(|s| s.members >= 3 && s.coverage > 0.999)
        })
        .await;
    }
    // p0..p59: a third for the reader, a third the writer's alone, a third plain.
    let mut hashes = Vec::new();
    for i in 0..60i64 {
        let id = format!("p{i}");
        let hash = match i % 3 {
            0 => writer.put_encrypted(id.as_str(), &post(i), &[o.public_key()]),
            1 => writer.put_encrypted(id.as_str(), &post(i), &[]),
            _ => writer.put(id.as_str(), &post(i)),
        };
        hashes.push(hash.unwrap());
    }
    assert!(writer.wait_for_replicas(&hashes, 2, wait).await);
    let by_title = |limit| Query {
        filter: Filter::All,
        sort: vec![Sort {
            field: "title".into(),
            descending: false,
        }],
        limit,
    };
    let titles = |found: &[(DocId, Post)]| -> Vec<String> {
        found.iter().map(|(_, p)| p.title.clone()).collect()
    };
    let mine: Vec<String> = {
        let mut t: Vec<String> = (0..60)
            .filter(|i| i % 3 != 1)
            .map(|i| format!("post {i}"))
            .collect();
        t.sort();
        t
    };
    let found = reader.search(&by_title(None), wait).await.unwrap();
    assert!(found.unanswered.is_empty(), "{:?}", found.unanswered);
    assert_eq!(titles(&found.documents), mine);
    let first = reader.search(&by_title(Some(5)), wait).await.unwrap();
    assert_eq!(titles(&first.documents), mine[..5]);
    let all = writer.search(&by_title(None), wait).await.unwrap();
    assert_eq!(all.documents.len(), 60);
    // The keepers hold encrypted documents they cannot read.
    for r in &replicas {
        assert!(r.with_documents(|d| d.unreadable().unwrap()) > 0);
    }
    for p in [&a, &b, &c, &w, &o] {
        p.close().await;
    }
}
