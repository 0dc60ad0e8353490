//! Direct messages by protocol tag between real peers over QUIC: a program gets the messages of
//! its own protocol, with their verified origin; a message for no program is counted and
//! dropped, and stream catch-up (the peer's own protocol) is untouched by either.

mod common;

use std::time::Duration;

use bytes::BufMut;
use starling_engine::Protocol;

use common::peer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_program_gets_its_protocols_messages_and_no_one_elses() {
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    const MINE: Protocol = Protocol(42);
    let mut inbox = b.register_protocol(MINE).expect("free tag");
    assert!(
        b.register_protocol(Protocol::STREAM_CATCH_UP).is_err(),
        "the peer's own protocol is taken"
    );
    let message = |protocol: Protocol, text: &[u8]| {
        let mut m = protocol.message(text.len());
        m.put_slice(text);
        m.freeze()
    };
    // Until `a` has taken in the connection `b` made, it has no route to `b`: say hello until
    // it arrives.
    let mut got = None;
    for _ in 0..50 {
        a.send_direct(b.peer_id(), message(MINE, b"hello"));
        if let Ok(m) = tokio::time::timeout(Duration::from_millis(200), inbox.recv()).await {
            got = m;
            break;
        }
    }
    let got = got.expect("a hello within 10 s");
    assert_eq!(got.origin, a.peer_id());
    assert_eq!(&got.body[..], b"hello");
    a.send_direct(b.peer_id(), message(Protocol(43), b"for nobody"));
    for _ in 0..100 {
        if b.router_stats().unknown == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        b.router_stats().unknown,
        1,
        "the untagged protocol was dropped"
    );
    // (Later hellos may still arrive: only ours.)
    while let Ok(m) = inbox.try_recv() {
        assert_eq!(&m.body[..], b"hello");
    }
    b.close().await;
    a.close().await;
}
