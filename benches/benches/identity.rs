//! Signing and verification of a frame-header-sized message: single vs batch.

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

criterion_group!(benches, signatures);
criterion_main!(benches);
