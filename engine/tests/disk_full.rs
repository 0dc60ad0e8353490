//! A full disk, for real: stores on small tmpfs mounts the tests make (and unmount)
//! themselves. Skipped, saying so, where the machine does not let a test mount (not root).

use std::path::{Path, PathBuf};
use std::process::Command;

use std::time::Duration;

use bytes::Bytes;
use starling_engine::log::Order;
use starling_engine::{LiveStream, MediaFrame, Peer, PeerConfig, SubscribeOptions};
use starling_net::entry::session::index_of;
use starling_net::{KeyType, Keypair};
use starling_store::{Durability, NewEntry, Store, StoreConfig, StoreError};

/// A tmpfs mounted on a fresh directory, unmounted on drop (also when the test panics).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().ok()?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .ok()?;
        if !out.status.success() {
            eprintln!(
                "skipped: cannot mount a tmpfs here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("store")
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

fn open(dir: &Path) -> Store {
    Store::open(
        dir,
        StoreConfig {
            durability: Durability::SyncEachWrite,
            ..StoreConfig::default()
        },
    )
    .expect("store opens")
}

const LOG: [u8; 32] = [7; 32];

/// 64 KiB that do not compress (fjall's journal compresses), seeded by `i`.
fn noise(i: u32) -> Bytes {
    let mut x = u64::from(i).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..64 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn write(store: &Store, i: u32) -> Result<(), StoreError> {
    let mut hash = [0u8; 32];
    hash[..4].copy_from_slice(&i.to_be_bytes());
    let mut clock = [0u8; 44];
    clock[..4].copy_from_slice(&i.to_be_bytes());
    let payload = noise(i);
    store.write_entries(
        &LOG,
        &[NewEntry {
            hash,
            header: Bytes::from(vec![1u8; 200]),
            payload,
            clock,
            next: &[],
            is_head: true,
        }],
        &[],
    )
}

#[test]
fn a_full_disk_is_a_typed_error_and_what_was_written_survives_reopening() {
    let Some(fs) = Tmpfs::mount("3m") else { return };
    let dir = fs.path();
    // Room to give back before reopening.
    let ballast = fs.dir.path().join("ballast");
    let store = open(&dir);
    std::fs::write(&ballast, vec![0u8; 512 * 1024]).expect("ballast");
    let mut written = 0u32;
    let first_error = loop {
        match write(&store, written) {
            Ok(()) => written += 1,
            Err(e) => break e,
        }
        assert!(written < 1_000, "a 3 MiB disk never filled");
    };
    eprintln!("{written} entries written, then: {first_error}");
    assert!(
        matches!(first_error, StoreError::Full(_)),
        "{first_error:?}"
    );
    assert!(first_error.is_disk_failure());
    let then = write(&store, written + 1).expect_err("no more writes");
    assert!(then.is_disk_failure(), "{then:?}");
    // Reads still work.
    let mut hash = [0u8; 32];
    hash[..4].copy_from_slice(&0u32.to_be_bytes());
    assert!(store.entry(&hash).expect("read").is_some());
    drop(store);

    std::fs::remove_file(&ballast).expect("free some space");
    let store = open(&dir);
    for i in 0..written {
        let mut hash = [0u8; 32];
        hash[..4].copy_from_slice(&i.to_be_bytes());
        let (_, payload) = store
            .entry(&hash)
            .expect("read")
            .expect("written entry survives");
        assert_eq!(payload, noise(i));
    }
    // The write that failed is wholly there or wholly absent (it may have reached the journal
    // before the failure was seen).
    let mut hash = [0u8; 32];
    hash[..4].copy_from_slice(&written.to_be_bytes());
    match store.entry(&hash).expect("read") {
        Some((_, payload)) => {
            eprintln!("the failed write is durable after reopening");
            assert_eq!(payload, noise(written));
        }
        None => eprintln!("the failed write is absent after reopening"),
    }
    // Writes work again once there is room.
    write(&store, 5_000).expect("a write after reopening");
}

/// A publisher's on-disk window is a cache for late joiners: when the disk fills, the stream
/// goes on (every frame still signed, sent and kept in memory for catch-ups), the publisher
/// says how many frames were not stored and why, and nothing is lost to subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_streams_on_when_its_disk_is_full() {
    let Some(fs) = Tmpfs::mount("4m") else { return };
    let owner = Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            data_dir: Some(fs.path()),
            ..PeerConfig::default()
        },
    )
    .await
    .expect("owner starts");
    let mut publisher = match owner.open_stream("cam").expect("open") {
        LiveStream::Publisher(p) => *p,
        other => panic!("expected to own it: {other:?}"),
    };
    let viewer = Peer::start(
        Keypair::generate(KeyType::Ed25519),
        PeerConfig {
            bootstrap: vec![owner.local_addr()],
            ..PeerConfig::default()
        },
    )
    .await
    .expect("viewer starts");
    let mut sub = viewer
        .subscribe(publisher.address(), SubscribeOptions::default())
        .expect("subscribe");
    assert!(sub.wait_attached(Duration::from_secs(10)).await);
    // 160 frames of 64 KiB: 10 MiB through a 4 MiB disk.
    const FRAMES: u64 = 160;
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while (got.len() as u64) < FRAMES {
            match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
                Ok(Some(f)) => got.push(index_of(f.seq)),
                _ => break,
            }
        }
        got
    });
    for i in 0..FRAMES {
        let frame = if i % 10 == 0 {
            MediaFrame::key(noise(i as u32), i * 33_333)
        } else {
            MediaFrame::delta(noise(i as u32), i * 33_333)
        };
        publisher
            .push(frame)
            .expect("a full disk does not refuse frames");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    publisher.flush().expect("nothing failed but the store");
    let stats = publisher.stats();
    eprintln!("{stats:?}");
    assert_eq!(stats.published, FRAMES);
    assert!(stats.unstored > 0, "the disk filled: {stats:?}");
    assert!(stats.store_error.is_some());
    let got = reader.await.expect("reader");
    assert_eq!(
        got,
        (0..FRAMES).collect::<Vec<_>>(),
        "every frame, in order"
    );
    // What the store did take verifies.
    {
        let log = publisher.log();
        assert!(log.len() < FRAMES);
        for e in log.iter(Order::Forward, None) {
            e.expect("stored entry reads")
                .verify()
                .expect("and verifies");
        }
    }
    viewer.close().await;
    owner.close().await;
}
