//! Document stores between peers over real QUIC on 127.0.0.1: a write reaches every
//! replicator, a late replicator and one that was offline converge by reconciliation to the
//! same entries and answers, an observer reads remotely (verified), and writers the access rule
//! refuses are refused everywhere.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::{peer, until};
use serde::{Deserialize, Serialize};
use starling_engine::documents::keys::IndexValue;
use starling_engine::documents::{
    AccessRule, DocId, DocumentError, DocumentsOptions, Filter, IndexSpec, Postcard, Query,
    Replica, ReplicaOptions, Role, Sort,
};
use starling_engine::program::{ProgramAddress, ProgramDefinition};
use starling_engine::{Peer, PeerConfig};
use starling_net::{KeyType, Keypair};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Post {
    title: String,
    likes: i64,
}

fn post(i: i64) -> Post {
    Post {
        title: format!("post {i}"),
        likes: i % 10,
    }
}

fn program() -> ProgramAddress {
    ProgramDefinition::new("documents/v1", "posts", Bytes::new())
        .unwrap()
        .address()
}

fn index() -> IndexSpec<Post> {
    IndexSpec::new()
        .field("title", |p: &Post| IndexValue::Str(p.title.clone()))
        .field("likes", |p: &Post| IndexValue::Int(p.likes))
}

fn open(peer: &Peer, role: Role) -> Replica<Post> {
    open_with(peer, role, DocumentsOptions::default())
}

fn open_with(peer: &Peer, role: Role, options: DocumentsOptions) -> Replica<Post> {
    peer.open_documents(
        program(),
        Postcard,
        index(),
        options,
        ReplicaOptions {
            role,
            reconcile_every: Duration::from_millis(500),
            ..ReplicaOptions::default()
        },
    )
    .unwrap()
}

fn items(r: &Replica<Post>) -> Vec<[u8; 76]> {
    r.with_documents(|d| d.items().unwrap())
}

fn everything() -> Query {
    Query {
        sort: vec![Sort {
            field: "likes".into(),
            descending: true,
        }],
        ..Query::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_reaches_every_replicator_and_is_acknowledged() {
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    let writer = peer(&[&a]).await;
    let ra = open(&a, Role::Replicator);
    let rb = open(&b, Role::Replicator);
    let rw = open(&writer, Role::Observer);
    // The writer knows only `a`; `a`'s hello names `b`.
    assert!(rw.wait_for_replicators(2, Duration::from_secs(10)).await);
    let docs: Vec<(DocId, Post)> = (0..300).map(|i| (DocId::from(i), post(i))).collect();
    let hashes = rw
        .put_many(docs.iter().map(|(id, p)| (id.clone(), p)))
        .unwrap();
    assert!(
        rw.wait_for_replicas(&hashes, 2, Duration::from_secs(10))
            .await
    );
    assert_eq!(ra.count().unwrap(), 300);
    assert_eq!(rb.count().unwrap(), 300);
    assert_eq!(
        ra.query(&everything()).unwrap(),
        rb.query(&everything()).unwrap()
    );
    // A delete travels the same way.
    assert!(rw.delete(5).unwrap());
    until("the delete", || {
        ra.get(5).unwrap().is_none() && rb.get(5).unwrap().is_none()
    })
    .await;
    for p in [&a, &b, &writer] {
        p.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_replicator_and_an_offline_one_converge_by_reconciliation() {
    let a = peer(&[]).await;
    let ra = open(&a, Role::Replicator);
    let docs: Vec<(DocId, Post)> = (0..2000).map(|i| (DocId::from(i), post(i))).collect();
    ra.put_many(docs.iter().map(|(id, p)| (id.clone(), p)))
        .unwrap();
    // A fresh replicator joins: it gets everything from reconciliation alone.
    let dir = tempfile::tempdir().unwrap();
    let b = Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            bootstrap: vec![a.local_addr()],
            data_dir: Some(dir.path().to_path_buf()),
            ..PeerConfig::default()
        },
    )
    .await
    .unwrap();
    let key_b = b.peer_id();
    let rb = open(&b, Role::Replicator);
    until("the late replicator's copy", || rb.count().unwrap() == 2000).await;
    assert_eq!(items(&ra), items(&rb));
    assert!(rb.stats().reconciliations + ra.stats().reconciliations > 0);
    // `b` goes offline; both sides write meanwhile.
    drop(rb);
    b.close().await;
    drop(b);
    ra.put(5000, &post(5000)).unwrap();
    ra.put(1, &post(11)).unwrap();
    assert!(ra.delete(2).unwrap());
    let b = Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            data_dir: Some(dir.path().to_path_buf()),
            ..PeerConfig::default()
        },
    )
    .await
    .unwrap();
    assert_ne!(b.peer_id(), key_b);
    let rb = open(&b, Role::Replicator);
    assert_eq!(rb.count().unwrap(), 2000, "its copy survived the restart");
    rb.put(6000, &post(6000)).unwrap();
    // Back online: each gets what the other wrote.
    b.connect(a.local_addr()).await.unwrap();
    until("both copies equal", || items(&ra) == items(&rb)).await;
    assert_eq!(ra.count().unwrap(), 2001);
    assert_eq!(rb.get(1).unwrap(), Some(post(11)));
    assert_eq!(ra.get(6000).unwrap(), Some(post(6000)));
    assert_eq!(rb.get(2).unwrap(), None);
    assert_eq!(
        ra.query(&everything()).unwrap(),
        rb.query(&everything()).unwrap()
    );
    a.close().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_observer_queries_and_gets_remotely() {
    let a = peer(&[]).await;
    let o = peer(&[&a]).await;
    let ra = open(&a, Role::Replicator);
    let docs: Vec<(DocId, Post)> = (0..500).map(|i| (DocId::from(i), post(i))).collect();
    ra.put_many(docs.iter().map(|(id, p)| (id.clone(), p)))
        .unwrap();
    let ro = open(&o, Role::Observer);
    assert!(ro.wait_for_replicators(1, Duration::from_secs(10)).await);
    assert_eq!(
        ro.count().unwrap(),
        0,
        "an observer holds only its own writes"
    );
    let q = Query {
        filter: Filter::Eq("likes".into(), IndexValue::Int(7)),
        sort: vec![Sort {
            field: "title".into(),
            descending: true,
        }],
        limit: Some(10),
    };
    let remote = ro.query_remote(&q, Duration::from_secs(10)).await.unwrap();
    assert_eq!(remote, ra.query(&q).unwrap());
    assert_eq!(remote.len(), 10);
    assert_eq!(
        ro.get_remote(42, Duration::from_secs(10)).await.unwrap(),
        Some(post(42))
    );
    assert_eq!(
        ro.get_remote(9999, Duration::from_secs(10)).await.unwrap(),
        None
    );
    a.close().await;
    o.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_the_access_rule_refuses_are_refused_by_replicators() {
    let a = peer(&[]).await;
    let allowed = peer(&[&a]).await;
    let intruder = peer(&[&a]).await;
    let rule = DocumentsOptions {
        access: AccessRule::Writers(vec![allowed.public_key()]),
        ..DocumentsOptions::default()
    };
    let ra = open_with(&a, Role::Replicator, rule.clone());
    let rw = open_with(&allowed, Role::Observer, rule);
    // The intruder's own store lets it write (its rule says anyone); the replicator's does not.
    let ri = open(&intruder, Role::Observer);
    assert!(rw.wait_for_replicators(1, Duration::from_secs(10)).await);
    assert!(ri.wait_for_replicators(1, Duration::from_secs(10)).await);
    let bad = ri.put("x", &post(1)).unwrap();
    let good = rw.put("y", &post(2)).unwrap();
    assert!(
        rw.wait_for_replicas(&[good], 1, Duration::from_secs(10))
            .await
    );
    until("the refusal", || ra.stats().rejected >= 1).await;
    assert!(
        !ri.wait_for_replicas(&[bad], 1, Duration::from_millis(300))
            .await
    );
    assert_eq!(ra.get("x").unwrap(), None);
    assert_eq!(ra.get("y").unwrap(), Some(post(2)));
    // Opening the same program twice on one peer is refused.
    assert!(matches!(
        a.open_documents(
            program(),
            Postcard,
            index(),
            DocumentsOptions::default(),
            ReplicaOptions::default()
        ),
        Err(starling_engine::PeerError::AlreadyOpen(_))
    ));
    // And asking with no replicator known is a typed error.
    let lonely = peer(&[]).await;
    let rl = open(&lonely, Role::Observer);
    assert!(matches!(
        rl.query_remote(&Query::default(), Duration::from_secs(1))
            .await,
        Err(DocumentError::NoReplicator)
    ));
    for p in [&a, &allowed, &intruder, &lonely] {
        p.close().await;
    }
}

/// Garbage on the documents protocol is counted and dropped; the replica goes on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_messages_change_nothing() {
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    let ra = open(&a, Role::Replicator);
    let rb = open(&b, Role::Replicator);
    until("b met", || ra.replicators().len() == 1).await;
    let link = b.overlay().link(a.peer_id()).await.unwrap();
    let mut junk = starling_engine::Protocol::DOCUMENTS.message(64).to_vec();
    junk.extend_from_slice(&program().0);
    for tail in [
        &[2u8, 1, 0xff, 0xff, 0xff][..],
        &[4, 9, 9],
        &[99],
        &[6, 0, 0],
    ] {
        let mut m = junk.clone();
        m.extend_from_slice(tail);
        link.send(Bytes::from(m)).await.unwrap();
    }
    until("four malformed", || ra.stats().malformed >= 4).await;
    rb.put("after", &post(1)).unwrap();
    until("a later good write", || ra.get("after").unwrap().is_some()).await;
    a.close().await;
    b.close().await;
}

/// A closing reconciliation turn ("the sets are equal") counts only when it closes an
/// exchange the replica started: one from a peer it never reconciled with is ignored, so a
/// stranger cannot make it believe it is in sync (what a trust graph's "caught up" rests on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unsolicited_closing_turn_settles_nothing() {
    use starling_engine::documents::replica::wire::Wire;
    use starling_engine::reconcile::Message;
    let a = peer(&[]).await;
    let stranger = peer(&[&a]).await;
    let ra = open(&a, Role::Replicator);
    // The stranger opens no replica: `a` never starts an exchange with it.
    let link = stranger.overlay().link(a.peer_id()).await.unwrap();
    for salt in [0, 1, u64::MAX] {
        let turn = Wire::Reconcile(Message::settled(salt).encode()).encode(&program());
        link.send(turn).await.unwrap();
    }
    until("three turns heard", || ra.stats().reconcile_received >= 3).await;
    assert_eq!(ra.stats().reconcile_settled, 0);
    a.close().await;
    stranger.close().await;
}

/// A JSON store opened by address on a second peer (its definition fetched and checked), and
/// again after a restart with no peer to ask (the definition was stored).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_json_store_opens_by_address_anywhere_and_after_a_restart() {
    use starling_engine::documents::json::json_id;
    use starling_engine::documents::{DocumentsParams, json::parse_filter};
    let a = peer(&[]).await;
    let params = DocumentsParams {
        json_id_field: Some("id".into()),
        ..DocumentsParams::default()
    };
    let address = a.define(params.definition("posts").unwrap());
    let wait = Duration::from_secs(10);
    let (ra, _) = a
        .open_json(address, ReplicaOptions::default(), wait)
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |bootstrap: Vec<std::net::SocketAddr>| PeerConfig {
        bootstrap,
        data_dir: Some(dir.path().to_path_buf()),
        ..PeerConfig::default()
    };
    let b = Peer::start(
        Keypair::generate(KeyType::Ed25519),
        config(vec![a.local_addr()]),
    )
    .await
    .unwrap();
    let (rb, got) = b
        .open_json(address, ReplicaOptions::default(), wait)
        .await
        .unwrap();
    assert_eq!(got, params);
    let doc = serde_json::json!({"id": "p1", "title": "hello", "tags": ["a", "b"]});
    ra.put(json_id(&doc, "id").unwrap(), &doc).unwrap();
    until("the JSON document", || rb.get("p1").unwrap().is_some()).await;
    let q = Query {
        filter: parse_filter("tags = \"b\" and title ^= \"he\"").unwrap(),
        ..Query::default()
    };
    assert_eq!(rb.query(&q).unwrap().len(), 1);
    drop(rb);
    b.close().await;
    drop(b);
    let b = Peer::start(Keypair::generate(KeyType::Ed25519), config(Vec::new()))
        .await
        .unwrap();
    let (rb, _) = b
        .open_json(
            address,
            ReplicaOptions::default(),
            Duration::from_millis(100),
        )
        .await
        .unwrap();
    assert_eq!(rb.get("p1").unwrap(), Some(doc));
    // A typed store is not a JSON store, and an unknown address is a typed error.
    let typed = a.define(DocumentsParams::default().definition("typed").unwrap());
    assert!(
        a.open_json(typed, ReplicaOptions::default(), wait)
            .await
            .is_err()
    );
    let unknown = DocumentsParams::default()
        .definition("nobody")
        .unwrap()
        .address();
    assert!(matches!(
        b.open_json(
            unknown,
            ReplicaOptions::default(),
            Duration::from_millis(300)
        )
        .await,
        Err(starling_engine::PeerError::DefinitionNotFound(_))
    ));
    a.close().await;
    b.close().await;
}

/// A writer that met the store before a replicator joined still learns of it (the replicator
/// it knows announces newcomers), and its later writes reach both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_learns_of_a_replicator_that_joined_after_it() {
    let a = peer(&[]).await;
    let writer = peer(&[&a]).await;
    let _ra = open(&a, Role::Replicator);
    let rw = open(&writer, Role::Observer);
    assert!(rw.wait_for_replicators(1, Duration::from_secs(10)).await);
    let b = peer(&[&a]).await;
    let rb = open(&b, Role::Replicator);
    assert!(rw.wait_for_replicators(2, Duration::from_secs(10)).await);
    let h = rw.put("late", &post(1)).unwrap();
    assert!(rw.wait_for_replicas(&[h], 2, Duration::from_secs(10)).await);
    assert_eq!(rb.get("late").unwrap(), Some(post(1)));
    for p in [&a, &b, &writer] {
        p.close().await;
    }
}
