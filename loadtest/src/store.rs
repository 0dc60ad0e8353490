//! `starling-loadtest store`: raw fjall (the ceiling) against Starling's append and join, in
//! the same run, on the same disk, for 1 KiB and 64 KiB payloads.
//!
//! Starling appends as a writer under load does: `--max-batch` entries per call, one batch
//! signature and one write batch for all of them (`--max-batch 1`: every entry alone). Raw
//! fjall runs twice: one value per write batch (the ceiling of one-at-a-time writes) and the
//! same number of values per write batch as Starling's appends.

use std::time::{Duration, Instant};

use anyhow::Result;
use bytes::Bytes;
use clap::Args;
use fjall::{Database, KeyspaceCreateOptions, KvSeparationOptions, PersistMode};
use starling_engine::log::{Draft, Entry, Log, LogConfig, LogId};
use starling_net::identity::{KeyType, Keypair};
use starling_store::{Durability, Store, StoreConfig};

use crate::util::noise;

#[derive(Debug, Args)]
pub(crate) struct StoreArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Directory for the databases (a temporary directory by default).
    #[arg(long)]
    dir: Option<std::path::PathBuf>,
    /// Entries per append call (one batch signature, one write batch).
    #[arg(long, default_value_t = 64)]
    max_batch: usize,
}

/// (operations per second, MB/s of payload)
type Rate = (f64, f64);

fn rate(ops: u64, bytes: u64, start: Instant) -> Rate {
    let secs = start.elapsed().as_secs_f64();
    (ops as f64 / secs, bytes as f64 / 1e6 / secs)
}

/// Raw fjall: `per_batch` values per write batch into a keyspace set up as Starling's payload
/// keyspace.
fn raw_fjall(
    dir: &std::path::Path,
    size: usize,
    sync: bool,
    per_batch: usize,
    budget: Duration,
) -> Result<Rate> {
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
        for _ in 0..per_batch {
            batch.insert(
                &ks,
                n.to_be_bytes().to_vec(),
                payloads[n as usize % 64].clone(),
            );
            n += 1;
        }
        batch.commit()?;
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

/// Starling: hash, compress-probe, encode, sign (one signature per `per_batch`) and store
/// (one write batch per `per_batch`).
fn append(
    dir: &std::path::Path,
    size: usize,
    sync: bool,
    per_batch: usize,
    budget: Duration,
) -> Result<Rate> {
    let store = Store::open(dir, store_config(sync))?;
    let mut log = Log::open(
        store,
        LogId([1; 32]),
        Keypair::generate(KeyType::Ed25519),
        LogConfig::default(),
    )?;
    let payloads: Vec<Bytes> = (0..64).map(|i| noise(size, i)).collect();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget {
        let drafts: Vec<Draft<'_>> = (0..per_batch)
            .map(|i| Draft::new(payloads[(n as usize + i) % 64].clone()))
            .collect();
        log.append_batch(drafts)?;
        n += per_batch as u64;
    }
    Ok(rate(n, n * size as u64, start))
}

/// Join: entries another peer wrote in batches of `per_batch`, decoded, verified (one signature
/// check per batch) and stored, 256 per join.
fn join(dir: &std::path::Path, size: usize, count: u64, per_batch: usize) -> Result<Rate> {
    let source = Store::open(&dir.join("source"), store_config(false))?;
    let mut writer = Log::open(
        source,
        LogId([2; 32]),
        Keypair::generate(KeyType::Ed25519),
        LogConfig::default(),
    )?;
    let payloads: Vec<Bytes> = (0..64).map(|i| noise(size, i)).collect();
    let mut entries: Vec<Entry> = Vec::with_capacity(count as usize);
    while (entries.len() as u64) < count {
        let drafts: Vec<Draft<'_>> = (0..per_batch)
            .map(|i| Draft::new(payloads[(entries.len() + i) % 64].clone()))
            .collect();
        entries.extend(writer.append_batch(drafts)?);
    }
    let count = entries.len() as u64;
    let target = Store::open(&dir.join("target"), store_config(false))?;
    let mut reader = Log::open(
        target,
        LogId([2; 32]),
        Keypair::generate(KeyType::Ed25519),
        LogConfig::default(),
    )?;
    let start = Instant::now();
    for chunk in entries.chunks(256) {
        // As received from the network: decoded from bytes (checks lengths and payload hash).
        let batch = chunk
            .iter()
            .map(|e| Entry::from_bytes(e.to_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let report = reader.join(batch)?;
        anyhow::ensure!(report.rejected.is_empty(), "join rejected entries");
    }
    Ok(rate(count, count * size as u64, start))
}

pub(crate) fn run(args: StoreArgs) -> Result<()> {
    let budget = Duration::from_secs_f64(args.seconds);
    let per_batch = args.max_batch.clamp(1, starling_engine::log::MAX_BATCH);
    let tmp = tempfile::tempdir_in(args.dir.clone().unwrap_or_else(std::env::temp_dir))?;
    let fresh = |name: &str| tmp.path().join(name);
    println!("Starling appends {per_batch} entries per call (one signature, one write batch)");
    println!(
        "{:<22} {:>13} {:>15} {:>12} {:>10} {:>8} {:>9}",
        "durability / payload",
        "raw fjall 1/s",
        "raw fjall N/s",
        "starling/s",
        "MB/s",
        "ratio",
        "ratio N"
    );
    let mut json = vec![format!("\"max_batch\":{per_batch}")];
    let mut raw_1k = 0.0;
    for (sync, label) in [(false, "buffered"), (true, "sync")] {
        for (size, tag) in [(1024usize, "1k"), (64 * 1024, "64k")] {
            let raw = raw_fjall(&fresh(&format!("raw-{label}-{tag}")), size, sync, 1, budget)?;
            let raw_n = raw_fjall(
                &fresh(&format!("rawn-{label}-{tag}")),
                size,
                sync,
                per_batch,
                budget,
            )?;
            let ours = append(
                &fresh(&format!("log-{label}-{tag}")),
                size,
                sync,
                per_batch,
                budget,
            )?;
            println!(
                "{:<22} {:>13.0} {:>15.0} {:>12.0} {:>10.1} {:>8.2} {:>9.2}",
                format!("{label} / {tag}"),
                raw.0,
                raw_n.0,
                ours.0,
                ours.1,
                ours.1 / raw.1,
                ours.1 / raw_n.1
            );
            let suffix = if sync { "_sync" } else { "" };
            json.push(format!(
                "\"raw_fjall_mb_s_{tag}{suffix}\":{:.1},\"raw_fjall_per_s_{tag}{suffix}\":{:.0},\"raw_fjall_batched_per_s_{tag}{suffix}\":{:.0},\"append_mb_s_{tag}{suffix}\":{:.1},\"append_per_s_{tag}{suffix}\":{:.0},\"ratio_{tag}{suffix}\":{:.3},\"ratio_batched_{tag}{suffix}\":{:.3}",
                raw.1, raw.0, raw_n.0, ours.1, ours.0, ours.1 / raw.1, ours.1 / raw_n.1
            ));
            if !sync && size == 1024 {
                raw_1k = raw.0;
                json.push(format!("\"ratio_append_1k\":{:.3}", ours.0 / raw.0));
            }
        }
    }
    let joined = join(&fresh("join-1k"), 1024, 20_000, per_batch)?;
    println!(
        "join (decode + verify + store), buffered, 1k, written in batches of {per_batch}: {:.0} entries/s ({:.2} of raw fjall)",
        joined.0,
        joined.0 / raw_1k
    );
    json.push(format!(
        "\"join_per_s_1k\":{:.0},\"ratio_join_1k\":{:.3}",
        joined.0,
        joined.0 / raw_1k
    ));
    println!("{{{}}}", json.join(","));
    Ok(())
}
