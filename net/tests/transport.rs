//! Real QUIC on 127.0.0.1: authentication, lanes, backpressure, and misbehaving peers.

#![cfg(feature = "quic")]
#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use starling_net::entry::{EntryFields, EntrySigner, EntryVerifier, LogId};
use starling_net::identity::{KeyType, Keypair};
use starling_net::transport::{
    Connection, ConnectionEvent, Endpoint, IncomingBudget, SendError, TransportConfig,
    TransportError,
};
use starling_net::wire::{Frame, Lane, StreamHeader, WireError, encode_frame};

fn endpoint(config: TransportConfig) -> Endpoint {
    Endpoint::bind(
        Keypair::generate(KeyType::Ed25519),
        "127.0.0.1:0".parse().unwrap(),
        config,
    )
    .unwrap()
}

async fn pair(config: TransportConfig) -> (Endpoint, Endpoint, Connection, Connection) {
    let server = endpoint(config.clone());
    let client = endpoint(config);
    let s = server.clone();
    let accept = tokio::spawn(async move { s.accept().await.unwrap().unwrap() });
    let out = client.dial(&server.local_multiaddr()).await.unwrap();
    let inc = accept.await.unwrap();
    (server, client, inc, out)
}

/// A signed entry frame (`_arena`: kept for the call sites' shape; signers carve their own).
fn frame(key: &Keypair, seq: u64, size: usize, _arena: &mut BytesMut) -> Frame {
    let entry = EntrySigner::new(key.clone())
        .sign_one(&EntryFields::new(
            LogId([1; 32]),
            seq,
            seq,
            Bytes::from(vec![seq as u8; size]),
        ))
        .unwrap();
    Frame::Entry(entry)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_sides_learn_each_others_peer_id() {
    let server = endpoint(TransportConfig::default());
    let mut events = server.events();
    let client = endpoint(TransportConfig::default());
    let s = server.clone();
    let accept = tokio::spawn(async move { s.accept().await.unwrap().unwrap() });
    let out = client.dial(&server.local_multiaddr()).await.unwrap();
    let inc = accept.await.unwrap();
    assert_eq!(out.peer_id(), server.peer_id());
    assert_eq!(inc.peer_id(), client.peer_id());
    match events.recv().await.unwrap() {
        ConnectionEvent::Connected { peer, .. } => assert_eq!(peer, client.peer_id()),
        other => panic!("{other:?}"),
    }
    let rtt = out.ping().await.unwrap();
    assert!(rtt < Duration::from_secs(5));
    out.close("bye");
    match tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        ConnectionEvent::Disconnected { peer, reason } => {
            assert_eq!(peer, client.peer_id());
            assert!(reason.contains("bye"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(inc.recv().await.is_none(), "inbox ends with the connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secp256k1_identities_authenticate_too() {
    let server = Endpoint::bind(
        Keypair::generate(KeyType::Secp256k1),
        "127.0.0.1:0".parse().unwrap(),
        TransportConfig::default(),
    )
    .unwrap();
    let client = endpoint(TransportConfig::default());
    let s = server.clone();
    tokio::spawn(async move { s.accept().await });
    let out = client.dial(&server.local_multiaddr()).await.unwrap();
    assert_eq!(out.peer_id(), server.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dialing_the_wrong_peer_id_fails() {
    let server = endpoint(TransportConfig::default());
    let client = endpoint(TransportConfig::default());
    let s = server.clone();
    tokio::spawn(async move { while s.accept().await.is_some() {} });
    let impostor = Keypair::generate(KeyType::Ed25519).peer_id();
    let addr = starling_net::transport::quic_multiaddr(server.local_addr(), Some(impostor));
    match client.dial(&addr).await {
        Err(TransportError::PeerIdMismatch { expected, actual }) => {
            assert_eq!(*expected, impostor);
            assert_eq!(*actual, server.peer_id());
        }
        other => panic!("expected a mismatch, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_address_times_out() {
    let config = TransportConfig {
        connect_timeout: Duration::from_millis(300),
        ..TransportConfig::default()
    };
    let client = endpoint(config);
    // A bound UDP socket that never answers.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = client
        .dial_addr(silent.local_addr().unwrap(), None)
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Timeout(_)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_arrive_in_order_and_verify() {
    let (_s, _c, inc, out) = pair(TransportConfig::default()).await;
    let key = Keypair::generate(KeyType::Ed25519);
    let mut arena = BytesMut::new();
    let n = 500;
    let sender = tokio::spawn(async move {
        for seq in 0..n {
            out.send(Lane::High, &frame(&key, seq, 3000, &mut arena))
                .await
                .unwrap();
        }
        out
    });
    let mut keys = EntryVerifier::default();
    for seq in 0..n {
        let got = inc.recv().await.unwrap().unwrap();
        assert_eq!(got.lane, Lane::High);
        let Frame::Entry(d) = got.into_frame() else {
            panic!()
        };
        assert_eq!(d.seq(), seq);
        keys.verify(&d).unwrap();
    }
    let _out = sender.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_lane_overtakes_bulk_data() {
    let (_s, _c, inc, out) = pair(TransportConfig::default()).await;
    let key = Keypair::generate(KeyType::Ed25519);
    let mut arena = BytesMut::new();
    let total = 120u64; // 120 × 64 KiB ≈ 7.5 MiB of bulk queued before the ping
    for seq in 0..total {
        out.send(Lane::Low, &frame(&key, seq, 64 * 1024, &mut arena))
            .await
            .unwrap();
    }
    // The receiver reads slowly, so bulk data is still in flight when the ping goes out.
    let reader = tokio::spawn(async move {
        let mut n = 0u64;
        while n < total {
            let _ = inc.recv().await.unwrap().unwrap();
            n += 1;
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        inc
    });
    out.ping().await.unwrap();
    assert!(!reader.is_finished(), "ping waited behind the bulk lane");
    reader.await.unwrap();
}

/// Two links whose endpoints share a 1 MiB incoming budget, each with 8 MiB of its own: frames
/// nobody reads hold at most the shared budget between them, and all arrive once read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn links_sharing_an_incoming_budget_hold_no_more_than_it() {
    let budget = IncomingBudget::new(1 << 20);
    let config = TransportConfig {
        incoming_budget: budget.clone(),
        ..TransportConfig::default()
    };
    let (_s1, _c1, in1, out1) = pair(config.clone()).await;
    let (_s2, _c2, in2, out2) = pair(config).await;
    let key = Keypair::generate(KeyType::Ed25519);
    let mut arena = BytesMut::new();
    let per_link = 100u64;
    for seq in 0..per_link {
        for out in [&out1, &out2] {
            out.send(Lane::High, &frame(&key, seq, 16 * 1024, &mut arena))
                .await
                .unwrap();
        }
    }
    // Let the readers take what credit they can.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        budget.available() < 64 * 1024,
        "the readers should have taken (nearly) the whole shared budget: {} left",
        budget.available()
    );
    // Nothing beyond it was taken (the semaphore never goes below zero), and every frame
    // arrives, in order, once read. Both links are drained at once, as the overlay driver
    // does: frames one link holds unread can keep the other waiting for credit (the price of
    // a shared bound), so reading them strictly in turn could wait forever on the one whose
    // reader queued behind the other for credit.
    let drain = |inc: Connection| {
        tokio::spawn(async move {
            let mut seqs = Vec::new();
            for _ in 0..per_link {
                let got = tokio::time::timeout(Duration::from_secs(10), inc.recv()).await;
                let Frame::Entry(d) = got.unwrap().unwrap().unwrap().into_frame() else {
                    panic!()
                };
                seqs.push(d.seq());
            }
            (inc, seqs)
        })
    };
    let (r1, r2) = (drain(in1), drain(in2));
    let ((_in1, s1), (_in2, s2)) = (r1.await.unwrap(), r2.await.unwrap());
    let expected: Vec<u64> = (0..per_link).collect();
    assert_eq!(s1, expected);
    assert_eq!(s2, expected);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(budget.available(), 1 << 20, "all credit returned");
}

/// Sends `frames` 16 KiB frames on each link and reads them all, every link at once. (One
/// frame signed once and sent again and again: signing each would make debug builds under
/// load too slow for a window to fill within the growth span.)
async fn transfer(links: &[(Endpoint, Endpoint, Connection, Connection)], frames: u64) {
    let key = Keypair::generate(KeyType::Ed25519);
    let one = frame(&key, 0, 16 * 1024, &mut BytesMut::new());
    let mut tasks = tokio::task::JoinSet::new();
    for (_, _, inc, out) in links {
        let (inc, out, one) = (inc.clone(), out.clone(), one.clone());
        tasks.spawn(async move {
            let reader = tokio::spawn(async move {
                for _ in 0..frames {
                    tokio::time::timeout(Duration::from_secs(20), inc.recv())
                        .await
                        .unwrap()
                        .unwrap()
                        .unwrap();
                }
            });
            for _ in 0..frames {
                out.send(Lane::High, &one).await.unwrap();
            }
            reader.await.unwrap();
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
}

fn windows_config(budget: &IncomingBudget) -> TransportConfig {
    TransportConfig {
        incoming_budget: budget.clone(),
        stream_receive_window: 12 << 20,
        min_receive_window: 32 * 1024,
        receive_window: 4 << 20,
        ..TransportConfig::default()
    }
}

/// A link starts at its minimum window and grows while it receives fast, up to its maximum;
/// links added later lower it to their common share of the budget (here 64 MiB over 2, then
/// over 32 ends: 2 MiB), and it grows back when they are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_busy_links_window_grows_to_its_share_of_the_budget() {
    let budget = IncomingBudget::new(64 << 20);
    let first = vec![pair(windows_config(&budget)).await];
    assert_eq!(
        budget.link_windows(),
        [32 * 1024; 2],
        "both ends start at the minimum"
    );
    transfer(&first, 1024).await;
    assert!(
        budget.link_windows().contains(&(4 << 20)),
        "the receiving end grew to the maximum: {:?}",
        budget.link_windows()
    );
    let mut more = Vec::new();
    for _ in 0..15 {
        more.push(pair(windows_config(&budget)).await);
    }
    assert_eq!(budget.links(), 32);
    assert_eq!(budget.window_share(), 2 << 20);
    assert!(
        budget.link_windows().iter().all(|w| *w <= 2 << 20),
        "no window above the share: {:?}",
        budget.link_windows()
    );
    transfer(&more, 256).await;
    assert!(
        budget.link_windows().iter().all(|w| *w <= 2 << 20),
        "busy links grow no further than the share: {:?}",
        budget.link_windows()
    );
    drop(more);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(budget.links(), 2);
    transfer(&first, 512).await;
    assert!(budget.link_windows().contains(&(4 << 20)), "grew back");
}

/// Receivers that stop reading hold no more than their windows: 8 links that never grew
/// (32 KiB) let through a few frames each, while the same links after growing to the 4 MiB
/// maximum let through megabytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_holds_no_more_than_its_window() {
    let unread_after = |grow: bool| async move {
        let budget = IncomingBudget::new(1 << 30);
        let config = TransportConfig {
            // The readers take 16 KiB, then stop: the rest waits in quinn's windows.
            max_incoming_bytes: 16 * 1024,
            ..windows_config(&budget)
        };
        let link = pair(config).await;
        let links = [link];
        if grow {
            // Grown by a fast transfer with a reader that keeps up, taking the credit once.
            transfer(&links, 1024).await;
        }
        let [(_s, _c, _inc, out)] = links;
        let before = out.counters().bytes_sent.load(Ordering::Relaxed);
        let key = Keypair::generate(KeyType::Ed25519);
        let one = frame(&key, 0, 16 * 1024, &mut BytesMut::new());
        // One frame at a time, so that each quinn write is one frame and the bytes counted as
        // written are exact; a write the window blocks stays blocked.
        for _ in 0..256 {
            let _ = out.try_send(Lane::High, &one);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        out.counters().bytes_sent.load(Ordering::Relaxed) - before
    };
    let small = unread_after(false).await;
    assert!(
        small <= 128 * 1024,
        "32 KiB window + 16 KiB read + a frame or two: {small}"
    );
    let grown = unread_after(true).await;
    assert!(grown >= 2 << 20, "a 4 MiB window: {grown}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_fills_the_link_then_drains_everything() {
    let config = TransportConfig {
        max_in_flight_bytes: 1 << 20,
        max_incoming_bytes: 1 << 20,
        stream_receive_window: 1 << 20,
        receive_window: 3 << 20,
        send_window: 1 << 20,
        ..TransportConfig::default()
    };
    let (_s, _c, inc, out) = pair(config).await;
    let key = Keypair::generate(KeyType::Ed25519);
    let mut arena = BytesMut::new();
    // Nobody reads: try_send must eventually report Full, after a bounded amount.
    let mut sent = 0u64;
    let mut full = false;
    for _ in 0..10_000 {
        match out.try_send(Lane::High, &frame(&key, sent, 16 * 1024, &mut arena)) {
            Ok(()) => sent += 1,
            Err(SendError::Full) => {
                full = true;
                tokio::time::sleep(Duration::from_millis(20)).await;
                if out
                    .try_send(Lane::High, &frame(&key, sent, 16 * 1024, &mut arena))
                    .is_err()
                {
                    break;
                }
                sent += 1;
            }
            Err(e) => panic!("{e}"),
        }
        tokio::task::yield_now().await;
    }
    assert!(full, "a link with a stalled reader never reported Full");
    // Bounded: in-flight + quinn send window + receive windows + inbox, about 6 MiB here.
    assert!(
        sent * 16 * 1024 < 16 << 20,
        "sent {sent} frames into a stalled link"
    );
    assert!(out.queued_bytes() <= 1 << 20);
    // The reader wakes up and gets every frame, in order.
    for seq in 0..sent {
        let Frame::Entry(d) = inc.recv().await.unwrap().unwrap().into_frame() else {
            panic!()
        };
        assert_eq!(d.seq(), seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_frames_are_refused_locally() {
    let config = TransportConfig {
        max_frame_len: 1024,
        ..TransportConfig::default()
    };
    let (_s, _c, _inc, out) = pair(config).await;
    let key = Keypair::generate(KeyType::Ed25519);
    let err = out
        .send(Lane::High, &frame(&key, 0, 4096, &mut BytesMut::new()))
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::TooLarge { .. }));
}

/// What a misbehaving peer writes on a raw stream, and the error the victim must report.
async fn misbehave(write: impl AsyncFnOnce(quinn::SendStream)) -> WireError {
    let (_s, _c, inc, out) = pair(TransportConfig::default()).await;
    let stream = out.dangerous_quinn_connection().open_uni().await.unwrap();
    write(stream).await;
    let err = tokio::time::timeout(Duration::from_secs(5), inc.recv())
        .await
        .expect("victim reported nothing")
        .unwrap()
        .unwrap_err();
    assert_eq!(inc.counters().protocol_errors.load(Ordering::Relaxed), 1);
    // The same connection still works on its other streams.
    out.ping().await.unwrap();
    err
}

fn header() -> Bytes {
    encode_frame(&Frame::StreamHeader(StreamHeader { lane: Lane::High }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bytes_are_a_typed_error() {
    let err = misbehave(async |mut s: quinn::SendStream| {
        s.write_all(b"\x05GET / HTTP/1.1\r\n").await.unwrap();
        let _ = s.finish();
    })
    .await;
    assert!(
        matches!(err, WireError::UnknownKind(_) | WireError::MissingHeader),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_length_is_a_typed_error() {
    let err = misbehave(async |mut s: quinn::SendStream| {
        s.write_all(&header()).await.unwrap();
        s.write_all(&[0xff, 0xff, 0xff, 0xff, 0x0f]).await.unwrap();
    })
    .await;
    assert!(matches!(err, WireError::Oversized { .. }), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_kind_is_a_typed_error() {
    let err = misbehave(async |mut s: quinn::SendStream| {
        s.write_all(&header()).await.unwrap();
        s.write_all(&[2, 0x6e, 0]).await.unwrap();
    })
    .await;
    assert!(matches!(err, WireError::UnknownKind(0x6e)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_version_is_a_typed_error() {
    let err = misbehave(async |mut s: quinn::SendStream| {
        // A stream header of version 9.
        s.write_all(&[3, 0x00, 9, 1]).await.unwrap();
    })
    .await;
    assert!(
        matches!(err, WireError::UnsupportedVersion { version: 9, .. }),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frame_is_a_typed_error() {
    let err = misbehave(async |mut s: quinn::SendStream| {
        s.write_all(&header()).await.unwrap();
        s.write_all(&[100, 0x03, 1, 1, 0, 0]).await.unwrap();
        s.finish().unwrap();
    })
    .await;
    assert!(matches!(err, WireError::Truncated), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_mid_frame_is_a_typed_error() {
    let err = misbehave(async |mut s: quinn::SendStream| {
        s.write_all(&header()).await.unwrap();
        s.write_all(&[100, 0x03, 1]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        s.reset(quinn::VarInt::from_u32(7)).unwrap();
    })
    .await;
    assert!(matches!(err, WireError::Reset(7)), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_peer_does_not_disturb_other_connections() {
    let server = endpoint(TransportConfig::default());
    let bad = endpoint(TransportConfig::default());
    let good = endpoint(TransportConfig::default());
    let s = server.clone();
    let accept = tokio::spawn(async move {
        let a = s.accept().await.unwrap().unwrap();
        let b = s.accept().await.unwrap().unwrap();
        (a, b)
    });
    let bad_out = bad.dial(&server.local_multiaddr()).await.unwrap();
    let good_out = good.dial(&server.local_multiaddr()).await.unwrap();
    let (a, b) = accept.await.unwrap();
    let (bad_in, good_in) = if a.peer_id() == bad.peer_id() {
        (a, b)
    } else {
        (b, a)
    };
    // The bad peer opens more garbage streams than the error budget allows.
    for _ in 0..10 {
        // Once the victim has had enough, opening fails: that is the point.
        let Ok(mut s) = bad_out.dangerous_quinn_connection().open_uni().await else {
            break;
        };
        let _ = s.write_all(b"\x01\x7f").await;
        let _ = s.finish();
    }
    tokio::time::timeout(Duration::from_secs(5), bad_in.closed())
        .await
        .unwrap();
    let errors = bad_in.counters().protocol_errors.load(Ordering::Relaxed);
    // Streams are read concurrently, so one already being read when the budget ran out may
    // still count: at least the budget, at most what was sent.
    let budget = u64::from(TransportConfig::default().max_protocol_errors);
    assert!((budget..=10).contains(&errors), "{errors} errors");
    // The good peer streams on, unaffected.
    let key = Keypair::generate(KeyType::Ed25519);
    let mut arena = BytesMut::new();
    for seq in 0..50 {
        good_out
            .send(Lane::High, &frame(&key, seq, 1000, &mut arena))
            .await
            .unwrap();
    }
    for seq in 0..50 {
        let Frame::Entry(d) = good_in.recv().await.unwrap().unwrap().into_frame() else {
            panic!()
        };
        assert_eq!(d.seq(), seq);
    }
    good_out.ping().await.unwrap();
}

/// rust-libp2p's own TLS configs (as libp2p-quic builds them) interoperate with Starling's, in
/// both directions, and each side learns the right PeerId.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libp2p_tls_peers_complete_the_handshake() {
    use std::sync::Arc;
    let server = endpoint(TransportConfig::default());
    let s = server.clone();
    let accept = tokio::spawn(async move { s.accept().await.unwrap().unwrap() });

    // A client configured exactly as libp2p's QUIC transport configures itself.
    let libp2p_key = libp2p_identity::Keypair::generate_ed25519();
    let tls = libp2p_tls::make_client_config(&libp2p_key, Some(server.peer_id())).unwrap();
    let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse().unwrap()).unwrap();
    client.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
    let conn = client
        .connect(server.local_addr(), "l")
        .unwrap()
        .await
        .unwrap();
    let inc = accept.await.unwrap();
    assert_eq!(inc.peer_id(), libp2p_key.public().to_peer_id());
    conn.close(0u32.into(), b"");

    // And the other way: a libp2p server config accepts a Starling client.
    let libp2p_key = libp2p_identity::Keypair::generate_ed25519();
    let tls = libp2p_tls::make_server_config(&libp2p_key).unwrap();
    let quic = quinn::crypto::rustls::QuicServerConfig::try_from(tls).unwrap();
    let libp2p_server = quinn::Endpoint::server(
        quinn::ServerConfig::with_crypto(Arc::new(quic)),
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let addr = libp2p_server.local_addr().unwrap();
    let accept = tokio::spawn(async move { libp2p_server.accept().await.unwrap().await.unwrap() });
    let dialer = endpoint(TransportConfig::default());
    let out = dialer
        .dial_addr(addr, Some(libp2p_key.public().to_peer_id()))
        .await
        .unwrap();
    assert_eq!(out.peer_id(), libp2p_key.public().to_peer_id());
    let theirs = accept.await.unwrap();
    let certs = theirs
        .peer_identity()
        .unwrap()
        .downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
        .unwrap();
    let parsed = libp2p_tls::certificate::parse(&certs[0]).unwrap();
    assert_eq!(parsed.peer_id(), dialer.peer_id());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_last_handle_closes_the_connection() {
    let (_s, _c, inc, out) = pair(TransportConfig::default()).await;
    out.ping().await.unwrap();
    drop(out);
    let reason = tokio::time::timeout(Duration::from_secs(5), inc.closed())
        .await
        .expect("the remote never saw the connection close");
    assert!(reason.to_string().contains("dropped"), "{reason}");
}

/// Inbound connections are capped per source network and in total, checked before the
/// handshake; a place comes back when its connection goes. (Clients on 127.0.0.2 and
/// 127.0.0.3 are other networks than 127.0.0.1.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_connections_are_capped_per_network_and_in_total() {
    let server = endpoint(TransportConfig {
        max_inbound_connections: 3,
        max_inbound_per_network: 2,
        ..TransportConfig::default()
    });
    let accepting = server.clone();
    let accepted = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Some(incoming) = accepting.incoming().await {
            if let Ok(conn) = incoming.finish().await {
                held.push(conn);
            }
        }
        held
    });
    let client_on = |ip: &str| {
        Endpoint::bind(
            Keypair::generate(KeyType::Ed25519),
            format!("{ip}:0").parse().unwrap(),
            TransportConfig {
                connect_timeout: Duration::from_secs(3),
                ..TransportConfig::default()
            },
        )
        .unwrap()
    };
    let addr = server.local_multiaddr();
    let (a1, a2, a3) = (
        client_on("127.0.0.1"),
        client_on("127.0.0.1"),
        client_on("127.0.0.1"),
    );
    let first = a1.dial(&addr).await.expect("first from 127.0.0.1");
    let _second = a2.dial(&addr).await.expect("second from 127.0.0.1");
    assert!(
        a3.dial(&addr).await.is_err(),
        "a third from one network is refused"
    );
    let b = client_on("127.0.0.2");
    let _third = b.dial(&addr).await.expect("another network");
    let c = client_on("127.0.0.3");
    assert!(c.dial(&addr).await.is_err(), "over the total");
    assert_eq!(server.inbound_connections(), 3);
    // A connection closed gives its place back.
    first.close("done");
    drop(first);
    a1.close().await;
    let mut freed = false;
    for _ in 0..50 {
        if server.inbound_connections() < 3 {
            freed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(freed, "still {} inbound", server.inbound_connections());
    c.dial(&addr).await.expect("room again");
    server.close().await;
    drop(accepted);
}
