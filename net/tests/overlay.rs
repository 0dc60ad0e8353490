//! The overlay driver over real QUIC on 127.0.0.1: multi-hop direct messages, a 30-node tree,
//! a throttled relay, a killed relay, a client that stalls its handshake, a redirect flood.

#![cfg(feature = "quic")]
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::time::Duration;

use std::collections::HashMap;
use std::sync::Mutex;

use bytes::Bytes;
use starling_net::entry::{EntryFields, EntrySigner, LogId};
use starling_net::identity::{KeyType, Keypair, PeerId};
use starling_net::overlay::control::{self, Control};
use starling_net::overlay::{
    Candidate, Delivery, DirectMessage, Inboxes, MAX_KNOWN_ADDRESSES, Message, OverlayConfig,
    OverlayNode, PublishRefused, Topic,
};
use starling_net::transport::{Endpoint, TransportConfig};
use starling_net::wire::Lane;
use tokio::sync::mpsc;

const LOG: LogId = LogId([3; 32]);
const TOPIC: Topic = Topic(LOG.0);

/// Every test node's signer and next seq, so a test can publish entries as any node.
static SIGNERS: Mutex<Option<HashMap<PeerId, (EntrySigner, u64)>>> = Mutex::new(None);

fn node(config: &OverlayConfig) -> (OverlayNode, mpsc::Receiver<DirectMessage>) {
    let (node, inboxes) = node_with_inboxes(config);
    (node, inboxes.direct)
}

/// A node on 127.0.0.1 whose key is registered in [`SIGNERS`], with both its inboxes.
fn node_with_inboxes(config: &OverlayConfig) -> (OverlayNode, Inboxes) {
    let key = Keypair::generate(KeyType::Ed25519);
    SIGNERS
        .lock()
        .unwrap()
        .get_or_insert_with(HashMap::new)
        .insert(key.peer_id(), (EntrySigner::new(key.clone()), 0));
    let endpoint = Endpoint::bind(
        key,
        "127.0.0.1:0".parse().unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    OverlayNode::start(endpoint, config.clone())
}

/// Signs `payload` as `root`'s next entry on `TOPIC` and publishes it.
fn publish(root: &OverlayNode, payload: Bytes) -> bool {
    let mut all = SIGNERS.lock().unwrap();
    let (signer, seq) = all.as_mut().unwrap().get_mut(&root.peer_id()).unwrap();
    let entry = signer
        .sign_one(&EntryFields::new(LOG, *seq, 0, payload))
        .unwrap();
    *seq += 1;
    root.publish(entry)
}

fn config(max_children: usize) -> OverlayConfig {
    OverlayConfig {
        max_children,
        ..OverlayConfig::default()
    }
}

async fn wait_attached(nodes: &[OverlayNode]) {
    for _ in 0..200 {
        let mut all = true;
        for n in nodes {
            all &= n.parent(TOPIC).await.is_some();
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("not every subscriber attached");
}

async fn collect(rx: &mut mpsc::Receiver<Delivery>, until_seq: u64) -> Vec<u64> {
    let mut got = Vec::new();
    while let Ok(Some(d)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
        got.push(d.seq);
        if d.seq >= until_seq {
            break;
        }
    }
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_messages_cross_a_line_of_five() {
    let nodes: Vec<_> = (0..5).map(|_| node(&config(4))).collect();
    for i in 0..4 {
        nodes[i]
            .0
            .connect(nodes[i + 1].0.local_addr())
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (first, last) = (&nodes[0].0, &nodes[4].0);
    first.send(last.peer_id(), Bytes::from_static(b"over four hops"));
    let mut inbox = nodes;
    let msg = tokio::time::timeout(Duration::from_secs(5), inbox[4].1.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg.origin, inbox[0].0.peer_id());
    assert_eq!(msg.payload, Bytes::from_static(b"over four hops"));
    // And back, along the route the first message taught.
    let origin = inbox[0].0.peer_id();
    inbox[4].0.send(origin, Bytes::from_static(b"reply"));
    let reply = tokio::time::timeout(Duration::from_secs(5), inbox[0].1.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply.payload, Bytes::from_static(b"reply"));
    // Nobody in the middle got either message.
    for (_, rx) in &mut inbox[1..4] {
        assert!(rx.try_recv().is_err());
    }
}

fn node_with_apps(config: &OverlayConfig) -> (OverlayNode, mpsc::Receiver<DirectMessage>) {
    let (node, inboxes) = node_with_inboxes(config);
    (node, inboxes.app)
}

/// App frames: a link to a peer known only by a heard address, 64 MiB in 1 MiB frames through
/// a receiver that reads slowly (its inbox fills and the sender waits): every frame arrives, in
/// order, from the right origin; a link to a peer nobody knows fails with a typed error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_frames_arrive_in_order_and_a_slow_reader_holds_the_sender_back() {
    let (a, _) = node_with_apps(&config(4));
    let (b, mut b_app) = node_with_apps(&config(4));
    a.heard(b.peer_id(), b.local_addr());
    let link = a.link(b.peer_id()).await.unwrap();
    assert_eq!(link.peer(), b.peer_id());
    const N: usize = 64;
    let sender = tokio::spawn(async move {
        for i in 0..N {
            let mut body = vec![i as u8; 1 << 20];
            body[..8].copy_from_slice(&(i as u64).to_be_bytes());
            link.send(Bytes::from(body)).await.unwrap();
        }
    });
    for i in 0..N {
        if i < 4 {
            // Slow at first: the sender's frames wait rather than drop.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let msg = tokio::time::timeout(Duration::from_secs(10), b_app.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(msg.origin, a.peer_id());
        assert_eq!(msg.payload.len(), 1 << 20);
        assert_eq!(&msg.payload[..8], &(i as u64).to_be_bytes());
    }
    sender.await.unwrap();
    let stranger = Keypair::generate(KeyType::Ed25519).peer_id();
    let err = tokio::time::timeout(Duration::from_secs(10), a.link(stranger))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(err, starling_net::transport::TransportError::Unreachable(p) if p == stranger),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tree_of_thirty_gets_every_frame_in_order_once() {
    let (root, _) = node(&config(4));
    publish(&root, Bytes::from_static(b"warm-up"));
    let mut subs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..30 {
        let (n, _) = node(&config(4));
        rxs.push(n.subscribe(TOPIC, root.peer_id(), root.local_addr()));
        subs.push(n);
    }
    wait_attached(&subs).await;
    let first = 1u64; // seq 0 was the warm-up frame, before anyone joined
    let count = 60u64;
    for i in 0..count {
        publish(&root, Bytes::from(vec![i as u8; 1000]));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    for (i, rx) in rxs.iter_mut().enumerate() {
        let got = collect(rx, first + count - 1).await;
        let expected: Vec<u64> = (first..first + count).collect();
        assert_eq!(got, expected, "subscriber {i}");
    }
    let stats = root.stats().await.unwrap();
    assert!(
        stats.frames_relayed <= 4 * (count + 1),
        "root sent to more than 4 children"
    );
}

/// A root (which has published one warm-up frame) and `n` attached subscribers.
async fn swarm(
    n: usize,
    max_children: usize,
) -> (OverlayNode, Vec<OverlayNode>, Vec<mpsc::Receiver<Delivery>>) {
    let (root, _) = node(&config(max_children));
    publish(&root, Bytes::from_static(b"warm-up"));
    let mut subs = Vec::new();
    let mut rxs = Vec::new();
    for _ in 0..n {
        let (s, _) = node(&config(max_children));
        rxs.push(s.subscribe(TOPIC, root.peer_id(), root.local_addr()));
        subs.push(s);
    }
    wait_attached(&subs).await;
    (root, subs, rxs)
}

/// Publishes `n` frames at about 50 per second.
async fn stream(root: &OverlayNode, n: u64) {
    for i in 0..n {
        publish(root, Bytes::from(vec![i as u8; 1500]));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The root's children that have children of their own, and those grandchildren.
async fn relay_with_children(root: &OverlayNode, subs: &[OverlayNode]) -> (usize, Vec<usize>) {
    for (i, s) in subs.iter().enumerate() {
        if s.parent(TOPIC).await != Some(root.peer_id()) {
            continue;
        }
        let mut kids = Vec::new();
        for (j, t) in subs.iter().enumerate() {
            if t.parent(TOPIC).await == Some(s.peer_id()) {
                kids.push(j);
            }
        }
        if !kids.is_empty() {
            return (i, kids);
        }
    }
    panic!("no relay below the root");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_move_away_from_a_throttled_relay() {
    let (root, subs, mut rxs) = swarm(8, 2).await;
    stream(&root, 25).await;
    let (relay, kids) = relay_with_children(&root, &subs).await;
    // 2 KB/s: far below the ~75 KB/s stream.
    subs[relay].dangerous_throttle(Some(2_000));
    stream(&root, 150).await;
    for k in &kids {
        assert_ne!(
            subs[*k].parent(TOPIC).await,
            Some(subs[relay].peer_id()),
            "child {k} still under the throttled relay"
        );
    }
    // Delivery continues: the last frames reach every subscriber but the throttled one.
    let last = 1 + 25 + 150 - 1;
    for (i, rx) in rxs.iter_mut().enumerate() {
        if i == relay {
            continue;
        }
        let got = collect(rx, last).await;
        assert_eq!(got.last(), Some(&last), "subscriber {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn children_of_a_killed_relay_reattach_and_repair_the_gap() {
    let (root, subs, mut rxs) = swarm(8, 2).await;
    stream(&root, 20).await;
    let (relay, kids) = relay_with_children(&root, &subs).await;
    subs[relay].shutdown().await;
    stream(&root, 60).await;
    let last = 1 + 20 + 60 - 1;
    for k in kids {
        let got = collect(&mut rxs[k], last).await;
        let expected: Vec<u64> = (1..=last).collect();
        assert_eq!(got, expected, "orphan {k} missed frames");
        assert_ne!(subs[k].parent(TOPIC).await, Some(subs[relay].peer_id()));
    }
}

/// Single-threaded, so the node's driver cannot run between the calls: its publish queue fills.
#[tokio::test(flavor = "current_thread")]
async fn a_publisher_ahead_of_its_node_is_refused_not_queued_without_bound() {
    let (root, _direct) = node(&config(4));
    for i in 0..256u32 {
        assert!(
            publish(&root, Bytes::from(i.to_be_bytes().to_vec())),
            "frame {i}"
        );
    }
    assert!(!publish(&root, Bytes::from_static(b"one too many")));
    assert_eq!(
        root.try_reserve_publish_owned().err(),
        Some(PublishRefused::Behind)
    );
    root.shutdown().await;
    assert_eq!(
        root.try_reserve_publish_owned().err(),
        Some(PublishRefused::Stopped)
    );
}

/// A UDP relay that forwards the first datagram from the client to `server` and drops
/// everything after, both ways: the server sees a client that opened a handshake and went
/// silent. Says on `forwarded` once the first datagram is through.
async fn stalling_relay(
    server: std::net::SocketAddr,
    forwarded: tokio::sync::oneshot::Sender<()>,
) -> std::net::SocketAddr {
    let client_side = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let server_side = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = client_side.local_addr().unwrap();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        let (n, _) = client_side.recv_from(&mut buf).await.unwrap();
        server_side.send_to(&buf[..n], server).await.unwrap();
        let _ = forwarded.send(());
        // Keep both sockets open and silent: nothing more goes either way.
        let mut other = vec![0u8; 65_536];
        loop {
            tokio::select! {
                _ = client_side.recv_from(&mut buf) => {}
                _ = server_side.recv_from(&mut other) => {}
            }
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_stalling_its_handshake_does_not_hold_up_other_dialers() {
    // The node waits a minute for a handshake; a dialer gives up after its default 10 s. With
    // one handshake at a time, the honest dialer below would queue behind the stalled one
    // and fail.
    let server = Endpoint::bind(
        Keypair::generate(KeyType::Ed25519),
        "127.0.0.1:0".parse().unwrap(),
        TransportConfig {
            connect_timeout: Duration::from_secs(60),
            ..TransportConfig::default()
        },
    )
    .unwrap();
    let server_addr = server.local_addr();
    let (node, _inboxes) = OverlayNode::start(server, config(4));

    let (forwarded, through) = tokio::sync::oneshot::channel();
    let relay = stalling_relay(server_addr, forwarded).await;
    let staller = Endpoint::bind(
        Keypair::generate(KeyType::Ed25519),
        "127.0.0.1:0".parse().unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    let stalled = tokio::spawn(async move { staller.dial_addr(relay, None).await });
    through.await.unwrap();
    // Let the node take the stalled attempt first.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let honest = Endpoint::bind(
        Keypair::generate(KeyType::Ed25519),
        "127.0.0.1:0".parse().unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    let conn = honest.dial_addr(server_addr, Some(node.peer_id())).await;
    assert!(conn.is_ok(), "{:?}", conn.err());
    assert!(
        !stalled.is_finished(),
        "the stalled handshake is still pending"
    );
    stalled.abort();
    node.shutdown().await;
}

/// One peer floods a node with redirects naming 22,000 made-up peers at a bogus address, the
/// stream owner among them. The node's address book stays within its bound, and the owner's
/// real address (from a connection it made) is not displaced: the node still subscribes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_flood_stays_within_the_address_book_and_plants_no_address() {
    let (owner, _) = node(&config(4));
    let (victim, _) = node(&config(4));
    victim.connect(owner.local_addr()).await.unwrap();
    let attacker = Endpoint::bind(
        Keypair::generate(KeyType::Ed25519),
        "127.0.0.1:0".parse().unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    let conn = attacker
        .dial_addr(victim.local_addr(), Some(victim.peer_id()))
        .await
        .unwrap();
    let bogus: std::net::SocketAddr = "127.0.0.1:9".parse().unwrap();
    let other_topic = Topic([9; 32]);
    for _ in 0..700 {
        let mut candidates: Vec<Candidate<PeerId>> = (0..31)
            .map(|_| Candidate {
                peer: Keypair::generate(KeyType::Ed25519).peer_id(),
                delay_us: 0,
            })
            .collect();
        candidates.push(Candidate {
            peer: owner.peer_id(),
            delay_us: 0,
        });
        let redirect = Message::Redirect {
            topic: other_topic,
            candidates,
            next_seq: 0,
        };
        conn.send(Lane::Control, &control::encode(&redirect, |_| Some(bogus)))
            .await
            .unwrap();
    }
    // The same lane is in order: once our probe is answered, the flood was handled.
    let probe = Message::Probe { nonce: 0x5eed };
    conn.send(Lane::Control, &control::encode(&probe, |_| None))
        .await
        .unwrap();
    let answered = async {
        let mut learned = Vec::new();
        while let Some(Ok(received)) = conn.recv().await {
            if let Ok(Control::Message(Message::ProbeAck { nonce: 0x5eed })) =
                control::decode(received.into_frame(), &mut learned)
            {
                return;
            }
        }
        panic!("connection closed before the probe was answered");
    };
    tokio::time::timeout(Duration::from_secs(30), answered)
        .await
        .expect("probe answered");
    let known = victim.known_addresses().await;
    assert!(
        known <= MAX_KNOWN_ADDRESSES && known > MAX_KNOWN_ADDRESSES / 2,
        "{known} addresses kept"
    );
    // The owner is still reached at its real address.
    let mut frames = victim.subscribe_via(TOPIC, owner.peer_id(), None);
    wait_attached(std::slice::from_ref(&victim)).await;
    assert!(publish(&owner, Bytes::from_static(b"still here")));
    let got = tokio::time::timeout(Duration::from_secs(10), frames.recv())
        .await
        .expect("a frame")
        .expect("subscribed");
    assert_eq!(&got.frame.payload().unwrap()[..], b"still here");
    victim.shutdown().await;
    owner.shutdown().await;
}
