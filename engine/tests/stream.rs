//! Live streams end to end: real QUIC on loopback, real stores.

mod common;

use std::time::Duration;

use bytes::Bytes;
use starling_engine::{
    LiveStream, MediaFrame, Peer, PeerConfig, PublishOptions, Publisher, StreamError, StreamFrame,
    SubscribeOptions, Subscription,
};
use starling_net::entry::session::{self, index_of};
use starling_net::{KeyType, Keypair};

use common::peer;

fn frame(seq: u64, gop: u64) -> MediaFrame {
    let data = Bytes::from(vec![(seq % 251) as u8; 2000 + seq as usize]);
    if seq.is_multiple_of(gop) {
        MediaFrame::key(data, seq * 33_333)
    } else {
        MediaFrame::delta(data, seq * 33_333)
    }
}

async fn next(sub: &mut Subscription) -> StreamFrame {
    tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("a frame within 10 s")
        .expect("subscription open")
}

/// Waits until every subscriber is attached to the stream's tree.
async fn attached(subs: &[(&Peer, &Subscription)]) {
    for _ in 0..500 {
        let mut all = true;
        for (p, s) in subs {
            all &= p.overlay().parent(s.address().topic()).await.is_some();
        }
        if all {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("subscribers did not attach");
}

fn check(f: &StreamFrame, seq: u64, gop: u64) {
    assert_eq!(index_of(f.seq), seq, "a fresh publisher starts a session");
    assert_eq!(f.keyframe, seq.is_multiple_of(gop));
    assert_eq!(f.media_ts_us, seq * 33_333);
    assert_eq!(f.data.len(), 2000 + seq as usize);
    assert!(f.data.iter().all(|b| *b == (seq % 251) as u8));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_get_every_frame_in_order_directly_and_via_a_relay() {
    let owner = peer(&[]).await;
    let relay = peer(&[&owner]).await;
    let mut publisher = match owner.open_stream("cam").expect("open") {
        LiveStream::Publisher(p) => *p,
        other => panic!("expected to own it: {other:?}"),
    };
    let address = publisher.address().to_string();
    // One subscriber knows the owner; the other only knows the relay and must locate it.
    let direct = peer(&[&owner]).await;
    let indirect = peer(&[&relay]).await;
    let mut subs = Vec::new();
    for p in [&direct, &indirect] {
        match p.open_stream(&address).expect("open by address") {
            LiveStream::Subscriber(s) => subs.push(*s),
            other => panic!("expected a subscription: {other:?}"),
        }
    }
    attached(&[(&direct, &subs[0]), (&indirect, &subs[1])]).await;
    for seq in 0..60 {
        assert_eq!(index_of(publisher.push(frame(seq, 10)).expect("push")), seq);
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for s in &mut subs {
        for seq in 0..60 {
            let f = next(s).await;
            check(&f, seq, 10);
            assert_eq!(f.skipped, 0);
            let entry = f.entry();
            let signer = entry.verify().expect("entry signed by the owner");
            assert_eq!(signer.peer_id(), owner.peer_id());
            assert_eq!(index_of(entry.seq()), seq);
        }
        assert_eq!(s.stats().delivered, 60);
        assert_eq!(s.stats().invalid, 0);
    }
    publisher.flush().expect("flush");
    assert_eq!(publisher.log().len(), 60);
    for p in [&direct, &indirect, &relay, &owner] {
        p.close().await;
    }
}

async fn publish(owner: &Peer, window: usize) -> Publisher {
    owner
        .publish_stream(
            "live",
            PublishOptions {
                window_frames: window,
                ..PublishOptions::default()
            },
        )
        .expect("publish")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_starts_at_the_latest_keyframe_and_persists() {
    let owner = peer(&[]).await;
    let mut publisher = publish(&owner, 40).await;
    for seq in 0..15 {
        publisher.push(frame(seq, 10)).expect("push");
    }
    let late = peer(&[&owner]).await;
    let mut sub = late
        .subscribe(
            publisher.address(),
            SubscribeOptions {
                persist: true,
                ..SubscribeOptions::default()
            },
        )
        .expect("subscribe");
    attached(&[(&late, &sub)]).await;
    for seq in 15..25 {
        publisher.push(frame(seq, 10)).expect("push");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Frames 10..15 came from the owner's window, the rest live; nothing before the keyframe.
    for seq in 10..25 {
        let f = next(&mut sub).await;
        check(&f, seq, 10);
        assert_eq!(f.skipped, 0);
    }
    assert_eq!(sub.stats().catch_ups, 1);
    assert_eq!(sub.stats().invalid, 0, "persisted entries verified");
    // The owner's on-disk window is bounded.
    for seq in 25..60 {
        publisher.push(frame(seq, 10)).expect("push");
    }
    publisher.flush().expect("flush");
    assert_eq!(publisher.log().len(), 40);
    late.close().await;
    owner.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_application_skips_to_the_next_keyframe_and_is_told() {
    let owner = peer(&[]).await;
    let mut publisher = publish(&owner, 100).await;
    let slow = peer(&[&owner]).await;
    let mut sub = slow
        .subscribe(
            publisher.address(),
            SubscribeOptions {
                buffer_frames: 4,
                ..SubscribeOptions::default()
            },
        )
        .expect("subscribe");
    attached(&[(&slow, &sub)]).await;
    // 25 frames while the application reads nothing: 4 fit, the rest are skipped.
    for seq in 0..25 {
        publisher.push(frame(seq, 10)).expect("push");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    for seq in 0..4 {
        check(&next(&mut sub).await, seq, 10);
    }
    // Now the application keeps up: it resumes at the next keyframe after the overflow (10 or
    // 20, whichever found room), says what it skipped, and then misses nothing.
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got
            .last()
            .is_none_or(|f: &StreamFrame| index_of(f.seq) < 44)
        {
            got.push(next(&mut sub).await);
        }
        (got, sub.stats())
    });
    for seq in 25..45 {
        publisher.push(frame(seq, 10)).expect("push");
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let (got, stats) = reader.await.expect("reader");
    let first = &got[0];
    let resumed = index_of(first.seq);
    assert!(first.keyframe && resumed >= 10, "resumed at {resumed}");
    assert_eq!(first.skipped, resumed - 4);
    for (f, seq) in got.iter().zip(resumed..) {
        check(f, seq, 10);
        if seq > resumed {
            assert_eq!(f.skipped, 0);
        }
    }
    assert_eq!(stats.skipped, resumed - 4);
    slow.close().await;
    owner.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_addresses_are_errors() {
    let p = peer(&[]).await;
    assert!(p.open_stream("no spaces").is_err());
    assert!(p.open_stream("live/not-a-peer/x").is_err());
    let own = p.stream_address("x").expect("address");
    assert!(p.subscribe(&own, SubscribeOptions::default()).is_err());
    let mut publisher = publish(&p, 10).await;
    let limit = PublishOptions::default().max_frame_bytes;
    let huge = MediaFrame::key(Bytes::from(vec![0u8; limit + 1]), 0);
    assert!(publisher.push(huge).is_err());
    p.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_accepted_frame_arrives() {
    let owner = peer(&[]).await;
    let mut publisher = publish(&owner, 4).await;
    let viewer = peer(&[&owner]).await;
    let mut sub = viewer
        .subscribe(publisher.address(), SubscribeOptions::default())
        .expect("subscribe");
    assert!(sub.wait_attached(Duration::from_secs(10)).await);
    let limit = PublishOptions::default().max_frame_bytes;
    let data = Bytes::from(vec![7u8; limit]);
    publisher
        .push(MediaFrame::key(data.clone(), 0))
        .expect("push");
    let f = next(&mut sub).await;
    assert_eq!(f.data, data);
    viewer.close().await;
    owner.close().await;
}

/// Single-threaded, so the node cannot send between pushes: the 257th is refused before it is
/// logged; after close every push is refused as closed.
#[tokio::test(flavor = "current_thread")]
async fn a_push_the_node_cannot_take_is_refused_and_not_logged() {
    let owner = peer(&[]).await;
    let mut publisher = publish(&owner, 1000).await;
    for seq in 0..256 {
        assert_eq!(index_of(publisher.push(frame(seq, 10)).expect("push")), seq);
    }
    assert!(matches!(
        publisher.push(frame(256, 10)),
        Err(StreamError::Congested)
    ));
    publisher.flush().expect("flush");
    assert_eq!(publisher.log().len(), 256);
    assert_eq!(index_of(publisher.next_seq()), 256);
    owner.close().await;
    assert!(matches!(
        publisher.push(frame(256, 10)),
        Err(StreamError::Closed)
    ));
    assert_eq!(publisher.log().len(), 256);
}

/// The owner restarts without its log (a fresh temporary store) on the same key and address.
/// Its new frames start a new session above the old seqs, so a subscriber that stayed goes on
/// receiving them (before sessions, they restarted at seq 0 and looked like duplicates of
/// frames it already had: it got nothing more).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_goes_on_with_a_publisher_that_restarted_without_its_log() {
    let key = Keypair::generate(KeyType::Ed25519);
    let owner = Peer::start(key.clone(), PeerConfig::default())
        .await
        .expect("owner starts");
    let at = owner.local_addr();
    let mut publisher = publish(&owner, 100).await;
    let viewer = peer(&[&owner]).await;
    let mut sub = viewer
        .subscribe(publisher.address(), SubscribeOptions::default())
        .expect("subscribe");
    assert!(sub.wait_attached(Duration::from_secs(10)).await);
    let mut old = 0;
    for seq in 0..20 {
        publisher.push(frame(seq, 10)).expect("push");
    }
    for seq in 0..20 {
        let f = next(&mut sub).await;
        check(&f, seq, 10);
        old = f.seq;
    }
    drop(publisher);
    owner.close().await;

    // The old endpoint's socket is released once its tasks have ended: retry the bind.
    let mut again = None;
    for _ in 0..100 {
        let config = PeerConfig {
            listen: at,
            ..PeerConfig::default()
        };
        match Peer::start(key.clone(), config).await {
            Ok(p) => {
                again = Some(p);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let owner = again.expect("owner starts again on its address within 10 s");
    let mut publisher = publish(&owner, 100).await;
    let receive = tokio::spawn(async move {
        loop {
            let f = next(&mut sub).await;
            if session::session_of(f.seq) > session::session_of(old) && index_of(f.seq) >= 5 {
                return (f, sub);
            }
            assert!(
                f.seq > old,
                "only the new session's frames: {} after {old}",
                f.seq
            );
        }
    });
    let mut seq = 0;
    while !receive.is_finished() && seq < 600 {
        publisher.push(frame(seq, 10)).expect("push");
        seq += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (f, sub) = receive.await.expect("the new session arrives");
    check(&f, index_of(f.seq), 10);
    assert_eq!(sub.stats().invalid, 0);
    viewer.close().await;
    owner.close().await;
}
