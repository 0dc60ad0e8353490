//! A process killed with SIGKILL in the middle of appends loses nothing it acknowledged (with
//! the default per-write sync) and never leaves a corrupt or half-written entry.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use starling_engine::log::{Log, LogConfig, LogId, Order};
use starling_net::identity::{KeyType, Keypair};
use starling_store::{Store, StoreConfig};

const LOG: LogId = LogId([5; 32]);
const ENV: &str = "STARLING_CRASH_DIR";

fn key() -> Keypair {
    Keypair::from_secret_bytes(KeyType::Ed25519, &[3; 32]).unwrap()
}

/// The child: appends until killed, printing each acknowledged count. A no-op when run as an
/// ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV) else { return };
    let store = Store::open(dir.as_ref(), StoreConfig::default()).unwrap();
    let mut log = Log::open(store, LOG, key(), LogConfig::default()).unwrap();
    let mut n = log.len();
    loop {
        let payload: Vec<u8> = (0..4096u32).map(|i| (i as u64 * (n + 7)) as u8).collect();
        log.append(Bytes::from(payload)).unwrap();
        n += 1;
        println!("acked {n}");
    }
}

#[test]
fn sigkill_mid_append_loses_no_acknowledged_entry() {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    for round in 1..=3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV, dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // Let it get well into its appends, then kill it mid-stream.
        let target = acked + 150 + 37 * round;
        for line in lines.by_ref() {
            if let Some(n) = line.unwrap().strip_prefix("acked ") {
                acked = n.parse().unwrap();
                if acked >= target {
                    break;
                }
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();

        let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
        let log = Log::open(store, LOG, key(), LogConfig::default()).unwrap();
        assert!(
            log.len() >= acked,
            "round {round}: {} < {acked} acknowledged",
            log.len()
        );
        // Every stored entry decodes, hashes and verifies; they form one chain with one head.
        let entries: Vec<_> = log.iter(Order::Forward, None).map(|e| e.unwrap()).collect();
        assert_eq!(entries.len() as u64, log.len());
        for pair in entries.windows(2) {
            pair[1].verify().unwrap();
            assert_eq!(pair[1].next().collect::<Vec<_>>(), vec![pair[0].hash()]);
        }
        assert_eq!(log.heads(), vec![entries.last().unwrap().hash()]);
        acked = log.len();
    }
}
