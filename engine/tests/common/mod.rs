//! Shared helpers for the engine's integration tests: stores, keys, logs, peers on loopback.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use starling_engine::log::{Log, LogConfig, LogId};
use starling_engine::{Peer, PeerConfig};
use starling_net::identity::{KeyType, Keypair};
use starling_store::{Durability, Store, StoreConfig};

pub(crate) fn store(dir: &Path) -> Store {
    Store::open(
        dir,
        StoreConfig {
            durability: Durability::Buffered,
            ..StoreConfig::default()
        },
    )
    .unwrap()
}

pub(crate) fn key(seed: u8) -> Keypair {
    Keypair::from_secret_bytes(KeyType::Ed25519, &[seed; 32]).unwrap()
}

pub(crate) const LOG: LogId = LogId([42; 32]);

pub(crate) fn open(dir: &Path, seed: u8, config: LogConfig) -> Log {
    Log::open(store(dir), LOG, key(seed), config).unwrap()
}

/// A log opened as if at `now_us` (the session a fresh log starts depends on it).
pub(crate) fn open_at(dir: &Path, seed: u8, now_us: u64) -> Log {
    Log::open_at(store(dir), LOG, key(seed), LogConfig::default(), now_us).unwrap()
}

/// A peer on 127.0.0.1 (any port) with a fresh key, connected to `bootstrap`.
pub(crate) async fn peer(bootstrap: &[&Peer]) -> Peer {
    Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            bootstrap: bootstrap.iter().map(|p| p.local_addr()).collect(),
            ..PeerConfig::default()
        },
    )
    .await
    .expect("peer starts")
}

/// Waits until `cond` holds (checked every 50 ms), up to 20 s.
pub(crate) async fn until(what: &str, mut cond: impl FnMut() -> bool) {
    for _ in 0..400 {
        if cond() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
