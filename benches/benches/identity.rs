//! Signing and verification of a frame-header-sized message: single vs batch; key encodings.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use starling_net::identity::{KeyType, Keypair, VerifyItem, verify_batch};

fn signatures(c: &mut Criterion) {
    let message = [7u8; 200];
    let mut group = c.benchmark_group("ed25519");
    let key = Keypair::generate(KeyType::Ed25519);
    let sig = key.sign(&message);
    group.throughput(Throughput::Elements(1));
    group.bench_function("sign", |b| b.iter(|| key.sign(&message)));
    group.bench_function("verify", |b| b.iter(|| key.public().verify(&message, &sig)));
    let keys: Vec<Keypair> = (0..64)
        .map(|_| Keypair::generate(KeyType::Ed25519))
        .collect();
    let sigs: Vec<_> = keys.iter().map(|k| k.sign(&message)).collect();
    let items: Vec<_> = keys
        .iter()
        .zip(&sigs)
        .map(|(k, s)| VerifyItem {
            key: k.public(),
            message: &message,
            signature: s,
        })
        .collect();
    group.throughput(Throughput::Elements(items.len() as u64));
    group.bench_function("verify_batch_64", |b| b.iter(|| verify_batch(&items)));
    group.finish();
}

/// PeerIds and protobuf keys, written by hand, beside libp2p's conversion (which
/// decompresses an Ed25519 point): trust verdicts and access checks encode keys per entry.
fn encodings(c: &mut Criterion) {
    let mut group = c.benchmark_group("key_encoding");
    for kt in [KeyType::Ed25519, KeyType::Secp256k1] {
        let key = *Keypair::generate(kt).public();
        group.bench_function(format!("{kt}/encode_protobuf"), |b| {
            b.iter(|| key.encode_protobuf())
        });
        group.bench_function(format!("{kt}/peer_id"), |b| b.iter(|| key.peer_id()));
        group.bench_function(format!("{kt}/peer_id_through_libp2p"), |b| {
            b.iter(|| key.to_libp2p().to_peer_id())
        });
    }
    group.finish();
}

criterion_group!(benches, signatures, encodings);
criterion_main!(benches);
