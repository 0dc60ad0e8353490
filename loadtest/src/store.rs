//! `starling-loadtest store`: raw fjall (the ceiling) against Starling's append and join, in
//! the same run, on the same disk, for 1 KiB and 64 KiB payloads.

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use fjall::{Database, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use starling_engine::log::{Entry, Log, LogConfig};
use starling_net::identity::{KeyType, Keypair};
use starling_store::{Durability, Store, StoreConfig};

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Directory for the databases (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
}

fn noise(len: usize, seed: u64) -> Bytes {
    let mut buf = vec![0u8; len];
    blake3::Hasher::new()
        .update(&seed.to_le_bytes())
        .finalize_xof()
        .fill(&mut buf);
    Bytes::from(buf)
}

/// (operations per second, MB/s of payload)
type Rate = (f64, f64);

fn rate(ops: u64, bytes: u64, start: Instant) -> Rate {
    let secs = start.elapsed().as_secs_f64();
    (ops as f64 / secs, bytes as f64 / 1e6 / secs)
}

/// Raw fjall: one batch per value into a keyspace set up as Starling's payload keyspace.
fn raw_fjall(dir: &std::path::Path, size: usize, sync: bool, budget: Duration) -> Result<Rate> {
    let db = Database::builder(dir).open()?;
    let ks = db.keyspace("values", || {
        KeyspaceCreateOptions::default().with_kv_separation(Some(
            KvSeparationOptions::default().separation_threshold(4096),
        ))
    })?;
    let payloads: Vec<Bytes> = (0..64).map(|i| noise(size, i)).collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let mut batch = db.batch().durability(sync.then_some(PersistMode::SyncData));
        batch.insert(
            &ks,
            n.to_be_bytes().to_vec(),
            payloads[n as usize % 64].clone(),
        );
        batch.commit()?;
        n += 1;
    }
    Ok(rate(n, n * size as u64, start))
}

fn store_config(sync: bool) -> StoreConfig {
    StoreConfig {
        durability: if sync {
            Durability::SyncEachWrite
        } else {
            Durability::Buffered
        },
        ..StoreConfig::default()
    }
}

/// Starling: hash, compress-probe, sign, encode and store one entry per append.
fn append(dir: &std::path::Path, size: usize, sync: bool, budget: Duration) -> Result<Rate> {
    let store = Store::open(dir, store_config(sync))?;
    let mut log = Log::open(
        store,
        [1; 32],
        Keypair::generate(KeyType::Ed25519),
        LogConfig::default(),
    )?;
    let payloads: Vec<Bytes> = (0..64).map(|i| noise(size, i)).collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        log.append(payloads[n as usize % 64].clone())?;
        n += 1;
    }
    Ok(rate(n, n * size as u64, start))
}

/// Join: entries written by another peer, verified in batches of 256 and stored.
fn join(dir: &std::path::Path, size: usize, count: u64) -> Result<Rate> {
    let source = Store::open(&dir.join("source"), store_config(false))?;
    let mut writer = Log::open(
        source,
        [2; 32],
        Keypair::generate(KeyType::Ed25519),
        LogConfig::default(),
    )?;
    let payloads: Vec<Bytes> = (0..64).map(|i| noise(size, i)).collect();
    let entries: Vec<Entry> = (0..count)
        .map(|i| writer.append(payloads[i as usize % 64].clone()))
        .collect::<Result<_, _>>()?;
    let target = Store::open(&dir.join("target"), store_config(false))?;
    let mut reader = Log::open(
        target,
        [2; 32],
        Keypair::generate(KeyType::Ed25519),
        LogConfig::default(),
    )?;
    let start = Instant::now();
    for chunk in entries.chunks(256) {
        // As received from the network: decoded from bytes (checks lengths and payload hash).
        let batch = chunk
            .iter()
            .map(|e| Entry::decode(e.header().clone(), e.stored_payload().clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let report = reader.join(batch)?;
        anyhow::ensure!(report.rejected.is_empty(), "join rejected entries");
    }
    Ok(rate(count, count * size as u64, start))
}

pub(crate) fn run(args: StoreArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds);
    let tmp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let fresh = |name: &str| tmp.path().join(name);
    println!(
        "{:<28} {:>12} {:>10} {:>12} {:>10} {:>8}",
        "durability / payload", "raw fjall/s", "raw MB/s", "starling/s", "MB/s", "ratio"
    );
    let mut json = Vec::new();
    for (sync, label) in [(false, "buffered"), (true, "sync")] {
        for (size, tag) in [(1024usize, "1k"), (64 * 1024, "64k")] {
            let raw = raw_fjall(&fresh(&format!("raw-{label}-{tag}")), size, sync, budget)?;
            let ours = append(&fresh(&format!("log-{label}-{tag}")), size, sync, budget)?;
            println!(
                "{:<28} {:>12.0} {:>10.1} {:>12.0} {:>10.1} {:>8.2}",
                format!("{label} / {tag}"),
                raw.0,
                raw.1,
                ours.0,
                ours.1,
                ours.1 / raw.1
            );
            let suffix = if sync { "_sync" } else { "" };
            json.push(format!(
                "\"raw_fjall_mb_s_{tag}{suffix}\":{:.1},\"raw_fjall_per_s_{tag}{suffix}\":{:.0},\"append_mb_s_{tag}{suffix}\":{:.1},\"append_per_s_{tag}{suffix}\":{:.0},\"ratio_{tag}{suffix}\":{:.3}",
                raw.1, raw.0, ours.1, ours.0, ours.1 / raw.1
            ));
        }
    }
    let joined = join(&fresh("join-1k"), 1024, 20_000)?;
    println!(
        "join (verify + store), buffered, 1k: {:.0} entries/s",
        joined.0
    );
    json.push(format!("\"join_per_s_1k\":{:.0}", joined.0));
    println!("{{{}}}", json.join(","));
    Ok(())
}
