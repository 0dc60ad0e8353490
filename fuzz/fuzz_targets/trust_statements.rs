//! Trust statements come from any writer: decoding one must never panic, and a graph fed
//! arbitrary statements (cycles, self-delegations, revocations in any order) must answer
//! every question without panicking or looping.
#![no_main]

use libfuzzer_sys::fuzz_target;
use starling_engine::trust::{Statement, TrustGraph};
use starling_net::{KeyType, Keypair, PublicKey};

fuzz_target!(|data: &[u8]| {
    let _ = postcard::from_bytes::<Statement>(data);
    // A small world of keys, statements chosen by the input.
    let keys: Vec<PublicKey> = (1..=6u8)
        .map(|i| *Keypair::from_secret_bytes(KeyType::Ed25519, &[i; 32]).expect("key").public())
        .collect();
    let mut graph = TrustGraph::new(keys[0]);
    for (n, chunk) in data.chunks(4).enumerate() {
        let [a, b, c, d] = [0, 1, 2, 3].map(|i| chunk.get(i).copied().unwrap_or(0));
        let issuer = keys[usize::from(a) % keys.len()];
        let subject = keys[usize::from(b) % keys.len()].encode_protobuf();
        let statement = if c & 1 == 0 {
            Statement::Delegate {
                subject,
                scopes: if c & 2 == 0 { Vec::new() } else { vec!["w".into()] },
                expires_us: (c & 4 != 0).then_some(u64::from(d) * 10),
                may_delegate: c & 8 != 0,
            }
        } else {
            Statement::Revoke { subject }
        };
        graph.insert(issuer, (u64::from(d), n as u32, [n as u8; 32]), statement);
    }
    for k in &keys {
        for at in [0, 100, 1000, 3000] {
            let _ = graph.verdict(k, at, Some("w"), true);
            let trusted = graph.verdict(k, at, None, false).is_trusted();
            // Who may write statements (the store's access rule) is always trusted too.
            assert!(!graph.may_delegate(k, at) || trusted);
        }
    }
});
