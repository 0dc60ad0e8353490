//! Trust graphs over real QUIC on 127.0.0.1: a second device writes through a delegation
//! into a store whose writers are a graph's; a revoked key's later writes are refused
//! everywhere while its earlier ones stand — also when the revocation reaches a replicator
//! after the write did; a key nobody delegated is refused; a newcomer catching up says so.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

mod common;

use std::time::Duration;

use common::{peer, until};
use serde_json::json;
use starling_engine::Peer;
use starling_engine::documents::json::Json;
use starling_engine::documents::{
    DocumentError, DocumentsParams, Replica, ReplicaOptions, Role, Writers,
};
use starling_engine::program::ProgramAddress;
use starling_engine::trust::{Delegation, Trust, Verdict};

fn store_of(root: &Peer, graph: ProgramAddress) -> ProgramAddress {
    let params = DocumentsParams {
        writers: Writers::Trusted(graph.0.to_vec()),
        json_id_field: Some("id".into()),
        ..DocumentsParams::default()
    };
    root.define(params.definition("team notes").unwrap())
}

async fn open(p: &Peer, address: ProgramAddress, role: Role) -> Replica<serde_json::Value, Json> {
    let options = ReplicaOptions {
        role,
        reconcile_every: Duration::from_millis(300),
        ..ReplicaOptions::default()
    };
    p.open_json(address, options, Duration::from_secs(10))
        .await
        .unwrap()
        .0
}

/// `device`'s copy of the graph, once caught up and trusting `device` (any scope).
async fn learns_its_delegation(device: &Peer, graph: ProgramAddress) -> Trust {
    let trust = device.open_trust(graph, Duration::ZERO).await.unwrap();
    assert!(trust.wait_caught_up(Duration::from_secs(10)).await);
    until("the device learns its delegation", || {
        trust
            .is_trusted(&device.public_key(), starling_net::entry::unix_time_us())
            .is_trusted()
    })
    .await;
    trust
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_device_writes_through_a_delegation_until_revoked() {
    let root = peer(&[]).await;
    let laptop = peer(&[&root]).await;
    let stranger = peer(&[&root]).await;
    let graph = root.create_trust("alice's devices").unwrap();
    let trust = root.open_trust(graph, Duration::ZERO).await.unwrap();
    trust
        .delegate(&laptop.public_key(), Delegation::default())
        .unwrap();
    let address = store_of(&root, graph);
    let at_root = open(&root, address, Role::Replicator).await;
    // The laptop fetches both definitions by address and replicates the graph.
    let at_laptop = open(&laptop, address, Role::Replicator).await;
    let laptop_trust = learns_its_delegation(&laptop, graph).await;
    let before = at_laptop
        .put("n1", &json!({"id": "n1", "t": "from the laptop"}))
        .unwrap();
    until("the root holds the laptop's note", || {
        at_root.get("n1").unwrap().is_some()
    })
    .await;
    // A key nobody delegated: refused before signing, and refused by replicators.
    let at_stranger = open(&stranger, address, Role::Replicator).await;
    let stranger_trust = stranger.open_trust(graph, Duration::ZERO).await.unwrap();
    assert!(stranger_trust.wait_caught_up(Duration::from_secs(10)).await);
    assert!(matches!(
        at_stranger.put("s1", &json!({"id": "s1"})),
        Err(DocumentError::Denied { .. })
    ));
    assert_eq!(
        stranger_trust.is_trusted(&stranger.public_key(), starling_net::entry::unix_time_us()),
        Verdict::NotTrusted
    );
    // The root revokes the laptop: its later writes are refused everywhere, the earlier one
    // stands.
    trust.revoke(&laptop.public_key()).unwrap();
    until("the laptop learns of its revocation", || {
        !laptop_trust
            .is_trusted(&laptop.public_key(), starling_net::entry::unix_time_us())
            .is_trusted()
    })
    .await;
    assert!(matches!(
        at_laptop.put("n2", &json!({"id": "n2"})),
        Err(DocumentError::Denied { .. })
    ));
    assert!(at_root.get("n1").unwrap().is_some());
    assert!(at_laptop.get("n1").unwrap().is_some());
    assert!(
        at_root
            .with_documents(|d| d.entry(&before).unwrap())
            .is_some()
    );
}

/// A delegation's scopes name the programs it is good for: a store asks for its own name, so
/// a key delegated for another store only is refused before it signs (replicators ask the
/// same question of what they receive), while one delegated for this store writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_delegation_writes_only_the_stores_it_names() {
    let root = peer(&[]).await;
    let phone = peer(&[&root]).await;
    let watch = peer(&[&root]).await;
    let graph = root.create_trust("alice's devices").unwrap();
    let trust = root.open_trust(graph, Duration::ZERO).await.unwrap();
    let scoped = |scope: &str| Delegation {
        scopes: vec![scope.to_string()],
        ..Delegation::default()
    };
    let narrowed = trust.narrowed();
    trust
        .delegate(&phone.public_key(), scoped("team notes"))
        .unwrap();
    trust
        .delegate(&watch.public_key(), scoped("heart rate"))
        .unwrap();
    // Delegations only add trust: stores following the graph need not re-check.
    assert!(!narrowed.has_changed().unwrap());
    let address = store_of(&root, graph);
    let at_root = open(&root, address, Role::Replicator).await;
    for (device, allowed) in [(&phone, true), (&watch, false)] {
        let at_device = open(device, address, Role::Replicator).await;
        learns_its_delegation(device, graph).await;
        let id = device.peer_id().to_string();
        let put = at_device.put(id.as_str(), &json!({"id": id, "t": "hello"}));
        assert_eq!(put.is_ok(), allowed, "{put:?}");
        if allowed {
            until("the root holds the phone's note", || {
                at_root.get(id.as_str()).unwrap().is_some()
            })
            .await;
        } else {
            assert!(matches!(put, Err(DocumentError::Denied { .. })));
        }
    }
    // The graph itself answers per scope.
    let now = starling_net::entry::unix_time_us();
    let check = |scope| {
        trust
            .check(&watch.public_key(), now, Some(scope))
            .is_trusted()
    };
    assert!(check("heart rate") && !check("team notes"));
    // A revocation may narrow it: they re-check.
    trust.revoke(&watch.public_key()).unwrap();
    assert!(narrowed.has_changed().unwrap());
}

/// The revocation's clock is earlier than a write the revoked key made, but one replicator
/// got the write first: once the revocation arrives it removes the write, as the replicator
/// that got the revocation first refused it. Both end the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_concurrent_with_its_revocation_is_decided_the_same_everywhere() {
    let root = peer(&[]).await;
    let phone = peer(&[&root]).await;
    let graph = root.create_trust("bob's devices").unwrap();
    let trust = root.open_trust(graph, Duration::ZERO).await.unwrap();
    trust
        .delegate(&phone.public_key(), Delegation::default())
        .unwrap();
    let address = store_of(&root, graph);
    let at_root = open(&root, address, Role::Replicator).await;
    let at_phone = open(&phone, address, Role::Replicator).await;
    let phone_trust = phone.open_trust(graph, Duration::ZERO).await.unwrap();
    until("the phone learns its delegation", || {
        phone_trust
            .is_trusted(&phone.public_key(), starling_net::entry::unix_time_us())
            .is_trusted()
    })
    .await;
    // The root signs the revocation first; the phone, not knowing, writes after it.
    trust.revoke(&phone.public_key()).unwrap();
    let late = at_phone.put("late", &json!({"id": "late"}));
    // Either the phone already knew (refused at once) or it wrote: then the root refuses
    // the entry, and the phone removes it once the revocation reaches it.
    if late.is_ok() {
        until("the phone removes its own late write", || {
            at_phone.get("late").unwrap().is_none()
        })
        .await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(at_root.get("late").unwrap().is_none());
    assert!(at_phone.get("late").unwrap().is_none());
}

/// The race without a network, step by step: replicator X takes a write the key signed
/// after its revocation (X had not heard of it), replicator Y hears of the revocation first
/// and refuses the write; when X hears of it, X removes the write. Both agree, and the key's
/// write from before the revocation stands on both.
#[test]
fn a_late_revocation_removes_what_it_refuses_and_keeps_what_came_before() {
    use std::sync::{Arc, RwLock};

    use bytes::Bytes;
    use starling_engine::documents::{
        AccessRule, Documents, DocumentsOptions, IndexSpec, Postcard,
    };
    use starling_engine::program::ProgramDefinition;
    use starling_engine::trust::{Statement, TrustGraph};
    use starling_net::{KeyType, Keypair};

    let root = Keypair::generate(KeyType::Ed25519);
    let device = Keypair::generate(KeyType::Ed25519);
    let program = ProgramDefinition::new("documents/v1", "race", Bytes::new())
        .unwrap()
        .address();
    let delegate = Statement::Delegate {
        subject: device.public().encode_protobuf(),
        scopes: Vec::new(),
        expires_us: None,
        may_delegate: false,
    };
    let revoke = Statement::Revoke {
        subject: device.public().encode_protobuf(),
    };
    let open = |dir: &std::path::Path, key: &Keypair, graph: Arc<RwLock<TrustGraph>>| {
        let hook: starling_engine::documents::TrustHook =
            Arc::new(move |k, at| graph.read().unwrap().verdict(k, at, None, true));
        Documents::<String>::open(
            program,
            common::store(dir),
            key.clone(),
            Postcard,
            IndexSpec::new(),
            DocumentsOptions {
                access: AccessRule::Trusted(hook),
                ..DocumentsOptions::default()
            },
        )
        .unwrap()
    };
    let now = starling_net::entry::unix_time_us();
    let graph = || {
        let mut g = TrustGraph::new(*root.public());
        g.insert(
            *root.public(),
            (now - 10_000_000, 0, [1; 32]),
            delegate.clone(),
        );
        Arc::new(RwLock::new(g))
    };
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let (gd, gx, gy) = (graph(), graph(), graph());
    let mut at_device = open(dirs[0].path(), &device, gd);
    let early = at_device
        .put_at("early".into(), &"before".to_string(), now - 5_000_000)
        .unwrap();
    let late = at_device
        .put_at("late".into(), &"after".to_string(), now)
        .unwrap();
    let entries: Vec<_> = [early, late]
        .iter()
        .map(|h| at_device.entry(h).unwrap().unwrap())
        .collect();
    // The root revoked the device one second before its late write.
    let revocation = (now - 1_000_000, 0, [2; 32]);
    gy.write()
        .unwrap()
        .insert(*root.public(), revocation, revoke.clone());
    let mut x = open(dirs[1].path(), &root, gx.clone());
    let mut y = open(dirs[2].path(), &root, gy);
    for r in x.apply_many_at(entries.clone(), now) {
        r.unwrap();
    }
    let at_y = y.apply_many_at(entries, now);
    assert!(at_y[0].is_ok());
    assert!(matches!(at_y[1], Err(DocumentError::Denied { .. })));
    assert_eq!(x.count().unwrap(), 2);
    // X hears of the revocation.
    gx.write()
        .unwrap()
        .insert(*root.public(), revocation, revoke);
    assert_eq!(x.recheck_access().unwrap(), 1);
    for docs in [&x, &y] {
        assert_eq!(docs.count().unwrap(), 1);
        assert_eq!(docs.get("early").unwrap().as_deref(), Some("before"));
        assert_eq!(docs.get("late").unwrap(), None);
        assert_eq!(docs.items().unwrap().len(), 1);
    }
}

/// A stream of Alice's published from her laptop (a delegated device): a viewer that follows
/// her graph plays it; a device she never delegated is refused when it publishes and its
/// forged frames are dropped; once she revokes the laptop, its later frames are refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_published_by_a_delegated_device_plays_until_revoked() {
    use bytes::Bytes;
    use starling_engine::log::{Log, LogConfig};
    use starling_engine::{
        MediaFrame, PeerConfig, PeerError, PublishOptions, StreamError, SubscribeOptions,
    };
    use starling_net::{KeyType, Keypair};

    let alice = peer(&[]).await;
    let laptop = peer(&[&alice]).await;
    let viewer = peer(&[&alice]).await;
    let mallory_key = Keypair::generate(KeyType::Ed25519);
    let mallory = Peer::start(
        mallory_key.clone(),
        PeerConfig {
            bootstrap: vec![alice.local_addr()],
            ..PeerConfig::default()
        },
    )
    .await
    .unwrap();
    let graph = alice.create_trust("alice's devices").unwrap();
    let trust = alice.open_trust(graph, Duration::ZERO).await.unwrap();
    trust
        .delegate(&laptop.public_key(), Delegation::default())
        .unwrap();
    let cam = alice.stream_address("cam").unwrap();
    let now = starling_net::entry::unix_time_us;

    let follow = |p: &Peer| {
        let p = p.clone();
        async move {
            let t = p.open_trust(graph, Duration::from_secs(10)).await.unwrap();
            assert!(t.wait_caught_up(Duration::from_secs(10)).await);
            t
        }
    };
    let laptop_trust = follow(&laptop).await;
    until("the laptop learns its delegation", || {
        laptop_trust
            .is_trusted(&laptop.public_key(), now())
            .is_trusted()
    })
    .await;
    let mut publisher = laptop
        .publish_delegated(&cam, &laptop_trust, PublishOptions::default())
        .unwrap();
    // Mallory follows the graph too, but nobody delegated her key.
    let mallory_trust = follow(&mallory).await;
    assert!(matches!(
        mallory.publish_delegated(&cam, &mallory_trust, PublishOptions::default()),
        Err(PeerError::Stream(StreamError::NotDelegated { .. }))
    ));

    let viewer_trust = follow(&viewer).await;
    let options = |publisher: &Peer, delegates| SubscribeOptions {
        publisher: Some(publisher.peer_id()),
        owner_addr: Some(publisher.local_addr()),
        delegates,
        ..SubscribeOptions::default()
    };
    // Naming a publisher other than the owner needs the owner's graph, and only hers.
    assert!(matches!(
        viewer.subscribe(&cam, options(&laptop, None)),
        Err(PeerError::Stream(StreamError::PublisherNeedsTrust(_)))
    ));
    let other_graph = viewer.create_trust("not alice's").unwrap();
    let other = viewer
        .open_trust(other_graph, Duration::ZERO)
        .await
        .unwrap();
    assert!(matches!(
        viewer.subscribe(&cam, options(&laptop, Some(other))),
        Err(PeerError::Stream(StreamError::WrongTrustRoot { .. }))
    ));

    let mut sub = viewer
        .subscribe(&cam, options(&laptop, Some(viewer_trust.clone())))
        .unwrap();
    assert!(sub.wait_attached(Duration::from_secs(10)).await);
    let data = |i: u8| Bytes::from(vec![i; 1000]);
    for i in 0..5u8 {
        publisher
            .push(if i == 0 {
                MediaFrame::key(data(i), 0)
            } else {
                MediaFrame::delta(data(i), u64::from(i) * 33_333)
            })
            .unwrap();
    }
    for i in 0..5u8 {
        let f = tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .expect("a frame within 10 s")
            .expect("open");
        assert_eq!(f.data, data(i));
        assert_eq!(
            f.entry().signer_key().1,
            laptop.public_key().to_raw_bytes(),
            "signed by the laptop"
        );
    }

    // Mallory roots a tree of her own for Alice's stream and signs frames for it: a viewer
    // following Alice's graph drops them all.
    let mut forged = Log::open(
        starling_store::Store::open(
            tempfile::tempdir().unwrap().path(),
            starling_store::StoreConfig::default(),
        )
        .unwrap(),
        cam.log_id(),
        mallory_key,
        LogConfig::default(),
    )
    .unwrap();
    let fooled = peer(&[&alice]).await;
    let fooled_trust = follow(&fooled).await;
    let tricked = fooled
        .subscribe(&cam, options(&mallory, Some(fooled_trust)))
        .unwrap();
    assert!(tricked.wait_attached(Duration::from_secs(10)).await);
    let invalid = || async { fooled.overlay().stats().await.unwrap().invalid };
    let before = invalid().await;
    for i in 0..5u8 {
        let entry = forged.append(data(i)).unwrap();
        assert!(mallory.overlay().publish(entry));
    }
    for _ in 0..200 {
        if invalid().await >= before + 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(invalid().await, before + 5, "every forged frame refused");
    assert_eq!(tricked.stats().received, 0);

    // Alice revokes the laptop: once the viewer hears of it, the laptop's new frames are
    // refused (the ones it played stay played).
    trust.revoke(&laptop.public_key()).unwrap();
    until("the viewer hears of the revocation", || {
        !viewer_trust
            .is_trusted(&laptop.public_key(), now())
            .is_trusted()
    })
    .await;
    let before = viewer.overlay().stats().await.unwrap().invalid;
    for i in 5..10u8 {
        publisher.push(MediaFrame::delta(data(i), 0)).unwrap();
    }
    let mut refused = 0;
    for _ in 0..200 {
        refused = viewer.overlay().stats().await.unwrap().invalid - before;
        if refused >= 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(refused, 5, "every frame after the revocation refused");
    assert_eq!(sub.stats().received, 5);
}

/// A chain root → D (may delegate) → E reaches a follower whichever statement arrives first
/// (D's, refused until D's own delegation is there, comes again); a key nobody delegated
/// cannot write statements at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_reaches_followers_and_strangers_cannot_write_statements() {
    let root = peer(&[]).await;
    let d = peer(&[&root]).await;
    let follower = peer(&[&root]).await;
    let stranger = peer(&[&root]).await;
    let e = starling_net::Keypair::generate(starling_net::KeyType::Ed25519);
    let graph = root.create_trust("chain").unwrap();
    let at_root = root.open_trust(graph, Duration::ZERO).await.unwrap();
    at_root
        .delegate(
            &d.public_key(),
            Delegation {
                may_delegate: true,
                ..Delegation::default()
            },
        )
        .unwrap();
    let now = starling_net::entry::unix_time_us;
    let at_d = d.open_trust(graph, Duration::from_secs(10)).await.unwrap();
    until("D learns it may delegate", || {
        at_d.is_trusted(&d.public_key(), now()).is_trusted()
    })
    .await;
    at_d.delegate(e.public(), Delegation::default()).unwrap();
    let at_follower = follower
        .open_trust(graph, Duration::from_secs(10))
        .await
        .unwrap();
    until("the follower trusts E through D", || {
        at_follower.is_trusted(e.public(), now()).is_trusted()
    })
    .await;
    let Verdict::Trusted { chain } = at_follower.is_trusted(e.public(), now()) else {
        unreachable!()
    };
    assert_eq!(chain, vec![d.public_key(), *e.public()]);
    let at_stranger = stranger
        .open_trust(graph, Duration::from_secs(10))
        .await
        .unwrap();
    assert!(at_stranger.wait_caught_up(Duration::from_secs(10)).await);
    assert!(matches!(
        at_stranger.delegate(&stranger.public_key(), Delegation::default()),
        Err(DocumentError::Denied { .. })
    ));
    assert_eq!(
        at_root.replica().count().unwrap(),
        2,
        "the two statements only"
    );
}

/// A store whose writers are a graph's follows the graph's revocations from a task that
/// does not keep the store open: once its handles are dropped, the store closes and opens
/// again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_store_closes_when_its_handles_go() {
    let root = peer(&[]).await;
    let graph = root.create_trust("alice's devices").unwrap();
    let address = store_of(&root, graph);
    let first = open(&root, address, Role::Replicator).await;
    first.put("a", &json!({"id": "a"})).unwrap();
    drop(first);
    // The driver stops when the last handle goes (an abort: give it a moment).
    let mut again = None;
    for _ in 0..100 {
        let options = ReplicaOptions::default();
        match root
            .open_json(address, options, Duration::from_secs(5))
            .await
        {
            Ok((replica, _)) => {
                again = Some(replica);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    let again = again.expect("the store opens again");
    assert!(again.get("a").unwrap().is_some());
}
