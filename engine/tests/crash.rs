//! A process killed with SIGKILL in the middle of appends loses nothing it acknowledged (with
//! the default per-write sync, and with OS-buffered writes — fjall's journal buffer is flushed
//! to the OS by every batch) and never leaves a corrupt or half-written entry; killed in the
//! middle of document puts, it leaves index rows exactly as the documents derive them (with
//! the put split into two batches, this fails two runs in three).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use starling_engine::log::{Log, LogConfig, LogId, Order};
use starling_net::identity::{KeyType, Keypair};
use starling_store::{Store, StoreConfig};

const LOG: LogId = LogId([5; 32]);
const ENV: &str = "STARLING_CRASH_DIR";
/// `buffered` makes the child write with `Durability::Buffered`.
const DURABILITY_ENV: &str = "STARLING_CRASH_DURABILITY";

fn config_from_env() -> StoreConfig {
    match std::env::var(DURABILITY_ENV).as_deref() {
        Ok("buffered") => StoreConfig {
            durability: starling_store::Durability::Buffered,
            ..StoreConfig::default()
        },
        _ => StoreConfig::default(),
    }
}

fn key() -> Keypair {
    Keypair::from_secret_bytes(KeyType::Ed25519, &[3; 32]).unwrap()
}

/// The child: appends until killed, printing each acknowledged count. A no-op when run as an
/// ordinary test.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(ENV) else { return };
    let store = Store::open(dir.as_ref(), config_from_env()).unwrap();
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
    kill_mid_appends("sync");
}

/// Without the flush of fjall's journal buffer on every batch this loses the last writes
/// (found killing a replicator process).
#[test]
fn sigkill_mid_buffered_appends_loses_no_acknowledged_entry() {
    kill_mid_appends("buffered");
}

fn kill_mid_appends(durability: &str) {
    let dir = tempfile::tempdir().unwrap();
    let mut acked = 0u64;
    for round in 1..=3u64 {
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(ENV, dir.path())
            .env(DURABILITY_ENV, durability)
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

mod documents {
    //! The same for documents: after SIGKILL mid-puts, every acknowledged put is there and the
    //! index rows are exactly the ones the documents derive (one batch per change).

    use super::*;
    use serde::{Deserialize, Serialize};
    use starling_engine::documents::keys::IndexValue;
    use starling_engine::documents::{DocId, Documents, DocumentsOptions, IndexSpec, Postcard};
    use starling_engine::program::{ProgramAddress, ProgramDefinition};
    use starling_store::Table;

    const DOC_ENV: &str = "STARLING_DOC_CRASH_DIR";
    const IDS: u64 = 50;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct Post {
        title: String,
        n: i64,
        body: Vec<u8>,
    }

    fn program() -> ProgramAddress {
        ProgramDefinition::new("documents/v1", "crash", Bytes::new())
            .unwrap()
            .address()
    }

    fn open(store: Store) -> Documents<Post> {
        let index = IndexSpec::new()
            .field("title", |p: &Post| IndexValue::Str(p.title.clone()))
            .field("n", |p: &Post| IndexValue::Int(p.n));
        Documents::open(
            program(),
            store,
            key(),
            Postcard,
            index,
            DocumentsOptions::default(),
        )
        .unwrap()
    }

    /// The child: puts until killed (document `n % 50` gets version `n`), printing each
    /// acknowledged `n`. A no-op as an ordinary test.
    #[test]
    fn doc_crash_child() {
        let Ok(dir) = std::env::var(DOC_ENV) else {
            return;
        };
        let store = Store::open(dir.as_ref(), StoreConfig::default()).unwrap();
        let start: u64 = std::env::var("STARLING_DOC_CRASH_FROM")
            .unwrap()
            .parse()
            .unwrap();
        let mut docs = open(store);
        for n in start.. {
            let post = Post {
                title: format!("t{}", n % 7),
                n: n as i64,
                body: vec![n as u8; 2048],
            };
            docs.put((n % IDS) as i64, &post).unwrap();
            println!("acked {n}");
        }
    }

    #[test]
    fn sigkill_mid_put_keeps_every_acknowledged_put_and_an_exact_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut next = 0u64;
        for round in 1..=3u64 {
            let mut child = Command::new(std::env::current_exe().unwrap())
                .args([
                    "documents::doc_crash_child",
                    "--exact",
                    "--nocapture",
                    "--test-threads=1",
                ])
                .env(DOC_ENV, dir.path())
                .env("STARLING_DOC_CRASH_FROM", next.to_string())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
            let target = next + 120 + 41 * round;
            let mut acked = None;
            for line in lines.by_ref() {
                if let Some(n) = line.unwrap().strip_prefix("acked ") {
                    let n: u64 = n.parse().unwrap();
                    acked = Some(n);
                    if n >= target {
                        break;
                    }
                }
            }
            child.kill().unwrap();
            child.wait().unwrap();
            let acked = acked.expect("the child acknowledged puts");

            let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
            let docs = open(store.clone());
            let mut live = 0u64;
            let mut by_title: std::collections::BTreeMap<String, Vec<DocId>> = Default::default();
            for id in 0..IDS {
                // The newest acknowledged version of this id, or the one put after it.
                let last_acked = (0..=acked).rev().find(|n| n % IDS == id).unwrap();
                let post = docs
                    .get(id as i64)
                    .unwrap()
                    .expect("acknowledged, so there");
                assert!(
                    post.n as u64 == last_acked || post.n as u64 == last_acked + IDS,
                    "round {round}: id {id} at version {} (last acknowledged {last_acked})",
                    post.n
                );
                assert_eq!(
                    docs.ids_where("n", &IndexValue::Int(post.n)).unwrap(),
                    [DocId::Int(id as i64)]
                );
                by_title
                    .entry(post.title.clone())
                    .or_default()
                    .push(DocId::Int(id as i64));
                live += 1;
            }
            for (title, ids) in by_title {
                assert_eq!(
                    docs.ids_where("title", &IndexValue::Str(title)).unwrap(),
                    ids
                );
            }
            // No index row more than the documents derive: two per document.
            let rows = store.rows(Table::Index, &program().0, false).count() as u64;
            assert_eq!(rows, 2 * live, "round {round}: stale index rows");
            assert_eq!(docs.count().unwrap(), live);
            next = acked + 1 + IDS; // past anything the killed child may have put unacknowledged
        }
    }
}
